import numpy as np
import pytest
from skimage import draw

from adkit.models import Pipeline, ReferenceGaussian
from adkit.normalize import BackgroundCleanup, clean_background
from adkit.normalize.background import background_mask

N = 64


def _scene(bright_background=False):
    """An object (disk) with a thin crack, on a background with two dust particles."""
    bg, obj = (0.85, 0.3) if bright_background else (0.2, 0.8)
    im = np.full((N, N, 3), bg, np.float32)
    rr, cc = draw.disk((32, 32), 16, shape=(N, N))
    im[rr, cc] = obj
    crack = np.zeros((N, N), bool)
    crack[31:33, 22:42] = True                       # 2 px wide, background-coloured
    im[crack] = bg
    dust = np.zeros((N, N), bool)
    for r, c in [(8, 8), (54, 50)]:
        rr, cc = draw.disk((r, c), 2, shape=(N, N))
        dust[rr, cc] = True
    im[dust] = 0.05 if bright_background else 0.95
    return im, crack, dust, bg


@pytest.mark.parametrize("bright", [False, True])
def test_dust_removed_object_untouched(bright):
    im, crack, dust, bg = _scene(bright)
    # background grey level range: the paper's (150, 255) for a bright background
    rng = (150, 255) if bright else (0, 110)
    out, mask = clean_background(im, gray_range=rng, return_mask=True)
    assert mask[dust].all()                     # closing filled the dust holes
    assert not mask[crack].any()                # opening removed the thin crack
    np.testing.assert_allclose(out[dust], bg, atol=1e-6)   # median blur erased the dust
    np.testing.assert_array_equal(out[~mask], im[~mask])    # object exactly as it was
    np.testing.assert_allclose(out[crack], bg, atol=1e-6)   # the crack is still there
    obj = np.zeros((N, N), bool)
    rr, cc = draw.disk((32, 32), 14, shape=(N, N))
    obj[rr, cc] = True
    assert not mask[obj].any()


def test_average_blur_and_the_wrong_range_does_nothing():
    im, crack, dust, bg = _scene(False)
    out = clean_background(im, gray_range=(0, 110), blur="average", blur_size=11)
    assert np.abs(out[dust] - bg).max() < np.abs(im[dust] - bg).max()
    # the paper's bright range on a dark background: only the object is in range, and the
    # opening/closing keeps it; the background (and the dust) is left alone
    m = background_mask(im, (150, 255))[0]
    assert not m[dust].any()


def test_transform_in_a_pipeline_and_save(tmp_path):
    rng = np.random.default_rng(0)
    train = np.stack([_scene()[0] + rng.normal(0, 0.01, (N, N, 3)) for _ in range(6)])
    train = np.clip(train, 0, 1).astype(np.float32)
    step = BackgroundCleanup(gray_range=(0, 110))
    out = step.transform(train)                 # no fit needed
    assert out.shape == train.shape and out.dtype == np.float32
    pipe = Pipeline([BackgroundCleanup(gray_range=(0, 110))], ReferenceGaussian()).fit(train)
    res = pipe.predict(train[:2])
    assert res.maps.shape == (2, N, N)
    path = step.save(tmp_path / "bg.npz")
    loaded = BackgroundCleanup.load(path)
    assert loaded.gray_range == (0.0, 110.0)
    np.testing.assert_array_equal(loaded.transform(train), out)


def test_errors():
    with pytest.raises(ValueError, match="low <= high"):
        BackgroundCleanup(gray_range=(200, 100))
    with pytest.raises(ValueError, match="odd"):
        BackgroundCleanup(kernel_size=8)
    with pytest.raises(ValueError, match="blur"):
        BackgroundCleanup(blur="gaussian")
    with pytest.raises(ValueError, match="gray_range"):
        BackgroundCleanup(gray_range=(0, 300))
