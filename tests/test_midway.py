import numpy as np
import pytest

from adkit.normalize import Midway, midway_equalize, specify_histogram


def _images(n=5, size=24, seed=0):
    """Smooth random images under different gains / gammas (exposure changes)."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.05, 0.9, (size, size, 3)).astype(np.float32)
    out = []
    for _ in range(n):
        gain, gamma = rng.uniform(0.6, 1.0), rng.uniform(0.7, 1.4)
        noise = rng.normal(0, 0.01, base.shape)
        out.append(np.clip(gain * base ** gamma + noise, 0, 1))
    return np.stack(out).astype(np.float32)


def test_two_constant_images_meet_halfway():
    a = np.full((8, 8, 3), 0.2, np.float32)
    b = np.full((8, 8, 3), 0.6, np.float32)
    u, v = midway_equalize(a, b)
    assert np.allclose(u, 0.4, atol=1e-7) and np.allclose(v, 0.4, atol=1e-7)


def test_gain_changed_copy_ends_with_identical_histograms():
    x = _images(1)[0]
    y = (0.7 * x).astype(np.float32)
    u, v = midway_equalize(x, y)
    # same ranks in x and 0.7 x: both become the midway image 0.85 x
    np.testing.assert_array_equal(np.sort(u.reshape(-1, 3), 0), np.sort(v.reshape(-1, 3), 0))
    np.testing.assert_allclose(u, 0.85 * x, atol=1e-6)
    np.testing.assert_allclose(v, 0.85 * x, atol=1e-6)


def test_midway_is_the_average_of_quantile_functions_and_keeps_ranks():
    x = _images(4)
    out = midway_equalize(x)
    expected = np.sort(x.reshape(4, -1, 3), axis=1).astype(np.float64).mean(0)
    for i in range(4):
        np.testing.assert_allclose(np.sort(out[i].reshape(-1, 3), 0), expected, atol=1e-6)
        for c in range(3):  # the order of grey levels inside each image is kept
            order = np.argsort(x[i, ..., c].ravel(), kind="stable")
            assert np.all(np.diff(out[i, ..., c].ravel()[order]) >= 0)


def test_order_of_the_images_does_not_matter():
    x = _images(6)
    perm = np.array([3, 0, 5, 1, 4, 2])
    np.testing.assert_array_equal(midway_equalize(x)[perm], midway_equalize(x[perm]))


def test_images_of_different_sizes():
    a = np.full((8, 8, 3), 0.1, np.float32)
    b = np.full((12, 10, 3), 0.5, np.float32)
    u, v = midway_equalize([a, b])
    assert u.shape == a.shape and v.shape == b.shape
    assert np.allclose(u, 0.3) and np.allclose(v, 0.3)


def test_specify_onto_quantiles_interpolates_when_sizes_differ():
    img = np.random.default_rng(1).uniform(0, 1, (16, 16, 3)).astype(np.float32)
    ramp = np.linspace(0, 1, 1024)           # a uniform histogram on [0, 1], 1024 levels
    out = specify_histogram(img, ramp)
    levels = (np.arange(256) + 0.5) / 256
    target = np.interp(levels, (np.arange(1024) + 0.5) / 1024, ramp)
    for c in range(3):
        np.testing.assert_allclose(np.sort(out[..., c].ravel()), target, atol=1e-6)
        # rank assignment: the brightest input pixel gets the top of the ramp
        assert out[..., c].ravel()[img[..., c].argmax()] == pytest.approx(target[-1], abs=1e-6)
    with pytest.raises(ValueError, match="quantiles has shape"):
        specify_histogram(img, np.zeros((2, 5)))


def test_transform_specifies_test_images_onto_the_train_midway(tmp_path):
    x = _images(6)
    step = Midway().fit(x[:5])
    assert step.quantiles_.shape == (3, 24 * 24)
    test = np.clip(x[5] * 1.1 + 0.02, 0, 1)[None]          # another exposure
    out = step.transform(test)
    np.testing.assert_allclose(np.sort(out[0].reshape(-1, 3), 0), step.quantiles_.T, atol=1e-7)
    # the training images all end with the same histogram
    tr = step.transform(x[:5])
    np.testing.assert_array_equal(np.sort(tr[0].reshape(-1, 3), 0),
                                  np.sort(tr[3].reshape(-1, 3), 0))
    path = step.save(tmp_path / "midway.npz")
    np.testing.assert_array_equal(Midway.load(path).transform(test), out)


def test_n_quantiles_and_errors():
    x = _images(3)
    small = Midway(n_quantiles=64).fit(x)
    assert small.quantiles_.shape == (3, 64)
    full = Midway().fit(x)
    assert np.abs(small.transform(x) - full.transform(x)).max() < 0.05
    with pytest.raises(ValueError, match="n_quantiles"):
        Midway(n_quantiles=1)
    with pytest.raises(Exception, match="not fitted"):
        Midway().transform(x)
