"""Tests of the background laws estimated on normal data (adkit.contrario.null)."""
import numpy as np
import pytest
from scipy import stats

from adkit.contrario.null import CellBackground, EmpiricalTail, ar1_kappa, effective_cells


def test_empirical_tail_follows_the_law_and_extrapolates():
    rng = np.random.default_rng(0)
    law = stats.chi2(20)
    tail = EmpiricalTail.fit(law.rvs(20000, random_state=rng))
    x = law.isf([0.5, 0.2, 0.05])                       # the empirical part
    np.testing.assert_allclose(tail.log10_sf(x), np.log10([0.5, 0.2, 0.05]), atol=0.02)
    far = law.isf([1e-4, 1e-6])                         # beyond every sample: the GPD tail
    got = tail.log10_sf(far)
    # the χ² tail is lighter than the fitted Pareto one (ξ > 0): conservative, within
    # 0.6 and 1.5 decades (measured -3.57, -4.97)
    assert np.all(got >= [-4, -6]) and np.all(got <= [-3.4, -4.5])
    assert tail.xi >= 0
    # a survival function: non-increasing, 0 below the sample, finite far out
    grid = np.linspace(-5, law.isf(1e-12), 400)
    v = tail.log10_sf(grid)
    assert np.all(np.diff(v) <= 1e-12) and v[0] == 0.0 and np.isfinite(v[-1])


def test_empirical_p_values_are_valid():
    # P(S(U) <= a) <= a for a new value exchangeable with the sample (conformal)
    rng = np.random.default_rng(1)
    hits = np.zeros(3)
    for _ in range(300):
        s = rng.gamma(3.0, size=50)
        tail = EmpiricalTail.fit(s, tail=0.1)
        p = 10 ** tail.log10_sf(rng.gamma(3.0))
        hits += p <= np.array([0.05, 0.2, 0.5])
    assert np.all(hits / 300 <= np.array([0.05, 0.2, 0.5]) + 0.05)


def test_bounded_tail_is_kept_exponential():
    # a uniform law has a bounded tail (ξ < 0): kept at ξ = 0 so that values beyond the
    # largest normal one keep a finite, positive probability
    tail = EmpiricalTail.fit(np.random.default_rng(2).uniform(size=5000))
    assert tail.xi == 0.0
    v = tail.log10_sf([1.0, 1.5, 3.0])
    assert np.all(np.isfinite(v)) and v[0] > v[1] > v[2]


def test_empirical_tail_round_trip_and_errors():
    t = EmpiricalTail.fit(np.random.default_rng(3).exponential(size=300))
    t2 = EmpiricalTail.from_dict(t.to_dict())
    x = np.linspace(0, 12, 50)
    np.testing.assert_array_equal(t.log10_sf(x), t2.log10_sf(x))
    with pytest.raises(ValueError, match="at least 2"):
        EmpiricalTail.fit([1.0])
    with pytest.raises(ValueError, match="tail"):
        EmpiricalTail.fit([1.0, 2.0, 3.0], tail=1.5)
    with pytest.raises(ValueError, match="finite"):
        EmpiricalTail.fit([1.0, np.nan])


def _ar1(rng, rho, shape):
    """Separable AR(1) Gaussian maps (N, h, w) with unit variance."""
    x = rng.standard_normal(shape)
    for ax in (1, 2):
        x = np.moveaxis(x, ax, 0).copy()
        for i in range(1, x.shape[0]):
            x[i] = rho * x[i - 1] + np.sqrt(1 - rho ** 2) * x[i]
        x = np.moveaxis(x, 0, ax)
    return x


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.6])
def test_ar1_kappa_recovers_the_correlation(rho):
    rho_hat, kappa = ar1_kappa(_ar1(np.random.default_rng(4), rho, (40, 16, 16)))
    assert abs(rho_hat - rho) < 0.05
    assert kappa == pytest.approx(((1 + rho_hat) / (1 - rho_hat)) ** 2)
    # degenerate maps: no neighbours at all
    assert ar1_kappa(np.ones((3, 1, 1))) == (0.0, 1.0)
    with pytest.raises(ValueError, match="N, h, w"):
        ar1_kappa(np.ones(4))


def _random_polyomino(rng, r):
    cells = {(0, 0)}
    while len(cells) < r:
        y, x = list(cells)[rng.integers(len(cells))]
        dy, dx = [(0, 1), (1, 0), (0, -1), (-1, 0)][rng.integers(4)]
        cells.add((y + dy, x + dx))
    return np.array(sorted(cells))


def test_effective_cells_bound_the_gaussian_region_exponent():
    # 1ᵀ Σ_R⁻¹ 1 (the Gaussian exponent of "all cells of R above u") is at least
    # 1 + (r - 1)/κ for separable AR(1) fields, with equality on a straight 1-D chain
    rng = np.random.default_rng(5)
    for rho in (0.2, 0.5, 0.8):
        kappa = ((1 + rho) / (1 - rho)) ** 2
        for r in (1, 2, 4, 9, 25, 60):
            for _ in range(5):
                c = _random_polyomino(rng, r)
                sigma = rho ** np.abs(c[:, None] - c[None]).sum(-1)
                exact = np.ones(r) @ np.linalg.solve(sigma, np.ones(r))
                assert exact >= effective_cells(r, kappa) - 1e-9
        line = rho ** np.abs(np.arange(10)[:, None] - np.arange(10)[None])
        assert np.ones(10) @ np.linalg.solve(line, np.ones(10)) == pytest.approx(
            float(effective_cells(10, (1 + rho) / (1 - rho))))
    assert effective_cells(1, 50.0) == 1.0
    with pytest.raises(ValueError, match="kappa"):
        effective_cells(3, 0.5)


def test_cell_background_removes_a_position_dependent_scale():
    # normal maps whose scale depends on position (an aligned object): after the
    # per-position normalization a new map has the law of the held-out ones
    rng = np.random.default_rng(6)
    scale = 1 + 3 * np.outer(np.hanning(12), np.hanning(12))
    held = scale * rng.chisquare(10, (24, 12, 12))
    new = scale * rng.chisquare(10, (200, 12, 12))
    bg = CellBackground.fit(held)
    u = bg.normalize(new)
    for q in (0.1, 0.01, 0.001):
        frac = np.mean(bg.log10_sf(u) <= np.log10(q))
        assert frac <= 2 * q and frac >= q / 4      # calibrated within a factor 2-4
    # without it the smooth scale looks like a spatial correlation: cells count less
    pooled = CellBackground.fit(held, per_position=False)
    assert bg.kappa < 1.5 and pooled.kappa > 3           # measured 1.06, 5.7
    assert pooled.scale is None and bg.scale.shape == (12, 12)
    # leave-one-out: an in-sample mean would make the held-out values too regular
    insample = held / held.mean(0)
    assert np.var(held / ((held.sum(0) - held) / 23)) > np.var(insample)


def test_cell_background_per_image_scale():
    # maps inflated as a whole (a nuisance of the image, not of a cell): divided by
    # their own 0.9 quantile they have the law of the normal ones again
    rng = np.random.default_rng(8)
    held = rng.chisquare(10, (24, 12, 12))
    new = rng.chisquare(10, (50, 12, 12)) * 1.5
    bg = CellBackground.fit(held, image_quantile=0.9)
    plain = CellBackground.fit(held)
    frac = np.mean(bg.log10_sf(bg.normalize(new)) <= -2)
    assert frac <= 0.03                                    # measured 0.008
    assert np.mean(plain.log10_sf(plain.normalize(new)) <= -2) > 5 * 0.01   # 0.099
    bg2 = CellBackground.from_dict(bg.to_dict())
    assert bg2.image_quantile == 0.9 and plain.to_dict().get("image_quantile") is None
    np.testing.assert_array_equal(bg2.normalize(new), bg.normalize(new))
    with pytest.raises(ValueError, match="image_quantile"):
        CellBackground.fit(held, image_quantile=1.5)


def test_cell_background_round_trip_and_errors():
    rng = np.random.default_rng(7)
    bg = CellBackground.fit(rng.chisquare(5, (4, 6, 6)))
    bg2 = CellBackground.from_dict(bg.to_dict())
    x = rng.chisquare(5, (6, 6))
    np.testing.assert_array_equal(bg2.log10_sf(bg2.normalize(x)), bg.log10_sf(bg.normalize(x)))
    assert (bg2.rho, bg2.kappa) == (bg.rho, bg.kappa)
    # a tampered saved law is refused with a clear error
    from adkit.estimator import ModelFileError
    good = bg.to_dict()
    bad_cases = {
        "sorted": dict(good, tail=dict(good["tail"], sample=good["tail"]["sample"][::-1])),
        "kappa": dict(good, kappa=0.5),
        "xi": dict(good, tail=dict(good["tail"], xi=-0.2)),
        "scale": dict(good, scale=np.zeros((6, 6))),
        "lacks": {k: v for k, v in good.items() if k != "rho"},
    }
    for what, d in bad_cases.items():
        with pytest.raises(ModelFileError, match=what):
            CellBackground.from_dict(d)
    assert CellBackground.from_dict(dict(good, scale=None)).scale is None
    with pytest.raises(ValueError, match="at least 2 normal maps"):
        CellBackground.fit(np.ones((1, 4, 4)))
    with pytest.raises(ValueError, match="positions"):
        bg.normalize(np.ones((5, 5)))
    with pytest.raises(ValueError, match="non-negative"):
        CellBackground.fit(-np.ones((3, 4, 4)))
    with pytest.raises(ValueError, match="N, h, w"):
        CellBackground.fit(np.ones((4, 4)))
