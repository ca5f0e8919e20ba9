"""Exercises of lesson 07 (comparing every method at one ε): the empirical false-alarm curve
F(t) at one threshold."""
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
