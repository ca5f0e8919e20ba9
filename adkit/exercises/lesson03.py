"""Exercises of lesson 03 (patch self-similarity and a contrario detection): the
detection threshold γ_ε."""
from __future__ import annotations

import numpy as np

from .base import Case, Exercise, Mistake, register

# -- 03.gamma_eps ----------------------------------------------------------------------------


def _gamma_reference(eps, n_tests):
    from ..contrario.gaussian import gaussian_threshold
    return gaussian_threshold(eps, n_tests)


def _gamma_cases(rng):
    yield Case("ε = 1 on one 64×64 RGB image", (1.0, 3 * 64 * 64))
    yield Case("the paper's ε = 10^-2.2 on three scales",
               (10 ** -2.2, 3 * (64 * 64 + 32 * 32 + 16 * 16)))
    yield Case("a tiny ε = 1e-12 with a million tests", (1e-12, 1e6))
    yield Case("a random ε and N", (float(10 ** rng.uniform(-6, 1)), int(rng.integers(100, 10 ** 5))))
    yield Case("ε larger than the number of tests (ε = 150, N = 100)", (150.0, 100),
               hint="when ε ≥ N every pixel may be detected: γ = 0 (erfc⁻¹ of a value ≥ 1 is "
                    "≤ 0 and is not a threshold).")


def _gamma_hints(case, got, expected):
    from ..contrario.gaussian import gaussian_threshold
    eps, n = case.args
    g = float(np.asarray(got).reshape(()))
    if eps < n:
        if abs(g - gaussian_threshold(eps, n, two_sided=False)) < 1e-9:
            return ("that is the one-sided threshold (erfc⁻¹(2ε/N)): the test is on |f|, "
                    "P(|Z| ≥ γ) = erfc(γ/√2), so γ_ε = √2·erfc⁻¹(ε/N).")
        if eps < 1 and abs(g - gaussian_threshold(eps, 1)) < 1e-9:
            return "you forgot to divide ε by the number of tests N: γ_ε = √2·erfc⁻¹(ε/N)."
        if expected > 0 and abs(g * np.sqrt(2) - expected) < 1e-9:
            return "the √2 is missing: γ_ε = √2·erfc⁻¹(ε/N)."
        if expected > 0 and abs(g - expected / 2) < 1e-9:
            return "you divided erfc⁻¹(ε/N) by √2: multiply, γ_ε = √2·erfc⁻¹(ε/N)."
    return None


def _gamma_solution(eps, n_tests):
    from scipy.special import erfcinv
    p = eps / n_tests
    return 0.0 if p >= 1 else float(np.sqrt(2) * erfcinv(p))


def _gamma_one_sided(eps, n_tests):
    from scipy.special import erfcinv
    p = 2 * eps / n_tests
    return 0.0 if p >= 1 else float(np.sqrt(2) * erfcinv(p))


def _gamma_no_clamp(eps, n_tests):
    from scipy.special import erfcinv
    return float(np.sqrt(2) * erfcinv(eps / n_tests))


register(Exercise(
    "03.gamma_eps",
    title="The detection threshold γ_ε",
    statement="""Under the background model a normalized residual f is a standard normal
    variable, and a pixel is detected when |f| ≥ γ. With N tests the expected number of
    false alarms is NFA(γ) = N·P(|Z| ≥ γ) = N·erfc(γ/√2); asking NFA ≤ ε gives the
    threshold γ_ε = √2·erfc⁻¹(ε/N) (scipy.special.erfcinv). Write a function that takes
    ε and N and returns γ_ε, and 0 when ε ≥ N.""",
    signature="my_gamma(eps, n_tests) -> float",
    reference=_gamma_reference, cases=_gamma_cases, hints=[_gamma_hints],
    solution=_gamma_solution, atol=1e-9, rtol=1e-9,
    mistakes=[
        Mistake("one-sided test", _gamma_one_sided, "one-sided"),
        Mistake("no rule for ε ≥ N", _gamma_no_clamp, "γ = 0"),
    ]))
