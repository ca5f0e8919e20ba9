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
