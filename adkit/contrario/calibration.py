"""Empirical false-alarm calibration: any anomaly map read on an NFA scale measured on
held-out normal images.

Self-similarity and U-Flow have a background model, so their NFA follows from a
probability law. Gaussian, kNN, AESc and the per-pixel reference only give a score
map ``m`` whose scale means nothing by itself. To give ``segment(eps)`` one meaning
for every method, we *measure* the false alarms instead of modelling the background.

For a threshold ``t``, a detection on a normal image is a connected region
(8-connected) of the upper level set ``{m > t}``. On ``n`` held-out normal images
(never seen by ``fit``) we count them::

    F(t) = (1/n) · Σ_i  #components{ m_i > t }

``F(t)`` is an **empirical estimate of the expected number of false regions per normal
image** at threshold ``t``, measured on ``n`` images: the quantity that the a contrario
NFA (N_tests·P, from a model) bounds, here counted on data. It is not a model's NFA and
it is only as good as its sample:

- it holds for images like the ``n`` held out (same product, acquisition and
  normalization): it says nothing of images of another kind;
- its **resolution is 1/n**: a count over ``n`` images takes the values k/n, so F is
  *measured* from 1/n (one region in all ``n`` images) up to its largest count
  (:attr:`FalseAlarmCurve.eps_min`, :attr:`FalseAlarmCurve.measured_range`), with the
  sampling error of a count of k regions (about 1/√k relative: rough near 1/n);
- its **tail is extrapolated**: above the largest held-out value nothing was counted,
  and F there is an exponential tail ``log10 F(t) = a − b·t`` fitted on the measured
  values with ``1/n ≤ F ≤ 3``. Any ε < 1/n is read on that extrapolation, not measured
  (:meth:`FalseAlarmCurve.extrapolated`; ``AnomalyResult.segment`` warns).

F is made non-increasing (``F(t) ← max_{t' ≥ t} F(t')``, a conservative bound: a region
may split in two as ``t`` rises). Then for a test pixel::

    log10 NFA(x) = log10 F(m(x)⁻)

and ``log_nfa < log10 ε`` keeps ``{m > t_ε}`` with ``F(t_ε) ≤ ε``: about ε false regions
per normal image like those held out, measured for ε ≥ 1/n, extrapolated below. Counting
uses the max-tree of each map (every node of the tree is one component of an upper level
set, alive between its parent's level and its own), so the whole curve costs one sort per
image.
"""
from __future__ import annotations

import numpy as np

from ..checks import check_array
from ..params import EPS, Integral, Interval, check_param

__all__ = ["false_alarm_curve", "FalseAlarmCurve", "calibrated_log_nfa"]


class FalseAlarmCurve:
    """The measured curve ``F``: ``levels`` (ascending) and ``nfa`` (non-increasing),
    plus the log-linear tail ``log10 F(t) = tail_a − tail_b·t`` above ``top``, the
    largest held-out value (where the measured count falls to 0), measured on
    ``n_images`` normal images: F is counted down to :attr:`eps_min` = 1/n
    (:attr:`measured_range`), extrapolated below (:meth:`extrapolated`)."""

    def __init__(self, levels, nfa, tail_a: float, tail_b: float, top: float, n_images: int):
        self.levels = np.asarray(levels, np.float64)
        self.nfa = np.asarray(nfa, np.float64)
        self.tail_a = float(tail_a)
        self.tail_b = float(tail_b)
        self.top = float(top)
        self.n_images = int(n_images)

    @property
    def eps_min(self) -> float:
        """1/n: the smallest false-alarm rate (false regions per normal image) that a count
        over the ``n`` held-out images can measure; ε below it is extrapolated."""
        return 1.0 / self.n_images

    @property
    def measured_range(self) -> tuple[float, float]:
        """``(1/n, F_max)``: the false-alarm rates (false regions per normal image) that
        were counted, from one region in all ``n`` images to the count at the lowest
        threshold. Below 1/n, F comes from the extrapolated tail."""
        return self.eps_min, float(self.nfa.max()) if self.nfa.size else self.eps_min

    def extrapolated(self, eps: float) -> bool:
        """Whether ``eps`` (false regions per normal image) is below the measured range,
        i.e. its threshold is read on the extrapolated tail, not on a count."""
        return bool(float(eps) < self.eps_min)

    def log_nfa(self, values) -> np.ndarray:
        """log10 F(v⁻) at ``values`` (any shape): the curve at the highest measured
        level strictly below each value (a step function, so that thresholding the
        log NFA at log10 ε is thresholding the map at :meth:`threshold`), and the
        exponential tail above the measured range."""
        v = np.asarray(values, np.float64)
        lognfa = np.log10(self.nfa)
        j = np.clip(np.searchsorted(self.levels, v, side="left") - 1, 0, None)
        out = lognfa[j]
        tail = v > self.top
        out[tail] = np.minimum(lognfa[-1], self.tail_a - self.tail_b * v[tail])
        return out.astype(np.float32)

    def threshold(self, eps: float) -> float:
        """The map threshold t_ε: ``maps > t_ε`` is exactly ``log_nfa < log10 ε``."""
        target = np.log10(check_param(eps, EPS, "eps", "FalseAlarmCurve.threshold"))
        lognfa = np.log10(self.nfa)
        below = np.flatnonzero(lognfa < target)
        if below.size:
            return float(self.levels[below[0]]) if below[0] > 0 else -np.inf
        return max(self.top, float((self.tail_a - target) / self.tail_b))

    def state(self) -> dict:
        return {"levels": self.levels, "nfa": self.nfa,
                "tail": np.array([self.tail_a, self.tail_b, self.top, self.n_images],
                                 np.float64)}

    @classmethod
    def from_state(cls, s: dict) -> "FalseAlarmCurve":
        a, b, top, n = np.asarray(s["tail"], np.float64)
        return cls(s["levels"], s["nfa"], a, b, top, int(n))


def _component_lifetimes(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(birth, death) of every component of the upper level sets of one map: the
    component exists in ``{m > t}`` for ``birth ≤ t < death``."""
    from skimage.morphology import max_tree
    parent, _ = max_tree(m, connectivity=2)
    flat = m.ravel()
    par = parent.ravel()
    idx = np.arange(flat.size)
    root = par == idx
    canonical = root | (flat[par] != flat)
    death = flat[canonical]
    birth = np.where(root[canonical], -np.inf, flat[par[canonical]])
    return birth, death


def false_alarm_curve(maps, n_levels: int = 512) -> FalseAlarmCurve:
    """Measure ``F(t)``, the mean number of connected detections per image of
    ``{maps > t}``, on maps of normal images (N, H, W); see the module docstring."""
    maps = check_array(maps, "maps", finite=False, allow_empty=True,
                       owner="false_alarm_curve")
    n_levels = check_param(n_levels, Interval(Integral, 8, 100000), "n_levels",
                           "false_alarm_curve")
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3 or maps.size == 0:
        raise ValueError(f"maps must be (N, H, W) maps of held-out normal images, got shape "
                         f"{maps.shape}.")
    if not np.all(np.isfinite(maps)):
        raise ValueError("maps contain NaN or infinite values: cannot calibrate on them.")
    n = maps.shape[0]
    births, deaths = zip(*(_component_lifetimes(m) for m in maps))
    birth, death = np.concatenate(births), np.concatenate(deaths)
    # levels: dense in the tail, where thresholds for small ε live
    flat = np.sort(maps.ravel())
    probs = 1.0 - np.logspace(np.log10(0.5), np.log10(1.0 / flat.size), n_levels - 1)
    levels = np.unique(np.concatenate([np.quantile(flat, probs), [flat[-1]]]))
    sb, sd = np.sort(birth), np.sort(death)
    # alive at t: birth ≤ t < death
    count = np.searchsorted(sb, levels, side="right") - np.searchsorted(sd, levels, side="right")
    nfa = count / n
    nfa = np.maximum.accumulate(nfa[::-1])[::-1]          # non-increasing, conservative
    # keep the measured part (at least one detection somewhere), then an exponential
    # tail fitted on its top: log10 F(t) = a − b·t, continuous at the last level
    keep = nfa > 0
    keep[0] = True
    levels, nfa = levels[keep], nfa[keep]
    sel = (nfa >= 1.0 / n) & (nfa <= 3.0)
    b = 0.0
    if sel.sum() >= 3 and np.ptp(levels[sel]) > 0:
        b = -np.polyfit(levels[sel], np.log10(nfa[sel]), 1)[0]
    if not np.isfinite(b) or b <= 0:
        spread = max(float(np.std(maps.reshape(n, -1).max(1))), float(np.ptp(flat)) * 1e-3,
                     1e-12)
        b = 1.0 / spread
    top = float(flat[-1])
    a = np.log10(nfa[-1]) + b * top
    return FalseAlarmCurve(levels, nfa, a, b, top, n)


def calibrated_log_nfa(maps, curve: FalseAlarmCurve) -> np.ndarray:
    """log10 NFA of every pixel of ``maps`` under a measured :class:`FalseAlarmCurve`."""
    return curve.log_nfa(maps)
