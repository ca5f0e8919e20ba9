r"""Nearest-neighbour models of pretrained patch features: PatchCore and SPADE.

**PatchCore** (Roth, Pemula, Zepeda, Schölkopf, Brox, Gehler, "Towards total recall
in industrial anomaly detection", CVPR 2022).

1. *Locally aware patch features*: the feature maps of two middle stages (strides 8
   and 16) are averaged over a p×p neighbourhood (p = 3, ``patch_size``), the coarser
   map is upsampled bilinearly to the finer one and the two are concatenated: one
   feature per position of the stride-8 grid, describing a small patch with its
   context. ``projection`` optionally maps them to fewer dimensions by a fixed random
   Gaussian matrix.
2. *Memory bank* M: the patch features of all training images.
3. *Greedy coreset* (:func:`adkit.coreset.greedy_coreset`): a subset M_C of
   ``coreset`` × :math:`|M|` entries
   (10% by default; 1% in Son et al.) chosen by greedy k-center — repeatedly add the
   bank entry farthest from the entries chosen so far,
   :math:`m_i = \arg\max_{m \in M} \min_{n \in M_C} \|ψ(m) - ψ(n)\|_2`, where ψ is a
   Johnson-Lindenstrauss random projection to 128 dimensions that makes the
   distances cheap. M_C covers M with a small radius, so the nearest-neighbour
   distances barely change while the search gets ``1/coreset`` times faster.
4. *Score*: each test patch feature x gets its distance to the nearest bank entry
   m*(x), :math:`s(x) = \|x - m^*(x)\|_2`; the map is that distance upsampled
   (bilinear) to the input size and smoothed by a Gaussian of std σ = 4 (``sigma``).
   The image score takes the worst patch m_test,* = argmax_x s(x), its nearest bank
   entry m* and distance s* = s(m_test,*) (the raw distance: the smoothing is for the
   map only), and reweights it (``score="patchcore"``, Roth et al. eq. 7) by how
   isolated m* is among its b nearest bank neighbours N_b(m*) (b = 9 here):

   .. math:: s = \Big(1 - \frac{\exp\|m^{test,*} - m^*\|}
                 {\sum_{m \in N_b(m^*)} \exp\|m^{test,*} - m\|}\Big)\, s^*

   ``score="max"`` keeps the plain kNN image score :math:`s^* = \max_x s(x)`.

   ``score="knn_mean"`` is the kNN-averaged score of Son, Kim, Kang, Lee
   ("Improvement on image anomaly detection focusing on background anomaly"), **per
   patch**: every test patch x is scored by its mean distance to the b neighbours of
   its nearest bank entry,

   .. math:: s_b(x) = \frac{1}{b} \sum_{m \in N_b(m^*(x))} \|x - m\|_2 ,

   which replaces s(x) everywhere: it makes the map (hence the paper's pixel results),
   picks the worst patch (``extras["worst_patch"]``) and gives the image score
   :math:`\max_x s_b(x)`. With b = 1 it is the plain distance s(x).

Measured defaults (128 px, 60 train / 40 test images per embedded dataset, image /
pixel AUROC; ``synthetic/<object>/semantic`` holds parts shifted, turned or absent):
the mirror padding ``pad=32`` is worth up to +0.11 image AUROC on the semantic defects
over ``pad=0`` (bottle 0.987 vs 0.875), the greedy coreset up to +0.05 over a random
10 % bank, and ``score="patchcore"`` is within 0.003 of ``score="max"``; the
defaults match or beat a plain kNN (``pad=0``, random 10 % bank, ``score="max"``) on
every embedded dataset (fabric 0.955 vs 0.962, within the resolution of 40 images;
at 256 px on the semantic defects: pill 0.948 vs 0.892, nut 0.958 vs 0.917, bottle
0.850 vs 0.760).
``score="knn_mean"`` (b = 9) scores lower on the semantic defects (nut 0.875 vs 0.920).
On an object that crosses the image border, ``synthetic/transistor/semantic`` (three
leads run out of the bottom of the frame; the defects move, turn or remove the whole
transistor, or bend or cut a lead, so what the mirror padding reflects changes), the
defaults still beat the plain kNN (image AUROC, 50 train / 40 test, seeds 0 and 1:
128 px 0.953 and 0.895 vs 0.895 and 0.838; 256 px 0.840 and 0.758 vs 0.800 and
0.742), and the padding matters little there: ``pad=0`` 0.970, 0.910, 0.862, 0.752;
a replicate (edge-repeating) padding of 32 px 0.968, 0.910, -, 0.805, but it loses
0.02-0.03 pixel AUROC on the other semantic sets (pill 0.921 vs 0.948, bottle 0.850 vs
0.876, 128 px seed 0), so the mirror stays. The plain kNN's maps have the higher
pixel AUROC on the transistor (256 px 0.858 and 0.845 vs 0.823 and 0.802). What
is hard there is the transistor shifted sideways (128 px, seeds 0 and 1: defaults 0.864
and 0.714, ``pad=0`` 0.914 and 0.743, plain kNN 0.721 and 0.536; turned, bent, absent
and cut: 0.975-1.0 for all three).

**SPADE** (Cohen & Hoshen, "Sub-image anomaly detection with deep pyramid
correspondences", 2020), ``mode="spade"``: the image score is the mean distance of the
globally pooled deepest features (stride 32) to those of the k nearest training
images (k = 50); the map is, at each position, the distance to the nearest patch
feature among all positions of these k images (no coreset).

Speed: the greedy coreset costs O(N · n_select · 128) multiply-adds; it runs in blocks
of selections applied to the bank by one matrix product each (see
:func:`adkit.coreset.greedy_coreset`), so a 2-core CPU selects 20 480 of 204 800
entries (200 images of 256 px) in about 15 s and a GPU in about a second.
``python -m adkit bench --task coreset`` and ``--task knn`` measure it.

Nearest neighbours are searched by :func:`adkit.neighbors.nearest_neighbors`: faiss
(exact L2; faiss on the GPU when a GPU build is installed and CUDA is present), or
torch in blocks (``search="torch"``).
"""
from __future__ import annotations

import time

import numpy as np

from ..backbone import BACKBONE, MAX_SIGMA, Strides, blur_maps, check_pad
from ..params import (Boolean, Device, Integral, Interval, Options, ParameterValueError, Real,
                      Seed)
from ..coreset import greedy_coreset, projection_matrix
from ..neighbors import faiss_index, faiss_module, nearest_neighbors
from .base import AnomalyResult, FeatureDetector

__all__ = ["KNN", "patchcore_score", "knn_mean_score"]


# ----------------------------------------------------------------------------------
# image scores
# ----------------------------------------------------------------------------------
def patchcore_score(s_star, dist_to_neighbors):
    r"""PatchCore's reweighted image score (Roth et al. 2022, eq. 7).

    ``s_star`` (N,): distance s* = ‖m_test,* − m*‖ of the worst test patch to its
    nearest bank entry m*; ``dist_to_neighbors`` (N, b): distances ‖m_test,* − m‖ to
    the b nearest bank neighbours N_b(m*) of m* (m* itself included).

    :math:`s = (1 − e^{s^*} / \sum_{m∈N_b(m^*)} e^{\|m_{test,*} − m\|}) · s^*`,
    computed stably as :math:`(1 − \exp(s^* − \mathrm{logsumexp}(d)))·s^*`. → (N,).
    """
    s = np.asarray(s_star, np.float64).reshape(-1)
    d = np.asarray(dist_to_neighbors, np.float64)
    m = np.maximum(d.max(1), s)
    lse = m + np.log(np.exp(d - m[:, None]).sum(1))
    return ((1 - np.exp(s - lse)) * s).astype(np.float32)


def knn_mean_score(dist_to_neighbors):
    """Son et al.'s kNN-averaged score of test patches x: the mean of ‖x − m‖ over the
    b neighbours N_b(m*(x)) of their nearest bank entry. (N, b) → (N,)."""
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
        itself included): used by the image score with ``score="patchcore"``
        (reweighting), by every patch's score with ``score="knn_mean"`` (averaging).
        At least 2 for the PatchCore score (with b = 1 its weight is 0);
        ``score="knn_mean", b=1`` is the plain distance.
    score : {"patchcore", "max", "knn_mean"}, default "patchcore"
        "patchcore": the map is each patch's nearest distance s(x), the image score
        PatchCore's reweighted s* (Roth et al. eq. 7); "max": the same map, the image
        score s* = max_x s(x) (a plain kNN); "knn_mean": Son et al.'s kNN-averaged
        score per patch, s_b(x) = mean of ‖x − m‖ over N_b(m*(x)), for the map and
        the image score max_x s_b(x) (see the module docstring).
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
    _parameter_constraints = {
        "mode": Options("patch", "spade"),
        "coreset": Interval(Real, 0, 1, closed="right"),
        "coreset_dim": Interval(Integral, 1, 4096),
        "b": Interval(Integral, 1, 1024),
        "score": Options("patchcore", "knn_mean", "max"),
        "k": Interval(Integral, 1, 10000),
        "strides": Strides(),
        "patch_size": Interval(Integral, 1, 15),
        "projection": [None, Interval(Integral, 1, 8192)],
        "pad": Interval(Integral, 0, 256),
        "sigma": Interval(Real, 0, MAX_SIGMA),
        "search": Options("auto", "faiss", "torch"),
        "backbone": BACKBONE,
        "batch_size": Interval(Integral, 1, 4096),
        "seed": Seed(),
        "device": [None, Device()],
        "progress": Boolean(),
    }

    def __init__(self, *, mode: str = "patch", coreset: float = 0.1, coreset_dim: int = 128,
                 b: int = 9, score: str = "patchcore", k: int = 50, strides=(8, 16),
                 patch_size: int = 3, projection: int | None = None, pad: int = 32,
                 sigma: float = 4.0,
                 search: str = "auto", backbone: str = "efficientnet_lite0",
                 batch_size: int = 16, seed: int = 0, device: str | None = None,
                 progress: bool = True):
        self._set_params(locals())

    def _check_params(self, p):
        if p["score"] == "patchcore" and p["b"] < 2:
            raise ParameterValueError(
                "b must be >= 2 with score='patchcore': N_b(m*) holds m* itself, so with "
                "b = 1 the reweighting factor 1 - exp(s*)/exp(s*) is 0 for every image. "
                "Use b >= 2 (9 here), or score='knn_mean' with b=1 for the plain "
                "nearest-neighbour distance s*.")
        if p["patch_size"] % 2 == 0:
            raise ParameterValueError(
                f"patch_size must be odd (1, 3, 5...) so the neighbourhood is centred, got "
                f"{p['patch_size']}.")
        check_pad(p["pad"], p["strides"])

    # -- features -----------------------------------------------------------------
    def feature_strides(self) -> tuple:
        """The stages :meth:`features` extracts: ``strides``, and 32 for the image-level
        kNN of ``mode="spade"``."""
        s = set(self.strides)
        if self.mode == "spade":
            s.add(32)
        return tuple(sorted(s))

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
                self.projection_ = projection_matrix(x.shape[-1], self.projection,
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
        if self.mode == "patch" and len(self.bank_) < self.b:
            import warnings
            warnings.warn(
                f"KNN: the memory bank holds {len(self.bank_)} patch feature(s) (coreset="
                f"{self.coreset} of {len(flat)}), fewer than the b={self.b} neighbours of "
                f"the image score, which will use {len(self.bank_)}: use a larger coreset, "
                "more or larger training images, or a smaller b.", UserWarning, stacklevel=4)
        self.bank_ = np.ascontiguousarray(self.bank_, dtype=np.float32)
        if self.mode == "spade":
            import torch
            self.image_bank_ = torch.as_tensor(feats[32]).float().mean((2, 3)).numpy()
        self._index = None

    def bank_neighbors(self, entries) -> np.ndarray:
        """N_b(m) of bank entries (indices (q,)): the indices (q, b) of their b nearest
        bank entries, the entry itself first (b capped at the bank size)."""
        entries = np.asarray(entries, np.int64)
        b = min(self.b, len(self.bank_))
        _, nb = nearest_neighbors(self.bank_[entries], self.bank_, b, self.search,
                                  self.device, self._get_index())
        return nb

    def knn_mean_patches(self, flat, nearest) -> np.ndarray:
        r"""Son et al.'s kNN-averaged score of every patch feature x (rows of ``flat``
        (P, D)) whose nearest bank entry is ``nearest`` (P,):
        :math:`\frac{1}{b}\sum_{m \in N_b(m^*(x))} \|x - m\|_2`. → (P,) float32."""
        import torch
        uniq, inv = np.unique(nearest, return_inverse=True)
        nb = self.bank_neighbors(uniq)[inv.reshape(-1)]              # (P, b)
        bank = torch.from_numpy(self.bank_)
        q = torch.from_numpy(np.ascontiguousarray(flat, np.float32))
        nbt = torch.from_numpy(nb)
        out = np.empty(len(q), np.float32)
        step = max(1, 2 ** 22 // (nb.shape[1] * q.shape[1]))
        for i in range(0, len(q), step):
            diff = bank[nbt[i:i + step]] - q[i:i + step, None, :]
            out[i:i + step] = diff.square().sum(-1).sqrt().mean(1).numpy()
        return out

    def _get_index(self):
        if self.search == "torch" or faiss_module() is None:
            return None
        if getattr(self, "_index", None) is None:
            self._index = faiss_index(self.bank_, self.device)
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
            nearest = dist[:, 0].reshape(n, h * w)
            nn = nn[:, 0]
            if self.score == "knn_mean":
                # Son et al.: every patch scored by its mean distance to N_b(m*)
                patch = self.knn_mean_patches(flat, nn).reshape(n, h * w)
            else:
                patch = nearest
            nn = nn.reshape(n, h * w)
            worst = patch.argmax(1)
            s_star = patch[np.arange(n), worst]
            if self.score == "patchcore":
                m_test = flat.reshape(n, h * w, d)[np.arange(n), worst]       # (n, D)
                m_star = nn[np.arange(n), worst]
                # N_b(m*): the b nearest bank entries of m* (m* itself first, at distance 0)
                nb = self.bank_neighbors(m_star)
                dnb = np.linalg.norm(self.bank_[nb] - m_test[:, None, :], axis=-1)
                scores = patchcore_score(s_star, dnb)
            else:
                scores = s_star.astype(np.float32)
            extras["max_patch_distance"] = nearest.max(1).astype(np.float32)
            extras["worst_patch"] = worst.astype(np.int64)
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
        maps = blur_maps(maps, self.sigma)
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
