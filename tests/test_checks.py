import numpy as np
import pytest

from adkit.checks import (check_choice, check_image, check_images, check_in_range, check_masks,
                          check_positive_int, check_seed)


def test_accepts_batch_single_and_list():
    x = np.random.default_rng(0).random((2, 16, 16, 3)).astype(np.float32)
    assert check_images(x).shape == (2, 16, 16, 3)
    assert check_images(x[0]).shape == (1, 16, 16, 3)
    assert check_images([x[0], x[1]]).shape == (2, 16, 16, 3)
    assert check_images(x.astype(np.float64)).dtype == np.float32
    assert check_image(x[:1]).shape == (16, 16, 3)


@pytest.mark.parametrize("bad, err, words", [
    (np.zeros((2, 16, 16, 3), np.uint8), TypeError, "img_as_float32"),
    (np.full((2, 16, 16, 3), 2.0, np.float32), ValueError, "[0, 1]"),
    (np.full((2, 16, 16, 3), 200.0, np.float32), ValueError, "divide by 255"),
    (np.zeros((2, 16, 16), np.float32), ValueError, "gray2rgb"),
    (np.zeros((16, 16), np.float32), ValueError, "grayscale"),
    (np.zeros((2, 3, 16, 16), np.float32), ValueError, "channel-first"),
    (np.zeros((2, 16, 16, 4), np.float32), ValueError, "RGBA"),
    (np.zeros((0, 16, 16, 3), np.float32), ValueError, "empty"),
    ([], ValueError, "empty"),
    ([np.zeros((16, 16, 3)), np.zeros((20, 16, 3))], ValueError, "same size"),
    ([np.zeros((16, 16, 3)), np.zeros((16, 16))], ValueError, "channels"),
    (np.full((1, 16, 16, 3), np.nan, np.float32), ValueError, "NaN"),
    ("image.png", TypeError, "numpy array"),
])
def test_bad_images_give_clear_errors(bad, err, words):
    with pytest.raises(err, match=None) as info:
        check_images(bad)
    assert words in str(info.value)


def test_masks():
    m = check_masks(np.array([[0, 1], [1, 0]]))
    assert m.dtype == bool and m.shape == (1, 2, 2)
    with pytest.raises(TypeError, match="threshold"):
        check_masks(np.array([[0.2, 0.7]]))
    with pytest.raises(ValueError, match="expected"):
        check_masks(np.zeros((1, 2, 2), bool), shape=(1, 3, 3))


def test_scalar_checks():
    assert check_in_range(0.5, "x", 0, 1) == 0.5
    with pytest.raises(ValueError, match=r"x must be in \(0, 1\]"):
        check_in_range(0, "x", 0, 1, low_inclusive=False)
    with pytest.raises(TypeError):
        check_in_range("a", "x")
    assert check_positive_int(3, "k") == 3
    with pytest.raises(ValueError):
        check_positive_int(0, "k")
    with pytest.raises(TypeError):
        check_positive_int(2.5, "k")
    with pytest.raises(ValueError, match="one of"):
        check_choice("c", "mode", ["a", "b"])
    a = check_seed(3).random()
    assert a == check_seed(3).random()
    with pytest.raises(TypeError):
        check_seed("x")
