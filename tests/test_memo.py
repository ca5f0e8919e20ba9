import threading
from dataclasses import dataclass

import numpy as np
import pytest

from adkit import memo


@dataclass
class _Box:
    images: np.ndarray
    names: list


def test_once_computes_once_per_argument_values():
    memo.clear()
    calls = []

    def fit(box, k=1):
        calls.append(k)
        return {"k": k, "sum": float(box.images.sum())}

    a = _Box(np.ones((2, 3), np.float32), ["x", "y"])
    same = _Box(np.ones((2, 3), np.float32), ["x", "y"])     # equal values, another object
    first = memo.once(fit, a, k=2)
    assert memo.once(fit, same, k=2) is first and calls == [2]
    memo.once(fit, a, k=3)                                   # another setting
    memo.once(fit, _Box(np.zeros((2, 3), np.float32), ["x", "y"]), k=2)   # other data
    assert calls == [2, 3, 2]
    memo.clear()
    memo.once(fit, a, k=2)
    assert calls == [2, 3, 2, 2]


def test_once_waits_for_a_concurrent_computation():
    memo.clear()
    started, release, calls = threading.Event(), threading.Event(), []

    def slow():
        calls.append(1)
        started.set()
        release.wait(5)
        return object()

    out = []
    t1 = threading.Thread(target=lambda: out.append(memo.once(slow)))
    t1.start()
    started.wait(5)
    t2 = threading.Thread(target=lambda: out.append(memo.once(slow)))
    t2.start()
    release.set()
    t1.join(5)
    t2.join(5)
    assert len(calls) == 1 and out[0] is out[1]


def test_fingerprint_tells_values_apart_and_refuses_unknown_types():
    assert memo.fingerprint(np.zeros(3)) != memo.fingerprint(np.zeros(3, np.float32))
    assert memo.fingerprint({"a": 1, "b": 2}) == memo.fingerprint({"b": 2, "a": 1})
    assert memo.fingerprint([1]) != memo.fingerprint((1,))
    with pytest.raises(TypeError, match="cannot fingerprint"):
        memo.fingerprint(object())
