"""Results computed once: per Python process (:func:`once`) and on disk (:func:`cached_fit`).

``panel serve notebooks/07_compare_all.ipynb`` runs the notebook once per browser
session, in one server process: with ``once(compare, ...)`` in place of
``compare(...)`` the first session fits the methods and every later one (twenty
students, a reloaded page, a re-run cell in Jupyter) gets the same fitted results at
once. The key is a fingerprint of the function and of the *values* of its arguments
(the bytes of numpy arrays, the fields of a dataclass such as a ``Split``), so
changing a setting or the data computes anew.

**Train once.** :func:`cached_fit` keeps fitted models on disk, so a lesson reuses
the network an earlier lesson trained (notebook 03 takes notebook 02's N2N instead of
training it again for a minute)::

    from adkit.memo import cached_fit
    n2n = cached_fit(N2N(pairing="images", seed=0), train.images)   # fits, saves
    n2n = cached_fit(N2N(pairing="images", seed=0), train.images)   # loads

A model is stored as ``<cache folder>/<key>.npz`` (the estimator's own
:meth:`~adkit.estimator.Estimator.save`, written atomically). The key is a fingerprint
of the class, its parameters (the seed among them), the training data and adkit's
code (every module a fit may run), so any change of these fits anew. The cache folder is ``$ADKIT_CACHE`` when that
variable is set, else ``$XDG_CACHE_HOME/adkit``, else ``~/.cache/adkit``
(:func:`default_cache_dir`); :func:`clear_cache` empties it.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import pathlib
import re
import threading
import warnings

import numpy as np

__all__ = ["once", "fingerprint", "clear", "cached_fit", "cache_key", "default_cache_dir",
           "clear_cache", "IGNORED_PARAMS"]

#: parameters that change how a fit runs, not what it learns: left out of the key
#: (a model fitted on a GPU is reused on a CPU; a progress bar changes nothing)
IGNORED_PARAMS = ("progress", "device")
#: the files the cache writes: ``<class name, lower case>-<24 hex digits>.npz``
_CACHE_FILE = re.compile(r"[a-z0-9_]+-[0-9a-f]{24}\.npz")

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


# -- train once: fitted models on disk ------------------------------------------------
def default_cache_dir() -> pathlib.Path:
    """The folder of :func:`cached_fit`: ``$ADKIT_CACHE`` when set, else
    ``$XDG_CACHE_HOME/adkit``, else ``~/.cache/adkit`` (created on first use)."""
    env = os.environ.get("ADKIT_CACHE")
    if env:
        return pathlib.Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = pathlib.Path(xdg).expanduser() if xdg else pathlib.Path.home() / ".cache"
    return base / "adkit"


#: parts of adkit that never change what a fit learns (they show, check or compare results)
_NOT_FITTING = ("viz.py", "widgets.py", "cli.py", "__main__.py", "metrics.py", "bench/",
                "exercises/")


@functools.lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    """A digest of the source of the modules of adkit that fitting may run (all but
    those that show, check or compare results), computed once per process: an edited or upgraded adkit never
    loads a model fitted by another code."""
    from . import __version__
    root = pathlib.Path(__file__).resolve().parent
    h = hashlib.sha256(f"adkit {__version__};".encode())
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(_NOT_FITTING):
            continue
        h.update(rel.encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()


def _describe(estimator) -> dict:
    """Class and parameters of an estimator, nested estimators included, without the
    :data:`IGNORED_PARAMS`."""
    from .estimator import Estimator

    def value(v):
        if isinstance(v, Estimator):
            return _describe(v)
        if isinstance(v, (list, tuple)):
            return type(v)(value(x) for x in v)
        return v

    cls = type(estimator)
    params = {k: value(v) for k, v in estimator.get_params().items()
              if k not in IGNORED_PARAMS}
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "params": params}


def _training_data(train):
    """What the key fingerprints of the training data: the images of a Split, else the
    array (or list of arrays) itself."""
    images = getattr(train, "images", None)
    if isinstance(images, np.ndarray):
        return images
    if isinstance(train, (list, tuple)):
        return [np.asarray(x) for x in train]
    return np.asarray(train)


def cache_key(estimator, train, **fit_kwargs) -> str:
    """The name (without ``.npz``) under which :func:`cached_fit` stores ``estimator``
    fitted on ``train``: the lower-case class name and 24 hex digits of a fingerprint
    of the class, its parameters (but :data:`IGNORED_PARAMS`), the training data, the
    other arguments of ``fit`` and adkit's code."""
    digest = fingerprint(_describe(estimator), _training_data(train), fit_kwargs,
                         _code_fingerprint())
    return f"{type(estimator).__name__.lower()}-{digest[:24]}"


def cached_fit(estimator, train, *, cache_dir: str | os.PathLike | None = None,
               **fit_kwargs):
    """``estimator.fit(train)``, or the same model fitted earlier, loaded from disk.

    Parameters
    ----------
    estimator : Estimator
        An unfitted detector or normalization step (``N2N(seed=0)``, ``KNN()``...).
    train : array (N, H, W, 3), list of images, or a Split
        The training images, as ``fit`` takes them.
    cache_dir : path, optional
        Where models are kept; default :func:`default_cache_dir` (``$ADKIT_CACHE``, else
        ``~/.cache/adkit``).
    **fit_kwargs
        Passed to ``fit`` (and part of the key).

    Returns
    -------
    The fitted estimator: ``estimator`` itself after a fit, or a loaded copy, so use
    the value returned. A loaded copy takes ``progress`` and ``device`` from
    ``estimator``.

    The file is ``<cache_dir>/<key>.npz`` with the key of :func:`cache_key`. A file
    that cannot be loaded (damaged, truncated, from another version) is fitted again
    and replaced, with a warning. A fit stopped early (Ctrl-C in a training loop:
    :class:`~adkit.estimator.FitInterrupted`) is returned but not stored. Saving is
    atomic, so two processes fitting the same model at once leave one complete file.
    """
    from .estimator import Estimator, FitInterrupted, ModelFileError
    if not isinstance(estimator, Estimator):
        raise TypeError(f"cached_fit takes an adkit estimator (a detector or a "
                        f"normalization step), got {type(estimator).__name__}.")
    folder = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else \
        default_cache_dir()
    path = folder / f"{cache_key(estimator, train, **fit_kwargs)}.npz"
    if path.exists():
        try:
            model = type(estimator).load(path)
        except (ModelFileError, TypeError) as e:
            warnings.warn(f"the cached model {path} cannot be loaded ({e}); fitting "
                          f"{type(estimator).__name__} again and replacing it.",
                          stacklevel=2)
        else:
            for name in IGNORED_PARAMS:
                if hasattr(estimator, name) and hasattr(model, name):
                    setattr(model, name, getattr(estimator, name))
            return model
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        estimator.fit(train, **fit_kwargs)
    for w in caught:          # shown to the caller as if fit had warned directly
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    if any(issubclass(w.category, FitInterrupted) for w in caught):
        warnings.warn(f"{type(estimator).__name__}'s fit was interrupted: the model is "
                      "returned as it is, but not stored in the cache.", stacklevel=2)
        return estimator
    folder.mkdir(parents=True, exist_ok=True)
    estimator.save(path)
    return estimator


def clear_cache(cache_dir: str | os.PathLike | None = None) -> int:
    """Delete the models :func:`cached_fit` stored (in ``cache_dir``, default
    :func:`default_cache_dir`); returns how many files were removed.

    Only the cache's own files go (``<class>-<key>.npz`` and the temporary files of an
    interrupted save); the folder is removed when nothing else is left in it.
    """
    folder = pathlib.Path(cache_dir).expanduser() if cache_dir is not None else \
        default_cache_dir()
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.iterdir():
        name = path.name
        ours = _CACHE_FILE.fullmatch(name) or (
            name.startswith(".") and name.endswith(".tmp")
            and _CACHE_FILE.fullmatch(name[1:].rsplit(".", 2)[0]))
        if ours and path.is_file():
            path.unlink()
            removed += 1
    try:
        folder.rmdir()
    except OSError:           # something else lives there: leave the folder
        pass
    return removed
