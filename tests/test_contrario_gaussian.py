import numpy as np
import pytest
from scipy import special, stats

from adkit.contrario.gaussian import (count_tests, gaussian_nfa, gaussian_threshold,
                                      log10_gaussian_tail, log_nfa_gaussian,
                                      normalize_residual, vote_log_nfa)


def test_known_values():
    # P(|Z| >= 1.959964) = 0.05, P(|Z| >= 0) = 1, one-sided P(Z >= 1.644854) = 0.05
    assert log10_gaussian_tail(0.0) == pytest.approx(0.0)
    assert log10_gaussian_tail(1.959964) == pytest.approx(np.log10(0.05), abs=1e-5)
    assert log10_gaussian_tail(1.644854, two_sided=False) == pytest.approx(np.log10(0.05),
                                                                           abs=1e-5)
    assert log10_gaussian_tail(-3.0) == pytest.approx(log10_gaussian_tail(3.0))
    assert gaussian_threshold(0.05, 1) == pytest.approx(1.959964, abs=1e-5)
    # γ_ε = √2·erfc⁻¹(ε/N): ε = 1, N = 10⁴ → 3.8906
    assert gaussian_threshold(1.0, 1e4) == pytest.approx(3.890592, abs=1e-5)
    assert gaussian_threshold(1.0, 1e4) == pytest.approx(np.sqrt(2) * special.erfcinv(1e-4))
    assert gaussian_threshold(5.0, 3.0) == 0.0      # ε ≥ N: everything is detected
    assert log_nfa_gaussian(0.0, 100) == pytest.approx(2.0)
    assert count_tests([(8, 8), (4, 4)], channels=3) == 3 * 80


def test_tail_is_finite_and_accurate_far_out():
    z = np.array([5.0, 10.0, 20.0, 40.0])
    got = log10_gaussian_tail(z)
    assert np.all(np.isfinite(got))
    # exact where double precision still holds
    assert got[0] == pytest.approx(np.log10(2 * stats.norm.sf(5.0)), rel=1e-6)
    assert got[1] == pytest.approx(np.log10(2 * stats.norm.sf(10.0)), rel=1e-6)
    # Mills ratio asymptotics: log P(Z ≥ z) ≈ −z²/2 − log(z√(2π)) − 1/z² (error < 3/z⁴)
    for zz, g in zip(z[2:], got[2:]):
        approx = (np.log(2) - zz ** 2 / 2 - np.log(zz * np.sqrt(2 * np.pi)) - 1 / zz ** 2) / np.log(10)
        assert g == pytest.approx(approx, abs=1e-4)
    assert special.erfc(40 / np.sqrt(2)) == 0.0 and got[3] == pytest.approx(-349.14, abs=0.01)
    grid = np.linspace(0, 60, 2001)
    assert np.all(np.diff(log10_gaussian_tail(grid)) < 0)


@pytest.mark.parametrize("two_sided", [True, False])
def test_threshold_and_nfa_are_consistent(two_sided):
    n = 3 * 256 * 256
    for eps in [1e-5, 1e-2, 1.0, 100.0]:
        g = gaussian_threshold(eps, n, two_sided)
        assert float(log_nfa_gaussian(g, n, two_sided)) == pytest.approx(np.log10(eps), abs=1e-4)
        assert gaussian_nfa(g, n, two_sided) == pytest.approx(eps, rel=1e-4)
        # just above the threshold is detected, just below is not
        assert log_nfa_gaussian(g + 1e-3, n, two_sided) < np.log10(eps)
        assert log_nfa_gaussian(g - 1e-3, n, two_sided) > np.log10(eps)


def test_number_of_false_alarms_on_pure_noise_is_eps():
    """The a contrario promise: on white Gaussian noise, ε false detections per image."""
    rng = np.random.default_rng(0)
    n_images, n_pixels = 2000, 2000
    for eps in [1.0, 5.0]:
        g = gaussian_threshold(eps, n_pixels)
        z = rng.standard_normal((n_images, n_pixels))
        mean_fa = (np.abs(z) >= g).sum(1).mean()
        assert mean_fa == pytest.approx(eps, rel=0.12)


def test_normalize_residual_per_channel():
    rng = np.random.default_rng(1)
    r = rng.normal([0.1, -0.2, 0.0], [0.5, 2.0, 0.01], (64, 64, 3)).astype(np.float32)
    f = normalize_residual(r, axis=(0, 1))
    assert f.shape == r.shape and f.dtype == np.float32
    np.testing.assert_allclose(f.mean((0, 1)), 0, atol=1e-5)
    np.testing.assert_allclose(f.std((0, 1)), 1, atol=1e-4)
    g = normalize_residual(r)       # whole array (original behaviour)
    assert abs(g.mean()) < 1e-5 and g.std() == pytest.approx(1, abs=1e-4)
    assert not np.allclose(g.std((0, 1)), 1, atol=0.1)


@pytest.mark.parametrize("n_votes", [1, 2, 3])
def test_vote_log_nfa_equals_vote_map(n_votes):
    rng = np.random.default_rng(2)
    stack = rng.uniform(-6, 2, (3, 5, 16, 16)).astype(np.float32)
    combined = vote_log_nfa(stack, n_votes)
    for eps in [1e-4, 1e-2, 1.0, 10.0]:
        votes = (stack < np.log10(eps)).sum(0) >= n_votes
        np.testing.assert_array_equal(combined < np.log10(eps), votes)


def test_errors():
    with pytest.raises(ValueError, match="positive"):
        gaussian_threshold(0.0, 10)
    with pytest.raises(ValueError, match="positive"):
        log_nfa_gaussian(1.0, 0)
    with pytest.raises(ValueError, match="n_votes"):
        vote_log_nfa(np.zeros((2, 4, 4)), 3)
