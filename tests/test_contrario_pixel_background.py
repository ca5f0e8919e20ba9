"""Pixel maps' background (adkit.contrario.null): robust normalization, extremal index,
PixelBackground's NFA counting false regions; the tail law it uses (EmpiricalTail) on
heavy, light and bounded tails."""
import numpy as np
import pytest
from scipy import ndimage, stats

from adkit.contrario.null import PixelBackground, extremal_index, robust_normalize

EIGHT = np.ones((3, 3), bool)


def test_robust_normalize_is_median_over_scaled_mad():
    rng = np.random.default_rng(0)
    r = rng.standard_normal((40, 50, 3)).astype(np.float32) * [1, 2, 3] + [0, 1, -1]
    r[:5, :5] = 40.0                                  # a defect: 1 % of the pixels
    f = robust_normalize(r, axis=(0, 1))
    med = np.median(r, axis=(0, 1))
    mad = stats.median_abs_deviation(r, axis=(0, 1), scale="normal")
    np.testing.assert_allclose(f, (r - med) / mad, rtol=1e-4, atol=1e-4)
    # the defect neither shifts nor inflates the scale: the normal pixels stay ~N(0, 1)
    assert np.all(np.abs(f[10:, 10:].std((0, 1)) - 1) < 0.1)
    # a constant residual does not divide by zero
    assert np.all(np.isfinite(robust_normalize(np.zeros((8, 8)))))


def test_pixel_tail_matches_the_empirical_and_the_true_survival_function():
    """The law PixelBackground fits (EmpiricalTail, Pareto tail over the top n_tail)."""
    rng = np.random.default_rng(1)
    x = np.abs(rng.standard_t(3, 200_000)).reshape(50, 40, 100)   # heavy tail, ξ = 1/3
    law = PixelBackground.fit(x).tail
    for t in (0.5, 1.0, 2.0, 4.0):                      # below the threshold: empirical
        assert abs(10 ** law.log10_sf(t) - np.mean(x >= t)) < 1e-3
    assert 0.15 < law.xi < 0.5, law.xi
    true = lambda t: np.log10(2 * stats.t.sf(t, 3))   # noqa: E731
    assert law.threshold < 20
    for t in (20.0, 60.0):       # extrapolated within a factor 2.5 of the true tail
        assert abs(law.log10_sf(t) - true(t)) < np.log10(2.5), (t, law.log10_sf(t), true(t))
    v = law.log10_sf(np.linspace(-1, 200, 2000))
    assert np.all(np.diff(v) <= 1e-12) and v[0] == 0


def test_light_tail_is_exponential_not_bounded():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 1, (10, 100, 100))            # bounded: the MLE would give ξ = −1
    law = PixelBackground.fit(x).tail
    assert law.xi == 0.0
    # just above the largest sample a value is rare, not impossible; far above, negligible
    assert -10 < law.log10_sf(x.max() + 0.002) < law.log10_sf(law.threshold) - 1
    assert law.log10_sf(5.0) < -100
    with pytest.raises(ValueError, match="at least 100"):
        PixelBackground.fit(np.ones((1, 5, 5)))


def _blocks(rng, n, k, size=96):
    """Fields made of k×k constant blocks of |t_3| values: clusters of exactly k² pixels."""
    return np.kron(np.abs(rng.standard_t(3, (n, size // k, size // k))), np.ones((1, k, k)))


@pytest.mark.parametrize("k", [1, 2, 4])
def test_extremal_index_is_the_inverse_cluster_size(k):
    rng = np.random.default_rng(3)
    theta = extremal_index(_blocks(rng, 16, k))
    # k×k blocks: θ = 1/k² (less when two large blocks touch)
    assert 0.75 / k ** 2 <= theta <= 1.0 / k ** 2 + 1e-9, theta


def _regions(lognfa, eps):
    return np.mean([ndimage.label(m < np.log10(eps), EIGHT)[1] for m in lognfa])


@pytest.mark.parametrize("field", ["iid", "blocks", "smooth"])
def test_nfa_counts_false_regions(field):
    """Fitted on 16 maps, the NFA gives about ε connected regions per new map."""
    rng = np.random.default_rng(4)

    def draw(n):
        if field == "iid":
            return np.abs(rng.standard_normal((n, 96, 96)))
        if field == "blocks":
            return _blocks(rng, n, 4)
        return np.abs(np.stack([ndimage.gaussian_filter(rng.standard_normal((96, 96)), 2)
                                for _ in range(n)]))

    model = PixelBackground.fit(draw(16))
    test = model.log_nfa(draw(300))
    for eps in (0.1, 1.0, 10.0):
        assert 1 / 3 <= _regions(test, eps) / eps <= 3, (field, eps, _regions(test, eps))
    # the Gaussian model's count of tests (every pixel) is far too many for correlated fields
    if field != "iid":
        assert model.n_tests < 0.4 * 96 * 96


def test_threshold_inverts_the_nfa():
    rng = np.random.default_rng(5)
    m = PixelBackground.fit(np.abs(rng.standard_normal((8, 64, 64))))
    for eps in (1e-6, 1e-3, 1.0, 30.0):
        th = m.threshold(eps)
        assert m.log_nfa(th + 1e-6) < np.log10(eps) + 1e-6
        assert m.log_nfa(th - 1e-3) >= np.log10(eps) - 1e-2
    assert m.threshold(1e9) == -np.inf
    with pytest.raises(ValueError, match="maps must be"):
        PixelBackground.fit(np.zeros((2, 3, 4, 5)))
    with pytest.raises(ValueError, match="maps must be"):
        extremal_index(np.zeros((2, 3, 4, 5)))
