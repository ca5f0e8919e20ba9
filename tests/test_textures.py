import numpy as np
import pytest
from skimage.feature import match_template

from adkit.data import textures


def _locate(photo: np.ndarray, crop: np.ndarray) -> tuple[int, int]:
    """Where ``crop`` (in any of the 8 orientations) sits in ``photo`` (exactly)."""
    gray_photo = photo[..., 0]
    for code in range(8):
        t = np.rot90(crop[..., 0], code)
        if code >= 4:
            t = t[:, ::-1]
        corr = match_template(gray_photo, t)
        y, x = np.unravel_index(np.argmax(corr), corr.shape)
        s = t.shape[0]
        if np.allclose(gray_photo[y:y + s, x:x + s], t, atol=1e-6):
            return int(y), int(x)
    raise AssertionError("crop not found in the photograph")


@pytest.mark.parametrize("name", textures.TEXTURES)
def test_load_shapes_labels_and_masks(name):
    train, test = textures.load(name, n_train=6, n_test=10, size=64, seed=0)
    assert train.images.shape == (6, 64, 64, 3) and train.images.dtype == np.float32
    assert test.images.shape == (10, 64, 64, 3)
    assert 0 <= test.images.min() and test.images.max() <= 1
    assert not train.labels.any() and not train.masks.any()
    assert test.labels.tolist() == [0] * 5 + [1] * 5
    has_defect = test.masks.reshape(10, -1).any(1)
    assert np.array_equal(has_defect, test.labels.astype(bool))
    assert test.defect_types[:5] == ["good"] * 5
    assert set(test.defect_types[5:]) == set(textures.DEFECTS)
    assert test.names[0] == "good/000" and test.names[5] == f"{test.defect_types[5]}/000"
    # the photograph is grayscale: good crops have equal channels
    assert np.array_equal(train.images[..., 0], train.images[..., 1])


def test_masks_are_exact():
    """Outside its mask a defective crop is the clean crop; inside, the defect changed it."""
    kw = dict(n_train=2, n_test=16, size=64, seed=4)
    _, clean = textures.load("gravel", anomaly_ratio=0.0, **kw)
    _, test = textures.load("gravel", anomaly_ratio=0.5, **kw)
    assert not clean.labels.any()
    for i in np.flatnonzero(test.labels):
        m = test.masks[i]
        diff = np.abs(test.images[i] - clean.images[i]).max(-1)
        assert np.all(diff[~m] == 0), test.names[i]
        assert np.mean(diff[m] > 0) > 0.9, test.names[i]
        assert m.sum() >= 20, test.names[i]
    # a colour stain on a gray photograph: only the stain has colour
    for i in [j for j, t in enumerate(test.defect_types) if t == "color"]:
        spread = np.ptp(test.images[i], axis=-1)
        assert spread[test.masks[i]].mean() > 0.1 and spread[~test.masks[i]].max() == 0


def test_train_and_test_come_from_disjoint_parts_of_the_photo():
    photo = textures.photo("grass")
    h, w = photo.shape[:2]
    train, test = textures.load("grass", n_train=4, n_test=4, size=48, seed=1,
                                anomaly_ratio=0.0)
    for crop in test.images:
        y, x = _locate(photo, crop)
        assert y >= h // 2 and x >= w // 2          # inside the test quadrant
    for crop in train.images:
        y, x = _locate(photo, crop)
        assert y + 48 <= h // 2 or x + 48 <= w // 2  # never touches it


def test_deterministic_by_seed_and_independent_of_test_settings():
    a = textures.load("brick", n_train=4, n_test=6, size=48, seed=7)
    b = textures.load("brick", n_train=4, n_test=6, size=48, seed=7)
    c = textures.load("brick", n_train=4, n_test=6, size=48, seed=8)
    d = textures.load("brick", n_train=4, n_test=2, size=48, seed=7, defects=["blur"])
    assert np.array_equal(a[0].images, b[0].images)
    assert np.array_equal(a[1].images, b[1].images) and np.array_equal(a[1].masks, b[1].masks)
    assert not np.array_equal(a[0].images, c[0].images)
    assert np.array_equal(a[0].images, d[0].images)   # train unchanged by test settings
    assert d[1].defect_types == ["good", "blur"]


def test_defect_subset_ratio_and_large_size():
    _, test = textures.load("gravel", n_train=1, n_test=5, size=32, seed=0,
                            anomaly_ratio=0.8, defects=["scratch", "patch"])
    assert test.defect_types == ["good", "scratch", "scratch", "patch", "patch"]
    train, test = textures.load("gravel", n_train=1, n_test=2, size=300, seed=0)
    assert train.images.shape == (1, 300, 300, 3) and test.masks.shape == (2, 300, 300)


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="unknown texture 'bricks'.*'brick', 'grass', 'gravel'"):
        textures.load("bricks")
    with pytest.raises(ValueError, match="defects must be .* among"):
        textures.load("brick", defects=["crack"])
    with pytest.raises(ValueError, match="anomaly_ratio"):
        textures.load("brick", anomaly_ratio=1.5)
    with pytest.raises(ValueError, match="size must be >= 16"):
        textures.load("brick", size=4)
