"""Results computed once per Python process and handed to whoever asks again.

``panel serve notebooks/07_compare_all.ipynb`` runs the notebook once per browser
session, in one server process: with ``once(compare, ...)`` in place of
``compare(...)`` the first session fits the methods and every later one (twenty
students, a reloaded page, a re-run cell in Jupyter) gets the same fitted results at
once. The key is a fingerprint of the function and of the *values* of its arguments
(the bytes of numpy arrays, the fields of a dataclass such as a ``Split``), so
changing a setting or the data computes anew.
"""
from __future__ import annotations

import dataclasses
import hashlib
import threading

import numpy as np

__all__ = ["once", "fingerprint", "clear"]

_RESULTS: dict[str, object] = {}
_LOCKS: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()


def _feed(h, obj) -> None:
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    elif isinstance(obj, np.ndarray):
        h.update(f"ndarray:{obj.dtype.str}:{obj.shape};".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, np.generic):
        _feed(h, obj.item())
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}[{len(obj)}];".encode())
        for item in obj:
            _feed(h, item)
    elif isinstance(obj, dict):
        h.update(f"dict[{len(obj)}];".encode())
        for k in sorted(obj, key=repr):
            _feed(h, k)
            _feed(h, obj[k])
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(f"{type(obj).__module__}.{type(obj).__qualname__};".encode())
        for f in dataclasses.fields(obj):
            _feed(h, f.name)
            _feed(h, getattr(obj, f.name))
    elif callable(obj) and hasattr(obj, "__qualname__"):
        h.update(f"callable:{obj.__module__}.{obj.__qualname__};".encode())
    else:
        raise TypeError(f"once() cannot fingerprint an argument of type {type(obj).__name__}: "
                        "pass numbers, strings, numpy arrays, lists, dicts or dataclasses "
                        "(e.g. a Split).")


def fingerprint(*args, **kwargs) -> str:
    """A hex digest of the values of ``args`` and ``kwargs``."""
    h = hashlib.sha256()
    _feed(h, list(args))
    _feed(h, kwargs)
    return h.hexdigest()


def once(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, computed once per process for these argument values.

    Concurrent callers with the same arguments wait for the first one instead of
    computing twice. The result is shared, not copied: treat it as read-only.
    """
    key = fingerprint(fn, *args, **kwargs)
    with _GUARD:
        if key in _RESULTS:
            return _RESULTS[key]
        lock = _LOCKS.setdefault(key, threading.Lock())
    with lock:
        if key not in _RESULTS:
            _RESULTS[key] = fn(*args, **kwargs)
    return _RESULTS[key]


def clear() -> None:
    """Forget every shared result (frees their memory)."""
    with _GUARD:
        _RESULTS.clear()
        _LOCKS.clear()
