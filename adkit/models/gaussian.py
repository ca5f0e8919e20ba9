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

**Pixel level** (the per-position Gaussian of PaDiM, Defard et al. 2021): at every
position (i, j) of the feature map of stage s a Gaussian N(μ_ij, Σ_ij) is fitted over
the training images (Ledoit-Wolf shrinkage computed position by position, or
``S + 0.01 I`` as in PaDiM with ``pixel_cov="regularized"``). The Mahalanobis map of
each stage is upsampled bilinearly to the input size, the stages are averaged and
the map is smoothed with a Gaussian of std ``sigma`` (4 as in PaDiM). A
per-position model assumes the objects sit at the same place in every image.
"""
from __future__ import annotations

import numpy as np

from ..backbone import BACKBONE, MAX_SIGMA, Strides, blur_maps, get_extractor, run_extractor
from ..params import Boolean, Device, Integral, Interval, Options, Real
from .base import AnomalyResult, FeatureDetector

__all__ = ["Gaussian", "ledoit_wolf", "mahalanobis", "pca_components"]


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


class Gaussian(FeatureDetector):
    """Multivariate Gaussian of pretrained features: OPCA + Ledoit-Wolf + Mahalanobis.

    Image score: sum over ``strides`` of the Mahalanobis distances of the globally
    pooled features after (opposite) PCA and Ledoit-Wolf shrinkage (Wang, Xu, Chen,
    J. Nondestructive Evaluation 2022). Map: per-position Gaussians (PaDiM) on the
    ``map_strides`` feature maps, Mahalanobis maps upsampled bilinearly, averaged
    and smoothed. See the module docstring for the formulas.

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
    pixel_cov : {"ledoit_wolf", "regularized"}, default "ledoit_wolf"
        Covariance at each position: Ledoit-Wolf shrinkage, or S + ``reg``·I (PaDiM).
    reg : float, default 0.01
        The ridge of ``pixel_cov="regularized"`` (PaDiM's 0.01).
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
        "pixel_cov": Options("ledoit_wolf", "regularized"),
        "reg": Interval(Real, 0, 1e4),
        "sigma": Interval(Real, 0, MAX_SIGMA),
        "backbone": BACKBONE,
        "batch_size": Interval(Integral, 1, 4096),
        "device": [None, Device()],
        "progress": Boolean(),
    }

    def __init__(self, *, variance: float = 0.05, pca: str | None = "opposite",
                 strides=(4, 8, 16, 32), map_strides=(4, 8, 16),
                 pixel_cov: str = "ledoit_wolf", reg: float = 0.01, sigma: float = 4.0,
                 backbone: str = "efficientnet_lite0", batch_size: int = 16,
                 device: str | None = None, progress: bool = True):
        self._set_params(locals())

    # -- features -----------------------------------------------------------------
    def _all_strides(self):
        return tuple(sorted(set(self.strides) | set(self.map_strides)))

    def features(self, images) -> dict:
        """Backbone feature maps {stride: (N, C, h, w) float32 tensor} of ``images``
        (numpy (N, H, W, 3)); :meth:`fit_features` / :meth:`predict_features` take them,
        so a notebook can extract once and try several settings."""
        from ..checks import check_images
        images = check_images(images)
        extractor = get_extractor(self.backbone, self._all_strides(), self.device)
        feats = run_extractor(extractor, images, batch_size=self.batch_size,
                              progress=self.progress, desc="Gaussian: features")
        return dict(zip(self._all_strides(), feats))

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
        for s in self.map_strides:
            f = torch.as_tensor(feats[s]).float()
            n, c, h, w = f.shape
            x = f.permute(2, 3, 0, 1).reshape(h * w, n, c)     # (P, n, C)
            means = x.mean(1)
            precs = torch.empty(h * w, c, c, dtype=torch.float32)
            step = max(1, int(2e7 // max(1, n * c * 8 + c * c * 16)))
            for i in range(0, h * w, step):
                xi = x[i:i + step].to(dev, torch.float64)
                if self.pixel_cov == "ledoit_wolf":
                    cov, _ = ledoit_wolf(xi)
                else:
                    xc = xi - xi.mean(1, keepdim=True)
                    cov = xc.transpose(1, 2) @ xc / max(n - 1, 1)
                    cov = cov + self.reg * torch.eye(c, dtype=cov.dtype, device=dev)
                # a floor keeps constant features (e.g. a flat background) invertible
                tr = torch.diagonal(cov, dim1=1, dim2=2).mean(1).clamp_min(1e-12)
                cov = cov + (1e-6 * tr)[:, None, None] * torch.eye(c, dtype=cov.dtype,
                                                                    device=dev)
                precs[i:i + step] = torch.linalg.inv(cov).float().cpu()
            self.map_model_[s] = {"mean": means.reshape(h, w, c).contiguous(),
                                  "precision": precs.reshape(h, w, c, c)}

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
            for s in self.map_strides:
                m = self.map_model_[s]
                mean = torch.as_tensor(m["mean"]).to(dev)
                prec = torch.as_tensor(m["precision"]).to(dev)
                h, w, c = mean.shape
                f = torch.as_tensor(feats[s]).float()
                if f.shape[2:] != (h, w):
                    raise ValueError(
                        f"feature maps of stride {s} are {tuple(f.shape[2:])}, the model was "
                        f"fitted on {(h, w)}: test images must have the training size.")
                out = torch.empty(n, h, w, dtype=torch.float32, device=dev)
                for i in range(n):
                    d = f[i].to(dev).permute(1, 2, 0) - mean          # (h, w, C)
                    q = torch.einsum("hwc,hwcd,hwd->hw", d, prec, d)
                    out[i] = q.clamp_min(0).sqrt()
                up = F.interpolate(out[:, None], size=(H, W), mode="bilinear",
                                   align_corners=False)[:, 0]
                maps += up / len(self.map_strides)
            maps = blur_maps(maps, self.sigma)
        extras = {"stage_scores": {str(s): v.astype(np.float32) for s, v in per_stage.items()}}
        return AnomalyResult(maps.cpu().numpy(), scores.astype(np.float32), extras=extras)

    # -- state --------------------------------------------------------------------
    def _get_state(self):
        img = {str(s): {k: (np.asarray(v) if not isinstance(v, float) else v)
                        for k, v in m.items()} for s, m in self.image_model_.items()}
        mp = {str(s): {"mean": m["mean"], "precision": m["precision"]}
              for s, m in self.map_model_.items()}
        return {"image": img, "map": mp}

    def _set_state(self, state):
        import torch

        from ..estimator import ModelFileError, state_array, state_dict, state_float
        image = state_dict(state, "image", [str(s) for s in self.strides])
        maps = state_dict(state, "map", [str(s) for s in self.map_strides])
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
        for s in self.map_strides:
            m = state_dict(maps, str(s))
            mean = state_array(m, "mean", shape=(None, None, channels.get(s)))
            h, w, c = mean.shape
            if abs(h - H / s) > 1 or abs(w - W / s) > 1:
                raise ModelFileError(f"the saved map model of stride {s} is {h}x{w} "
                                     f"positions, not that of {H}x{W} images")
            prec = state_array(m, "precision", shape=(h, w, c, c))
            self.map_model_[s] = {"mean": torch.from_numpy(mean),
                                  "precision": torch.from_numpy(prec)}
