import numpy as np
import pytest
import torch

from adkit.estimator import NotFittedError
from adkit.nets.unet import UNet
from adkit.normalize.n2n import N2N




def _speckled(n, size=64, seed=0, speckles=True):
    """A bright disk on a dark background with random red speckles (normal variability)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disk = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (0.35 * size) ** 2
    clean = np.where(disk[..., None], [0.9, 0.88, 0.85], [0.1, 0.1, 0.12]).astype(np.float32)
    out = np.repeat(clean[None], n, 0)
    if speckles:
        for i in range(n):
            for _ in range(12):
                cy, cx = rng.integers(int(0.2 * size), int(0.8 * size), 2)
                if disk[cy, cx]:
                    out[i, cy:cy + 2, cx:cx + 2] = [0.8, 0.2, 0.2]
    out = out + rng.normal(0, 0.01, out.shape).astype(np.float32)
    return np.clip(out, 0, 1).astype(np.float32), clean


def test_unet_shapes_and_identity_start():
    net = UNet(width=0.25)
    x = torch.rand(2, 3, 45, 70)
    y = net(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y, x)            # residual U-Net starts at the identity
    plain = UNet(width=0.25, residual=False)
    assert plain(x).shape == x.shape
    # the paper's network at width 1 (48/96 channels) has about 1 M parameters
    assert 0.9e6 < sum(p.numel() for p in UNet().parameters()) < 1.1e6


def test_nearest_patch_pairs_find_the_shifted_copy():
    rng = np.random.default_rng(0)
    a = rng.random((48, 48, 3)).astype(np.float32)
    b = np.roll(a, (2, -3), axis=(0, 1))          # b(y + 2, x − 3) = a(y, x)
    c = rng.random((48, 48, 3)).astype(np.float32)
    step = N2N(pairing="nearest_patches", patch_size=16, search=4, n_nearest=2)
    x = np.stack([a, b, c])
    nn_idx = step._nearest_images(x)
    ys, xs, match, p = step._patch_pairs(x, nn_idx)
    assert p == 16
    # interior patches of a match b shifted by (+2, −3)
    for gy, y in enumerate(ys):
        for gx, xx in enumerate(xs):
            if 3 <= xx <= 48 - 16 and y <= 48 - 16 - 2:
                assert tuple(match[0, gy, gx]) == (1, y + 2, xx - 3)


@pytest.mark.parametrize("pairing", ["images", "nearest_images", "nearest_patches"])
def test_training_learns_and_removes_speckles(pairing):
    train, clean = _speckled(12, seed=1)
    test, _ = _speckled(4, seed=2)
    step = N2N(pairing=pairing, epochs=25, crop=32, patch_size=32, progress=False, seed=0)
    step.fit(train)
    assert len(step.history_) == 25
    assert np.mean(step.history_[-5:]) < step.history_[0]
    out = step.transform(test)
    assert out.shape == test.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1
    before = np.abs(test - clean).mean()
    after = np.abs(out - clean).mean()
    assert after < 0.75 * before, (before, after)


def test_reproducible_by_seed_and_save_load_round_trip(tmp_path):
    train, _ = _speckled(6, seed=3)
    kw = dict(pairing="images", epochs=3, crop=32, progress=False)
    a = N2N(seed=5, **kw).fit(train)
    b = N2N(seed=5, **kw).fit(train)
    c = N2N(seed=6, **kw).fit(train)
    ya, yb, yc = a.transform(train), b.transform(train), c.transform(train)
    np.testing.assert_array_equal(ya, yb)
    assert a.history_ == b.history_
    assert not np.array_equal(ya, yc)
    path = a.save(tmp_path / "n2n")
    back = N2N.load(path)
    assert back.get_params() == a.get_params()
    np.testing.assert_array_equal(back.transform(train), ya)
    assert back.history_ == pytest.approx(a.history_)


def test_pipeline_with_n2n_runs():
    from adkit.models import Pipeline, ReferenceGaussian
    train, _ = _speckled(6, seed=4)
    pipe = Pipeline(steps=[N2N(epochs=2, crop=32, progress=False)], detector=ReferenceGaussian())
    res = pipe.fit(train).predict(train[:2])
    assert res.maps.shape == (2, 64, 64)
    assert "normalized_images" in res.extras


def test_errors_speak_to_the_student():
    with pytest.raises(ValueError, match="pairing"):
        N2N(pairing="random")
    with pytest.raises(ValueError, match="epochs"):
        N2N(epochs=0)
    with pytest.raises(TypeError, match="device"):
        N2N(device=0)
    with pytest.raises(NotFittedError, match="fit"):
        N2N().transform(np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="at least 2"):
        N2N().fit(np.zeros((1, 32, 32, 3), np.float32))
