"""Exercises of lesson 05 (U-Flow and its a contrario segmentation): the log probability of
false alarm of a region."""
from __future__ import annotations

import numpy as np

from .base import Case, Exercise, Mistake, register

# -- 05.region_log_pfa ---------------------------------------------------------------------


def _pfa_reference(area, min_chi2, channels):
    from ..contrario.tree import chi2_region_log_pfa
    return float(chi2_region_log_pfa(area, min_chi2, channels))


def _pfa_cases(rng):
    yield Case("one cell, ‖z‖² = 3C with C = 8 channels", (1, 24.0, 8))
    yield Case("a region of 25 cells at twice the mean (C = 16)", (25, 32.0, 16))
    yield Case("a large region of 400 cells just above the mean (C = 64)", (400, 70.4, 64))
    yield Case("one channel (C = 1), ‖z‖² = 9", (10, 9.0, 1))
    c = int(rng.integers(2, 32))
    yield Case("a random region", (int(rng.integers(1, 200)), float(c * rng.uniform(1.2, 5)), c))
    yield Case("below the mean: ‖z‖² = 0.5C", (30, 8.0, 16),
               hint="the Chernoff bound holds for t = ‖z‖²/C > 1 only: for t ≤ 1 the log PFA "
                    "is 0 (a probability of at most 1).")


def _pfa_hints(case, got, expected):
    area = case.args[0]
    g = float(np.asarray(got).reshape(()))
    if expected == 0:
        return None
    if abs(g / expected - np.log(10)) < 1e-6:
        return "that is the natural logarithm: divide by ln 10 for log10."
    if area > 1 and abs(g * area - expected) < 1e-6 * abs(expected):
        return ("that is the bound of one cell: a region of `area` cells multiplies it by "
                "the area (the cells' tails multiply, their logs add).")
    if abs(g + expected) < 1e-6 * abs(expected):
        return "check the sign: a log probability is ≤ 0."
    return None


def _pfa_solution(area, min_chi2, channels):
    t = min_chi2 / channels
    if t <= 1:
        return 0.0
    return area * (-channels / 2) * (t - 1 - np.log(t)) / np.log(10)


def _pfa_natural_log(area, min_chi2, channels):
    t = min_chi2 / channels
    return 0.0 if t <= 1 else area * (-channels / 2) * (t - 1 - np.log(t))


def _pfa_no_clamp(area, min_chi2, channels):
    t = min_chi2 / channels
    return area * (-channels / 2) * (t - 1 - np.log(t)) / np.log(10)


register(Exercise(
    "05.region_log_pfa",
    title="The log PFA of a region",
    statement="""U-Flow's latent z is a standard normal vector of C channels at each cell,
    so ‖z‖² follows a χ²_C law. A region of `area` cells whose smallest ‖z‖² is min_chi2 has
    a probability of false alarm bounded by the Chernoff bound of the χ²_C tail raised to the
    region's size: with t = min_chi2 / C,
    log10 PFA = area · (−C/2) · (t − 1 − ln t) / ln 10 when t > 1, and 0 when t ≤ 1. Write a
    function that takes area, min_chi2 and C and returns this log10 PFA.""",
    signature="my_log_pfa(area, min_chi2, channels) -> float",
    reference=_pfa_reference, cases=_pfa_cases, hints=[_pfa_hints], solution=_pfa_solution,
    atol=1e-9, rtol=1e-9,
    mistakes=[
        Mistake("natural logarithm", _pfa_natural_log, "ln 10"),
        Mistake("no rule for t ≤ 1", _pfa_no_clamp, "t ≤ 1"),
    ]))
