"""Gaussian-tail a contrario machinery.

Under the background model a normalized residual f = (r − E r) / σ_r is a standard
normal variable. A pixel is detected when |f| ≥ γ; with N tests the expected number
of false alarms is NFA(γ) = N · P(|Z| ≥ γ) = N · erfc(γ/√2). Asking NFA ≤ ε gives the
threshold γ_ε = √2 · erfc⁻¹(ε / N) (Artola et al., ICIP 2021, after Davy et al.,
ICIP 2018; Desolneux, Moisan & Morel, *From Gestalt Theory to Image Analysis*, 2008).
"""
from __future__ import annotations

import numpy as np
from scipy import special

__all__ = ["log10_gaussian_tail", "log_nfa_gaussian", "gaussian_threshold",
           "normalize_residual"]

_LN10 = np.log(10.0)


def log10_gaussian_tail(z, two_sided: bool = True) -> np.ndarray:
    """log10 P(|Z| ≥ z) (two-sided) or log10 P(Z ≥ z) for Z ~ N(0, 1).

    Computed with ``scipy.special.log_ndtr`` so it stays finite far in the tail
    (z = 40 gives about −349, where erfc underflows to 0).
    """
    z = np.asarray(z, dtype=np.float64)
    if two_sided:
        z = np.abs(z)
        out = (np.log(2.0) + special.log_ndtr(-z)) / _LN10
        return np.minimum(out, 0.0)
    return special.log_ndtr(-z) / _LN10


def log_nfa_gaussian(z, n_tests: float, two_sided: bool = True) -> np.ndarray:
    """log10 NFA = log10(N_tests) + log10 P(|Z| ≥ z): below log10 ε means detected."""
    if n_tests <= 0:
        raise ValueError(f"n_tests must be positive, got {n_tests}.")
    return (np.log10(float(n_tests)) + log10_gaussian_tail(z, two_sided)).astype(np.float32)


def gaussian_threshold(eps: float, n_tests: float, two_sided: bool = True) -> float:
    """γ_ε = √2 · erfc⁻¹(ε / N): the |z| above which NFA < ε (two-sided).

    One-sided: γ_ε = √2 · erfc⁻¹(2ε / N). For ε ≥ N every pixel is detected (γ = 0).
    """
    if eps <= 0 or n_tests <= 0:
        raise ValueError(f"eps and n_tests must be positive, got {eps}, {n_tests}.")
    p = eps / n_tests * (1.0 if two_sided else 2.0)
    if p >= 1:
        return 0.0
    return float(np.sqrt(2.0) * special.erfcinv(p))


def normalize_residual(r, mean=None, std=None, eps: float = 1e-8) -> np.ndarray:
    """f = (r − E r) / σ_r, with E r and σ_r estimated on ``r`` itself when not given."""
    r = np.asarray(r, dtype=np.float32)
    m = r.mean() if mean is None else mean
    s = r.std() if std is None else std
    return ((r - m) / (np.asarray(s) + eps)).astype(np.float32)
