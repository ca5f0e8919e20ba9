"""Exercises of lesson 03 (patch self-similarity and a contrario detection): the
detection threshold γ_ε, the multi-scale vote b^MS = [Σ_s b^s ≥ N_v] and the robust
per-pixel statistic of a residual."""
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


# -- 03.vote_map -----------------------------------------------------------------------------

def _vote_reference(log_nfas, eps, n_votes):
    from ..contrario.gaussian import vote_log_nfa
    return vote_log_nfa(log_nfas, n_votes) < np.log10(eps)


def _vote_cases(rng):
    logs = rng.uniform(-3, 2, (3, 12, 16)).astype(np.float32)
    yield Case("3 scales, ε = 1, N_v = 2", (logs, 1.0, 2),
               hint="a pixel is detected when at least N_v scales detect it, not one.")
    yield Case("the paper's ε = 10^-2.2, N_v = 2", (logs - 1.5, 10 ** -2.2, 2))
    yield Case("N_v = 1: any scale suffices", (rng.uniform(-3, 2, (3, 10, 10)).astype(np.float32),
                                                0.1, 1))
    yield Case("N_v = 3 of 3 scales, ε = 10", (rng.uniform(-1, 3, (3, 10, 10)).astype(np.float32),
                                               10.0, 3))
    grid = rng.integers(-3, 2, (4, 10, 10)).astype(np.float32)
    yield Case("log NFA values equal to log10 ε = −1 (ties)", (grid, 0.1, 2),
               hint="scale s votes when NFA^s < ε, strictly: a log NFA equal to log10 ε "
                    "does not vote.")


def _vote_hints(case, got, expected):
    logs, eps, n_votes = case.args
    g = np.asarray(got)
    if g.shape != expected.shape:
        if g.shape == logs.shape:
            return "return one map (H, W): the vote combines the S per-scale maps."
        return None
    g = g.astype(bool)
    if np.array_equal(g, (logs < eps).sum(0) >= n_votes):
        return ("the maps are log10 NFA: compare them with np.log10(eps), not with eps.")
    if np.array_equal(g, (logs <= np.log10(eps)).sum(0) >= n_votes):
        return ("a scale votes when its NFA is strictly below ε: log_nfas < np.log10(eps), "
                "not <=.")
    if np.array_equal(g, (logs > np.log10(eps)).sum(0) >= n_votes):
        return "a scale detects where its NFA is small, below ε, not above."
    if n_votes > 1 and np.array_equal(g, (logs < np.log10(eps)).any(0)):
        return (f"that is the union of the scales (one vote suffices): count the votes and "
                f"keep the pixels with at least N_v = {n_votes}.")
    if n_votes < len(logs) and np.array_equal(g, (logs < np.log10(eps)).all(0)):
        return (f"you required every scale: at least N_v = {n_votes} of the "
                f"{len(logs)} suffice.")
    return None


def _vote_solution(log_nfas, eps, n_votes):
    votes = (log_nfas < np.log10(eps)).sum(0)
    return votes >= n_votes


def _vote_any(log_nfas, eps, n_votes):
    return (log_nfas < np.log10(eps)).any(0)


def _vote_eps_not_log(log_nfas, eps, n_votes):
    return (log_nfas < eps).sum(0) >= n_votes


register(Exercise(
    "03.vote_map",
    title="The multi-scale vote",
    statement="""The self-similarity detector tests every pixel at several scales s (the
    image halved each time); each scale gives a log10 NFA map, brought back to full size,
    and scale s detects a pixel when NFA^s < ε: b^s = [log10 NFA^s < log10 ε]. A pixel is
    kept when enough scales agree: b^MS = [Σ_s b^s ≥ N_v] (Artola et al. 2021: N_v = 2).
    Write a function that takes the stack of per-scale log10 NFA maps (S × H × W), ε and
    N_v and returns the boolean map b^MS (H × W) (what adkit.contrario.gaussian.vote_log_nfa
    gives, thresholded at log10 ε).""",
    signature="my_vote(log_nfas, eps, n_votes) -> mask",
    reference=_vote_reference, cases=_vote_cases, hints=[_vote_hints],
    solution=_vote_solution,
    mistakes=[
        Mistake("one vote suffices", _vote_any, "at least N_v"),
        Mistake("ε instead of log10 ε", _vote_eps_not_log, "np.log10(eps)"),
    ]))


# -- 03.robust_statistic ---------------------------------------------------------------------

def _stat_reference(r):
    from ..contrario.null import robust_normalize
    return np.abs(robust_normalize(r, axis=(0, 1))).max(-1)


def _stat_cases(rng):
    yield Case("a Gaussian residual 16×16×3",
               (rng.normal(0, 0.05, (16, 16, 3)).astype(np.float32),),
               hint="f = (r − med r)/(1.4826·MAD r): 1.4826·MAD is the std of a Gaussian.")
    r = rng.normal(0, 1, (20, 24, 3)).astype(np.float32) * np.float32([0.02, 0.1, 0.5])
    r += np.float32([0.1, -0.2, 0.0])
    yield Case("channels of different offsets and scales", (r,),
               hint="normalize each channel with its own median and MAD (axis=(0, 1)), "
                    "then take the max of |f| over the channels.")
    r = rng.normal(0, 0.05, (24, 24, 3)).astype(np.float32)
    r[4:12, 4:12] += 1.0                          # a defect: 11 % of the pixels
    yield Case("a residual with a strong defect", (r,),
               hint="the median and the MAD ignore the defect; the mean and the std do not "
                    "(the defect inflates the std and hides itself).")


def _stat_hints(case, got, expected):
    (r,) = case.args
    r = np.asarray(r, np.float64)
    g = np.asarray(got, np.float64)
    if g.shape == r.shape:
        return "return one value per pixel (H, W): the max over the channels of |f|."
    if g.shape != expected.shape:
        return None
    close = lambda v: np.allclose(g, v, rtol=1e-4, atol=1e-4)   # noqa: E731
    med = np.median(r, axis=(0, 1), keepdims=True)
    mad = np.median(np.abs(r - med), axis=(0, 1), keepdims=True)
    if close(np.abs((r - med) / mad).max(-1)):
        return "the factor 1.4826 is missing: f = (r − med r)/(1.4826·MAD r)."
    if close(np.abs((r - r.mean((0, 1))) / r.std((0, 1))).max(-1)):
        return ("that is the mean and the std: use the median and the MAD (median of "
                "|r − med r|), which a defect does not move.")
    m1 = np.median(r)
    if close(np.abs((r - m1) / (1.4826 * np.median(np.abs(r - m1)))).max(-1)):
        return ("one median and one MAD for all channels: take them per channel, "
                "np.median(r, axis=(0, 1)).")
    return None


def _stat_solution(r):
    med = np.median(r, axis=(0, 1))
    mad = np.median(np.abs(r - med), axis=(0, 1))
    return np.abs((r - med) / (1.4826 * mad)).max(-1)


def _stat_mean_std(r):
    return np.abs((r - r.mean((0, 1))) / r.std((0, 1))).max(-1)


def _stat_no_factor(r):
    med = np.median(r, axis=(0, 1))
    return np.abs((r - med) / np.median(np.abs(r - med), axis=(0, 1))).max(-1)


register(Exercise(
    "03.robust_statistic",
    title="The robust statistic of a residual",
    statement="""adkit's self-similarity tests, at each pixel, t = max_c |f_c| with the
    residual of each channel normalized robustly: f_c = (r_c − med r_c) / (1.4826·MAD r_c),
    the median and MAD = med |r_c − med r_c| taken over the image, per channel (1.4826·MAD
    is the standard deviation of a Gaussian; a defect covering less than half of the image
    moves neither, while it inflates the mean and the std). Write a function that takes a
    residual (H × W × 3) and returns t (H × W) (adkit.contrario.null.robust_normalize with
    axis=(0, 1) gives f).""",
    signature="my_statistic(r) -> t",
    reference=_stat_reference, cases=_stat_cases, hints=[_stat_hints],
    solution=_stat_solution, atol=1e-4, rtol=1e-4,
    mistakes=[
        Mistake("mean and std", _stat_mean_std, "median and the MAD"),
        Mistake("no factor 1.4826", _stat_no_factor, "1.4826"),
    ]))
