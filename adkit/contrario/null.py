r"""Background laws estimated on normal data, for a contrario tests.

An a contrario test needs the law of its statistic under the background model H0.
When the law is known in closed form (the χ²_C law of ‖z‖² for the white latent of a
perfect normalizing flow) it can be used as is. When it is not (a flow trained on a
hundred images: its latents of *unseen* normal images are neither unit-variance nor
independent from channel to channel or from cell to cell), the law is estimated on
normal maps the model did not see. This module estimates the three things a region
test of :mod:`adkit.contrario.tree` needs from a stack of such maps
:math:`m_j(x)`, j = 1…n (:class:`CellBackground`):

1. **A per-position scale** (optional). Aligned objects do not have the same
   statistics on the object and on the background; each map is divided by the mean
   of the normal maps at that position, :math:`u_j(x) = m_j(x) / \bar m(x)`. For the
   normal maps themselves the mean leaves the map out,
   :math:`\bar m_{-j}(x) = (n \bar m(x) - m_j(x)) / (n - 1)`, so that their
   normalized values vary as much as those of a new map do (an in-sample mean
   would shrink them, and the tail would come out too light).
2. **The marginal law of a cell**, pooled over cells and maps (:class:`EmpiricalTail`):
   below the :math:`q` quantile :math:`t` (q = 0.9) the empirical survival function,
   :math:`\hat S(x) = (1 + \#\{u_i \ge x\}) / (n + 1)` (a conformal p-value: valid
   for any law when the new value is exchangeable with the sample [1]); above it a
   generalized Pareto tail fitted to the excesses by maximum likelihood,
   :math:`S(x) = \hat S(t)\,(1 + \xi (x - t)/\beta)^{-1/\xi}`
   (Pickands–Balkema–de Haan: the excesses over a high threshold of any law in a
   domain of attraction are asymptotically generalized Pareto [2]). The shape is
   kept at :math:`\xi \ge 0` (an exponential tail when the fit says lighter): a
   bounded tail (ξ < 0) would give probability 0, hence an infinitely significant
   region, to any value beyond the largest normal one.
3. **The dependence between neighbouring cells** (:func:`ar1_kappa`): the lag-1
   correlation ρ of the normal scores :math:`\Phi^{-1}(\mathrm{rank})` of the cells,
   and the integral of a separable AR(1) correlation :math:`\rho^{|h_x| + |h_y|}`,
   :math:`\kappa = \sum_h \rho^{|h_x|+|h_y|} = ((1+\rho)/(1-\rho))^2`
   (cells per independent cell).

**Effective number of cells** (:func:`effective_cells`). For a Gaussian vector X of
correlation Σ on a region R, :math:`P(X_x \ge u\ \forall x \in R) =
\exp(-\tfrac{u^2}{2} \mathbf 1^T \Sigma_R^{-1} \mathbf 1\,(1 + o(1)))` as u grows [3]:
the region weighs as :math:`\mathbf 1^T \Sigma_R^{-1} \mathbf 1` independent cells,
not :math:`|R|`. For an AR(1) chain of r cells this is exactly
:math:`1 + (r - 1)/\kappa_{1D}`, :math:`\kappa_{1D} = (1+\rho)/(1-\rho)`; in 2-D the
same form with the 2-D κ is its large-region limit r/κ and a lower bound of it for
every polyomino (checked numerically in the tests), so

.. math::

    r_{\mathrm{eff}}(R) = 1 + \frac{|R| - 1}{\kappa},\qquad
    \mathrm{PFA}(R) \approx S(\lambda_R)^{r_{\mathrm{eff}}(R)}

errs on the side of fewer detections. With κ = 1 (independent cells) it is the
usual :math:`S(\lambda_R)^{|R|}`.

**Pixel maps** (:class:`PixelBackground`: self-similarity's residuals, the reference
detector's z-scores). A detection there is a connected region of the pixels whose
statistic :math:`T(x)` is large, and :math:`\mathrm{NFA}(x) = N \cdot P(T \ge T(x))`
needs the law of :math:`T` and the number of independent tests N. Both are measured on
maps of normal images the detector did not fit (leave-one-out residuals of its
training images): the law by :class:`EmpiricalTail` (its generalized Pareto tail above
the value exceeded by ``n_tail`` samples), and N from the **extremal index** θ ∈ (0, 1]
of the map (:func:`extremal_index`): large values of a correlated field come in
clusters, θ is the inverse of their mean size, and the number of clusters above t in
an image of H·W pixels is about :math:`\theta H W\, S(t)` [4, 5]. θ is the cluster
(runs) estimator [5] with 8-connected regions, pooled over the levels that give 1/3 to
3 regions per map (the ε range that matters)::

    N = θ·H·W,        log10 NFA(x) = log10(θ·H·W) + log10 S(T(x)),

so ``NFA < ε`` keeps about ε false regions per normal image.
:func:`robust_normalize` is the per-image normalization of such statistics by the
median and the MAD [6], which a defect does not inflate as it inflates the std.

References
----------
.. [1] V. Vovk, A. Gammerman, G. Shafer, *Algorithmic Learning in a Random World*,
   Springer 2005 (conformal p-values).
.. [2] J. Pickands, "Statistical inference using extreme order statistics", Ann.
   Statist. 3 (1975); A. Balkema & L. de Haan, Ann. Probab. 2 (1974).
.. [3] E. Hashorva & J. Hüsler, "On multivariate Gaussian tails", Ann. Inst. Statist.
   Math. 55 (2003).
.. [4] M. R. Leadbetter, "Extremes and local dependence in stationary sequences",
   Z. Wahrsch. verw. Gebiete 65 (1983) (the extremal index).
.. [5] R. L. Smith & I. Weissman, "Estimating the extremal index", J. R. Statist.
   Soc. B 56 (1994) (the runs and blocks estimators).
.. [6] P. J. Rousseeuw & C. Croux, "Alternatives to the median absolute deviation",
   JASA 88 (1993) (1.4826·MAD = σ for a Gaussian).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EmpiricalTail", "CellBackground", "ar1_kappa", "effective_cells",
           "robust_normalize", "extremal_index", "PixelBackground"]

_LN10 = np.log(10.0)


def _check_sample(sample, name="sample") -> np.ndarray:
    s = np.asarray(sample, dtype=np.float64).ravel()
    if s.size < 2:
        raise ValueError(f"{name} needs at least 2 values of the statistic on normal data, "
                         f"got {s.size}: give more held-out normal images.")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{name} must hold finite numbers.")
    return s


@dataclass
class EmpiricalTail:
    r"""Survival function of a statistic estimated on normal samples (see the module).

    Use :meth:`fit`. ``log10_sf(x)`` is :math:`\log_{10} P(U \ge x)` under H0: the
    conformal empirical value up to the ``threshold``, the generalized Pareto tail
    beyond it.

    Attributes
    ----------
    sample : float64 (n,)
        The normal values, sorted.
    threshold : float
        t, the start of the parametric tail (a high quantile of the sample).
    p_threshold : float
        :math:`\hat S(t^+) = (1 + \#\{u_i > t\}) / (n + 1)`.
    xi, beta : float
        Shape (≥ 0) and scale of the generalized Pareto law of the excesses over t.
    """

    sample: np.ndarray
    threshold: float
    p_threshold: float
    xi: float
    beta: float

    @classmethod
    def fit(cls, sample, tail: float = 0.1) -> "EmpiricalTail":
        """Fit on a sample of the statistic under H0; ``tail``: fraction of the sample
        above the threshold (default 0.1: the 90 % quantile)."""
        s = np.sort(_check_sample(sample))
        if not 0 < tail < 1:
            raise ValueError(f"tail must be a fraction in (0, 1), got {tail!r}.")
        n = s.size
        t = float(np.quantile(s, 1.0 - tail))
        ex = s[s > t] - t
        p_t = (1.0 + ex.size) / (n + 1.0)
        xi, beta = 0.0, float(ex.mean()) if ex.size else 0.0
        if ex.size >= 10:
            from scipy import stats
            with np.errstate(all="ignore"):
                xi_mle, _, beta_mle = stats.genpareto.fit(ex, floc=0)
            if np.isfinite(xi_mle) and np.isfinite(beta_mle) and xi_mle > 0 and beta_mle > 0:
                xi, beta = float(xi_mle), float(beta_mle)
        if not beta > 0:  # every value above t is equal (or none): a tiny exponential
            beta = max(1e-12, 1e-6 * max(abs(t), 1.0))
        return cls(sample=s, threshold=t, p_threshold=float(p_t), xi=xi, beta=beta)

    def log10_sf(self, x) -> np.ndarray:
        r""":math:`\log_{10} P(U \ge x)` under H0 (0 below the smallest normal value)."""
        x = np.asarray(x, dtype=np.float64)
        n = self.sample.size
        # #{u_i >= x}; queries searched in sorted order (cache-friendly: 5× faster for
        # a map of 65 536 values in a sample of a million)
        flat = x.reshape(-1)
        order = np.argsort(flat, kind="stable")
        pos = np.empty(flat.size, np.int64)
        pos[order] = np.searchsorted(self.sample, flat[order], side="left")
        k = n - pos.reshape(x.shape)
        emp = np.log10((k + 1.0) / (n + 1.0))
        y = np.maximum(x - self.threshold, 0.0) / self.beta
        if self.xi > 0:
            ln_tail = -np.log1p(self.xi * y) / self.xi
        else:
            ln_tail = -y
        tail = np.log10(self.p_threshold) + ln_tail / _LN10
        return np.where(x > self.threshold, tail, emp)

    def to_dict(self) -> dict:
        return {"sample": self.sample.astype(np.float64), "threshold": self.threshold,
                "p_threshold": self.p_threshold, "xi": self.xi, "beta": self.beta}

    @classmethod
    def from_dict(cls, d: dict) -> "EmpiricalTail":
        """Back from :meth:`to_dict` (e.g. a saved model), every entry checked
        (:class:`adkit.estimator.ModelFileError` otherwise)."""
        from ..estimator import ModelFileError, state_array, state_float
        sample = state_array(d, "sample", shape=(None,), dtype=np.float64)
        if sample.size < 2 or np.any(np.diff(sample) < 0):
            raise ModelFileError("the saved 'sample' of a background law must hold at least "
                                 "2 sorted values")
        p_t = state_float(d, "p_threshold", minimum=0.0, maximum=1.0)
        beta = state_float(d, "beta", minimum=0.0)
        if not (p_t > 0 and beta > 0):
            raise ModelFileError("the saved 'p_threshold' and 'beta' of a background law "
                                 "must be > 0")
        return cls(sample=sample, threshold=state_float(d, "threshold"), p_threshold=p_t,
                   xi=state_float(d, "xi", minimum=0.0), beta=beta)


def _normal_scores(maps: np.ndarray) -> np.ndarray:
    """Φ⁻¹ of the mid-ranks of all values (pooled): a Gaussian copy of the maps."""
    from scipy import special, stats
    r = stats.rankdata(maps.ravel())
    return special.ndtri((r - 0.5) / r.size).reshape(maps.shape)


def ar1_kappa(maps) -> tuple[float, float]:
    """Lag-1 correlation ρ of normal maps (N, h, w) and κ = ((1+ρ)/(1−ρ))².

    ρ is the correlation of horizontally and vertically adjacent cells of the normal
    scores (ranks mapped through Φ⁻¹, so one extreme value does not dominate), pooled
    over maps; it is kept in [0, 0.95] (κ ≤ 1521). Maps with no adjacent cells give
    ρ = 0, κ = 1.
    """
    m = np.asarray(maps, dtype=np.float64)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise ValueError(f"maps must be (N, h, w), got shape {m.shape}.")
    g = _normal_scores(m)
    g = g - g.mean()
    num, cnt = 0.0, 0
    if m.shape[2] > 1:
        num += float((g[:, :, 1:] * g[:, :, :-1]).sum())
        cnt += g[:, :, 1:].size
    if m.shape[1] > 1:
        num += float((g[:, 1:, :] * g[:, :-1, :]).sum())
        cnt += g[:, 1:, :].size
    var = float((g * g).mean())
    rho = num / cnt / var if cnt and var > 0 else 0.0
    rho = float(np.clip(rho, 0.0, 0.95))
    return rho, float(((1 + rho) / (1 - rho)) ** 2)


def effective_cells(area, kappa: float) -> np.ndarray:
    r""":math:`r_{\mathrm{eff}} = 1 + (r - 1)/\kappa` independent cells for a region of
    r cells when κ cells make one independent cell (see the module)."""
    if not kappa >= 1:
        raise ValueError(f"kappa (cells per independent cell) must be >= 1, got {kappa!r}.")
    return 1.0 + (np.asarray(area, dtype=np.float64) - 1.0) / float(kappa)


@dataclass
class CellBackground:
    """Background law of a per-cell statistic, estimated on normal maps (the module's
    steps 1–3). Use :meth:`fit`; :meth:`normalize` maps a new map to the statistic
    whose survival function is :meth:`log10_sf`, with ``kappa`` cells per independent
    cell.

    Attributes
    ----------
    scale : float64 (h, w) or None
        Per-position mean of the normal maps (None: no per-position scale).
    tail : EmpiricalTail
        Law of the (normalized) statistic of one cell.
    rho, kappa : float
        Lag-1 correlation of neighbouring cells and cells per independent cell.
    image_quantile : float or None
        When set (e.g. 0.9), each map is also divided by its own ``image_quantile``
        quantile, after the per-position scale: a per-image scale, against a nuisance
        that inflates a whole map (U-Flow's latents of a defective image are larger
        everywhere, not only on the defect). None: no per-image scale.
    """

    scale: np.ndarray | None
    tail: EmpiricalTail
    rho: float
    kappa: float
    image_quantile: float | None = None

    @classmethod
    def fit(cls, maps, per_position: bool = True, tail: float = 0.1,
            image_quantile: float | None = None) -> "CellBackground":
        """Estimate from normal maps (N, h, w) the model never saw (N ≥ 2 with
        ``per_position``); ``image_quantile``: see the attribute."""
        if image_quantile is not None and not 0 < float(image_quantile) <= 1:
            raise ValueError(f"image_quantile must be in (0, 1] or None, got {image_quantile!r}.")
        m = np.asarray(maps, dtype=np.float64)
        if m.ndim != 3:
            raise ValueError(f"maps must be (N, h, w) maps of normal images, got shape {m.shape}.")
        if not np.all(np.isfinite(m)) or m.min() < 0:
            raise ValueError("maps must hold finite, non-negative values (e.g. Σ_c z²).")
        scale = None
        if per_position:
            n = m.shape[0]
            if n < 2:
                raise ValueError("a per-position scale needs at least 2 normal maps "
                                 f"(leave-one-out), got {n}: hold out more normal images.")
            tot = m.sum(axis=0)
            scale = np.maximum(tot / n, 1e-12)
            loo = np.maximum((tot[None] - m) / (n - 1), 1e-12)
            m = m / loo
        q = None if image_quantile is None else float(image_quantile)
        m = _per_image(m, q)
        t = EmpiricalTail.fit(m, tail=tail)
        rho, kappa = ar1_kappa(m)
        return cls(scale=scale, tail=t, rho=rho, kappa=kappa, image_quantile=q)

    def normalize(self, maps) -> np.ndarray:
        """The statistic of new maps ((h, w) or (N, h, w)): divided by the per-position
        scale when there is one."""
        m = np.asarray(maps, dtype=np.float64)
        if self.scale is None:
            return _per_image(m, self.image_quantile)
        if m.shape[-2:] != self.scale.shape:
            raise ValueError(f"maps of shape {m.shape[-2:]} do not match the {self.scale.shape} "
                             "positions the background was estimated on: use images of "
                             "the training size.")
        return _per_image(m / self.scale, self.image_quantile)

    def log10_sf(self, x) -> np.ndarray:
        r""":math:`\log_{10} P(U \ge x)` of one cell's normalized statistic under H0."""
        return self.tail.log10_sf(x)

    def to_dict(self) -> dict:
        d = {"scale": self.scale, "tail": self.tail.to_dict(), "rho": self.rho,
             "kappa": self.kappa}
        if self.image_quantile is not None:
            d["image_quantile"] = self.image_quantile
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CellBackground":
        """Back from :meth:`to_dict` (e.g. a saved model), every entry checked
        (:class:`adkit.estimator.ModelFileError` otherwise)."""
        from ..estimator import state_array, state_dict, state_float
        tail = EmpiricalTail.from_dict(state_dict(
            d, "tail", keys=("sample", "threshold", "p_threshold", "xi", "beta")))
        scale = None
        if d.get("scale") is not None:   # d is a dict: state_dict checked it above
            scale = state_array(d, "scale", shape=(None, None), dtype=np.float64,
                                positive=True)
        q = (state_float(d, "image_quantile", minimum=1e-6, maximum=1.0)
             if "image_quantile" in d else None)   # absent in files saved before it
        return cls(scale=scale, tail=tail, rho=state_float(d, "rho", minimum=0.0, maximum=0.95),
                   kappa=state_float(d, "kappa", minimum=1.0), image_quantile=q)


def _per_image(m: np.ndarray, q: float | None) -> np.ndarray:
    """Each map ((h, w) or (N, h, w)) divided by its own q quantile (None: unchanged)."""
    if q is None:
        return m
    s = np.quantile(m.reshape(-1, m.shape[-2] * m.shape[-1]), q, axis=1)
    s = np.maximum(s, 1e-12).reshape(m.shape[:-2] + (1, 1))
    return m / s


# -- pixel maps: self-similarity's residuals, the reference detector's z-scores ------------
_MAD_TO_SIGMA = 1.482602218505602      # 1 / Φ⁻¹(3/4)


def robust_normalize(r, axis=None, floor: float = 1e-6) -> np.ndarray:
    r"""``f = (r − med r) / (1.4826 · MAD r)``, MAD = ``med |r − med r|`` [6].

    The median and the MAD are taken over ``axis`` (e.g. ``axis=(0, 1)`` on an (H, W, 3)
    residual: per channel). For a Gaussian ``r`` it is the usual z-score; a defect that
    covers less than half of the image neither shifts nor inflates them (it inflates the
    mean and the std). The scale is floored at ``floor`` (a constant residual).
    """
    r = np.asarray(r, dtype=np.float32)
    med = np.median(r, axis=axis, keepdims=True)
    mad = np.median(np.abs(r - med), axis=axis, keepdims=True)
    return ((r - med) / np.maximum(_MAD_TO_SIGMA * mad, floor)).astype(np.float32)


def extremal_index(maps, band=(1 / 3, 3.0), n_levels: int = 24) -> float:
    r"""Extremal index θ of a field from maps of normal images (N, H, W) (see the
    module): the number of 8-connected components of ``{T > t}`` over the number of
    pixels above ``t`` [4, 5], pooled (ratio of the sums) over the levels ``t`` that give
    between ``band[0]`` and ``band[1]`` components per map, or over the level nearest to
    one per map when none does. The levels are ``n_levels`` quantiles of the pooled
    values, from 3000 pixels above per map down to one pixel in three maps."""
    from scipy import ndimage
    m = np.asarray(maps, dtype=np.float64)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or m.shape[0] == 0:
        raise ValueError(f"maps must be (N, H, W) maps of normal images, got shape {m.shape}.")
    n, h, w = m.shape
    flat = np.sort(m.ravel())
    above = np.unique(np.round(np.geomspace(min(3000, h * w / 4), 1 / 3, n_levels) * n))
    above = above[(above >= 1) & (above < flat.size)].astype(int)
    levels = np.unique(flat[flat.size - 1 - above])
    eight = np.ones((3, 3), bool)
    comps = np.array([sum(ndimage.label(x > t, eight)[1] for x in m) for t in levels]) / n
    pix = (flat.size - np.searchsorted(flat, levels, side="right")) / n
    ok = (pix > 0) & (comps > 0)
    if not np.any(ok):
        return 1.0
    comps, pix = comps[ok], pix[ok]
    sel = (comps >= band[0]) & (comps <= band[1])
    if not np.any(sel):
        sel = np.abs(np.log(comps)) <= np.min(np.abs(np.log(comps))) + 1e-12
    return float(np.clip(comps[sel].sum() / pix[sel].sum(), 1e-6, 1.0))


@dataclass
class PixelBackground:
    r"""Background of a per-pixel statistic map (higher = more anomalous): its law
    (:class:`EmpiricalTail`) and its effective number of tests ``θ·H·W``
    (:func:`extremal_index`), so that :math:`\log_{10}\mathrm{NFA}(t) = \log_{10}(\theta
    H W) + \log_{10} S(t)` (see the module). Use :meth:`fit` on maps of normal images
    the detector did not fit.

    Attributes
    ----------
    tail : EmpiricalTail
        Law of the statistic of one pixel.
    theta : float
        Extremal index, the inverse mean size of a cluster of large values.
    n_pixels : int
        H·W of the maps.
    """

    tail: EmpiricalTail
    theta: float
    n_pixels: int

    @classmethod
    def fit(cls, maps, n_tail: int | None = None) -> "PixelBackground":
        """Estimate from normal maps (N, H, W). ``n_tail``: samples above the start of
        the Pareto tail (None: ``max(50, min(500, n/1000))`` of the n pixel values)."""
        m = np.asarray(maps, dtype=np.float64)
        if m.ndim == 2:
            m = m[None]
        if m.ndim != 3 or m.shape[0] == 0:
            raise ValueError(f"maps must be (N, H, W) statistic maps of normal images, got "
                             f"shape {m.shape}.")
        n = m.size
        if n < 100:
            raise ValueError(f"a pixel background needs at least 100 values, got {n}: give "
                             "more (or larger) normal maps.")
        k = int(max(50, min(500, n // 1000))) if n_tail is None else int(n_tail)
        k = int(np.clip(k, 10, n // 2))
        return cls(tail=EmpiricalTail.fit(m, tail=k / n), theta=extremal_index(m),
                   n_pixels=int(m.shape[1] * m.shape[2]))

    @property
    def n_tests(self) -> float:
        """The effective number of independent tests ``θ·H·W``."""
        return self.theta * self.n_pixels

    def log_nfa(self, t) -> np.ndarray:
        """log10 NFA of statistic values ``t`` (any shape), float32."""
        return (np.log10(self.n_tests) + self.tail.log10_sf(t)).astype(np.float32)

    def threshold(self, eps: float) -> float:
        """The statistic value above which ``NFA < ε`` (−inf when every value is)."""
        target = float(np.log10(eps) - np.log10(self.n_tests))     # log10 S to reach
        if target >= 0:
            return -np.inf
        tl = self.tail
        if target < np.log10(tl.p_threshold):                      # in the Pareto tail
            d = (target - np.log10(tl.p_threshold)) * np.log(10.0)   # ln S(x)/S(t) < 0
            y = np.expm1(-tl.xi * d) / tl.xi if tl.xi > 0 else -d
            return float(tl.threshold + tl.beta * y)
        n = tl.sample.size
        k = int(np.floor(10 ** target * (n + 1) - 1))               # (k + 1)/(n + 1) ≤ S
        return float(tl.sample[n - k - 1]) if 0 <= k < n else -np.inf
