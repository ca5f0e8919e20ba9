"""Patch self-similarity with an a contrario threshold (Artola, Kolodziej, Morel & Ehret,
"Unsupervised variability normalization for anomaly detection", ICIP 2021, Sec. 4,
after Davy, Ehret, Morel & Delbracio, "Reducing anomaly detection in images to
detection in noise", ICIP 2018).

The idea: an anomaly is what cannot be explained by the normal images. Explain every
patch of the query by the most similar patches of the training set, subtract that
*self-similar background*, and what is left (the residual) should be noise, except
where something new is. A threshold with a controlled number of false alarms then
follows from the law of the residual: the Gaussian tail in the paper
(:mod:`adkit.contrario.gaussian`), by default the law measured on leave-one-out
residuals of the training images (:mod:`adkit.contrario.null`).

Background (scale ``s``, image ``u^s``, patches ``p`` of ``P×P`` pixels with half overlap):

1. the ``K_s = n_images·(s+1)`` training images closest to ``u^s`` (L2) are selected;
2. for each patch ``p`` its ``n_neighbors`` nearest patches ``Q`` are searched in a local
   ``window × window`` neighbourhood of the same place in those images; when nothing
   there is close (the best distance is above ``fallback·h``), the whole training set
   is searched as well: faiss on a 16-dimensional PCA projection of every training patch
   (top-left corners every 2 pixels; exhaustive up to 65 536 patches, an inverted file
   visiting 16 of its ≈ √n (≤ 1024) lists above), each hit refined by ±1 pixel and re-ranked
   with exact distances. All the fallback patches of an image and scale are searched
   in one batch; ``result.extras["fallback_rate"]`` reports their share per scale;
3. ``p̂ = (1/Z) Σ_{q∈Q} q · exp(−‖p − q‖² / (2h²))`` (non-local means weights, ``Z`` their sum;
   ``‖·‖²`` is the *mean* squared difference over the patch's pixels and channels, so
   ``h`` is in intensity units);
4. overlapping ``p̂`` are averaged into ``û^s`` and ``r^s = u^s − û^s``.

Detection (the paper):

- scales ``s ∈ S`` with ``u^s`` the image resized by ``eta^s`` (``eta = 0.5``);
- normalized residual per scale and channel ``f^s_c = |(r^s_c − E r^s_c) / σ(r^s_c)|`` (mean
  and std over the image);
- ``N = 3 · Σ_s H_s·W_s`` tests (every pixel of every scale and channel), threshold
  ``γ_ε = √2·erfc⁻¹(ε/N)``; ``b^s(ε) = [max_c f^s_c ≥ γ_ε]``;
- votes ``b^MS = [Σ_s b^s ≥ N_v]`` (per-scale maps upsampled to full size);
- multi-scale residual ``r^MS = Π_s ‖r^s‖`` (channel L2 norm, upsampled) — the ``maps``;
- image score ``s_ra = Σ_x b^MS(x)·r^MS(x)``.

The paper's ε (its Fig. 5 reports image AUROC against ε and uses ε = 10^-2.2) is a
threshold on that Gaussian model. Real residuals are not Gaussian white noise: their
tails are heavier and neighbouring pixels are correlated (overlapping patches, the
NL-means average), so the Gaussian count gives ten times too many false regions per
normal image or more (and too few on some textures). ``nfa_model="gaussian"`` is that
model, exactly.

The default ``nfa_model="empirical"`` keeps the derivation ``NFA = N · P`` and the vote,
and measures the background instead of assuming it, on *leave-one-out* residuals: at
``fit``, ``n_loo`` training images each get the residual of the full method run against
the *other* training images (a normal image the method did not see):

- the statistic is ``t^s(x) = max_c |f^s_c(x)|`` with the robust normalization
  ``f = (r − med r) / (1.4826·MAD r)`` per image, scale and channel (a defect does not
  inflate the scale as it inflates the std);
- per scale, the tail law ``S_s(t) = P(t^s ≥ t)`` (empirical, with a generalized Pareto
  tail) and the effective number of tests ``N_s = θ_s·H_s·W_s``, θ_s the extremal index
  (inverse mean size of the clusters of large values) of the leave-one-out maps
  (:mod:`adkit.contrario.null`): ``log10 NFA^s = log10 N_s + log10 S_s(t^s)``;
  ``b^s(ε) = [NFA^s < ε]``;
- the vote: ``V(x)`` = the ``N_v``-th smallest ``log10 NFA^s(x)`` (upsampled), so that
  ``[V < log10 ε']`` is the vote map of the ``b^s(ε')``; its own law and effective tests
  are measured the same way on the leave-one-out images (:class:`VoteBackground`), and
  ``log10 NFA(x) = log10 N_V + log10 S_V(−V(x))``.

``result.segment(eps)`` (``log_nfa < log10 ε``) is then the vote map ``b^MS`` at the
per-scale level ε' for which it has about ε false regions per normal image. With the
Gaussian model, ``log_nfa`` is ``V`` itself and ``segment(eps)`` is ``b^MS(ε)``.

The image score stays the paper's: ``s_ra`` sums ``r^MS`` over the vote map of the
paper's Gaussian model at ``eps``, whichever ``nfa_model``. That map is permissive (on the
embedded pills at ε = 1 it holds about 14 false regions per normal image), which is what
a ranking score wants: it sums the evidence of every doubtful place, and defects whose
detection a calibrated ε = 1 would miss still raise it. (Summed over the calibrated
vote map at ε = 1 instead, the image AUROC of the speckled-pill test drops from 0.88 to
0.61: most faint defects are then not detected and score 0, like normal images.)

:func:`rethreshold` recomputes maps, ``log_nfa`` and scores for another ``eps``,
``n_votes`` or subset of scales from the normalized residuals stored in
``result.extras`` (no patch search): this is what the notebook's ε slider calls.
"""
from __future__ import annotations

import numpy as np

from ..checks import check_in_range, check_positive_int
from ..params import (EPS, Boolean, Device, Integral, Interval, Options,
                      ParameterValueError, Real, Tuple, check_param)
from ..contrario.gaussian import count_tests, log_nfa_gaussian, vote_log_nfa
from .base import AnomalyResult, Detector

__all__ = ["SelfSimilarity", "VoteBackground", "rethreshold", "scale_log_nfa"]


#: at most this many scales: each one halves the image (eta = 0.5), 8 take 256 px to 2 px
MAX_SCALES = 8
_SCALES = [Interval(Integral, 1, MAX_SCALES),
           Tuple(Interval(Integral, 0, MAX_SCALES - 1), max_length=MAX_SCALES, unique=True,
                 sort=True)]


def _check_scales(scales, owner=None):
    """``scales`` as a sorted tuple of distinct scale indices (an int n is range(n))."""
    out = check_param(scales, _SCALES, "scales", owner)
    return tuple(range(out)) if isinstance(out, int) else out


def _resize(t, size):
    import torch.nn.functional as F
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    return F.interpolate(t, size=size, mode="bilinear", antialias=True, align_corners=False)


def _upsample(a: np.ndarray, size) -> np.ndarray:
    """(N, h, w) numpy → (N, H, W) bilinear (align_corners=False)."""
    import torch
    import torch.nn.functional as F
    if a.shape[-2:] == tuple(size):
        return a
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[:, None]
    return F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False)[:, 0].numpy()


def _grid(n: int, p: int, step: int) -> np.ndarray:
    """Patch top-left coordinates: every ``step`` pixels, plus the last one so the border is covered."""
    return np.unique(np.r_[np.arange(0, n - p + 1, step), n - p])


def _box(d, dim: int, p: int, step: int):
    """Sums of ``p`` consecutive entries along ``dim`` at the positions of :func:`_grid`."""
    import torch
    n = d.shape[dim]
    out = d.unfold(dim, p, step).sum(-1)
    if (n - p) % step:
        out = torch.cat([out, d.narrow(dim, n - p, p).sum(dim, keepdim=True)], dim)
    return out


# -- the global search of the fallback -------------------------------------------------------
#: dimensions of the PCA projection in which the global search runs
PCA_DIM = 16
#: up to this many training patches the global search is exhaustive (faiss IndexFlatL2);
#: above, an inverted file (faiss IndexIVFFlat) visits ``IVF_PROBE`` of its lists
FLAT_MAX = 65536
IVF_PROBE = 16


class _PatchIndex:
    """The training patches of one scale for the global search: every patch whose
    top-left corner is on a grid of step 2, projected on the ``PCA_DIM`` first principal
    components of the training patches, in a faiss index (:mod:`adkit.neighbors`:
    exhaustive up to ``FLAT_MAX`` patches, an inverted file with ``≈ √n`` lists, at most
    1024, above).

    The projection of a patch ``q`` is ``P·(q − μ)``, so that the whole pyramid is
    projected by one strided convolution with the rows of ``P`` as kernels.
    ``state`` (mean, projection, inverted-file centroids) rebuilds the same index."""

    def __init__(self, pyr, patch_size: int, state=None):
        import torch
        import torch.nn.functional as F

        from ..neighbors import faiss_index, ivf_centroids, ivf_index
        n, c, h, w = pyr.shape
        p = self.patch_size = int(patch_size)
        d_full = c * p * p
        if state is None:
            g = torch.Generator().manual_seed(0)
            imgs = torch.randperm(n, generator=g)[:min(n, 32)].sort().values.to(pyr.device)
            sub = F.unfold(pyr[imgs], p, stride=max(1, p // 2))            # (m, c·p², L)
            sub = sub.permute(0, 2, 1).reshape(-1, d_full)
            sub = sub[torch.randperm(len(sub), generator=g)[:20000].to(pyr.device)]
            mean = sub.mean(0)
            cen = (sub - mean).double().cpu().numpy()
            _, vecs = np.linalg.eigh(cen.T @ cen)                        # ascending
            dim = min(PCA_DIM, d_full)
            proj = np.ascontiguousarray(vecs[:, ::-1][:, :dim], dtype=np.float32)
            mean = mean.float().cpu().numpy()
            cents = None
        else:
            from ..estimator import state_array
            mean = state_array(state, "mean", shape=(d_full,))
            proj = state_array(state, "proj", shape=(d_full, None))
            dim = proj.shape[1]
            cents = state_array(state, "centroids", shape=(None, dim)) \
                if "centroids" in state else None
        self.mean, self.proj = mean, proj
        self._mean_t = torch.as_tensor(mean, device=pyr.device)
        self._proj_t = torch.as_tensor(proj, device=pyr.device)
        # every grid patch projected: a stride-2 convolution with the components as kernels
        kern = self._proj_t.T.reshape(dim, c, p, p).contiguous()
        bias = -(self._mean_t @ self._proj_t)
        chunks = [F.conv2d(pyr[a:a + 16], kern, bias, stride=2).permute(0, 2, 3, 1)
                  .reshape(-1, dim).cpu() for a in range(0, n, 16)]
        self.grid = ((h - p) // 2 + 1, (w - p) // 2 + 1)
        db = np.ascontiguousarray(torch.cat(chunks).numpy(), dtype=np.float32)
        self.size = len(db)
        if len(db) <= FLAT_MAX:
            self.index, self.centroids = faiss_index(db, device="cpu"), None
        else:
            self.index = ivf_index(db, centroids=cents)
            self.centroids = ivf_centroids(self.index)

    def state(self) -> dict:
        out = {"mean": self.mean, "proj": self.proj}
        if self.centroids is not None:
            out["centroids"] = self.centroids
        return out

    def search(self, qv, k: int, exclude=None):
        """The ``k`` nearest grid patches of each query patch (F, c·p²) (a torch tensor)
        in the projection; ``exclude``: a training image whose patches are skipped.
        Returns torch tensors (top-left y, top-left x, image), each (F, k)."""
        import torch

        from ..neighbors import search
        q = ((qv - self._mean_t) @ self._proj_t).float().cpu().numpy()
        per = self.grid[0] * self.grid[1]
        skip = None if exclude is None else (int(exclude) * per, (int(exclude) + 1) * per)
        _, lab = search(self.index, q, int(k), exclude=skip, nprobe=IVF_PROBE)
        lab = torch.as_tensor(np.maximum(lab, 0), device=qv.device)
        img, r = lab // per, lab % per
        return 2 * (r // self.grid[1]), 2 * (r % self.grid[1]), img


class SelfSimilarity(Detector):
    """Self-similar background + a contrario detection (Artola et al. 2021, Sec. 4).

    Parameters
    ----------
    patch_size : int, default 8
        Side ``P`` of the square patches (paper: 8×8).
    stride : int or None, default None
        Step between patches, at most ``patch_size``; ``None`` is ``patch_size // 2``
        (half overlap, as in the paper).
    window : int, default 20
        Side of the local search window around the patch's place (paper: 20×20),
        i.e. the patch may move by ±(window − patch_size)/2 pixels. At least
        ``patch_size``, at most the side of the training images (checked at ``fit``).
    scales : int or sequence of int, default (0, 1, 2)
        Scales ``s ∈ S``; scale ``s`` resizes the images by ``eta**s``. An int ``n``
        means ``range(n)``; at most 8 scales, indices 0 to 7. Paper: 3 scales.
    eta : float, default 0.5
        Resize factor between scales (paper: η = 0.5).
    n_images : int, default 5
        ``K_s = n_images·(s+1)`` most similar training images searched at scale ``s``
        (paper: ``K_s = 5(s+1)``).
    n_neighbors : int, default 16
        Number of nearest patches averaged into ``p̂``; at most the candidates that a
        corner patch finds in its window of the nearest images (checked at ``fit``).
    h : float or None, default None
        NL-means bandwidth (intensity units, per pixel and channel). ``None`` sets it
        per scale at ``fit`` from the training images themselves: ``h_s² =`` the median,
        over patches of a few training images, of the mean squared distance to the
        nearest patch of the *other* training images, i.e. the typical distance
        between two normal patches (noise and normal variability included).
    fallback : float, default 3.0
        A patch whose nearest local candidate is farther than ``fallback·h`` (RMS) is
        also searched in the whole training set (faiss, on a PCA projection of the
        patches, re-ranked exactly). 0 disables it.
    eps : float, default 1.0
        NFA threshold ε of the vote map summed by the image score ``s_ra`` (under the
        paper's Gaussian model, as in the paper) and default ε of :meth:`rethreshold`.
        ``result.segment(eps)`` takes its own ε (ε = 1: on average one false region
        per normal image with the measured model). The paper uses ε = 10^-2.2 (its
        Fig. 5) under its Gaussian model, where ε does not count false regions.
    n_votes : int, default 2
        ``N_v``: a pixel is detected when at least ``N_v`` scales detect it.
    nfa_model : {"empirical", "gaussian"}, default "empirical"
        Background model of the NFA. ``"empirical"``: the residuals' tail law and
        effective number of tests measured on leave-one-out residuals of the training
        images (see the module docstring): about ε false regions per normal image.
        ``"gaussian"``: the paper's model, ``|f|`` standard normal and ``N = 3·Σ_s
        H_s·W_s`` independent tests, which real residuals (heavy-tailed, spatially
        correlated) do not follow: ten times too many false regions or more.
    n_loo : int, default 32
        Training images (spread over the set) whose residual is computed against the
        *other* training images at ``fit`` (leave-one-out): they set ``h`` and, with
        ``nfa_model="empirical"``, the background model. Each costs about one prediction.
    device : str or None
        ``None`` uses a GPU when present.
    progress : bool, default True
        Progress bar over the test images.
    """

    name = "selfsim"
    _min_train = 2
    _min_train_why = "h and the nearest patches are estimated between training images"
    _parameter_constraints = {
        "patch_size": Interval(Integral, 2, 64),
        "stride": [None, Interval(Integral, 1, 64)],
        "window": Interval(Integral, 2, 256),
        "scales": _SCALES,
        "eta": Interval(Real, 0, 1, closed="neither"),
        "n_images": Interval(Integral, 1, 1000),
        "n_neighbors": Interval(Integral, 1, 1024),
        "h": [None, Interval(Real, 0, 10, closed="right")],
        "fallback": Interval(Real, 0, 100),
        "eps": EPS,
        "n_votes": Interval(Integral, 1, MAX_SCALES),
        "nfa_model": Options("empirical", "gaussian"),
        "n_loo": Interval(Integral, 1, 100000),
        "device": [None, Device()],
        "progress": Boolean(),
    }

    def __init__(self, *, patch_size: int = 8, stride: int | None = None, window: int = 20,
                 scales=(0, 1, 2), eta: float = 0.5, n_images: int = 5, n_neighbors: int = 16,
                 h: float | None = None, fallback: float = 3.0, eps: float = 1.0,
                 n_votes: int = 2, nfa_model: str = "empirical", n_loo: int = 32,
                 device: str | None = None, progress: bool = True):
        self._set_params(locals())

    def _check_params(self, p):
        if isinstance(p["scales"], int):
            p["scales"] = tuple(range(p["scales"]))
        if p["window"] < p["patch_size"]:
            raise ParameterValueError(
                f"window={p['window']} is smaller than patch_size={p['patch_size']}: the "
                f"search window must hold the patch (window >= {p['patch_size']}; paper: 20).")
        if p["stride"] is not None and p["stride"] > p["patch_size"]:
            raise ParameterValueError(
                f"stride={p['stride']} is larger than patch_size={p['patch_size']}: the "
                "patches would leave gaps in the background. Use stride <= patch_size "
                "(None: half the patch, as in the paper).")
        if p["n_votes"] > len(p["scales"]):
            raise ParameterValueError(
                f"n_votes={p['n_votes']} is more than the {len(p['scales'])} scale(s) "
                f"{p['scales']}: a pixel can get at most one vote per scale.")

    # -- geometry -------------------------------------------------------------------
    @property
    def _step(self) -> int:
        return self.stride if self.stride is not None else max(1, self.patch_size // 2)

    @property
    def _radius(self) -> int:
        return (self.window - self.patch_size) // 2

    def _scale_size(self, s: int, size=None):
        h, w = size if size is not None else self.image_size_
        f = self.eta ** s
        return max(1, int(round(h * f))), max(1, int(round(w * f)))

    def _n_patches(self, s: int) -> int:
        hs, ws = self._scale_size(s)
        return len(_grid(hs, self.patch_size, self._step)) * len(_grid(ws, self.patch_size,
                                                                      self._step))

    def _k_images(self, s: int) -> int:
        return self.n_images * (s + 1)

    # -- fitted pyramid ---------------------------------------------------------------
    def _prepare(self, index_state=None) -> None:
        """Training pyramid on the compute device, and the global patch indices of the
        fallback search (rebuilt after load from the stored projections and centroids)."""
        import torch

        from ..torch_utils import default_device, to_tensor
        self._dev = default_device(self.device)
        x = to_tensor(self.train_, self._dev)
        self._torch = torch
        with torch.no_grad():
            self._pyr = {s: _resize(x, self._scale_size(s)).contiguous() for s in self.scales}
            self._index = {}
            self._sq = {}
            if self.fallback > 0:   # the global indices are part of the fitted model
                for s in self.scales:
                    st = None if index_state is None else index_state[f"s{s}"]
                    self._index[s] = _PatchIndex(self._pyr[s], self.patch_size, st)

    def _fit(self, images):
        for s in self.scales:
            hs, ws = self._scale_size(s, images.shape[1:3])
            if min(hs, ws) < self.patch_size:
                raise ValueError(
                    f"at scale {s} the {images.shape[1]}x{images.shape[2]} images become "
                    f"{hs}x{ws}, smaller than patch_size={self.patch_size}: use fewer scales "
                    f"(scales={tuple(range(max(1, s)))}), a smaller patch_size or larger images.")
        self._check_train_size(images.shape)
        self.train_ = np.ascontiguousarray(images, dtype=np.float32)
        self._prepare()
        from tqdm.auto import tqdm
        n = len(images)
        loo = np.unique(np.linspace(0, n - 1, min(n, self.n_loo)).round().astype(int))
        torch = self._torch
        searches = {}
        with torch.no_grad():
            # local searches of the left-out images among the other training images
            for i in loo:
                others = np.delete(np.arange(n), i)
                for s in self.scales:
                    u = self._pyr[s][i]
                    ids = self._nearest_images(u, s, others)
                    searches[i, s] = (ids, self._search(u, s, ids))
            if self.h is not None:
                self.h_ = np.full(len(self.scales), self.h, np.float32)
            else:   # h_s² = median distance of a patch to its nearest normal patch
                self.h_ = np.asarray(
                    [np.sqrt(max(float(torch.cat([searches[i, s][1][0][:, 0] for i in loo])
                                        .median()), 1e-8)) for s in self.scales], np.float32)
            self.background_ = None
            if self.nfa_model == "empirical":
                stats = {s: [] for s in self.scales}
                for i in tqdm(loo, desc="self-similarity: leave-one-out background",
                              disable=not self.progress):
                    for j, s in enumerate(self.scales):
                        u = self._pyr[s][i]
                        ids, found = searches.pop((i, s))
                        bg, _ = self._background(u, s, ids, float(self.h_[j]), exclude=int(i),
                                                 found=found)
                        r = np.moveaxis((u - bg).cpu().numpy(), 0, -1)
                        stats[s].append(_statistic(r))
                self.background_ = VoteBackground(
                    {s: np.stack(v) for s, v in stats.items()}, self.image_size_)
                self.background_.vote_model(self.scales, self.n_votes)   # the default, now

    def _check_train_size(self, shape) -> None:
        """The parameters that depend on the training images: the window must fit in
        the images, and every patch (a corner one has the fewest) must have at least
        ``n_neighbors`` candidates in its window of the nearest images."""
        n, h, w = shape[:3]
        if self.window > min(h, w):
            raise ValueError(
                f"window={self.window} is larger than the {h}x{w} training images: the "
                f"search would cost {(self.window - self.patch_size + 1) ** 2} shifts of "
                f"the whole image per scale and find nothing more. Use window <= "
                f"{min(h, w)} (paper: 20).")
        # images searched: K_0 = n_images (fewer when there are fewer training images;
        # one fewer at fit, where each training image is searched among the others)
        k = min(self.n_images, n - 1)
        fewest, where = None, None
        for s in self.scales:
            hs, ws = self._scale_size(s, (h, w))
            p, r = self.patch_size, self._radius
            cand = k * (min(r, hs - p) + 1) * (min(r, ws - p) + 1)
            if fewest is None or cand < fewest:
                fewest, where = cand, s
        if self.n_neighbors > fewest:
            raise ValueError(
                f"n_neighbors={self.n_neighbors} is more than the {fewest} candidate "
                f"patches that a corner patch finds at scale {where} ({k} nearest "
                f"image(s) x the window's positions): use n_neighbors <= {fewest} "
                f"(default 16), a larger window or n_images, or more training images.")

    def _nearest_images(self, u, s, candidates=None):
        """Indices of the K_s training images closest (L2) to ``u`` at scale ``s``."""
        torch = self._torch
        pyr = self._pyr[s]
        flat = pyr.reshape(len(pyr), -1)
        cand = torch.arange(len(pyr), device=pyr.device) if candidates is None else \
            torch.as_tensor(np.asarray(candidates), device=pyr.device)
        k = min(self._k_images(s), len(cand))
        uf = u.reshape(-1)
        # ‖v − u‖² = ‖v‖² − 2 v·u + ‖u‖²: one pass over the training images, then the
        # exact distance of the 2·K_s best to rank them
        if s not in self._sq:
            self._sq[s] = (flat * flat).sum(1)
        approx = (self._sq[s] - 2 * (flat @ uf))[cand]
        pre = cand[approx.topk(min(len(cand), 2 * k), largest=False).indices]
        d = ((flat[pre] - uf) ** 2).sum(1)
        return pre[d.topk(k, largest=False).indices]

    # -- patch search -----------------------------------------------------------------
    def _search(self, u, s, ids):
        """Local search: for each patch of ``u`` (C, H, W) its ``n_neighbors`` nearest
        patches in the local window of the images ``ids`` at scale ``s``.

        Returns (dist (M, n) mean squared distances ascending, base (M, n) flat index
        of the candidates' top-left pixel in the pyramid, ys, xs)."""
        torch = self._torch
        F = torch.nn.functional
        pyr = self._pyr[s]
        c, h, w = u.shape
        p, r = self.patch_size, self._radius
        ys, xs = _grid(h, p, self._step), _grid(w, p, self._step)
        ys_t = torch.as_tensor(ys, device=u.device)
        xs_t = torch.as_tensor(xs, device=u.device)
        v = F.pad(pyr[ids], (r, r, r, r))
        k = len(ids)
        offs = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
        dist = torch.empty((len(offs), k, len(ys), len(xs)), device=u.device)
        e = torch.empty((k, c, h, w), device=u.device)     # reused: no allocation per offset
        d = torch.empty((k, h, w), device=u.device)
        for o, (dy, dx) in enumerate(offs):
            torch.sub(v[:, :, r + dy:r + dy + h, r + dx:r + dx + w], u[None], out=e)
            torch.sum(e.square_(), 1, out=d)                         # (k, H, W)
            dist[o] = _box(_box(d, 1, p, self._step), 2, p, self._step)
            bad_y = (ys + dy < 0) | (ys + dy > h - p)
            bad_x = (xs + dx < 0) | (xs + dx > w - p)
            if bad_y.any():
                dist[o, :, torch.as_tensor(bad_y, device=u.device)] = float("inf")
            if bad_x.any():
                dist[o, :, :, torch.as_tensor(bad_x, device=u.device)] = float("inf")
        m = len(ys) * len(xs)
        dist = dist.permute(2, 3, 1, 0).reshape(m, k * len(offs)) / (c * p * p)
        n = min(self.n_neighbors, dist.shape[1])
        val, idx = dist.topk(n, dim=1, largest=False)               # sorted ascending
        offs_t = torch.as_tensor(offs, device=u.device)
        o = offs_t[idx % len(offs)]                                  # (M, n, 2)
        img = ids[idx // len(offs)]
        yy = ys_t.repeat_interleave(len(xs))[:, None] + o[..., 0]
        xx = xs_t.repeat(len(ys))[:, None] + o[..., 1]
        base = img * (h * w) + yy * w + xx
        return val, base, ys, xs

    def _global_candidates(self, s, qv, exclude=None):
        """Global candidates of the query patches ``qv`` (F, c·p²) in the whole training
        set: the ``n_neighbors`` nearest patches of the global index (grid step 2, in the
        PCA projection), each refined by ±1 pixel and re-ranked by their exact distance.
        ``exclude``: a training image left out (leave-one-out at fit).
        Returns (mean squared distances, flat top-left indices), both (F, 9·k)."""
        torch = self._torch
        index = self._index[s]
        pyr = self._pyr[s]
        n, c, h, w = pyr.shape
        p = self.patch_size
        k = min(self.n_neighbors, index.size)
        y, x, img = index.search(qv, k, exclude)                        # (F, k) each
        d = torch.tensor([-1, 0, 1], device=qv.device)
        y = (y[..., None, None] + d[:, None]).clamp(0, h - p)
        x = (x[..., None, None] + d[None, :]).clamp(0, w - p)
        b = (img[..., None, None] * (h * w) + y * w + x).reshape(len(qv), -1)
        dist = ((self._gather(pyr, b) - qv[:, None]) ** 2).mean(-1)
        return dist, b

    def _gather(self, pyr, base):
        """Patches at flat top-left indices ``base`` (any shape) → (*base.shape, c·p²),
        in the order (channel, row, column) of a patch vector."""
        torch = self._torch
        n, c, h, w = pyr.shape
        p = self.patch_size
        ar = torch.arange(p, device=pyr.device)
        off = (torch.arange(c, device=pyr.device)[:, None, None] * (h * w)
               + ar[None, :, None] * w + ar[None, None, :]).reshape(-1)     # (c·p²,)
        start = (base // (h * w)) * (c * h * w) + base % (h * w)           # flat pixel (0, 0)
        return pyr.reshape(-1)[start[..., None] + off]

    def _background(self, u, s, ids, hs, exclude=None, found=None):
        """Self-similar background ``û`` of ``u`` (C, H, W) at scale ``s``; returns
        (û, number of patches that used the global fallback search). ``exclude``: a
        training image that the global search must skip (leave-one-out); ``found``: the
        result of ``_search(u, s, ids)`` when already computed."""
        torch = self._torch
        pyr = self._pyr[s]
        c, h, w = u.shape
        p = self.patch_size
        val, base, ys, xs = self._search(u, s, ids) if found is None else found
        val, base = val.clone(), base.clone()
        m = val.shape[0]
        q_base = torch.as_tensor((ys[:, None] * w + xs[None, :]).reshape(-1), device=u.device)
        n_fb = 0
        if self.fallback > 0:
            fb = val[:, 0] > (self.fallback * hs) ** 2
            n_fb = int(fb.sum())
            if n_fb:
                qv = self._gather(u[None], q_base[fb][:, None])[:, 0]   # (F, c·p²)
                gd, gb = self._global_candidates(s, qv, exclude)
                allb, order = torch.cat([base[fb], gb], 1).sort(1)
                allv = torch.gather(torch.cat([val[fb], gd], 1), 1, order)
                dup = torch.zeros_like(allb, dtype=torch.bool)       # a patch counts once
                dup[:, 1:] = allb[:, 1:] == allb[:, :-1]
                allv = allv.masked_fill(dup, float("inf"))
                v2, i2 = allv.topk(val.shape[1], dim=1, largest=False)
                val[fb] = v2
                base[fb] = torch.gather(allb, 1, i2)
        wts = torch.exp(-(val - val[:, :1]) / (2.0 * hs * hs))
        wts = wts / wts.sum(1, keepdim=True)
        dy, dx = torch.meshgrid(torch.arange(p, device=u.device),
                                torch.arange(p, device=u.device), indexing="ij")
        grid = (dy * w + dx).reshape(-1)
        acc = torch.zeros((c, h * w), device=u.device)
        cnt = torch.zeros(h * w, device=u.device)
        chunk = 2048
        for a in range(0, m, chunk):
            g = self._gather(pyr, base[a:a + chunk])                     # (m', n, c·p²)
            ph = (g * wts[a:a + chunk, :, None]).sum(1).reshape(-1, c, p * p)
            pix = (q_base[a:a + chunk, None] + grid).reshape(-1)
            acc.index_add_(1, pix, ph.permute(1, 0, 2).reshape(c, -1))
            cnt.index_add_(0, pix, torch.ones_like(pix, dtype=acc.dtype))
        return (acc / cnt.clamp_min(1)).reshape(c, h, w), n_fb

    # -- prediction ---------------------------------------------------------------------
    def residuals(self, image):
        """Per-scale residuals of one image: dict ``s -> (r^s, û^s)``, each (H_s, W_s, 3)."""
        self._check_fitted("residuals")
        from ..checks import check_image
        x = check_image(image)
        out = {}
        for (s, r, bg, _) in self._residuals_one(x):
            out[s] = (r, bg)
        return out

    def _residuals_one(self, x):
        torch = self._torch
        if not hasattr(self, "_pyr"):
            self._prepare()
        t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 0)))[None].to(self._dev)
        res = []
        with torch.no_grad():
            for i, s in enumerate(self.scales):
                u = _resize(t, self._scale_size(s, x.shape[:2]))[0].contiguous()
                ids = self._nearest_images(u, s)
                bg, n_fb = self._background(u, s, ids, float(self.h_[i]))
                r = u - bg
                res.append((s, np.moveaxis(r.cpu().numpy(), 0, -1),
                            np.moveaxis(bg.cpu().numpy(), 0, -1), n_fb))
        return res

    def _predict(self, images):
        from tqdm.auto import tqdm

        from ..contrario.null import robust_normalize
        from ..contrario.gaussian import normalize_residual
        n = len(images)
        extras = {}
        n_fb = np.zeros((n, len(self.scales)), np.int64)
        for i in tqdm(range(n), desc="self-similarity", disable=not self.progress):
            for j, (s, r, _, nf) in enumerate(self._residuals_one(images[i])):
                if i == 0:
                    extras[f"residual_s{s}"] = np.empty((n, *r.shape), np.float32)
                    extras[f"normalized_s{s}"] = np.empty((n, *r.shape), np.float32)
                extras[f"residual_s{s}"][i] = r
                if self.nfa_model == "gaussian":  # f = |(r − E r)/σ_r| per channel (paper)
                    extras[f"normalized_s{s}"][i] = np.abs(normalize_residual(r, axis=(0, 1)))
                else:                             # f = |(r − med r)/(1.4826·MAD r)|
                    extras[f"normalized_s{s}"][i] = np.abs(robust_normalize(r, axis=(0, 1)))
                n_fb[i, j] = nf
        extras["scales"] = tuple(self.scales)
        extras["n_fallback"] = n_fb
        # share of the patches of each scale that were also searched globally
        extras["fallback_rate"] = (n_fb / np.asarray([self._n_patches(s) for s in self.scales],
                                                     np.float64)).astype(np.float32)
        extras["h"] = tuple(float(v) for v in self.h_)
        extras["nfa_model"] = self.nfa_model
        if self.background_ is not None:
            extras["background"] = self.background_
        tmp = AnomalyResult(np.zeros(images.shape[:3], np.float32), np.zeros(n), None,
                            extras=extras)
        return rethreshold(tmp, eps=self.eps, n_votes=self.n_votes)

    def rethreshold(self, result: AnomalyResult, eps: float | None = None,
                    n_votes: int | None = None, scales=None) -> AnomalyResult:
        """Same as :func:`rethreshold`, with this detector's ``eps``/``n_votes`` as defaults."""
        return rethreshold(result, self.eps if eps is None else eps,
                           self.n_votes if n_votes is None else n_votes, scales)

    def vote_view(self, result: AnomalyResult, index: int, eps: float | None = None,
                  n_votes: int | None = None, scales=None) -> dict:
        r"""What the multi-scale decision does on image ``index`` of ``result``, for
        :func:`adkit.viz.show_scale_votes` and the lesson's widget (no patch search: the
        stored residuals are re-thresholded).

        Returns a dict: ``"per_scale"`` ``{s: b^s(ε)}`` (bool (H, W), full size),
        ``"map"`` :math:`r^{MS}`, ``"vote"`` :math:`b^{MS}(ε)` (``segment(ε)`` of the
        re-thresholded result: at least :math:`N_v` scales agree, judged by the vote's own
        measured law with ``nfa_model="empirical"``),
        ``"score"`` :math:`s_{ra}`, ``"image"`` the detector's input (the normalized image
        behind a Pipeline, else None), ``"eps"`` and ``"n_votes"`` (capped at the number
        of scales).
        """
        eps = self.eps if eps is None else float(eps)
        scales = _check_result_scales(result, scales)
        n_votes = min(int(self.n_votes if n_votes is None else n_votes), len(scales))
        one = result[int(index)]
        r = rethreshold(one, eps, n_votes, scales)
        logs = scale_log_nfa(one, scales)
        shown = one.extras.get("normalized_images")
        return {"per_scale": {s: logs[s][0] < np.log10(eps) for s in scales},
                "map": r.maps[0], "vote": r.segment(eps)[0], "score": float(r.scores[0]),
                "image": None if shown is None else np.asarray(shown[0]),
                "eps": eps, "n_votes": n_votes}

    # -- save / load ----------------------------------------------------------------------
    def _get_state(self):
        out = {"train": self.train_, "h": np.asarray(self.h_, np.float32)}
        if self._index:
            out["index"] = {f"s{s}": ix.state() for s, ix in self._index.items()}
        if self.background_ is not None:
            out["background"] = self.background_.state()
        return out

    def _set_state(self, state):
        from ..estimator import ModelFileError, state_array, state_dict
        self.train_ = state_array(state, "train", shape=(None, *self.image_size_, 3),
                                  min_value=0.0, max_value=1.0)
        if len(self.train_) < self._min_train:
            raise ModelFileError(f"the saved 'train' holds {len(self.train_)} image(s), "
                                 f"expected at least {self._min_train}")
        self.h_ = state_array(state, "h", shape=(len(self.scales),), positive=True)
        self.background_ = None
        if self.nfa_model == "empirical":
            bg = state_dict(state, "background", keys=[f"s{s}" for s in self.scales])
            stats = {s: state_array(bg, f"s{s}", shape=(None, *self._scale_size(s)),
                                    min_value=0.0) for s in self.scales}
            self.background_ = VoteBackground(stats, self.image_size_)
        index = None
        if self.fallback > 0:
            index = state_dict(state, "index", keys=[f"s{s}" for s in self.scales])
        self._prepare(index)


def _statistic(r) -> np.ndarray:
    """The per-pixel test statistic of a residual (H, W, 3): ``max_c |f_c|`` with
    ``f = (r − med r)/(1.4826·MAD r)`` per channel (median and MAD over the image)."""
    from ..contrario.null import robust_normalize
    return np.abs(robust_normalize(r, axis=(0, 1))).max(-1)


class VoteBackground:
    """The measured background of the multi-scale vote (``nfa_model="empirical"``).

    Built from the statistic maps ``t^s`` (``max_c |f^s_c|``) of the leave-one-out
    residuals of training images, ``{s: (n, H_s, W_s)}``:

    - per scale, a :class:`~adkit.contrario.null.PixelBackground` of ``t^s`` (tail
      law ``S_s``, effective tests ``N_s = θ_s·H_s·W_s``):
      ``log10 NFA^s(x) = log10 N_s + log10 S_s(t^s(x))``, upsampled to full size;
    - per (scales, N_v), the vote statistic ``V(x)`` = the ``N_v``-th smallest
      ``log10 NFA^s(x)`` and its own background model, fitted on the same images'
      ``V`` maps (the scales are far from independent, so the law of the vote is
      measured, not derived): ``log10 NFA(x) = log10 N_V + log10 S_V(−V(x))``.
      Fitted on first use and kept (a fraction of a second per combination).
    """

    def __init__(self, stats: dict, size):
        from ..contrario.null import PixelBackground
        self.stats = {int(s): np.asarray(v, np.float32) for s, v in stats.items()}
        self.size = tuple(int(v) for v in size)
        self.scale_models = {s: PixelBackground.fit(v) for s, v in self.stats.items()}
        self._votes = {}

    @property
    def n_images(self) -> int:
        return len(next(iter(self.stats.values())))

    def scale_log_nfa(self, stat, s: int, size=None) -> np.ndarray:
        """``log10 NFA^s`` of statistic maps ``stat`` (N, H_s, W_s) at scale ``s``,
        upsampled (bilinear) to ``size``."""
        out = self.scale_models[s].log_nfa(stat)
        return _upsample(out, self.size if size is None else size)

    def vote_model(self, scales, n_votes: int):
        """The :class:`~adkit.contrario.null.PixelBackground` of the vote statistic
        ``−V`` for these scales and ``N_v``."""
        from ..contrario.null import PixelBackground
        key = (tuple(int(s) for s in scales), int(n_votes))
        if key not in self._votes:
            logs = np.stack([self.scale_log_nfa(self.stats[s], s) for s in key[0]])
            self._votes[key] = PixelBackground.fit(-vote_log_nfa(logs, key[1]))
        return self._votes[key]

    def state(self) -> dict:
        """The leave-one-out statistic maps ``{"s<s>": (n, H_s, W_s)}``: the laws are
        fitted again from them (deterministic), so the state stays small."""
        return {f"s{s}": v for s, v in self.stats.items()}


def rethreshold(result: AnomalyResult, eps: float = 1.0, n_votes: int = 2,
                scales=None) -> AnomalyResult:
    """Binary maps, log NFA, multi-scale residual and scores of a :class:`SelfSimilarity`
    result for another ``eps``, ``n_votes`` or subset of ``scales``, from the residuals
    stored in ``result.extras`` (no patch search: milliseconds per image).

    Parameters
    ----------
    result : AnomalyResult
        Returned by ``SelfSimilarity.predict`` (or a Pipeline ending with one).
    eps : float
        NFA threshold ε (> 0).
    n_votes : int
        ``N_v``, 1 ≤ N_v ≤ number of scales used.
    scales : sequence of int or None
        Subset of the scales stored in the result; ``None`` uses them all.

    Returns
    -------
    AnomalyResult
        ``maps = r^MS``, ``log_nfa`` (``segment(eps)`` is the vote map of the model in
        use), ``scores = s_ra = Σ b^MS·r^MS`` with the paper's vote map ``b^MS(ε)`` (its
        Gaussian model, see :class:`SelfSimilarity`), and the same extras plus ``eps``, ``n_votes``,
        ``n_tests`` (the number of tests of the vote: ``θ_V·H·W`` for the empirical
        model, ``3·Σ_s H_s·W_s`` over the scales used for the Gaussian one),
        ``used_scales``.
    """
    ex = result.extras
    scales = _check_result_scales(result, scales)
    eps = check_in_range(eps, "eps", 0, None, low_inclusive=False)
    n_votes = check_positive_int(n_votes, "n_votes")
    if n_votes > len(scales):
        raise ValueError(f"n_votes={n_votes} is more than the {len(scales)} scale(s) {scales}.")
    size = result.maps.shape[1:]
    logs, n_tests = _scale_log_nfa(ex, scales, size)
    rms = None
    for s in scales:   # r^MS = Π_s ‖r^s‖ (channel L2 norm), upsampled
        r = _upsample(np.sqrt((ex[f"residual_s{s}"] ** 2).sum(-1)), size)
        rms = r if rms is None else rms * r
    log_nfa = vote_log_nfa(np.stack(logs), n_votes)
    if ex.get("nfa_model", "gaussian") == "empirical":
        model = ex["background"].vote_model(scales, n_votes)
        log_nfa, n_tests = model.log_nfa(-log_nfa), model.n_tests
        # the paper's score: its vote map b^MS(ε) under its Gaussian model
        paper = vote_log_nfa(np.stack(_gaussian_log_nfa(ex, scales, size, True)[0]), n_votes)
    else:
        paper = log_nfa
    b = paper < np.log10(eps)                         # b^MS(ε), the paper's model
    scores = (b * rms).reshape(len(rms), -1).sum(1)   # s_ra = Σ b^MS · r^MS
    extras = dict(ex, eps=float(eps), n_votes=int(n_votes), n_tests=float(n_tests),
                  used_scales=tuple(scales))
    return AnomalyResult(rms, scores, log_nfa, None, extras)


def _check_result_scales(result, scales):
    ex = result.extras
    if "scales" not in ex or not any(k.startswith("normalized_s") for k in ex):
        raise ValueError("this result holds no per-scale residuals: it must come from "
                         "SelfSimilarity.predict (or a Pipeline ending with a SelfSimilarity).")
    stored = tuple(ex["scales"])
    scales = stored if scales is None else _check_scales(scales, "rethreshold")
    missing = [s for s in scales if s not in stored]
    if missing:
        raise ValueError(f"scales {missing} were not computed; this result has scales {stored}.")
    return scales


def _scale_log_nfa(ex, scales, size):
    if ex.get("nfa_model", "gaussian") == "empirical":
        bg = ex["background"]
        logs = [bg.scale_log_nfa(ex[f"normalized_s{s}"].max(-1), s, size) for s in scales]
        return logs, sum(bg.scale_models[s].n_tests for s in scales)
    return _gaussian_log_nfa(ex, scales, size, False)


def _gaussian_log_nfa(ex, scales, size, from_residuals: bool):
    """The paper's model: |f| = |(r − E r)/σ_r| standard normal, every pixel of every scale
    and channel one test, N = 3·Σ_s H_s·W_s. ``from_residuals``: normalize the stored
    residuals here (the stored ``normalized_s*`` are the robust ones)."""
    from ..contrario.gaussian import normalize_residual

    def f(s):
        if not from_residuals:
            return ex[f"normalized_s{s}"]
        r = ex[f"residual_s{s}"]
        return np.abs(normalize_residual(r, axis=(1, 2)))

    n_tests = count_tests([ex[f"residual_s{s}"].shape[1:3] for s in scales],
                          channels=ex[f"residual_s{scales[0]}"].shape[-1])
    logs = [_upsample(log_nfa_gaussian(f(s).max(-1), n_tests), size) for s in scales]
    return logs, n_tests


def scale_log_nfa(result: AnomalyResult, scales=None) -> dict:
    """Per-scale log10 NFA maps ``{s: (N, H, W)}`` at full size (bilinear):
    ``b^s(ε) = log_nfa[s] < log10 ε``. Empirical model: each scale with its own
    measured law and effective tests ``N_s``; Gaussian model: ``N = 3·Σ_s H_s·W_s``
    counted over ``scales``."""
    scales = _check_result_scales(result, scales)
    logs, _ = _scale_log_nfa(result.extras, scales, result.maps.shape[1:])
    return dict(zip(scales, logs))
