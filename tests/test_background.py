import numpy as np
import pytest
from skimage import draw

from adkit.models import Pipeline, ReferenceGaussian
from adkit.normalize import BackgroundCleanup, clean_background
from adkit.normalize.background import PAPER_GRAY_RANGE, background_mask

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
    # background grey level range: the paper's (150, 255) (8-bit) for a bright background
    rng = PAPER_GRAY_RANGE if bright else (0, 110 / 255)
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
    out = clean_background(im, gray_range=(0, 110 / 255), blur="average", blur_size=11)
    assert np.abs(out[dust] - bg).max() < np.abs(im[dust] - bg).max()
    # the paper's bright range on a dark background: only the object is in range, and the
    # opening/closing keeps it; the background (and the dust) is left alone
    m = background_mask(im, PAPER_GRAY_RANGE)[0]
    assert not m[dust].any()


def test_transform_in_a_pipeline_and_save(tmp_path):
    rng = np.random.default_rng(0)
    train = np.stack([_scene()[0] + rng.normal(0, 0.01, (N, N, 3)) for _ in range(6)])
    train = np.clip(train, 0, 1).astype(np.float32)
    step = BackgroundCleanup(gray_range=(0, 110 / 255))
    out = step.transform(train)                 # no fit needed
    assert out.shape == train.shape and out.dtype == np.float32
    pipe = Pipeline([BackgroundCleanup(gray_range=(0, 110 / 255))], ReferenceGaussian()).fit(train)
    res = pipe.predict(train[:2])
    assert res.maps.shape == (2, N, N)
    path = step.save(tmp_path / "bg.npz")
    loaded = BackgroundCleanup.load(path)
    assert loaded.gray_range == (0.0, 110 / 255)
    np.testing.assert_array_equal(loaded.transform(train), out)


def test_errors():
    with pytest.raises(ValueError, match="low <= high"):
        BackgroundCleanup(gray_range=(200 / 255, 100 / 255))
    with pytest.raises(ValueError, match="odd"):
        BackgroundCleanup(kernel_size=8)
    with pytest.raises(ValueError, match="blur"):
        BackgroundCleanup(blur="gaussian")
    with pytest.raises(ValueError, match="gray_range"):
        BackgroundCleanup(gray_range=(0, 300))


def test_gray_range_is_on_the_image_scale():
    """Issue 12: ``gray_range=(0.5, 1.0)`` silently selected nothing (it was read on the
    8-bit scale). Grey levels are now on the [0, 1] scale of the images, and 8-bit values
    are refused with the conversion, never read on another scale."""
    assert PAPER_GRAY_RANGE == (150 / 255, 1.0)
    assert BackgroundCleanup().gray_range == PAPER_GRAY_RANGE
    im, crack, dust, bg = _scene(True)               # bright background, dark dust
    out, mask = clean_background(im, gray_range=(0.5, 1.0), return_mask=True)
    assert mask[dust].all() and not mask[crack].any()
    np.testing.assert_allclose(out[dust], bg, atol=1e-6)
    step = BackgroundCleanup(gray_range=(np.float32(0.5), 1))
    assert step.gray_range == (0.5, 1.0) and type(step.gray_range[1]) is float
    np.testing.assert_array_equal(step.transform(im)[0], out)
    for bad in [(150, 255), (0, 100)]:
        with pytest.raises(ValueError, match=r"divide 8-bit levels by 255"):
            BackgroundCleanup(gray_range=bad)
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            clean_background(im, gray_range=bad)
    with pytest.raises(TypeError, match="gray_range"):
        BackgroundCleanup(gray_range=0.5)
    with pytest.raises(ValueError, match="2 values"):
        BackgroundCleanup(gray_range=(0.1, 0.2, 0.3))
