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
    out, mask = clean_background(im, gray_range=rng, blur="median", blur_size=9,
                                 return_mask=True)
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
    with pytest.raises(ValueError, match="kernel_size"):
        BackgroundCleanup(kernel_size=0)
    with pytest.raises(ValueError, match="threshold"):
        BackgroundCleanup(threshold="gray")
    with pytest.raises(ValueError, match="color"):
        clean_background(np.zeros((8, 8, 3), np.float32), color="hsv")
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
    out, mask = clean_background(im, gray_range=(0.5, 1.0), blur="median", blur_size=9,
                                 return_mask=True)
    assert mask[dust].all() and not mask[crack].any()
    np.testing.assert_allclose(out[dust], bg, atol=1e-6)
    step = BackgroundCleanup(gray_range=(np.float32(0.5), 1), blur="median", blur_size=9)
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


# -- Son et al. as written: every RGB channel in [150, 255], a greyscale blur, even windows
def test_paper_defaults():
    step = BackgroundCleanup()
    assert (step.gray_range, step.threshold, step.color) == (PAPER_GRAY_RANGE, "rgb", "gray")
    assert (step.blur, step.blur_size) == ("average", 11)   # the paper's best setting


def test_every_channel_is_thresholded_not_the_grey_level():
    """A red object on a white background: its grey level (0.69) lies in the paper's
    range [150/255, 1] but its green and blue (0.55) do not, so the per-channel threshold
    keeps it as object, where a grey-level threshold takes it for background."""
    im = np.full((N, N, 3), 0.9, np.float32)
    rr, cc = draw.disk((32, 32), 16, shape=(N, N))
    im[rr, cc] = (1.0, 0.55, 0.55)
    obj = np.zeros((N, N), bool)
    obj[rr, cc] = True
    rgb = background_mask(im, PAPER_GRAY_RANGE)[0]
    luma = background_mask(im, PAPER_GRAY_RANGE, threshold="luma")[0]
    assert not rgb[obj].any() and rgb[~obj].all()
    assert luma.all()                                  # the object erased as background
    out = clean_background(im)
    np.testing.assert_array_equal(out[obj], im[obj])   # the paper's threshold keeps it


@pytest.mark.parametrize("size", [11, 14])
def test_background_blurred_in_greyscale_even_windows(size):
    from scipy import ndimage
    rng = np.random.default_rng(0)
    im, crack, dust, bg = _scene(True)
    im = np.clip(im * [1.0, 0.97, 0.92] + rng.uniform(-0.03, 0.03, im.shape), 0, 1)
    im = im.astype(np.float32)
    out, mask = clean_background(im, blur_size=size, kernel_size=size, return_mask=True)
    gray = im @ np.array([0.299, 0.587, 0.114], np.float32)
    expected = ndimage.uniform_filter(gray, size, mode="reflect")   # average of the grey
    for c in range(3):                                 # the same grey in every channel
        np.testing.assert_allclose(out[..., c][mask], expected[mask], atol=1e-6)
    np.testing.assert_array_equal(out[~mask], im[~mask])
    assert mask[dust].all() and not mask[crack].any()
    step = BackgroundCleanup(kernel_size=size, blur_size=size)
    np.testing.assert_array_equal(step.transform(im)[0], out)
    rgb = clean_background(im, blur_size=size, kernel_size=size, color="rgb")
    assert np.abs(rgb[..., 0] - rgb[..., 2])[mask].min() > 0.03   # a cast kept per channel
