"""Every detector of adkit.models.METHODS honours the one contract of adkit.models.base."""
import numpy as np
import pytest

import adkit
from adkit.estimator import NotFittedError
from adkit.models import METHODS
from adkit.bench import make_detector

#: the smallest settings that still exercise each method end to end
FAST = {"reference": {}, "selfsim": {}, "gaussian": {}, "knn": {},
        "uflow": {"epochs": 1}, "aesc": {"epochs": 1}}


@pytest.fixture(scope="module")
def pill():
    return adkit.data.load("synthetic/pill", n_train=10, n_test=4, size=64, seed=0)


def test_every_method_is_covered():
    assert set(FAST) == set(METHODS)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_contract(method, pill, tmp_path):
    train, test = pill
    det = make_detector(method, FAST[method])
    with pytest.raises(NotFittedError, match="fit"):
        det.predict(test.images)
    assert det.fit(train) is det
    res = det.predict(test.images)
    n, h, w = test.images.shape[:3]
    assert res.maps.shape == (n, h, w) and res.maps.dtype == np.float32
    assert np.isfinite(res.maps).all()
    assert res.scores.shape == (n,) and np.isfinite(res.scores).all()
    if res.log_nfa is not None:
        assert res.log_nfa.shape == (n, h, w)
        assert res.segment(1.0).shape == (n, h, w)
    # exact round trip through a file
    again = type(det).load(det.save(tmp_path / method))
    np.testing.assert_allclose(again.predict(test.images).maps, res.maps, rtol=1e-5, atol=1e-6)
    # clear errors on bad input, not deep inside numpy or torch
    with pytest.raises(ValueError, match="size"):
        det.predict(np.zeros((1, 32, 32, 3), np.float32))
    with pytest.raises((TypeError, ValueError), match="float"):
        det.predict((test.images * 255).astype(np.uint8))
