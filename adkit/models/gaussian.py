r"""Gaussian models of pretrained deep features (Wang, Xu & Chen 2022; PaDiM-style maps).

A CNN pretrained on ImageNet turns an image into feature maps at several stages
(strides 4, 8, 16, 32 of the input). The normal images of one product give feature
vectors that are well described by a multivariate Gaussian N(μ, Σ); an anomaly is a
feature far from it in the *Mahalanobis* distance

.. math::  M(x) = \sqrt{(x - μ)^T Σ^{-1} (x - μ)}.

**Image level** (Wang, Xu, Chen, "Build Gaussian distribution under deep features for
anomaly detection and localization", J. Nondestructive Evaluation 2022). For each
stage s the feature map is globally average pooled into one vector x_s per image.

1. *Opposite PCA* (OPCA / NPCA): diagonalize the training covariance,
   Σ = V diag(λ_1 ≤ … ≤ λ_C) V^T, and keep the **least**-variance components
   v_1 … v_k whose variances hold a share ``variance`` of the total
   (:math:`\sum_{i\le k} λ_i \le` ``variance`` :math:`\cdot \sum_i λ_i`, 5% by default).
   Normal images hardly move along these directions, so an anomaly that does stands
   out; the high-variance directions mostly hold nuisances of the normal class.
   ``pca="plain"`` keeps the complementary largest-variance components instead
   (classic PCA holding 1 − ``variance`` = 95% of the variance), ``pca=None`` keeps
   everything, for comparison.
2. *Ledoit-Wolf shrinkage*: with few training images the sample covariance of the
   projected features z = V_k^T (x − μ) is singular or ill-conditioned; the
   Ledoit-Wolf estimator Σ̂ = (1 − ρ) S + ρ (tr S / k) I chooses the shrinkage ρ
   that minimizes the expected Frobenius error (scikit-learn ``LedoitWolf``).
3. The image score is the sum over stages of the Mahalanobis distances
   :math:`\sum_s \sqrt{z_s^T Σ̂_s^{-1} z_s}`.

**Pixel level** (the per-position Gaussian of PaDiM, Defard et al. 2021 [2]). By
default (``map_concat=True``, as PaDiM) the feature maps of the ``map_strides`` stages
are upsampled (nearest neighbour) to the grid of the finest one and concatenated, so
each position (i, j) holds one vector x_ij of C = Σ_s C_s channels (24 + 40 + 112 = 176
for EfficientNet-Lite0 at strides 4, 8, 16). Over the n training images a Gaussian
N(μ_ij, Σ̂_ij) is fitted at every position, with

- ``pixel_cov="regularized"`` (default, PaDiM): :math:`Σ̂ = S + ε I`, S the unbiased
  sample covariance and ε = ``reg`` = 0.01;
- ``pixel_cov="ledoit_wolf"``: :math:`Σ̂ = (1 - ρ) S + ρ (tr S / C) I` with the
  Ledoit-Wolf ρ computed position by position.

The map is the Mahalanobis distance :math:`\sqrt{(x_{ij} - μ_{ij})^T Σ̂_{ij}^{-1}
(x_{ij} - μ_{ij})}`, upsampled bilinearly to the input size and smoothed with a
Gaussian of std ``sigma`` (4 as in PaDiM). ``map_concat=False`` fits one Gaussian per
position and *per stage* instead and averages the stages' upsampled maps.

*Why the PaDiM choices are the default.* With n training images fewer than the C
channels (30 images, 176 channels), S has rank ≤ n − 1: the training features of a
position span a small affine subspace. With ``S + 0.01 I`` every direction outside that
span has variance 0.01, so the map is ≈ 10 × the distance of x_ij to the training
span, which is what a defect changes. Ledoit-Wolf, at such n, shrinks hard (ρ ≈ 0.2 –
0.6 here) towards the average variance tr S / C, so the off-span directions get a
variance of the order of the large nuisance variances and the map drifts towards a
Euclidean distance; averaging per-stage maps further gives the 24-channel stride-4
stage a third of the map. On real photographs (a bottle, 128 px, 30 training images)
the filer of issue 13 measured a pixel AUROC of 0.776 with the former default
(Ledoit-Wolf, per-stage average) against 0.980 for PaDiM on the same layers.

*Opposite PCA per position* (``map_pca="opposite"``, Wang et al.'s OPCA [1] applied to
each position's Gaussian): diagonalize :math:`S = V \mathrm{diag}(λ_1 \le … \le λ_C)
V^T` and keep the least-variance directions V_k holding a share ``variance`` of the
total; the score is :math:`\sqrt{\sum_{i \le k} (v_i^T (x - μ))^2 / \hat λ_i}` with
:math:`\hat λ_i = λ_i + ε` (regularized) or :math:`(1 - ρ) λ_i + ρ\,tr S / C`
(Ledoit-Wolf; both estimators keep the eigenvectors of S). With n < C at least C − n + 1
eigenvalues are 0: OPCA keeps all the directions in which the training images do not
vary at all (and a few barely varying ones), so its score is ≈ the distance of x to the
span of the training features divided by √ε, the part of PaDiM's map that localises
defects, without the in-span nuisance terms. ``map_pca="plain"`` keeps the
complementary largest-variance directions, for comparison. A per-position model assumes
the objects sit at the same place in every image.

References
----------
[1] J. Wang, G. Xu, C. Chen et al., "Build Gaussian distribution under deep features
    for anomaly detection and localization", J. Nondestructive Evaluation 41, 2022.
[2] T. Defard, A. Setkov, A. Loesch, R. Audigier, "PaDiM: a patch distribution modeling
    framework for anomaly detection and localization", ICPR workshops 2021.
"""
from __future__ import annotations

import numpy as np

from ..backbone import BACKBONE, MAX_SIGMA, Strides, blur_maps
from ..params import Boolean, Device, Integral, Interval, Options, Real
from .base import AnomalyResult, FeatureDetector

__all__ = ["Gaussian", "ledoit_wolf", "mahalanobis", "pca_components",
           "position_precisions"]


# ----------------------------------------------------------------------------------
# building blocks (numpy in, numpy out; also used by the tests and the notebook)
# ----------------------------------------------------------------------------------
def ledoit_wolf(x, assume_centered: bool = False):
    r"""Ledoit-Wolf shrunk covariance of many sample sets at once.

    Parameters
    ----------
    x : array or torch tensor (..., n, p)
        ``n`` samples of dimension ``p`` for each leading index (e.g. one set per
        feature-map position).
    assume_centered : bool
        If False, the samples are centered on their mean first.

    Returns
    -------
    cov : (..., p, p)
        :math:`(1 - ρ) S + ρ μ I` with :math:`S = X^T X / n`, :math:`μ = tr(S)/p`,
    shrinkage : (...,)
        :math:`ρ = \min(β, δ)/δ` with :math:`δ = \|S - μI\|_F^2 / p` and
        :math:`β = (\frac{1}{n}\sum_k \|x_k\|^4 - \|S\|_F^2) / (n p)`
        (Ledoit & Wolf 2004, the estimator of ``sklearn.covariance.ledoit_wolf``).

    Works on numpy arrays (returns numpy) and on torch tensors (returns tensors on
    the same device), in the input's floating precision.
    """
    import torch
    is_np = not isinstance(x, torch.Tensor)
    t = torch.as_tensor(np.asarray(x)) if is_np else x
    if not t.is_floating_point():
        t = t.double()
    if t.ndim < 2:
        raise ValueError(f"ledoit_wolf expects samples (..., n, p), got shape {tuple(t.shape)}.")
    n, p = t.shape[-2], t.shape[-1]
    if not assume_centered:
        t = t - t.mean(-2, keepdim=True)
    s = t.transpose(-1, -2) @ t / n
    mu = torch.diagonal(s, dim1=-2, dim2=-1).sum(-1) / p
    s_fro2 = (s * s).sum((-2, -1))
    delta = (s_fro2 - 2 * mu * mu * p + p * mu * mu) / p       # ||S - mu I||^2 / p
    norms4 = ((t * t).sum(-1) ** 2).sum(-1)
    beta = (norms4 / n - s_fro2) / (n * p)
    beta = torch.minimum(beta, delta)
    shrink = torch.where(delta > 0, beta / torch.where(delta > 0, delta, torch.ones_like(delta)),
                         torch.zeros_like(delta))
    eye = torch.eye(p, dtype=t.dtype, device=t.device)
    cov = (1 - shrink)[..., None, None] * s + (shrink * mu)[..., None, None] * eye
    if is_np:
        return cov.numpy(), shrink.numpy()
    return cov, shrink


def mahalanobis(x, mean, precision):
    r"""Mahalanobis distance :math:`\sqrt{(x-μ)^T P (x-μ)}` with P = Σ^{-1}.

    ``x`` (N, p), ``mean`` (p,), ``precision`` (p, p) → (N,); numpy, float64 inside.
    """
    d = np.asarray(x, np.float64) - np.asarray(mean, np.float64)
    q = np.einsum("np,pq,nq->n", d, np.asarray(precision, np.float64), d)
    return np.sqrt(np.maximum(q, 0))


def pca_components(x, variance: float = 0.05, pca: str | None = "opposite"):
    """Mean and principal directions kept by (opposite) PCA of samples ``x`` (n, p).

    ``pca="opposite"``: the smallest-variance directions whose variances sum to at
    most ``variance`` times the total (at least one direction);
    ``pca="plain"``: the complementary largest-variance directions (holding the
    remaining 1 − ``variance`` share); ``None``: the identity (all p directions).

    Returns ``(mean (p,), components (p, k), eigenvalues (k,))``, float64.
    """
    x = np.asarray(x, np.float64)
    mean = x.mean(0)
    p = x.shape[1]
    if pca is None:
        xc = x - mean
        return mean, np.eye(p), np.var(xc, 0)
    xc = x - mean
    cov = xc.T @ xc / len(x)
    lam, vec = np.linalg.eigh(cov)            # ascending eigenvalues
    lam = np.clip(lam, 0, None)
    total = lam.sum()
    k_small = int(np.searchsorted(np.cumsum(lam), variance * total, side="right"))
    k_small = min(max(k_small, 1), p - 1) if p > 1 else 1
    if pca == "opposite":
        keep = np.arange(k_small)
    elif pca == "plain":
        keep = np.arange(k_small, p)[::-1]   # largest first
    else:
        raise ValueError(f"pca must be 'opposite', 'plain' or None, got {pca!r}.")
    return mean, vec[:, keep], lam[keep]


def _nearest_index(grid, shape) -> "torch.Tensor":
    """Flat indices into a (h_s, w_s) map of the nearest-neighbour upsampling to ``grid``
    (h0, w0): position (i, j) takes (⌊i h_s / h0⌋, ⌊j w_s / w0⌋), as
    ``F.interpolate(mode="nearest")``. Returns (h0 · w0,) int64."""
    import torch
    (h0, w0), (h, w) = grid, shape
    iy = torch.clamp((torch.arange(h0, dtype=torch.float64) * (h / h0)).floor().long(), max=h - 1)
    ix = torch.clamp((torch.arange(w0, dtype=torch.float64) * (w / w0)).floor().long(), max=w - 1)
    return (iy[:, None] * w + ix[None, :]).reshape(-1)


def _gather(flat_maps, indices, rows):
    """Concatenated features of positions ``rows`` of the finest grid: (len(rows), N, C).

    ``flat_maps``: per stage (N, C_s, h_s · w_s) tensors, ``indices``: their
    :func:`_nearest_index` on the finest grid."""
    import torch
    parts = [f[:, :, idx[rows]] for f, idx in zip(flat_maps, indices)]
    return torch.cat(parts, 1).permute(2, 0, 1)


def position_precisions(x, pixel_cov: str = "regularized", reg: float = 0.01,
                        pca: str | None = None, variance: float = 0.05):
    r"""Precision matrices of per-position Gaussians, batched over positions.

    Parameters
    ----------
    x : torch tensor (P, n, C)
        The n training feature vectors of each of P positions (float64 advised).
    pixel_cov : {"regularized", "ledoit_wolf"}
        :math:`Σ̂ = S + ε I` (S unbiased, ε = ``reg``, PaDiM) or the Ledoit-Wolf
        :math:`(1 - ρ) S_b + ρ (tr S_b / C) I` (S_b biased, as scikit-learn).
    pca : {None, "opposite", "plain"}
        None: :math:`Σ̂^{-1}` (Cholesky, plus a floor of 1e-6 · tr Σ̂ / C on the
        diagonal so that constant features stay invertible). "opposite": with
        :math:`S = V diag(λ_1 \le … \le λ_C) V^T` (both estimators keep the eigenvectors
        of S, :math:`\hat λ_i = λ_i + ε` or :math:`(1-ρ) λ_i + ρ tr S_b / C`), the
        rank-k precision :math:`V_k diag(1/\hat λ_i) V_k^T` of the k least-variance
        directions whose variances sum to at most ``variance`` of the total
        (1 ≤ k ≤ C − 1); "plain": the complementary largest-variance directions.

    Returns
    -------
    mean (P, C), precision (P, C, C), in the dtype of ``x``.
    """
    import torch
    n, c = x.shape[1], x.shape[2]
    mean = x.mean(1)
    xc = x - mean[:, None]
    eye = torch.eye(c, dtype=x.dtype, device=x.device)
    if pixel_cov == "ledoit_wolf":
        cov, shrink = ledoit_wolf(xc, assume_centered=True)
        mu = torch.diagonal(xc.transpose(1, 2) @ xc / n, dim1=1, dim2=2).mean(1)   # tr S_b / C
    else:
        s = xc.transpose(1, 2) @ xc / max(n - 1, 1)
        cov = s + reg * eye
    if pca is None:
        tr = torch.diagonal(cov, dim1=1, dim2=2).mean(1).clamp_min(1e-12)
        cov = cov + (1e-6 * tr)[:, None, None] * eye
        chol, info = torch.linalg.cholesky_ex(cov)
        prec = torch.cholesky_inverse(chol)
        bad = info != 0
        if bool(bad.any()):                      # not positive definite in floating point
            lam, vec = torch.linalg.eigh(cov[bad])
            lam = lam.clamp_min(1e-6 * tr[bad][:, None])
            prec[bad] = (vec / lam[:, None]) @ vec.transpose(1, 2)
        return mean, prec
    if pixel_cov == "ledoit_wolf":
        lam, vec = torch.linalg.eigh(xc.transpose(1, 2) @ xc / n)
        lam = lam.clamp_min(0)
        lam_hat = (1 - shrink)[:, None] * lam + (shrink * mu)[:, None]
    else:
        lam, vec = torch.linalg.eigh(s)
        lam = lam.clamp_min(0)
        lam_hat = lam + reg
    total = lam.sum(1, keepdim=True)
    k = (torch.cumsum(lam, 1) <= variance * total).sum(1).clamp(1, max(c - 1, 1))
    order = torch.arange(c, device=x.device)[None, :]
    keep = order < k[:, None] if pca == "opposite" else order >= k[:, None]
    if c == 1:
        keep = torch.ones_like(keep)
    floor = (1e-6 * lam_hat.mean(1, keepdim=True)).clamp_min(1e-12)
    w = keep.to(x.dtype) / torch.maximum(lam_hat, floor)
    return mean, (vec * w[:, None, :]) @ vec.transpose(1, 2)


class Gaussian(FeatureDetector):
    """Multivariate Gaussian of pretrained features: OPCA + Ledoit-Wolf + Mahalanobis.

    Image score: sum over ``strides`` of the Mahalanobis distances of the globally
    pooled features after (opposite) PCA and Ledoit-Wolf shrinkage (Wang, Xu, Chen,
    J. Nondestructive Evaluation 2022). Map: PaDiM (Defard et al. 2021): the
    ``map_strides`` feature maps upsampled (nearest) to the finest grid and
    concatenated, one Gaussian N(μ_ij, S_ij + 0.01 I) per position, the Mahalanobis map
    upsampled bilinearly and smoothed. The former map (per-stage Gaussians with
    Ledoit-Wolf shrinkage, averaged: ``map_concat=False, pixel_cov="ledoit_wolf"``) and
    per-position opposite PCA (``map_pca="opposite"``) are options. See the module
    docstring for the formulas and why these defaults.

    Parameters
    ----------
    variance : float in (0, 1), default 0.05
        Share of the total variance held by the components kept by opposite PCA
        (the paper's default keeps the least-variance components holding 5%).
    pca : {"opposite", "plain", None}, default "opposite"
        "opposite": keep the least-variance components (the paper);
        "plain": keep the largest-variance ones (1 − variance of the variance);
        None: no projection.
    strides : tuple of int, default (4, 8, 16, 32)
        Backbone stages (by stride) whose pooled features enter the image score.
    map_strides : tuple of int, default (4, 8, 16)
        Stages whose per-position Gaussians make the anomaly map.
    map_concat : bool, default True
        True (PaDiM): one Gaussian per position of the finest stage on the
        concatenated features of all ``map_strides`` (coarser stages upsampled by
        nearest neighbour), C = Σ C_s channels. False: one Gaussian per position and
        per stage, the stages' Mahalanobis maps averaged after bilinear upsampling.
        The concatenated model holds (H/4)(W/4) C² floats, as PaDiM: 64·64·176² ≈ 0.5 GB
        for 256 px images and Lite0 strides 4/8/16 (per stage: ≈ 30 MB), also in the
        saved file.
    pixel_cov : {"regularized", "ledoit_wolf"}, default "regularized"
        Covariance at each position: S + ``reg``·I (PaDiM), or Ledoit-Wolf shrinkage
        (which with fewer training images than channels shrinks hard towards a scaled
        identity; the default before issue 13).
    reg : float, default 0.01
        The ridge ε of ``pixel_cov="regularized"`` (PaDiM's 0.01).
    map_pca : {None, "opposite", "plain"}, default None
        Per-position (opposite) PCA of the map's Gaussians: "opposite" keeps at each
        position the least-variance directions holding ``variance`` of the variance
        (with n < C training images: every direction in which they do not vary, so the
        score ≈ the distance to their span); "plain" the largest-variance ones;
        None all.
    sigma : float, default 4.0
        Std (pixels) of the Gaussian smoothing of the map (PaDiM: 4). 0 disables.
    backbone : str, default "efficientnet_lite0"
        Pretrained backbone (see :mod:`adkit.features`).
    batch_size : int, default 16
    device : str or None
        None picks CUDA when present.
    progress : bool, default True
        Show a progress bar while extracting features.
    """

    name = "gaussian"
    _min_train = 2
    _min_train_why = "a covariance needs at least 2 samples"
    _parameter_constraints = {
        "variance": Interval(Real, 0, 1, closed="neither"),
        "pca": [Options("opposite", "plain"), None],
        "strides": Strides(),
        "map_strides": Strides(allow_empty=True),
        "map_concat": Boolean(),
        "pixel_cov": Options("regularized", "ledoit_wolf"),
        "reg": Interval(Real, 0, 1e4),
        "map_pca": [Options("opposite", "plain"), None],
        "sigma": Interval(Real, 0, MAX_SIGMA),
        "backbone": BACKBONE,
        "batch_size": Interval(Integral, 1, 4096),
        "device": [None, Device()],
        "progress": Boolean(),
    }

    def __init__(self, *, variance: float = 0.05, pca: str | None = "opposite",
                 strides=(4, 8, 16, 32), map_strides=(4, 8, 16), map_concat: bool = True,
                 pixel_cov: str = "regularized", reg: float = 0.01,
                 map_pca: str | None = None, sigma: float = 4.0,
                 backbone: str = "efficientnet_lite0", batch_size: int = 16,
                 device: str | None = None, progress: bool = True):
        self._set_params(locals())

    # -- features -----------------------------------------------------------------
    def feature_strides(self) -> tuple:
        """The stages :meth:`features` extracts: ``strides`` and ``map_strides``."""
        return tuple(sorted(set(self.strides) | set(self.map_strides)))

    # -- fit ----------------------------------------------------------------------
    def _fit(self, images):
        feats = self.features(images)
        self.fit_features_(feats)

    def fit_features_(self, feats: dict) -> None:  # noqa: D401 - internal
        """Fit from feature maps {stride: (N, C, h, w) tensor/array}."""
        import torch
        from sklearn.covariance import LedoitWolf
        from ..torch_utils import default_device
        dev = default_device(self.device)
        self.image_model_ = {}
        for s in self.strides:
            f = torch.as_tensor(feats[s])
            pooled = f.double().mean((2, 3)).numpy()
            mean, comp, lam = pca_components(pooled, self.variance, self.pca)
            self._warn_degenerate(s, pooled, lam)
            z = (pooled - mean) @ comp
            lw = LedoitWolf(assume_centered=True).fit(z)
            self.image_model_[s] = {"mean": mean.astype(np.float64),
                                    "components": comp.astype(np.float64),
                                    "precision": lw.precision_.astype(np.float64),
                                    "shrinkage": float(lw.shrinkage_)}
        self.map_model_ = {}
        for group in self._map_groups():
            flat, idx, grid = self._flat_group(feats, group)
            n = flat[0].shape[0]
            c = sum(f.shape[1] for f in flat)
            P = grid[0] * grid[1]
            means = torch.empty(P, c, dtype=torch.float32)
            precs = torch.empty(P, c, c, dtype=torch.float32)
            # bounded memory: ~32 MB of float64 samples + covariances per chunk
            step = max(1, int(4e6 // (n * c + 4 * c * c)))
            for i in range(0, P, step):
                rows = torch.arange(i, min(P, i + step))
                xi = _gather(flat, idx, rows).to(dev, torch.float64)
                mu, prec = position_precisions(xi, self.pixel_cov, self.reg, self.map_pca,
                                               self.variance)
                means[rows] = mu.float().cpu()
                precs[rows] = prec.float().cpu()
            self.map_model_[self._group_key(group)] = {
                "mean": means.reshape(grid[0], grid[1], c).contiguous(),
                "precision": precs.reshape(grid[0], grid[1], c, c)}

    def _map_groups(self):
        """The stages fused into each per-position Gaussian: one group of all
        ``map_strides`` when ``map_concat``, else one group per stage."""
        strides = tuple(sorted(self.map_strides))
        if self.map_concat and len(strides) > 1:
            return [strides]
        return [(s,) for s in strides]

    @staticmethod
    def _group_key(group) -> str:
        return "+".join(str(s) for s in group)

    @staticmethod
    def _flat_group(feats, group):
        """Per stage (N, C_s, h_s w_s) float32 maps of ``group``, their nearest indices
        on the finest grid and that grid (h0, w0)."""
        import torch
        maps = [torch.as_tensor(feats[s]).float() for s in group]
        grid = tuple(maps[0].shape[2:])
        idx = [_nearest_index(grid, m.shape[2:]) for m in maps]
        return [m.flatten(2) for m in maps], idx, grid

    def _warn_degenerate(self, stride, pooled, kept_variances) -> None:
        """Warn when the image-level Gaussian of ``stride`` has no variance left to model:
        n training images vary in at most n - 1 directions, and opposite PCA keeps the
        least-variance ones, so with too few images every kept direction is one in which
        the training images do not vary at all; Ledoit-Wolf then shrinks towards a
        covariance of ~0 and the Mahalanobis scores of test images reach ~1e16."""
        n, p = pooled.shape
        total = float(np.var(pooled, axis=0).sum())
        kept = float(np.sum(kept_variances))
        if total > 0 and kept > 1e-9 * total:
            return
        import warnings
        warnings.warn(
            f"Gaussian: the {n} training images vary in at most {n - 1} of the {p} "
            f"directions of the pooled features of stride {stride}, and pca={self.pca!r} "
            f"kept {len(kept_variances)} direction(s) in which they do not vary at all: "
            "the covariance is singular there and the image scores become meaningless "
            "(about 1e16). Fit on more training images (tens, not a handful), or use "
            "pca='plain' or pca=None, or leave this stride out of strides=.",
            UserWarning, stacklevel=4)

    # -- predict ------------------------------------------------------------------
    def _predict(self, images):
        feats = self.features(images)
        return self.predict_features_(feats, images.shape[1:3])

    def image_scores_per_stage(self, feats: dict) -> dict:
        """{stride: (N,) Mahalanobis distances of the pooled features} (the image score
        is their sum)."""
        import torch
        out = {}
        for s in self.strides:
            m = self.image_model_[s]
            pooled = torch.as_tensor(feats[s]).double().mean((2, 3)).numpy()
            z = (pooled - m["mean"]) @ m["components"]
            out[s] = mahalanobis(z, np.zeros(z.shape[1]), m["precision"])
        return out

    def predict_features_(self, feats: dict, size) -> AnomalyResult:
        import torch
        import torch.nn.functional as F
        from ..torch_utils import default_device
        dev = default_device(self.device)
        per_stage = self.image_scores_per_stage(feats)
        scores = np.sum([per_stage[s] for s in self.strides], axis=0)
        n = len(scores)
        H, W = int(size[0]), int(size[1])
        maps = torch.zeros(n, H, W, dtype=torch.float32, device=dev)
        if self.map_strides:
            groups = self._map_groups()
            for group in groups:
                m = self.map_model_[self._group_key(group)]
                mean = torch.as_tensor(m["mean"]).to(dev)
                prec = torch.as_tensor(m["precision"]).to(dev)
                h, w, c = mean.shape
                got = tuple(feats[group[0]].shape[2:])
                if got != (h, w):
                    raise ValueError(
                        f"feature maps of stride {group[0]} are {got}, the model was "
                        f"fitted on {(h, w)}: test images must have the training size.")
                flat, idx, grid = self._flat_group(feats, group)
                mean = mean.reshape(h * w, c)
                prec = prec.reshape(h * w, c, c)
                rows = torch.arange(h * w)
                out = torch.empty(n, h, w, dtype=torch.float32, device=dev)
                b = self.batch_size      # the precisions are read once per batch of images
                for i in range(0, n, b):
                    d = _gather([f[i:i + b] for f in flat], idx, rows).to(dev) - mean[:, None]
                    q = (torch.bmm(d, prec) * d).sum(2)                  # (h w, batch)
                    out[i:i + b] = q.clamp_min(0).sqrt().T.reshape(-1, h, w)
                up = F.interpolate(out[:, None], size=(H, W), mode="bilinear",
                                   align_corners=False)[:, 0]
                maps += up / len(groups)
            maps = blur_maps(maps, self.sigma)
        extras = {"stage_scores": {str(s): v.astype(np.float32) for s, v in per_stage.items()}}
        return AnomalyResult(maps.cpu().numpy(), scores.astype(np.float32), extras=extras)

    # -- state --------------------------------------------------------------------
    def _get_state(self):
        img = {str(s): {k: (np.asarray(v) if not isinstance(v, float) else v)
                        for k, v in m.items()} for s, m in self.image_model_.items()}
        mp = {key: {"mean": m["mean"], "precision": m["precision"]}
              for key, m in self.map_model_.items()}
        return {"image": img, "map": mp}

    def _set_state(self, state):
        import torch

        from ..estimator import ModelFileError, state_array, state_dict, state_float
        image = state_dict(state, "image", [str(s) for s in self.strides])
        maps = state_dict(state, "map", [self._group_key(g) for g in self._map_groups()])
        self.image_model_, channels = {}, {}
        for s in self.strides:
            m = state_dict(image, str(s))
            mean = state_array(m, "mean", shape=(None,), dtype=np.float64)
            comp = state_array(m, "components", shape=(len(mean), None), dtype=np.float64)
            k = comp.shape[1]
            self.image_model_[s] = {
                "mean": mean, "components": comp,
                "precision": state_array(m, "precision", shape=(k, k), dtype=np.float64),
                "shrinkage": state_float(m, "shrinkage", minimum=0.0, maximum=1.0)}
            channels[s] = len(mean)
        self.map_model_ = {}
        H, W = self.image_size_
        for group in self._map_groups():
            key = self._group_key(group)
            m = state_dict(maps, key)
            known = [channels.get(s) for s in group]
            mean = state_array(m, "mean", shape=(None, None, None if None in known
                                                 else sum(known)))
            h, w, c = mean.shape
            s = group[0]
            if abs(h - H / s) > 1 or abs(w - W / s) > 1:
                raise ModelFileError(f"the saved map model of stride {key} is {h}x{w} "
                                     f"positions, not that of {H}x{W} images")
            prec = state_array(m, "precision", shape=(h, w, c, c))
            self.map_model_[key] = {"mean": torch.from_numpy(mean),
                                    "precision": torch.from_numpy(prec)}
