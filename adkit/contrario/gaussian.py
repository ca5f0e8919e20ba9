"""Gaussian-tail a contrario machinery.

Under the background model a normalized residual :math:`f = (r - \\mathbb{E}\\,r) / σ_r`
is a standard normal variable. A pixel is detected when :math:`|f| ≥ γ`; with :math:`N`
tests the expected number of false alarms is
:math:`\\mathrm{NFA}(γ) = N \\cdot P(|Z| ≥ γ) = N \\cdot \\operatorname{erfc}(γ/\\sqrt{2})`.
Asking :math:`\\mathrm{NFA} ≤ ε` gives the threshold
:math:`γ_ε = \\sqrt{2}\\,\\operatorname{erfc}^{-1}(ε / N)` (Artola et al., ICIP 2021, after
Davy et al., ICIP 2018; Desolneux, Moisan & Morel, *From Gestalt Theory to Image Analysis*, 2008).
"""
from __future__ import annotations

import numpy as np
from scipy import special

from ..checks import check_array
from ..params import EPS, Boolean, Integral, Interval, Real, Tuple, check_param

__all__ = ["log10_gaussian_tail", "log_nfa_gaussian", "gaussian_threshold",
           "gaussian_nfa", "normalize_residual", "vote_log_nfa", "count_tests"]

_LN10 = np.log(10.0)
_N_TESTS = Interval(Real, 0, None, closed="neither",
                    what="a positive number of tests (e.g. 3·H·W)")


def _values(z, name, owner) -> np.ndarray:
    """``z`` as float64, real numbers; infinities allowed (a certain detection), NaN not."""
    z = check_array(z, name, finite=False, allow_empty=True, owner=owner)
    if np.isnan(z).any():
        raise ValueError(f"{owner}: {name} holds NaN values (e.g. a residual divided by a "
                         "zero standard deviation): fix them before computing an NFA.")
    return z


def log10_gaussian_tail(z, two_sided: bool = True) -> np.ndarray:
    """:math:`\\log_{10} P(|Z| ≥ z)` (two-sided) or :math:`\\log_{10} P(Z ≥ z)` for
    :math:`Z \\sim \\mathcal N(0, 1)`.

    Computed with ``scipy.special.log_ndtr`` so it stays finite far in the tail
    (z = 40 gives about −349, where erfc underflows to 0).
    """
    z = _values(z, "z", "log10_gaussian_tail")
    check_param(two_sided, Boolean(), "two_sided", "log10_gaussian_tail")
    if two_sided:
        z = np.abs(z)
        out = (np.log(2.0) + special.log_ndtr(-z)) / _LN10
        return np.minimum(out, 0.0)
    return special.log_ndtr(-z) / _LN10


def log_nfa_gaussian(z, n_tests: float, two_sided: bool = True) -> np.ndarray:
    """:math:`\\log_{10} \\mathrm{NFA} = \\log_{10} N_\\text{tests} + \\log_{10} P(|Z| ≥ z)`:
    below :math:`\\log_{10} ε` means detected."""
    n_tests = check_param(n_tests, _N_TESTS, "n_tests", "log_nfa_gaussian")
    z = _values(z, "z", "log_nfa_gaussian")
    return (np.log10(n_tests) + log10_gaussian_tail(z, two_sided)).astype(np.float32)


def gaussian_threshold(eps: float, n_tests: float, two_sided: bool = True) -> float:
    """:math:`γ_ε = \\sqrt{2}\\,\\operatorname{erfc}^{-1}(ε / N)`: the :math:`|z|` above which
    :math:`\\mathrm{NFA} < ε` (two-sided).

    One-sided: γ_ε = √2 · erfc⁻¹(2ε / N). For ε ≥ N every pixel is detected (γ = 0).
    """
    eps = check_param(eps, EPS, "eps", "gaussian_threshold")
    n_tests = check_param(n_tests, _N_TESTS, "n_tests", "gaussian_threshold")
    check_param(two_sided, Boolean(), "two_sided", "gaussian_threshold")
    p = eps / n_tests * (1.0 if two_sided else 2.0)
    if p >= 1:
        return 0.0
    return float(np.sqrt(2.0) * special.erfcinv(p))


def gaussian_nfa(gamma: float, n_tests: float, two_sided: bool = True) -> float:
    """:math:`\\mathrm{NFA}(γ) = N \\cdot P(|Z| ≥ γ) = N \\cdot \\operatorname{erfc}(γ/\\sqrt{2})`:
    the inverse of :func:`gaussian_threshold`
    (``gaussian_nfa(gaussian_threshold(eps, N), N) == eps`` for ε < N)."""
    n_tests = check_param(n_tests, _N_TESTS, "n_tests", "gaussian_nfa")
    gamma = check_param(gamma, Interval(Real, 0, None), "gamma", "gaussian_nfa")
    return float(10.0 ** log_nfa_gaussian(np.float64(gamma), n_tests, two_sided).astype(np.float64))


def count_tests(shapes, channels: int = 1) -> int:
    """Number of tests N of a multi-scale detection: ``channels · Σ_s H_s·W_s``.

    ``shapes`` lists the (H_s, W_s) of each scale's map; every pixel of every scale
    (and channel, when channels are tested separately) is one test.
    """
    channels = check_param(channels, Interval(Integral, 1, None), "channels", "count_tests")
    shape = Tuple(Interval(Integral, 1, None), min_length=2)
    shapes = check_param(shapes, Tuple(shape, container=list,
                                       hint="e.g. [(64, 64), (32, 32)]"), "shapes",
                         "count_tests")
    return int(channels * sum(int(np.prod(s[:2])) for s in shapes))


def normalize_residual(r, mean=None, std=None, eps: float = 1e-8, axis=None) -> np.ndarray:
    """f = (r − E r) / σ_r, with E r and σ_r estimated on ``r`` itself when not given.

    ``axis`` chooses over which axes the empirical mean and std are taken, e.g.
    ``axis=(0, 1)`` on an (H, W, 3) residual normalizes each channel separately
    (as Artola et al. 2021 do per channel and per scale). The detection statistic is
    then ``|f|``, compared with :func:`gaussian_threshold`.
    """
    r = check_array(r, "r", owner="normalize_residual").astype(np.float32)
    eps = check_param(eps, Interval(Real, 0, None), "eps", "normalize_residual")
    m = r.mean(axis=axis, keepdims=True) if mean is None else mean
    s = r.std(axis=axis, keepdims=True) if std is None else std
    return ((r - m) / (np.asarray(s) + eps)).astype(np.float32)


def vote_log_nfa(log_nfas, n_votes: int) -> np.ndarray:
    """Combine per-scale log10 NFA maps with a vote rule.

    ``log_nfas`` is a stack (S, ...) of per-scale log NFA maps (brought to one size).
    A pixel gets the vote of scale s at level ε when ``log_nfas[s] < log10 ε``; it is
    detected by the vote rule ``Σ_s b^s ≥ N_v`` exactly when the ``N_v``-th smallest of
    its S log NFAs is below ``log10 ε``. That value is returned, so thresholding it at
    any ε gives the vote map at that ε (the map is the same for every ε).
    """
    a = _values(log_nfas, "log_nfas", "vote_log_nfa").astype(np.float32)
    n_votes = check_param(n_votes, Interval(Integral, 1, None), "n_votes", "vote_log_nfa")
    if a.ndim < 1 or not 1 <= int(n_votes) <= a.shape[0]:
        raise ValueError(f"n_votes must be between 1 and the number of scales "
                         f"({a.shape[0] if a.ndim else 0}), got {n_votes}.")
    if n_votes == 1:
        return a.min(0)
    return np.partition(a, int(n_votes) - 1, axis=0)[int(n_votes) - 1]
