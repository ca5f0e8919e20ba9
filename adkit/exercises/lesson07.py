"""Exercises of lesson 07 (comparing every method at one ε): the empirical false-alarm curve
F(t) at one threshold, the threshold t_ε read on a measured curve, and the per-region overlap
(PRO) of a segmentation."""
from __future__ import annotations

import numpy as np

from .base import Case, Exercise, Mistake, register

# -- 07.false_alarm_curve --------------------------------------------------------------------


def _f_reference(maps, t):
    from ..metrics import false_alarms_per_image
    return false_alarms_per_image(np.asarray(maps) > t)


def _smooth_maps(rng, n, size):
    from scipy import ndimage
    return ndimage.gaussian_filter(rng.random((n, size, size)), (0, 1.0, 1.0))


def _f_cases(rng):
    maps = _smooth_maps(rng, 5, 24)
    yield Case("5 maps, t at their 95th percentile", (maps, float(np.quantile(maps, 0.95))))
    yield Case("t at the 99th percentile", (maps, float(np.quantile(maps, 0.99))))
    yield Case("t above every value", (maps, float(maps.max()) + 1.0))
    yield Case("t below every value: each map is one region", (maps, float(maps.min()) - 1.0))
    steps = np.round(_smooth_maps(rng, 4, 16) * 20) / 20      # values on a grid of 0.05
    yield Case("t equal to values of the maps", (steps, float(np.quantile(steps, 0.9))),
               hint="the detections are {m > t}, strictly above: a pixel equal to t is not "
                    "detected.")
    diag = np.zeros((2, 10, 10))
    diag[0, [1, 2, 3], [1, 2, 3]] = 1.0
    yield Case("pixels above t that touch by a corner", (diag, 0.5),
               hint="pixels that touch by a side or by a corner form one region "
                    "(8-connectivity), as adkit counts false alarms.")


def _f_hints(case, got, expected):
    maps, t = case.args
    g = float(np.asarray(got).reshape(()))
    above = np.asarray(maps) > t
    n = len(maps)
    if above.sum() and abs(g - above.sum() / n) < 1e-9 and abs(g - expected) > 1e-9:
        return ("you counted pixels: F(t) counts connected regions of {m > t} "
                "(scipy.ndimage.label), per map.")
    if n > 1 and abs(g - expected * n) < 1e-9 and expected:
        return f"that is the total over the {n} maps: F(t) is the mean per map."
    return None


def _f_solution(maps, t):
    from scipy import ndimage
    return float(np.mean([ndimage.label(m > t, structure=np.ones((3, 3)))[1] for m in maps]))


def _f_greater_equal(maps, t):
    from scipy import ndimage
    return float(np.mean([ndimage.label(m >= t, structure=np.ones((3, 3)))[1] for m in maps]))


def _f_total(maps, t):
    from scipy import ndimage
    return float(np.sum([ndimage.label(m > t, structure=np.ones((3, 3)))[1] for m in maps]))


register(Exercise(
    "07.false_alarm_curve",
    title="The empirical false-alarm curve at one threshold",
    statement="""To give ε one meaning for every method, adkit measures F(t), the mean
    number of false alarms per normal image at threshold t, on held-out normal maps:
    F(t) = (1/n)·Σ_i #regions{m_i > t}, a region being a set of pixels connected by a side
    or a corner (adkit.contrario.calibration.false_alarm_curve measures it at every t).
    Write a function that takes n maps (n × H × W) and a threshold t and returns F(t).""",
    signature="my_F(maps, t) -> float",
    reference=_f_reference, cases=_f_cases, hints=[_f_hints], solution=_f_solution,
    atol=1e-9, rtol=0.0,
    mistakes=[
        Mistake("m ≥ t instead of m > t", _f_greater_equal, "strictly above"),
        Mistake("the total instead of the mean", _f_total, "mean per map"),
    ]))


# -- 07.per_region_overlap -------------------------------------------------------------------

def _pro_reference(masks, pred):
    """The PRO of a binary segmentation: the point of adkit's exact PRO curve at the
    threshold 1 of the map pred.astype(float) (no detection at all: 0)."""
    from ..metrics import pro_curve
    pred = np.asarray(pred, bool)
    if not pred.any():
        return 0.0
    _, pro = pro_curve(masks, pred.astype(np.float32), max_points=None)
    return float(pro[1])


def _blob_masks(rng, n, size, n_blobs):
    from scipy import ndimage
    g = np.zeros((n, size, size), bool)
    for i in range(n):
        for _ in range(n_blobs):
            r = int(rng.integers(2, 6))
            y, x = rng.integers(r, size - r, 2)
            yy, xx = np.mgrid[:size, :size]
            g[i] |= (yy - y) ** 2 + (xx - x) ** 2 <= r * r
    pred = ndimage.binary_dilation(g, iterations=1) & (rng.random(g.shape) < 0.6)
    return g, pred


def _pro_cases(rng):
    g, p = _blob_masks(rng, 3, 32, 2)
    yield Case("3 images with round defects, a partial detection", (g, p))
    g = np.zeros((1, 24, 24), bool)
    g[0, 2:14, 2:14] = True                        # a large defect, found entirely
    g[0, 18:20, 18:20] = True                      # a small one, missed
    yield Case("a large defect found, a small one missed: PRO = (1 + 0)/2", (g, g.copy() & (
        np.arange(24)[None, :, None] < 16)),
        hint="PRO averages the overlap per region: each defect counts once, whatever "
             "its size (pooling the pixels lets large defects dominate).")
    g = np.zeros((1, 12, 12), bool)
    g[0, [2, 3, 4], [2, 3, 4]] = True              # one diagonal region
    g[0, 8:10, 8:10] = True
    p = np.zeros_like(g)
    p[0, 2, 2] = p[0, 8, 8] = True
    yield Case("a defect whose pixels touch by a corner", (g, p),
               hint="pixels that touch by a side or by a corner form one region "
                    "(8-connectivity: ndimage.label(..., structure=np.ones((3, 3)))).")
    g = np.zeros((2, 16, 16), bool)
    g[0, 4:10, 4:10] = True                        # at the same place in both images
    g[1, 6:8, 6:8] = True
    p = np.zeros_like(g)
    p[0, 4:10, 4:10] = True
    yield Case("two images with a defect at the same place, the larger one found: "
               "PRO = (1 + 0)/2", (g, p),
               hint="label each image on its own: a defect of image 0 and one of image 1 "
                    "at the same place are two regions.")
    g, _ = _blob_masks(rng, 2, 24, 1)
    yield Case("nothing detected", (g, np.zeros_like(g)))


def _pro_hints(case, got, expected):
    from scipy import ndimage
    masks, pred = (np.asarray(a, bool) for a in case.args)
    g = float(np.asarray(got).reshape(()))
    close = lambda v: abs(g - v) < 1e-9          # noqa: E731
    if masks.sum() and close((masks & pred).sum() / masks.sum()) and not close(expected):
        return ("that is the pooled overlap |G ∩ P| / |G|: PRO averages |C_k ∩ P| / |C_k| over "
                "the regions C_k, each region once.")
    four = [ndimage.label(m) for m in masks]
    ov = [(p[lab2 == k]).mean() for (lab2, n2), p in zip(four, pred) for k in range(1, n2 + 1)]
    if ov and close(np.mean(ov)):
        return ("that is PRO with 4-connected regions: pixels touching by a corner belong to "
                "one region, structure=np.ones((3, 3)).")
    lab, n = ndimage.label(masks)                  # 3-D labels: the images glued together
    if len(masks) > 1 and n and close(np.mean([(pred[lab == k]).mean()
                                               for k in range(1, n + 1)])):
        return ("the regions were labelled on the whole stack at once, which joins defects of "
                "different images: label each image separately (for m in masks).")
    return None


def _pro_solution(masks, pred):
    from scipy import ndimage
    overlaps = []
    for m, p in zip(masks, pred):
        lab, n = ndimage.label(m, structure=np.ones((3, 3)))
        overlaps += [p[lab == k].mean() for k in range(1, n + 1)]
    return float(np.mean(overlaps))


def _pro_pooled(masks, pred):
    return float((masks & pred).sum() / masks.sum())


def _pro_stack_labels(masks, pred):
    from scipy import ndimage
    lab, n = ndimage.label(masks)
    return float(np.mean([pred[lab == k].mean() for k in range(1, n + 1)]))


register(Exercise(
    "07.per_region_overlap",
    title="The per-region overlap of a segmentation",
    statement="""The pixel AUROC lets a large defect outweigh many small ones; the per-region
    overlap (Bergmann et al. 2021) gives each defect one vote. The ground-truth masks of all
    images are cut into connected regions C_1..C_K (8-connected: pixels touching by a side
    or a corner; each image on its own), and a segmentation P scores
    PRO = (1/K) Σ_k |C_k ∩ P| / |C_k|, the mean fraction of each defect that is detected
    (the y axis of adkit.metrics.pro_curve, whose area is the AUPRO). Write a function
    that takes the ground truth masks and the detections pred (both boolean, N × H × W)
    and returns the PRO.""",
    signature="my_pro(masks, pred) -> float",
    reference=_pro_reference, cases=_pro_cases, hints=[_pro_hints], solution=_pro_solution,
    atol=1e-9, rtol=1e-9,
    mistakes=[
        Mistake("pooled pixels", _pro_pooled, "each region once"),
        Mistake("regions labelled on the whole stack", _pro_stack_labels,
                "label each image"),
    ]))


# -- 07.threshold_for_eps --------------------------------------------------------------------

def _t_reference(levels, F, eps):
    from ..contrario.calibration import FalseAlarmCurve
    curve = FalseAlarmCurve(levels, F, tail_a=0.0, tail_b=1.0, top=float(levels[-1]),
                            n_images=10)
    return curve.threshold(eps)


def _t_cases(rng):
    from ..contrario.calibration import false_alarm_curve
    curve = false_alarm_curve(_smooth_maps(rng, 10, 24), n_levels=64)
    lv, F = curve.levels, curve.nfa
    yield Case("F measured on 10 normal maps, ε = 0.5", (lv, F, 0.5))
    yield Case("ε equal to a value F takes (F counts k/10)", (lv, F, float(F[F >= 1][-1])),
               hint="keep the first level where F is strictly below ε: F(t) < ε, not ≤ ε.")
    yield Case("ε = 3", (lv, F, 3.0))
    yield Case("ε above F at the lowest level: every pixel may be detected", (lv, F,
               float(F[0]) * 2),
               hint="when F is below ε already at the lowest level, t_ε = −∞ (np.inf with "
                    "a minus sign): the lowest level is not a bound, any lower t would do.")


def _t_hints(case, got, expected):
    levels, F, eps = case.args
    g = float(np.asarray(got).reshape(()))
    if not np.isfinite(expected):
        return None
    i = int(np.flatnonzero(levels == expected)[0]) if np.any(levels == expected) else None
    if i is None:
        return None
    le = np.flatnonzero(F <= eps)
    if le.size and g == levels[le[0]]:
        return ("F must be strictly below ε: t_ε is the first level where F < ε, "
                "not F ≤ ε.")
    if i > 0 and g == levels[i - 1]:
        return ("that is the last level where F ≥ ε: t_ε is the first level where F < ε, "
                "so that {m > t_ε} has fewer than ε false regions per image.")
    return None


def _t_solution(levels, F, eps):
    below = np.flatnonzero(F < eps)
    if below[0] == 0:
        return -np.inf
    return float(levels[below[0]])


def _t_off_by_one(levels, F, eps):
    below = np.flatnonzero(F < eps)
    return -np.inf if below[0] == 0 else float(levels[below[0] - 1])


def _t_at_most(levels, F, eps):
    below = np.flatnonzero(F <= eps)
    return -np.inf if below[0] == 0 else float(levels[below[0]])


register(Exercise(
    "07.threshold_for_eps",
    title="The threshold of ε on a measured false-alarm curve",
    statement="""Calibrated reads ε on the curve F it measured on held-out normal maps: at
    ascending levels t_0 < t_1 < ..., F(t_j) is the mean number of false regions per normal
    image of {m > t_j} (non-increasing). The threshold for ε is the first level where F is
    below ε, t_ε = t_j with j the smallest index such that F(t_j) < ε, so that {m > t_ε}
    has fewer than ε false regions per image; when F(t_0) < ε already, t_ε = −∞ (every
    pixel may be detected). Write a function that takes the levels, F and ε (at least the
    smallest value of F: no extrapolation) and returns t_ε
    (adkit.contrario.calibration.FalseAlarmCurve.threshold).""",
    signature="my_threshold(levels, F, eps) -> float",
    reference=_t_reference, cases=_t_cases, hints=[_t_hints], solution=_t_solution,
    atol=0.0, rtol=0.0,
    mistakes=[
        Mistake("the level before", _t_off_by_one, "first level where F < ε"),
        Mistake("F ≤ ε", _t_at_most, "strictly below"),
    ]))
