"""Tests of adkit.corruptions: determinism, masks, sizes, mixture proportions."""
import numpy as np
import pytest

from adkit import corruptions as C


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(123)
    return rng.uniform(0.3, 0.7, size=(6, 64, 64, 3)).astype(np.float32)


@pytest.mark.parametrize("kind", C.CORRUPTIONS)
def test_deterministic_by_seed(images, kind):
    a, ma = C.corrupt(images, kind, seed=7)
    b, mb = C.corrupt(images, kind, seed=7)
    c, _ = C.corrupt(images, kind, seed=8)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ma, mb)
    assert not np.array_equal(a, c)
    # a Generator is consumed: two calls with the same Generator differ
    g = np.random.default_rng(7)
    d, _ = C.corrupt(images, kind, seed=g)
    e, _ = C.corrupt(images, kind, seed=g)
    np.testing.assert_array_equal(d, a)
    assert not np.array_equal(d, e)


@pytest.mark.parametrize("kind", C.CORRUPTIONS)
def test_outside_mask_unchanged_inside_changed(images, kind):
    out, mask = C.corrupt(images, kind, seed=1)
    assert out.dtype == np.float32 and out.shape == images.shape
    assert mask.dtype == bool and mask.shape == images.shape[:3]
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_array_equal(out[~mask], images[~mask])
    assert mask.reshape(len(mask), -1).any(axis=1).all()  # every image is corrupted
    changed = np.any(out != images, axis=-1)
    assert changed[mask].mean() > 0.9  # the mask is not larger than what changed


def test_single_image_and_batch_shapes(images):
    out, mask = C.stain(images[0], seed=0)
    assert out.shape == (64, 64, 3) and mask.shape == (64, 64)
    # input is not modified in place
    before = images.copy()
    C.corrupt(images, "mix1", seed=0)
    np.testing.assert_array_equal(images, before)


def test_stain_size_within_range():
    """Semi-axes in 1-12 % of the side: the area is at most pi * (0.12 s (1 + jitter))^2,
    and the sharp stain is a filled, gray, connected blob."""
    from scipy import ndimage
    side = 256
    x = np.full((40, side, side, 3), 0.5, np.float32)
    out, mask = C.stain(x, seed=3, blur=0)
    areas = mask.sum(axis=(1, 2))
    r_max = 0.12 * side * 1.1 + 2
    assert areas.max() <= np.pi * r_max ** 2
    assert areas.min() >= 1
    assert areas.max() > np.pi * (0.06 * side) ** 2  # some big ones among 40 draws
    for o, m in zip(out, mask):
        assert ndimage.label(m)[1] == 1
        v = o[m]
        # a gray level (R = G = B up to the faint noise) in the authors' 10..220 range
        assert np.abs(v - v.mean(axis=1, keepdims=True)).max() < 1e-6
        assert 10 / 255 - 0.1 < v.mean() < 220 / 255 + 0.1


def test_stain_custom_size_and_blur():
    x = np.full((10, 128, 128, 3), 0.5, np.float32)
    _, sharp = C.stain(x, seed=0, size=(0.2, 0.2), blur=0, irregularity=0)
    # an ellipse of semi-axes 0.2 * 128 = 25.6 px: area pi * 25.6^2
    np.testing.assert_allclose(sharp.sum(axis=(1, 2)), np.pi * 25.6 ** 2, rtol=0.05)
    _, blurred = C.stain(x, seed=0, size=(0.2, 0.2), blur=0.15, irregularity=0)
    assert (blurred.sum(axis=(1, 2)) > sharp.sum(axis=(1, 2))).all()


def test_drops_size_and_count():
    side = 256
    x = np.full((20, side, side, 3), 0.5, np.float32)
    _, m1 = C.drops(x, seed=0, n_drops=1, spread=0)
    r = np.sqrt(m1.sum(axis=(1, 2)) / np.pi)
    assert (r >= 0.01 * side - 1).all() and (r <= 0.02 * side + 1).all()
    _, m10 = C.drops(x, seed=0, n_drops=10)
    # ten partly overlapping discs: more than one disc, less than ten separate ones
    a10 = m10.sum(axis=(1, 2))
    assert (a10 > 1.5 * np.pi * (0.01 * side) ** 2).all()
    assert (a10 < 10 * np.pi * (0.02 * side + 1) ** 2).all()
    assert np.median(a10) > 2.5 * np.median(m1.sum(axis=(1, 2)))


def test_scratch_is_thin_and_long():
    side = 256
    x = np.full((20, side, side, 3), 0.5, np.float32)
    for shape in ("line", "sine", "root"):
        _, m = C.scratch(x, seed=0, shape=shape)
        area = m.sum(axis=(1, 2))
        # 3 px wide, at least 0.1 * side long (clipped at the border sometimes)
        assert (area >= 3 * 0.1 * side * 0.5).all()
        assert (area <= 3 * 2 * 0.35 * side * 3).all()


def test_gaussian_noise_variance():
    """The paper's levels {0.1, 0.2, 0.4, 0.8} are variances: std = sqrt(variance).
    Clipping to [0, 1] bites at these levels, so on a gray 0.5 image the fraction of
    unclipped values is P(|n| < 0.5) = erf(0.5 / sqrt(2 variance)), and the unclipped
    values follow the normal law truncated to (-0.5, 0.5)."""
    from scipy.special import erf
    from scipy.stats import truncnorm
    assert C.GAUSSIAN_VARIANCES == (0.1, 0.2, 0.4, 0.8)
    x = np.full((1, 256, 256, 3), 0.5, np.float32)
    for var in C.GAUSSIAN_VARIANCES:
        out, mask = C.gaussian(x, seed=1, variance=var)
        assert mask.all()
        d = (out - x).ravel()
        inside = np.abs(d) < 0.5 - 1e-6
        np.testing.assert_allclose(inside.mean(), erf(0.5 / np.sqrt(2 * var)), atol=0.01)
        s = np.sqrt(var)
        np.testing.assert_allclose(d[inside].std(),
                                   truncnorm(-0.5 / s, 0.5 / s, scale=s).std(), rtol=0.02)
    # the default is the smallest variance, 0.1 (std 0.32)
    np.testing.assert_array_equal(C.gaussian(x, seed=2)[0], C.gaussian(x, seed=2, variance=0.1)[0])
    # a small variance, where nothing clips: the std is exactly sqrt(variance)
    out, _ = C.gaussian(x, seed=0, variance=0.01)
    np.testing.assert_allclose((out - x).std(), 0.1, rtol=0.02)


def test_mix2_gaussian_has_variance_01():
    x = np.full((400, 64, 64, 3), 0.5, np.float32)
    out, _, kinds = C.mix2(x, seed=0, return_kind=True)
    noisy = out[np.array(kinds) == "gaussian"]
    from scipy.special import erf
    frac = np.mean(np.abs(noisy - 0.5) < 0.5 - 1e-6)
    np.testing.assert_allclose(frac, erf(0.5 / np.sqrt(2 * 0.1)), atol=0.01)


def test_gaussian_sigma_keyword_says_to_pass_variance():
    x = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(TypeError, match=r"variance=0.1 .*variance=0.01"):
        C.gaussian(x, sigma=0.1)


@pytest.mark.parametrize("name, expected", [
    ("mix1", {"stain": 0.6, "scratch": 0.2, "drops": 0.2}),
    ("mix2", {"stain": 0.6, "gaussian": 0.4}),
])
def test_mix_proportions(name, expected):
    x = np.full((2000, 8, 8, 3), 0.5, np.float32)
    fn = getattr(C, name)
    _, _, kinds = fn(x, seed=0, return_kind=True)
    kinds = np.array(kinds)
    for k, p in expected.items():
        # 2000 draws: binomial std <= 0.011
        assert abs((kinds == k).mean() - p) < 0.04, (k, (kinds == k).mean())
    # same draws without return_kind; the Gaussian ones cover the whole image
    out, mask = fn(x[:200], seed=1)
    _, _, k2 = fn(x[:200], seed=1, return_kind=True)
    full = mask.reshape(200, -1).all(axis=1)
    np.testing.assert_array_equal(full, np.array(k2) == "gaussian")


def test_clear_errors():
    x = np.zeros((32, 32, 3), np.float32)
    with pytest.raises(ValueError, match="kind must be one of"):
        C.corrupt(x, "smudge")
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        C.corrupt(np.zeros((32, 32), np.float32))
    with pytest.raises(TypeError, match="img_as_float32"):
        C.corrupt(np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="size"):
        C.stain(x, size=(0.2, 0.1))
    with pytest.raises(ValueError, match="variance must be a positive number"):
        C.gaussian(x, variance=0)
    assert C.CORRUPTIONS == ("stain", "gaussian", "scratch", "drops", "mix1", "mix2")
