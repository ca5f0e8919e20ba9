"""Nearest-neighbour models of pretrained patch features: PatchCore and SPADE.

**PatchCore** (Roth, Pemula, Zepeda, Schölkopf, Brox, Gehler, "Towards total recall
in industrial anomaly detection", CVPR 2022).

1. *Locally aware patch features*: the feature maps of two middle stages (strides 8
   and 16) are averaged over a p×p neighbourhood (p = 3, ``patch_size``), the coarser
   map is upsampled bilinearly to the finer one and the two are concatenated: one
   feature per position of the stride-8 grid, describing a small patch with its
   context. ``projection`` optionally maps them to fewer dimensions by a fixed random
   Gaussian matrix.
2. *Memory bank* M: the patch features of all training images.
3. *Greedy coreset* (:func:`greedy_coreset`): a subset M_C of ``coreset`` × |M| entries
   (10% by default; 1% in Son et al.) chosen by greedy k-center — repeatedly add the
   bank entry farthest from the entries chosen so far,
   :math:`m_i = \\arg\\max_{m \\in M} \\min_{n \\in M_C} \\|ψ(m) - ψ(n)\\|_2`, where ψ is a
   Johnson-Lindenstrauss random projection to 128 dimensions that makes the
   distances cheap. M_C covers M with a small radius, so the nearest-neighbour
   distances barely change while the search gets ``1/coreset`` times faster.
4. *Score*: each test patch feature gets its distance to the nearest bank entry; the
   map is that distance upsampled to the input size and smoothed by a Gaussian of
   std σ = 4. The image score takes the patch m_test,* farthest from the bank, its
   nearest bank entry m* and distance s* = ‖m_test,* − m*‖, and reweights it by how
   isolated m* is among its b nearest bank neighbours N_b(m*) (b = 9 here):

   .. math:: s = \\Big(1 - \\frac{\\exp\\|m^{test,*} - m^*\\|}
                 {\\sum_{m \\in N_b(m^*)} \\exp\\|m^{test,*} - m\\|}\\Big)\\, s^*

   ``score="knn_mean"`` uses instead the kNN-averaged score of Son, Kim, Kang, Lee
   ("Improvement on image anomaly detection focusing on background anomaly"): the
   mean distance from m_test,* to the b neighbours N_b(m*).

**SPADE** (Cohen & Hoshen, "Sub-image anomaly detection with deep pyramid
correspondences", 2020), ``mode="spade"``: the image score is the mean distance of the
globally pooled deepest features (stride 32) to those of the k nearest training
images (k = 50); the map is, at each position, the distance to the nearest patch
feature among all positions of these k images (no coreset).

Speed: the greedy coreset costs O(N · n_select · 128) multiply-adds; it runs in blocks
of selections applied to the bank by one matrix product each (see
:func:`greedy_coreset`), so a 2-core CPU selects 20 480 of 204 800 entries (200
images of 256 px) in about 15 s and a GPU in about a second.
:func:`bench_coreset` and :func:`bench_knn` measure it.

Nearest neighbours are searched with faiss (exact L2; faiss on the GPU when a GPU
build is installed and CUDA is present), or torch in blocks (``search="torch"``).
"""
from __future__ import annotations

import time

import numpy as np

from ..checks import check_choice, check_in_range, check_positive_int
from .base import AnomalyResult, FeatureDetector
from .gaussian import (Gaussian, _blur_maps, _crop_features, _make_extractor,
                       _reflect_pad, _run_extractor)

__all__ = ["KNN", "greedy_coreset", "nearest_neighbors", "patchcore_score", "knn_mean_score",
           "bench_coreset", "bench_knn"]


# ----------------------------------------------------------------------------------
# greedy coreset
# ----------------------------------------------------------------------------------
def _projection_matrix(d_in, d_out, seed, dtype="float32"):
    """A Johnson-Lindenstrauss Gaussian matrix (d_in, d_out), entries N(0, 1/d_out)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((d_in, d_out)) / np.sqrt(d_out)).astype(dtype)


def greedy_coreset(features, ratio: float = 0.1, dim: int | None = 128, seed=0,
                   device=None, naive: bool = False, block: int = 256,
                   progress: bool = False, return_radius: bool = False):
    """Greedy k-center coreset of a memory bank (PatchCore, Roth et al. 2022, Alg. 1).

    Starting from one random entry, repeatedly select the entry whose distance to
    the nearest selected entry is largest:
    :math:`m_i = \\arg\\max_{m \\in M \\setminus M_C} \\min_{n \\in M_C} \\|ψ(m) − ψ(n)\\|_2`,
    until ``ratio`` × N entries are selected. ψ is a Johnson-Lindenstrauss random
    projection to ``dim`` dimensions (PatchCore: 128), applied when the features
    have more dimensions.

    The textbook loop reads the whole bank once per selected entry (N distances, then
    one argmax); on a CPU that is memory-bound. Here the selection runs in *blocks*
    and gives the same sequence. Let d(m) be the squared distance of m to its nearest
    selected entry, exact for every entry at the start of a block, T the ``block``
    entries with the largest d and τ the next largest value. Selections only lower
    d, so every entry outside T stays at d ≤ τ: as long as the largest d in T, kept
    exact against each new selection (``block`` distances), is above τ, it is the
    argmax over the whole bank and is selected. When it is not, the entries chosen
    during the block are applied to the whole bank at once — one matrix product
    :math:`\\|x\\|^2 - 2\\,X C^\\top + \\|c\\|^2` per chunk, compute-bound instead of
    memory-bound — and the next block starts. Ties go to the lowest index, like
    ``np.argmax``. ``naive=True`` runs the textbook version as a Python loop over the
    bank per selected entry (same selection up to float rounding of near-ties; for
    timing comparisons, see :func:`bench_coreset`).

    Parameters
    ----------
    features : array or torch tensor (N, D)
    ratio : float in (0, 1]
        Fraction of the bank to keep (PatchCore: 0.1; Son et al.: 0.01).
    dim : int or None, default 128
        Dimension of the random projection used for the distances; None: none.
    seed : int
        Seed of the projection and of the first entry.
    device : str or None
        None picks CUDA when present.
    naive : bool
        Use the per-entry Python loop (slow reference).
    block : int, default 256
        Candidates per block (speed only: the selection does not depend on it).
    progress : bool
        Show a progress bar.
    return_radius : bool
        Also return the covering radius (in the projected space): the largest
        distance of a bank entry to its nearest selected entry.

    Returns
    -------
    indices : int64 array (n_select,), in selection order
        (and the covering radius if ``return_radius``).
    """
    import torch
    from tqdm.auto import tqdm

    from ..torch_utils import default_device
    ratio = check_in_range(ratio, "ratio", 0, 1, low_inclusive=False)
    block = check_positive_int(block, "block")
    x = features if isinstance(features, torch.Tensor) else torch.from_numpy(
        np.ascontiguousarray(features, dtype=np.float32))
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"greedy_coreset expects features (N, D) with N >= 1, got "
                         f"{tuple(x.shape)}.")
    n, d_in = x.shape
    n_select = max(1, int(round(ratio * n)))
    rng = np.random.default_rng(seed)
    first = int(rng.integers(n))
    dev = default_device(device)
    x = x.to(dev, torch.float32)
    if dim is not None and d_in > dim:
        proj = torch.from_numpy(_projection_matrix(d_in, int(dim), rng)).to(dev)
        x = x @ proj
    # distances do not change under a translation; centring keeps ‖x‖² small, so the
    # expansion ‖x‖² − 2x·c + ‖c‖² loses fewer digits in float32
    x = x - x.mean(0)
    if naive:
        xs = x.cpu().numpy().astype(np.float64)
        min_d = np.full(n, np.inf)
        selected = [first]
        last = first
        for _ in tqdm(range(n_select), disable=not progress, desc="coreset (naive)"):
            c = xs[last]
            for j in range(n):                     # one bank entry at a time
                dj = float(np.sum((xs[j] - c) ** 2))
                if dj < min_d[j]:
                    min_d[j] = dj
            if len(selected) == n_select:
                break
            min_d[selected] = -np.inf              # argmax over M \ M_C
            last = int(np.argmax(min_d))
            selected.append(last)
        radius = float(np.sqrt(max(np.max(np.where(np.isinf(min_d), 0, min_d)), 0)))
        idx = np.asarray(selected, np.int64)
        return (idx, radius) if return_radius else idx

    sq = (x * x).sum(1)
    min_d = torch.full((n,), float("inf"), device=dev)
    selected: list[int] = []
    pending = [first]             # selected, not yet applied to the whole bank
    chunk = max(1, (1 << 22) // block)        # rows per product: ~16 MB of distances
    bar = tqdm(total=n_select, disable=not progress, desc="coreset")
    while True:
        # apply the pending entries to the whole bank: one matrix product per chunk
        p = torch.tensor(pending, device=dev)
        c, sq_c = x[p], sq[p]
        for s in range(0, n, chunk):
            d = torch.addmm(sq[s:s + chunk, None], x[s:s + chunk], c.T, alpha=-2).add_(sq_c)
            torch.minimum(min_d[s:s + chunk], d.amin(1), out=min_d[s:s + chunk])
        min_d[p] = -float("inf")                   # never selected twice
        selected += pending
        bar.update(len(pending))
        if len(selected) >= n_select:
            break
        # candidates T: the `block` largest d; every other entry is at d <= tau
        k = min(block + 1, n)
        vals, cand = torch.topk(min_d, k)
        tau = vals[block] if k == block + 1 else torch.tensor(-float("inf"), device=dev)
        cand, vals = cand[:block], vals[:block]
        order = torch.argsort(cand)                # index order: ties go to the lowest
        cand, vals = cand[order], vals[order].clone()
        x_t, sq_t = x[cand], sq[cand]
        pending = []
        while len(selected) + len(pending) < n_select:
            j = int(torch.argmax(vals))
            if not bool(vals[j] > tau):            # the argmax may lie outside T
                break
            e = int(cand[j])
            pending.append(e)
            torch.minimum(vals, torch.addmv(sq_t, x_t, x[e], alpha=-2).add_(sq[e]), out=vals)
            vals[j] = -float("inf")
        if not pending:                            # a tie at tau: plain argmax, all exact
            pending = [int(torch.argmax(min_d))]
    bar.close()
    idx = np.asarray(selected[:n_select], np.int64)
    if return_radius:
        return idx, float(min_d.max().clamp_min(0).sqrt())
    return idx


# ----------------------------------------------------------------------------------
# nearest neighbours and scores
# ----------------------------------------------------------------------------------
def _faiss():
    try:
        import faiss
        return faiss
    except ImportError:  # pragma: no cover - faiss-cpu is a dependency
        return None


def nearest_neighbors(queries, bank, k: int = 1, search: str = "auto", device=None,
                      index=None):
    """Exact L2 k nearest neighbours of ``queries`` (Q, D) in ``bank`` (M, D).

    Returns ``(distances (Q, k) float32, indices (Q, k) int64)`` (Euclidean, not
    squared), numpy. ``search``: "faiss", "torch" or "auto" (faiss when installed;
    faiss's GPU index when it has one and CUDA is present). ``index``: a faiss index
    already holding ``bank`` (reused).
    """
    import torch
    q = np.ascontiguousarray(queries, dtype=np.float32)
    k = int(min(k, len(bank) if index is None else index.ntotal))
    faiss = _faiss() if search in ("auto", "faiss") else None
    if search == "faiss" and faiss is None:
        raise ImportError("search='faiss' needs faiss (pip install faiss-cpu).")
    if faiss is not None:
        if index is None:
            index = _faiss_index(np.ascontiguousarray(bank, dtype=np.float32), device)
        d2, idx = index.search(q, k)
        return np.sqrt(np.maximum(d2, 0)).astype(np.float32), idx.astype(np.int64)
    from ..torch_utils import default_device
    dev = default_device(device)
    b = torch.as_tensor(np.ascontiguousarray(bank, dtype=np.float32)).to(dev)
    bsq = (b * b).sum(1)
    ds, ids = [], []
    step = max(1, int(2e8 // (4 * max(1, len(b)))))
    for i in range(0, len(q), step):
        qi = torch.from_numpy(q[i:i + step]).to(dev)
        d2 = (qi * qi).sum(1, keepdim=True) - 2 * qi @ b.T + bsq
        v, j = torch.topk(d2, k, dim=1, largest=False)
        ds.append(v.clamp_min(0).sqrt().cpu())
        ids.append(j.cpu())
    return torch.cat(ds).numpy().astype(np.float32), torch.cat(ids).numpy().astype(np.int64)


def _faiss_index(bank, device=None):
    faiss = _faiss()
    index = faiss.IndexFlatL2(bank.shape[1])
    try:
        import torch
        want_gpu = (device is None or str(device).startswith("cuda")) and \
            torch.cuda.is_available() and hasattr(faiss, "StandardGpuResources") and \
            faiss.get_num_gpus() > 0
    except Exception:  # pragma: no cover
        want_gpu = False
    if want_gpu:  # pragma: no cover - needs a GPU build of faiss
        res = faiss.StandardGpuResources()
        index = faiss.index_cpu_to_gpu(res, 0, index)
        index._adkit_res = res
    index.add(bank)
    return index


def patchcore_score(s_star, dist_to_neighbors):
    """PatchCore's reweighted image score (Roth et al. 2022, eq. 7).

    ``s_star`` (N,): distance s* = ‖m_test,* − m*‖ of the worst test patch to its
    nearest bank entry m*; ``dist_to_neighbors`` (N, b): distances ‖m_test,* − m‖ to
    the b nearest bank neighbours N_b(m*) of m* (m* itself included).

    :math:`s = (1 − e^{s^*} / \\sum_{m∈N_b(m^*)} e^{\\|m_{test,*} − m\\|}) · s^*`,
    computed stably as :math:`(1 − \\exp(s^* − \\mathrm{logsumexp}(d)))·s^*`. → (N,).
    """
    s = np.asarray(s_star, np.float64).reshape(-1)
    d = np.asarray(dist_to_neighbors, np.float64)
    m = np.maximum(d.max(1), s)
    lse = m + np.log(np.exp(d - m[:, None]).sum(1))
    return ((1 - np.exp(s - lse)) * s).astype(np.float32)


def knn_mean_score(dist_to_neighbors):
    """Son et al.'s kNN-averaged score: the mean of ‖m_test,* − m‖ over the b
    neighbours N_b(m*) of the nearest bank entry. (N, b) → (N,)."""
    return np.asarray(dist_to_neighbors, np.float64).mean(1).astype(np.float32)


# ----------------------------------------------------------------------------------
# the detector
# ----------------------------------------------------------------------------------
class KNN(FeatureDetector):
    """PatchCore memory bank with greedy coreset (or SPADE image+pixel kNN).

    Parameters
    ----------
    mode : {"patch", "spade"}, default "patch"
        "patch": PatchCore (Roth et al. 2022); "spade": image-level kNN then
        pixel-level kNN against the k nearest training images (Cohen & Hoshen 2020).
    coreset : float in (0, 1], default 0.1
        Fraction of the memory bank kept by the greedy coreset (PatchCore: 10%; Son et
        al.: 1%). 1 keeps the whole bank. Not used by SPADE.
    coreset_dim : int, default 128
        Dimension of the Johnson-Lindenstrauss projection used by the coreset
        distances (PatchCore: 128).
    b : int, default 9
        Number of nearest bank neighbours N_b(m*) of the nearest bank entry (m*
        itself included) used by the image score (reweighting, or averaging with
        ``score="knn_mean"``). At least 2 for the PatchCore score (with b = 1 its
        weight is 0); ``score="knn_mean", b=1`` is the plain distance s*.
    score : {"patchcore", "knn_mean"}, default "patchcore"
        PatchCore's reweighted score, or Son et al.'s kNN-averaged score.
    k : int, default 50
        SPADE: number of nearest training images (capped at the training size).
    strides : tuple of int, default (8, 16)
        Backbone stages whose features are aggregated into patch features
        (PatchCore: the two middle stages of the backbone).
    patch_size : int, default 3
        Neighbourhood p of the local average pooling (PatchCore: 3). 1 disables it.
    projection : int or None, default None
        Optional random projection of the patch features to this many dimensions.
    pad : int, default 32
        Pixels mirrored around each image before the backbone; the feature cells
        that come from them are cropped away. Border cells then describe the image
        instead of the network's zero padding (PatchCore avoids the borders by
        centre-cropping 256 → 224 instead, which would lose a border of the map).
        A multiple of the largest stride; 0 disables it.
    sigma : float, default 4.0
        Std (pixels) of the Gaussian smoothing of the upsampled map (PatchCore: 4).
    search : {"auto", "faiss", "torch"}, default "auto"
        Nearest-neighbour backend.
    backbone : str, default "efficientnet_lite0"
    batch_size : int, default 16
    seed : int, default 0
        Seed of the projections and of the coreset's first entry.
    device : str or None
        None picks CUDA when present.
    progress : bool, default True
        Progress bars while extracting features and selecting the coreset.

    Attributes
    ----------
    bank_ : float32 (M, D)
        The memory bank (after the coreset).
    timings_ : dict
        Seconds spent in features / coreset / index at fit time.
    """

    name = "knn"

    def __init__(self, mode: str = "patch", coreset: float = 0.1, coreset_dim: int = 128,
                 b: int = 9, score: str = "patchcore", k: int = 50, strides=(8, 16),
                 patch_size: int = 3, projection: int | None = None, pad: int = 32,
                 sigma: float = 4.0,
                 search: str = "auto", backbone: str = "efficientnet_lite0",
                 batch_size: int = 16, seed: int = 0, device: str | None = None,
                 progress: bool = True):
        self.mode = check_choice(mode, "mode", ["patch", "spade"])
        self.coreset = check_in_range(coreset, "coreset", 0, 1, low_inclusive=False)
        self.coreset_dim = check_positive_int(coreset_dim, "coreset_dim")
        self.b = check_positive_int(b, "b")
        self.score = check_choice(score, "score", ["patchcore", "knn_mean"])
        if self.score == "patchcore" and self.b < 2:
            raise ValueError(
                "b must be >= 2 with score='patchcore': N_b(m*) holds m* itself, so with "
                "b = 1 the reweighting factor 1 - exp(s*)/exp(s*) is 0 for every image. "
                "Use b >= 2 (9 here), or score='knn_mean' with b=1 for the plain "
                "nearest-neighbour distance s*.")
        self.k = check_positive_int(k, "k")
        self.strides = Gaussian._check_strides(strides, "strides", allow_empty=False)
        self.patch_size = check_positive_int(patch_size, "patch_size")
        if self.patch_size % 2 == 0:
            raise ValueError(f"patch_size must be odd (1, 3, 5...) so the neighbourhood is "
                             f"centred, got {patch_size}.")
        self.projection = None if projection is None else check_positive_int(
            projection, "projection")
        self.pad = check_positive_int(pad, "pad", minimum=0)
        if self.pad % max(self.strides):
            raise ValueError(f"pad must be a multiple of the largest stride "
                             f"{max(self.strides)} (e.g. 0, 16, 32), got {pad}.")
        self.sigma = check_in_range(sigma, "sigma", 0, None)
        self.search = check_choice(search, "search", ["auto", "faiss", "torch"])
        if not isinstance(backbone, str):
            raise TypeError(f"backbone must be a backbone name (str), got {backbone!r}.")
        self.backbone = backbone
        self.batch_size = check_positive_int(batch_size, "batch_size")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {seed!r}.")
        self.seed = int(seed)
        self.device = device
        self.progress = bool(progress)

    # -- features -----------------------------------------------------------------
    def _extract_strides(self):
        s = set(self.strides)
        if self.mode == "spade":
            s.add(32)
        return tuple(sorted(s))

    def features(self, images) -> dict:
        """Backbone feature maps {stride: (N, C, h, w) float32 tensor} of ``images``
        (numpy (N, H, W, 3)), after the mirror padding; :meth:`fit_features` /
        :meth:`predict_features` take them, so a notebook can extract once and try
        several settings (same ``strides``, ``pad``, ``backbone`` and ``mode``)."""
        from ..checks import check_images
        images = check_images(images)
        from ..torch_utils import default_device
        dev = default_device(self.device)
        if getattr(self, "_extractor", None) is None:
            self._extractor = _make_extractor(self.backbone, self._extract_strides(), dev)
        feats = _run_extractor(self._extractor, _reflect_pad(images, self.pad),
                               self.batch_size, dev, self.progress, "KNN: features")
        return {s: _crop_features(f, self.pad, s)
                for s, f in zip(self._extract_strides(), feats)}

    def patch_features(self, feats: dict):
        """Locally aware patch features (N, h, w, D) (torch, float32) from the stage
        feature maps {stride: (N, C, h_s, w_s)}: p×p average pooling, coarser stages
        upsampled bilinearly to the finest of ``strides``, concatenated, optionally
        randomly projected."""
        import torch
        import torch.nn.functional as F
        maps = [torch.as_tensor(feats[s]).float() for s in sorted(self.strides)]
        p = self.patch_size
        size = maps[0].shape[-2:]
        out = []
        for f in maps:
            if p > 1:
                f = F.avg_pool2d(f, p, stride=1, padding=p // 2, count_include_pad=False)
            if f.shape[-2:] != size:
                f = F.interpolate(f, size=size, mode="bilinear", align_corners=False)
            out.append(f)
        x = torch.cat(out, 1).permute(0, 2, 3, 1).contiguous()
        if self.projection is not None:
            if getattr(self, "projection_", None) is None or \
                    self.projection_.shape[0] != x.shape[-1]:
                self.projection_ = _projection_matrix(x.shape[-1], self.projection,
                                                      self.seed + 1)
            x = x @ torch.from_numpy(self.projection_)
        return x

    # -- fit ----------------------------------------------------------------------
    def _fit(self, images):
        t0 = time.perf_counter()
        feats = self.features(images)
        t1 = time.perf_counter()
        self.fit_features_(feats)
        self.timings_["features"] = t1 - t0

    def fit_features_(self, feats: dict) -> None:  # noqa: D401 - internal
        """Fit from stage feature maps {stride: (N, C, h, w)}."""
        self.timings_ = {}
        self.projection_ = None
        x = self.patch_features(feats)
        n, h, w, d = x.shape
        self.grid_ = (h, w)
        flat = x.reshape(-1, d)
        t = time.perf_counter()
        if self.mode == "patch" and self.coreset < 1:
            idx = greedy_coreset(flat, self.coreset, self.coreset_dim, seed=self.seed,
                                 device=self.device, progress=self.progress)
            self.bank_ = flat[torch_index(idx)].numpy()
        else:
            self.bank_ = flat.numpy()
        self.timings_["coreset"] = time.perf_counter() - t
        self.bank_ = np.ascontiguousarray(self.bank_, dtype=np.float32)
        if self.mode == "spade":
            import torch
            self.image_bank_ = torch.as_tensor(feats[32]).float().mean((2, 3)).numpy()
        self._index = None

    def _get_index(self):
        if self.search == "torch" or _faiss() is None:
            return None
        if getattr(self, "_index", None) is None:
            self._index = _faiss_index(self.bank_, self.device)
        return self._index

    # -- predict ------------------------------------------------------------------
    def _predict(self, images):
        feats = self.features(images)
        return self.predict_features_(feats, images.shape[1:3])

    def predict_features_(self, feats: dict, size) -> AnomalyResult:
        import torch
        import torch.nn.functional as F
        from ..torch_utils import default_device
        x = self.patch_features(feats)
        n, h, w, d = x.shape
        if (h, w) != tuple(self.grid_):
            raise ValueError(f"patch grid {(h, w)} differs from the training grid "
                             f"{tuple(self.grid_)}: test images must have the training size.")
        extras = {}
        if self.mode == "patch":
            flat = x.reshape(-1, d).numpy()
            index = self._get_index()
            dist, nn = nearest_neighbors(flat, self.bank_, 1, self.search, self.device, index)
            patch = dist[:, 0].reshape(n, h * w)
            nn = nn[:, 0].reshape(n, h * w)
            worst = patch.argmax(1)
            m_test = flat.reshape(n, h * w, d)[np.arange(n), worst]       # (n, D)
            m_star = nn[np.arange(n), worst]
            # N_b(m*): the b nearest bank entries of m* (m* itself first, at distance 0)
            _, nb = nearest_neighbors(self.bank_[m_star], self.bank_, self.b, self.search,
                                      self.device, index)
            dnb = np.linalg.norm(self.bank_[nb] - m_test[:, None, :], axis=-1)
            s_star = patch[np.arange(n), worst]
            scores = (patchcore_score(s_star, dnb) if self.score == "patchcore"
                      else knn_mean_score(dnb))
            extras["max_patch_distance"] = patch.max(1).astype(np.float32)
        else:
            pooled = torch.as_tensor(feats[32]).float().mean((2, 3)).numpy()
            k = min(self.k, len(self.image_bank_))
            dimg, nimg = nearest_neighbors(pooled, self.image_bank_, k, "torch", self.device)
            scores = dimg.mean(1).astype(np.float32)
            bank = self.bank_.reshape(len(self.image_bank_), h * w, d)
            patch = np.empty((n, h * w), np.float32)
            for i in range(n):
                cand = bank[nimg[i]].reshape(-1, d)
                di, _ = nearest_neighbors(x[i].reshape(-1, d).numpy(), cand, 1, "torch",
                                          self.device)
                patch[i] = di[:, 0]
            extras["nearest_images"] = nimg
        dev = default_device(self.device)
        pm = torch.from_numpy(patch.reshape(n, 1, h, w)).to(dev)
        maps = F.interpolate(pm, size=tuple(int(s) for s in size), mode="bilinear",
                             align_corners=False)[:, 0]
        maps = _blur_maps(maps, self.sigma)
        return AnomalyResult(maps.cpu().numpy(), scores, extras=extras)

    # -- state --------------------------------------------------------------------
    def _get_state(self):
        st = {"bank": self.bank_, "grid": [int(g) for g in self.grid_]}
        if self.projection_ is not None:
            st["projection"] = self.projection_
        if self.mode == "spade":
            st["image_bank"] = self.image_bank_
        return st

    def _set_state(self, state):
        from ..estimator import ModelFileError, state_array, state_ints
        h, w = self.grid_ = tuple(state_ints(state, "grid", length=2, minimum=1))
        (H, W), s = self.image_size_, min(self.strides)
        if abs(h - H / s) > 1 or abs(w - W / s) > 1:
            raise ModelFileError(f"the saved patch grid {h}x{w} is not that of {H}x{W} "
                                 f"images at stride {s}")
        self.bank_ = state_array(state, "bank", shape=(None, self.projection))
        if len(self.bank_) == 0:
            raise ModelFileError("the saved memory bank 'bank' is empty")
        self.projection_ = (state_array(state, "projection", shape=(None, self.projection))
                            if self.projection is not None else None)
        if self.mode == "spade":
            self.image_bank_ = state_array(state, "image_bank", shape=(None, None))
            if len(self.bank_) != len(self.image_bank_) * h * w:
                raise ModelFileError(
                    f"the saved bank holds {len(self.bank_)} patches, not the {h}x{w} "
                    f"patches of each of the {len(self.image_bank_)} images of 'image_bank'")
        self.timings_ = {}
        self._index = None


def torch_index(idx):
    import torch
    return torch.from_numpy(np.asarray(idx, np.int64))


# ----------------------------------------------------------------------------------
# benchmarks (figures for ``python -m adkit bench``)
# ----------------------------------------------------------------------------------
def bench_coreset(n: int = 3000, d: int = 152, ratio: float = 0.1, seed: int = 0,
                  device=None) -> dict:
    """Time the vectorized greedy coreset against the naive per-entry loop.

    A bank of ``n`` clustered features of dimension ``d`` (a mixture of 50 Gaussian
    clusters, like patch features of a few motifs) is subsampled to ``ratio`` by
    :func:`greedy_coreset` both ways; the two selections are checked to be equal.
    Returns ``{"n", "n_select", "vectorized_s", "naive_s", "speedup", "same_selection"}``.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (50, d))
    x = (centres[rng.integers(0, 50, n)] + rng.normal(0, 1, (n, d))).astype(np.float32)
    greedy_coreset(x[: max(2, n // 10)], ratio, seed=seed, device=device)   # warm-up
    t = time.perf_counter()
    fast = greedy_coreset(x, ratio, seed=seed, device=device)
    t_fast = time.perf_counter() - t
    t = time.perf_counter()
    slow = greedy_coreset(x, ratio, seed=seed, device=device, naive=True)
    t_slow = time.perf_counter() - t
    return {"n": int(n), "n_select": int(len(fast)), "vectorized_s": t_fast,
            "naive_s": t_slow, "speedup": t_slow / max(t_fast, 1e-9),
            "same_selection": bool(np.array_equal(fast, slow))}


def bench_knn(n_train: int = 200, n_test: int = 100, size: int = 256,
              category: str = "pill", coreset: float = 0.1, seed: int = 0,
              device=None, progress: bool = False, **params) -> dict:
    """Fit PatchCore on ``n_train`` synthetic images and predict ``n_test`` at ``size`` px.

    Returns the seconds of fit (split into features / coreset / index) and predict,
    the bank size and the AUROCs on the predicted images. ``params`` go to :class:`KNN`.
    """
    import torch

    from ..data import load
    from ..metrics import image_auroc, pixel_auroc
    train, test = load(f"synthetic/{category}", n_train=n_train, n_test=n_test, size=size,
                       seed=seed)
    det = KNN(coreset=coreset, device=device, progress=progress, seed=seed, **params)
    t = time.perf_counter()
    det.fit(train)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    res = det.predict(test)
    predict_s = time.perf_counter() - t
    out = {"fit_s": fit_s, "predict_s": predict_s, "total_s": fit_s + predict_s,
           "features_fit_s": det.timings_.get("features", float("nan")),
           "coreset_s": det.timings_.get("coreset", float("nan")),
           "bank": int(len(det.bank_)), "bank_full": int(n_train * det.grid_[0] * det.grid_[1]),
           "image_auroc": float(image_auroc(test.labels, res.scores)),
           "pixel_auroc": float(pixel_auroc(test.masks, res.maps)),
           "device": str(det._extractor.device), "threads": torch.get_num_threads()}
    return out
