import numpy as np
import pytest

from adkit.data import Split


def make(n=6, size=8):
    rng = np.random.default_rng(0)
    masks = np.zeros((n, size, size), bool)
    masks[n // 2:, 2:4, 2:4] = True
    return Split(rng.random((n, size, size, 3)).astype(np.float32), masks)


def test_labels_and_defaults_from_masks():
    s = make()
    assert s.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert s.defect_types[:3] == ["good"] * 3
    assert len(s) == 6 and s.size == (8, 8)


def test_subset_good_anomalous_split():
    s = make()
    assert len(s.good) == 3 and s.good.labels.sum() == 0
    assert len(s.anomalous) == 3 and s.anomalous.labels.min() == 1
    rest, held = s.split(0.34, seed=0)
    assert len(rest) + len(held) == 6 and len(held) == 2
    assert set(rest.names).isdisjoint(held.names)
    assert s[1:3].names == s.names[1:3]
    both = Split.concatenate([s.good, s.anomalous])
    assert len(both) == 6


def test_bad_split_raises():
    with pytest.raises(ValueError, match="one entry per image"):
        Split(np.zeros((2, 8, 8, 3), np.float32), names=["a"])
    with pytest.raises(ValueError, match="expected"):
        Split(np.zeros((2, 8, 8, 3), np.float32), masks=np.zeros((2, 4, 4), bool))


def test_has_mask_marks_unknown_masks_and_follows_subsets():
    s = make()
    assert s.has_mask.all() and "without mask" not in repr(s)        # masks given
    imgs = s.images
    t = Split(imgs, labels=[0, 0, 1, 1, 0, 1])                       # labels, no masks
    assert t.has_mask.tolist() == [True, True, False, False, True, False]
    assert not t.masks.any() and "3 without mask" in repr(t)
    assert t[t.has_mask].labels.tolist() == [0, 0, 0]
    assert t.anomalous.has_mask.tolist() == [False] * 3
    assert t.good.has_mask.all()
    both = Split.concatenate([s, t])
    assert both.has_mask.tolist() == [True] * 6 + t.has_mask.tolist()
    rest, held = t.split(0.5, seed=0)
    assert sorted(rest.names + held.names) == sorted(t.names)
    assert all(t.has_mask[t.names.index(n)] == h for n, h in zip(held.names, held.has_mask))


def test_has_mask_is_checked():
    s = make()
    with pytest.raises(ValueError, match="has_mask needs one True/False per image"):
        Split(s.images, s.masks, has_mask=[True, False])
    with pytest.raises(ValueError, match="defect pixels on images whose has_mask is False"):
        Split(s.images, s.masks, has_mask=[True] * 5 + [False])
