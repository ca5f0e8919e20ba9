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


# -- 05.per_size_log_nfa -------------------------------------------------------------------
# The per-size test of U-Flow's nfa="held-out" (the default, "measured", subtracts the shift δ
# from it): with the per-cell tail given as its log10,
# the library's PerSizeTest is called with log10_sf = identity, so the reference is the
# library's own formula.

def _per_size_reference(area, log_sf, n_cells, kappa):
    from ..contrario.tree import PerSizeTest
    return float(PerSizeTest(lambda v: v, int(n_cells), kappa=float(kappa))(area, log_sf))


def _per_size_cases(rng):
    yield Case("one cell with a tail of 1e-6 on a 16 × 16 map, independent cells",
               (1, -6.0, 256, 1.0))
    yield Case("25 cells, each at a tail of 0.01, on a 16 × 16 map (κ = 1)", (25, -2.0, 256, 1.0))
    yield Case("25 cells at 0.01 again, neighbours correlated (κ = 4)", (25, -2.0, 256, 4.0),
               hint="with κ cells per independent cell a region of r cells counts "
                    "1 + (r − 1)/κ independent cells, not r.")
    yield Case("a region of 100 cells whose tail is 0.3 (above 1/β): never significant",
               (100, float(np.log10(0.3)), 1024, 1.0))
    yield Case("a random region", (int(rng.integers(2, 60)), float(-rng.uniform(0.5, 4)),
                                   int(rng.choice([64, 256, 1024])), float(rng.uniform(1, 6))))


def _per_size_hints(case, got, expected):
    area, log_sf, n, kappa = case.args
    g = float(np.asarray(got).reshape(()))
    from ..contrario.tree import polyomino_log_count
    if abs(g - (expected - float(polyomino_log_count(area)))) < 1e-6:
        return ("the number of shapes is missing: a region of r cells is one of "
                "A(r) = α β^r / r polyominoes at each position (add log10 A(r)).")
    if abs(g - (expected - np.log10(n))) < 1e-6:
        return ("count N² tests for the positions and the sizes: N positions × N region "
                "sizes (you counted N).")
    r_eff = 1 + (area - 1) / kappa
    if kappa != 1 and abs(g - (expected + (area - r_eff) * log_sf)) < 1e-6:
        return ("the cells are correlated: a region of r cells weighs "
                "r_eff = 1 + (r − 1)/κ independent cells, not r.")
    return None


def _per_size_solution(area, log_sf, n_cells, kappa):
    alpha, beta = 0.316915, 4.062570
    log_count = np.log10(n_cells ** 2 * alpha * beta ** area / area)
    r_eff = 1 + (area - 1) / kappa
    return float(log_count + r_eff * log_sf)


def _per_size_no_shapes(area, log_sf, n_cells, kappa):
    return float(np.log10(n_cells ** 2) + (1 + (area - 1) / kappa) * log_sf)


def _per_size_n_once(area, log_sf, n_cells, kappa):
    alpha, beta = 0.316915, 4.062570
    return float(np.log10(n_cells * alpha * beta ** area / area)
                 + (1 + (area - 1) / kappa) * log_sf)


def _per_size_area_not_r_eff(area, log_sf, n_cells, kappa):
    alpha, beta = 0.316915, 4.062570
    return float(np.log10(n_cells ** 2 * alpha * beta ** area / area) + area * log_sf)


register(Exercise(
    "05.per_size_log_nfa",
    title="The NFA of a region, tests counted per size",
    statement="""adkit's U-Flow counts its tests per region size: on a map of N cells there
    are N positions, N possible sizes and, for a size r, about A(r) = α β^r / r shapes
    (fixed polyominoes, α = 0.316915, β = 4.062570), so a region of r cells is one of
    N² A(r) tests. Its cells are all above the region's level, where one cell's tail
    under H0 is S (given as log_sf = log10 S); with κ cells per independent cell the
    region weighs r_eff = 1 + (r − 1)/κ independent cells. Write a function returning
    log10 NFA = log10(N² A(r)) + r_eff · log_sf for a region of `area` cells on a map of
    `n_cells` cells.""",
    signature="my_log_nfa(area, log_sf, n_cells, kappa) -> float",
    reference=_per_size_reference, cases=_per_size_cases, hints=[_per_size_hints],
    solution=_per_size_solution, atol=1e-9, rtol=1e-9,
    mistakes=[
        Mistake("no count of shapes", _per_size_no_shapes, "polyominoes"),
        Mistake("N tests instead of N²", _per_size_n_once, "N²"),
        Mistake("r instead of r_eff", _per_size_area_not_r_eff, "r_eff"),
    ]))


# -- 05.held_out_log_sf --------------------------------------------------------------------

def _sf_reference(sample, x):
    from ..contrario.null import EmpiricalTail
    # tail=0.5: the empirical law up to the median, the queries stay below it
    return EmpiricalTail.fit(sample, tail=0.5).log10_sf(x)


def _sf_cases(rng):
    yield Case("seven held-out values, three queries", (np.array([3.0, 1.0, 4.0, 1.5, 9.0, 2.6, 5.0]),
                                                      np.array([0.5, 1.2, 2.0])))
    yield Case("a query equal to a held-out value (ties count: U ≥ x)",
               (np.array([1.0, 2.0, 2.0, 3.0, 4.0, 5.0, 6.0]), np.array([2.0])),
               hint="P(U ≥ x) counts the held-out values equal to x too: "
                    "np.sum(sample >= x), not > x.")
    yield Case("a query below every held-out value", (np.arange(1.0, 12.0), np.array([0.0])),
               hint="the conformal estimate (1 + #{u_i ≥ x}) / (n + 1) is 1 below every "
                    "value: log10 = 0.")
    s = rng.gamma(4.0, 1.0, 200)
    yield Case("200 values of a χ²-like statistic, queries below its median",
               (s, np.quantile(s, [0.05, 0.2, 0.45])))


def _sf_hints(case, got, expected):
    sample, x = case.args
    g = np.asarray(got, dtype=float).reshape(-1)
    n = sample.size
    k = np.array([np.sum(sample >= v) for v in x])
    if g.shape == np.shape(expected):
        if np.allclose(g, np.log10(np.maximum(k, 1e-300) / n)):
            return ("that is the plain empirical frequency k/n: the conformal estimate is "
                    "(1 + k)/(n + 1), never 0, a valid p-value for one new image.")
        if np.allclose(g, np.log(10) * np.asarray(expected)):
            return "that is the natural logarithm: use np.log10."
    return None


def _sf_solution(sample, x):
    sample = np.asarray(sample)
    k = np.array([np.sum(sample >= v) for v in np.atleast_1d(x)])
    return np.log10((1 + k) / (sample.size + 1))


def _sf_plain_frequency(sample, x):
    k = np.array([np.sum(sample >= v) for v in np.atleast_1d(x)])
    with np.errstate(divide="ignore"):
        return np.log10(k / sample.size)


def _sf_strict(sample, x):
    k = np.array([np.sum(sample > v) for v in np.atleast_1d(x)])
    return np.log10((1 + k) / (sample.size + 1))


register(Exercise(
    "05.held_out_log_sf",
    title="The background law measured on held-out images",
    statement="""adkit's U-Flow does not trust the χ² law: it measures the law of the
    statistic U = ‖z‖² on normal images the flow never saw (the held-out images). For a
    query level x, the conformal estimate of the tail is
    P(U ≥ x) ≈ (1 + #{i : u_i ≥ x}) / (n + 1), with u_1..u_n the held-out values (above
    a high quantile adkit continues it with a Pareto tail; the queries here stay below).
    Write a function that takes the held-out sample and an array of queries x and
    returns log10 of this estimate for each query.""",
    signature="my_log_sf(sample, x) -> array",
    reference=_sf_reference, cases=_sf_cases, hints=[_sf_hints], solution=_sf_solution,
    atol=1e-9, rtol=1e-9,
    mistakes=[
        Mistake("plain frequency k/n", _sf_plain_frequency, "(1 + k)/(n + 1)"),
        Mistake("strict inequality", _sf_strict, "sample >= x"),
    ]))
