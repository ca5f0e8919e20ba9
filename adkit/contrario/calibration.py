"""Empirical NFA: calibrate any anomaly map on held-out normal images.

Self-similarity and U-Flow have a background model, so their NFA follows from a
probability law. Gaussian, kNN, AESc and the per-pixel reference only give a score
map ``m`` whose scale means nothing by itself. To give ``segment(eps)`` one meaning
for every method, we *measure* the background instead of modelling it.

For a threshold ``t``, a detection on a normal image is a connected region
(8-connected) of the upper level set ``{m > t}``. On ``n`` held-out normal images
(never seen by ``fit``) we count them::

    F(t) = (1/n) · Σ_i  #components{ m_i > t }

``F(t)`` is the expected number of false alarms per normal image at threshold
``t``: exactly the NFA of the a contrario framework, read off data rather than
computed as N_tests·P. It is made non-increasing (``F(t) ← max_{t' ≥ t} F(t')``,
a conservative bound: a region may split in two as ``t`` rises) and, above the
largest held-out value, its tail is extrapolated log-linearly (an exponential tail,
fitted where ``1/n ≤ F ≤ 3``). Then for a test pixel::

    log10 NFA(x) = log10 F(m(x)⁻)

and ``log_nfa < log10 ε`` keeps ``{m > t_ε}`` with ``F(t_ε) = ε``: about ε false
detections per normal image, for every method. Counting uses the max-tree of each
map (every node of the tree is one component of an upper level set, alive between
its parent's level and its own), so the whole curve costs one sort per image.
"""
from __future__ import annotations

import numpy as np

__all__ = ["false_alarm_curve", "FalseAlarmCurve", "calibrated_log_nfa"]


class FalseAlarmCurve:
    """The measured curve ``F``: ``levels`` (ascending) and ``nfa`` (non-increasing),
    plus the log-linear tail ``log10 F(t) = tail_a − tail_b·t`` above ``top``, the
    largest held-out value (where the measured count falls to 0)."""

    def __init__(self, levels, nfa, tail_a: float, tail_b: float, top: float, n_images: int):
        self.levels = np.asarray(levels, np.float64)
        self.nfa = np.asarray(nfa, np.float64)
        self.tail_a = float(tail_a)
        self.tail_b = float(tail_b)
        self.top = float(top)
        self.n_images = int(n_images)

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
        target = np.log10(eps)
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
    maps = np.asarray(maps, np.float64)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3 or maps.shape[0] == 0:
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
