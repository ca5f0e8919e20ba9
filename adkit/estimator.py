"""The estimator contract shared by normalization steps and detectors.

In the spirit of scikit-learn: every setting is a constructor keyword, validated in
the constructor and stored under its own name; what ``fit`` learns lives in
attributes ending with ``_``.

**State hooks.** A subclass implements one pair of hooks:

- ``_get_state() -> dict``: its fitted attributes, as nested dicts of numpy arrays,
  torch tensors, numbers, strings and lists;
- ``_set_state(state)``: restore them from what a file held, **checking** every
  value first (shapes against the parameters, dtypes, finite values) with the
  ``state_*`` helpers of this module, so a damaged or tampered file fails at load
  with a :class:`ModelFileError` instead of later inside a broadcast.

The base classes wrap the hooks (:meth:`Estimator._export_state` /
:meth:`Estimator._import_state`): a :class:`~adkit.models.base.Detector` adds the
training image size, and the object is marked fitted in one place
(:meth:`Estimator._mark_fitted`). A composite (Pipeline, Calibrated) saves and
restores its parts through ``part._export_state()`` / ``part._import_state()``.

**File format** (``adkit-estimator-v2``). One ``.npz`` archive (read with
``allow_pickle=False``: a saved model never carries code) holding

- ``__header__``: UTF-8 JSON as uint8 bytes, a dict with keys ``format``
  (``"adkit-estimator-v2"``), ``adkit_version``, ``class`` (class name),
  ``module`` (the module defining the class, e.g. ``"adkit.models.knn"``),
  ``params`` (constructor keywords; a nested estimator is
  ``{"__estimator__": {"class", "module", "params"}}``, a list of them
  ``{"__estimators__": [...]}``) and ``state`` (``null`` when not fitted, else the
  fitted state with each array replaced by ``{"__array__": "a/b"}`` and each dict by
  ``{"__dict__": {...}}``);
- ``s/a/b``: the arrays of the state.

On load only modules under ``adkit.`` are imported (a class defined elsewhere loads
only when its module was already imported by the user). Files of the previous
format ``adkit-estimator-v1`` (no ``module`` keys, same layout otherwise) are still
read: their classes are looked up by name in :mod:`adkit.models` and
:mod:`adkit.normalize`.
"""
from __future__ import annotations

import importlib
import inspect
import json
import numbers
import os
import re
import uuid
import warnings
from typing import Any

import numpy as np

__all__ = ["Estimator", "NotFittedError", "ModelFileError", "FitInterrupted", "REGISTRY", "flatten_state",
           "unflatten_state", "state_array", "state_int", "state_ints", "state_float",
           "state_floats", "state_dict", "load_module_state"]

#: every Estimator subclass by class name (the last one defined wins)
REGISTRY: dict[str, type] = {}

_FORMAT = "adkit-estimator-v2"
_OLD_FORMATS = ("adkit-estimator-v1",)
#: a header is a few kB; more than this is not a file written by adkit
_MAX_HEADER_BYTES = 16 * 2 ** 20
#: deeper nesting than this is not a file written by adkit (and would exhaust the stack)
_MAX_DEPTH = 200
#: modules that load may import: adkit's own, no private ones (``adkit.__main__``...)
_MODULE_RE = re.compile(r"adkit(\.[A-Za-z][A-Za-z0-9_]*)+")
_RESAVE = ("The file is damaged, incomplete or was not written by an adkit model's "
           ".save(): use an intact copy, or fit the model again and .save() it.")


class NotFittedError(RuntimeError):
    """Raised when predict/transform is called before fit."""


class FitInterrupted(UserWarning):
    """Warned when a fit is stopped early (Ctrl-C, a notebook's stop button) and keeps
    what it reached: the object is usable but not what a complete fit gives, so
    :func:`adkit.memo.cached_fit` does not store it."""


class ModelFileError(ValueError):
    """A file that cannot be loaded as a model saved by adkit.

    The message names the file, what is wrong with it and what to do. Raised by
    :meth:`Estimator.load` for every damaged, truncated, tampered, foreign or
    unsupported file (a missing file is a :class:`FileNotFoundError`).

    Attributes: ``problem`` (what is wrong), ``path`` (the file, or None while the
    state of a part is being checked) and ``hint`` (what to do).
    """

    def __init__(self, problem: str, path: str | None = None, hint: str | None = None):
        self.problem = str(problem)
        self.path = path
        self.hint = _RESAVE if hint is None else hint
        where = f"cannot load {path!r}" if path is not None else "cannot load the model"
        super().__init__(f"{where}: {self.problem}. {self.hint}".rstrip())

    def __reduce__(self):  # picklable (e.g. across dask workers)
        return type(self), (self.problem, self.path, self.hint)


def _to_numpy(v):
    try:
        import torch
        if isinstance(v, torch.Tensor):
            return v.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    return v


def flatten_state(state: dict, prefix: str = "") -> tuple[dict, dict]:
    """Split a nested state into ``(arrays, meta)``: arrays keyed by 'a/b/c' paths,
    everything JSON-able kept in a nested ``meta`` dict."""
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    for k, v in state.items():
        if not isinstance(k, str) or "/" in k:
            raise ValueError(f"state keys must be strings without '/': {k!r}")
        key = f"{prefix}{k}"
        v = _to_numpy(v)
        if isinstance(v, dict):
            a, m = flatten_state(v, key + "/")
            arrays.update(a)
            meta[k] = {"__dict__": m}
        elif isinstance(v, np.ndarray):
            if v.dtype.hasobject:
                raise TypeError(f"state array {key!r} holds Python objects: it cannot be "
                                "saved without pickle.")
            arrays[key] = v
            meta[k] = {"__array__": key}
        elif isinstance(v, np.generic):
            meta[k] = v.item()
        else:
            json.dumps(v)  # raises a TypeError for anything that is not plain data
            meta[k] = v
    return arrays, meta


def unflatten_state(arrays: dict, meta: dict) -> dict:
    """Inverse of :func:`flatten_state`; a reference to a missing array, or a ``meta``
    that is not a dict, is a :class:`ModelFileError`."""
    if not isinstance(meta, dict):
        raise ModelFileError(f"a saved state is a {type(meta).__name__}, not a dict")
    out = {}
    for k, v in meta.items():
        if isinstance(v, dict) and "__array__" in v:
            key = v["__array__"]
            if not isinstance(key, str) or key not in arrays:
                raise ModelFileError(f"the state entry {k!r} refers to the array {key!r}, "
                                     "which the file does not hold")
            out[k] = arrays[key]
        elif isinstance(v, dict) and "__dict__" in v:
            out[k] = unflatten_state(arrays, v["__dict__"])
        else:
            out[k] = v
    return out


# -- checking a loaded state ----------------------------------------------------------
def _fmt_shape(shape) -> str:
    return "(" + ", ".join("*" if s is None else str(s) for s in shape) + \
        ("," if len(shape) == 1 else "") + ")"


def _get(state, key):
    if not isinstance(state, dict):
        raise ModelFileError(f"the saved state is a {type(state).__name__}, not a dict")
    if key not in state:
        raise ModelFileError(f"the saved state lacks {key!r}")
    return state[key]


def state_array(state: dict, key: str, *, shape=None, dtype=np.float32, finite: bool = True,
                min_value: float | None = None, max_value: float | None = None,
                positive: bool = False) -> np.ndarray:
    """``state[key]`` checked and returned as a C-contiguous array of ``dtype``.

    ``shape`` is a tuple of ints (that size) or None (any size); ``finite`` refuses
    NaN and infinities; ``min_value`` / ``max_value`` bound the values (inclusive),
    ``positive`` requires values > 0. Anything else raises :class:`ModelFileError`.
    """
    v = _get(state, key)
    if not isinstance(v, np.ndarray):
        raise ModelFileError(f"the saved {key!r} is a {type(v).__name__}, not an array")
    want = np.dtype(dtype)
    kinds = "fiu" if want.kind == "f" else ("iu" if want.kind in "iu" else want.kind)
    if v.dtype.kind not in kinds:
        raise ModelFileError(f"the saved {key!r} has dtype {v.dtype}, expected {want} "
                             "(numbers)")
    if shape is not None:
        shape = tuple(shape)
        if v.ndim != len(shape) or any(s is not None and int(s) != d
                                       for s, d in zip(shape, v.shape)):
            raise ModelFileError(f"the saved {key!r} has shape {tuple(v.shape)}, expected "
                                 f"{_fmt_shape(shape)}")
    if want.kind in "iu" and v.size:
        info = np.iinfo(want)
        if v.min() < info.min or v.max() > info.max:
            raise ModelFileError(f"the saved {key!r} holds values outside {want}")
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(v, dtype=want)
    if finite and want.kind == "f" and not np.isfinite(out).all():
        bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
        raise ModelFileError(f"the saved {key!r} holds {bad} NaN or infinite value(s)")
    if out.size and positive and not (out > 0).all():
        raise ModelFileError(f"the saved {key!r} must be > 0, its minimum is {out.min()}")
    if out.size and min_value is not None and out.min() < min_value:
        raise ModelFileError(f"the saved {key!r} must be >= {min_value}, its minimum is "
                             f"{out.min()}")
    if out.size and max_value is not None and out.max() > max_value:
        raise ModelFileError(f"the saved {key!r} must be <= {max_value}, its maximum is "
                             f"{out.max()}")
    return out


def _as_int(v, key, minimum, maximum):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise ModelFileError(f"the saved {key!r} holds {v!r}, expected an integer")
    v = int(v)
    if minimum is not None and v < minimum:
        raise ModelFileError(f"the saved {key!r} holds {v}, expected >= {minimum}")
    if maximum is not None and v > maximum:
        raise ModelFileError(f"the saved {key!r} holds {v}, expected <= {maximum}")
    return v


def state_int(state: dict, key: str, *, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """``state[key]`` checked to be an integer in [minimum, maximum]."""
    return _as_int(_get(state, key), key, minimum, maximum)


def state_ints(state: dict, key: str, *, length: int | None = None,
               minimum: int | None = None, maximum: int | None = None) -> list[int]:
    """``state[key]`` checked to be a list of ``length`` integers in [minimum, maximum]."""
    v = _get(state, key)
    if not isinstance(v, (list, tuple)):
        raise ModelFileError(f"the saved {key!r} is a {type(v).__name__}, expected a list "
                             "of integers")
    if length is not None and len(v) != length:
        raise ModelFileError(f"the saved {key!r} holds {len(v)} value(s), expected {length}")
    return [_as_int(x, key, minimum, maximum) for x in v]


def _as_float(v, key, finite):
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise ModelFileError(f"the saved {key!r} holds {v!r}, expected a number")
    v = float(v)
    if finite and not np.isfinite(v):
        raise ModelFileError(f"the saved {key!r} is {v}, expected a finite number")
    return v


def state_float(state: dict, key: str, *, finite: bool = True,
                minimum: float | None = None, maximum: float | None = None) -> float:
    """``state[key]`` checked to be a (finite) number in [minimum, maximum]."""
    v = _as_float(_get(state, key), key, finite)
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise ModelFileError(f"the saved {key!r} is {v}, expected a number in "
                             f"[{minimum}, {maximum}]")
    return v


def state_floats(state: dict, key: str, *, finite: bool = False,
                 default: list | None = None) -> list[float]:
    """``state[key]`` checked to be a list of numbers (e.g. a loss history);
    ``default`` when the key is absent and a default is given."""
    if default is not None and isinstance(state, dict) and key not in state:
        return list(default)
    v = _get(state, key)
    if not isinstance(v, (list, tuple)):
        raise ModelFileError(f"the saved {key!r} is a {type(v).__name__}, expected a list "
                             "of numbers")
    return [_as_float(x, key, finite) for x in v]


def state_dict(state: dict, key: str, keys=None) -> dict:
    """``state[key]`` checked to be a dict (with exactly the keys ``keys`` if given)."""
    v = _get(state, key)
    if not isinstance(v, dict):
        raise ModelFileError(f"the saved {key!r} is a {type(v).__name__}, not a dict")
    if keys is not None:
        want = sorted(str(k) for k in keys)
        if sorted(v) != want:
            raise ModelFileError(f"the saved {key!r} has entries {sorted(v)}, expected "
                                 f"{want} (from the parameters)")
    return v


def load_module_state(module, state: dict, key: str) -> None:
    """Load the weights ``state[key]`` (a dict name → array) into the torch ``module``
    built from the parameters, after checking that the names, shapes and dtypes match
    its ``state_dict()`` and that floating-point weights are finite."""
    import torch
    saved = state_dict(state, key)
    target = module.state_dict()
    missing = sorted(set(target) - set(saved))
    extra = sorted(set(saved) - set(target))
    if missing or extra:
        raise ModelFileError(
            f"the saved network weights {key!r} do not match the network built from the "
            f"parameters (missing {missing[:4]}{'...' if len(missing) > 4 else ''}, "
            f"unexpected {extra[:4]}{'...' if len(extra) > 4 else ''})")
    loaded = {}
    for name, t in target.items():
        dtype = torch.empty(0, dtype=t.dtype).numpy().dtype
        a = state_array(saved, name, shape=tuple(t.shape), dtype=dtype,
                        finite=t.is_floating_point())
        loaded[name] = torch.from_numpy(a)
    module.load_state_dict(loaded, strict=True)


def _check_depth(obj, limit: int = _MAX_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit`` (iteratively: no recursion)."""
    todo = [(obj, 1)]
    while todo:
        o, d = todo.pop()
        if d > limit:
            raise ModelFileError(f"its header is nested more than {limit} levels deep")
        if isinstance(o, dict):
            todo.extend((v, d + 1) for v in o.values())
        elif isinstance(o, list):
            todo.extend((v, d + 1) for v in o)


def _lookup_by_name(name: str):
    """The class ``name`` of :mod:`adkit.models` or :mod:`adkit.normalize` (their lazy
    tables name the module of every public estimator), or None."""
    for pkg in ("adkit.models", "adkit.normalize"):
        try:
            cls = getattr(importlib.import_module(pkg), name, None)
        except ImportError:  # pragma: no cover - a broken install
            cls = None
        if isinstance(cls, type) and issubclass(cls, Estimator):
            return cls
    return None


def _available_devices(cls, params: dict) -> dict:
    """``params`` read from a file, with a device that this machine lacks (a model
    saved on a GPU machine with ``device='cuda'``) replaced by None (a GPU when present,
    else the CPU), with a warning: the file stays loadable anywhere."""
    from .params import Device, alternatives, device_available
    out = dict(params)
    for k, c in getattr(cls, "_parameter_constraints", {}).items():
        cs = alternatives(c)
        v = out.get(k)
        if isinstance(v, str) and any(isinstance(x, Device) for x in cs) and \
                any(x.matches(None) for x in cs):
            why = device_available(v)
            if why is not None:
                warnings.warn(f"{cls.__name__} was saved with {k}={v!r}, but {why}: "
                              f"loaded with {k}=None (a GPU when present, else the CPU).",
                              stacklevel=4)
                out[k] = None
    return out


def _resolve_class(name, module) -> type:
    """The Estimator class ``name`` defined in ``module`` (None: a v1 file)."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ModelFileError(f"its class name {name!r} is not a Python identifier")
    known = REGISTRY.get(name)
    if module is None:  # adkit-estimator-v1: no module recorded
        cls = known or _lookup_by_name(name)
        if cls is None:
            raise ModelFileError(f"it holds an unknown estimator class {name!r}")
        return cls
    if not isinstance(module, str):
        raise ModelFileError(f"the module of class {name!r} is {module!r}, not a module name")
    if known is not None and known.__module__ == module:
        return known  # already imported (adkit's own, or a user's class): nothing to import
    if not _MODULE_RE.fullmatch(module):
        raise ModelFileError(
            f"it says class {name!r} is defined in module {module!r}, which is not one of "
            "adkit's modules: load only imports adkit's own modules (a file must never make "
            "Python import arbitrary code)",
            hint=f"If {name} is your own class, import its module before loading; otherwise "
                 "the file was not written by adkit, or was tampered with.")
    error = None
    try:
        cls = getattr(importlib.import_module(module), name, None)
    except ImportError as e:
        cls, error = None, e
    if not (isinstance(cls, type) and issubclass(cls, Estimator)):
        cls = _lookup_by_name(name)  # e.g. a class that moved to another module
    if cls is None:
        why = f"cannot be imported ({error})" if error else f"defines no estimator {name!r}"
        raise ModelFileError(f"it holds class {name!r} of module {module!r}, which {why}",
                             hint="The file may come from another version of adkit: "
                                  "load it with that version, or save the model again.")
    return cls


class Estimator:
    """Base of every fitted object in adkit (normalization steps and detectors)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        REGISTRY[cls.__name__] = cls

    # -- parameters ---------------------------------------------------------------
    #: the constraints of the constructor's keywords, declared once per class (see
    #: :mod:`adkit.params`): name -> a constraint, or a list of alternatives
    _parameter_constraints: dict = {}

    def _set_params(self, params: dict) -> None:
        """Check the constructor's keywords and store each under its own name.

        A constructor is declarative: ``def __init__(self, *, a=1, b=2):
        self._set_params(locals())``. Every keyword is checked against
        :attr:`_parameter_constraints` (:func:`adkit.params.validate_params`: numpy
        scalars become Python numbers, sequences tuples), then :meth:`_check_params`
        applies the rules that tie parameters together; errors name the class, the
        parameter, what is accepted and what was given.
        """
        from .params import InvalidParameterError, validate_params
        name = type(self).__name__
        values = {n: params[n] for n in self._param_names()}
        values = validate_params(self._parameter_constraints, values, name)
        try:
            self._check_params(values)
        except InvalidParameterError as e:
            if str(e).startswith(f"{name}: "):
                raise
            raise type(e)(f"{name}: {e}") from None
        for k, v in values.items():
            setattr(self, k, v)

    def _check_params(self, params: dict) -> None:
        """Hook: rules that tie parameters together (e.g. ``n_votes <= len(scales)``) and
        normalizations (``scales=3`` → ``(0, 1, 2)``), on the checked keywords
        ``params`` (modified in place). Raise :class:`adkit.params.ParameterValueError`
        (or ``ParameterTypeError``) with what was wrong and what to do."""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self) -> dict:
        """The constructor keywords of this object, as given (after validation)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self) -> str:
        sig = inspect.signature(type(self).__init__)
        parts = []
        for name, value in self.get_params().items():
            default = sig.parameters[name].default
            try:
                same = bool(value == default)
            except Exception:
                same = False
            if not same:
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    # -- fitted state -------------------------------------------------------------
    @property
    def is_fitted(self) -> bool:
        return getattr(self, "fitted_", False)

    def _mark_fitted(self) -> None:
        """The one place where an estimator becomes fitted (after fit or load)."""
        self.fitted_ = True

    def _check_fitted(self, what: str = "predict") -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet: call .fit(train_images) "
                f"before .{what}()."
            )

    # the one pair of hooks of every subclass
    def _get_state(self) -> dict:  # pragma: no cover - abstract
        """The fitted attributes: nested dict of arrays / tensors / numbers / strings."""
        raise NotImplementedError

    def _set_state(self, state: dict) -> None:  # pragma: no cover - abstract
        """Check and restore what :meth:`_get_state` returned (see the ``state_*``
        helpers of :mod:`adkit.estimator`); raise :class:`ModelFileError` on a value
        that does not fit the parameters."""
        raise NotImplementedError

    # what the base classes add around the hooks
    def _export_state(self) -> dict:
        """The fitted state as saved (the base's bookkeeping around :meth:`_get_state`);
        composites save their parts with it."""
        return self._get_state()

    def _import_state(self, state) -> None:
        """Restore :meth:`_export_state`'s output (checked) and mark the object fitted;
        composites restore their parts with it."""
        name = type(self).__name__
        if not isinstance(state, dict):
            raise ModelFileError(f"the saved state of {name} is a {type(state).__name__}, "
                                 "not a dict")
        try:
            self._set_state(state)
        except ModelFileError as e:
            raise ModelFileError(f"{name}: {e.problem}", hint=e.hint) from e.__cause__
        except MemoryError:
            raise
        except Exception as e:  # anything a hook did not foresee is still the file's fault
            raise ModelFileError(f"{name}: its saved state does not fit its parameters "
                                 f"({type(e).__name__}: {e})") from e
        self._mark_fitted()

    def _params_for_json(self) -> dict:
        params = {}
        for k, v in self.get_params().items():
            if isinstance(v, Estimator):
                params[k] = {"__estimator__": v._spec()}
            elif isinstance(v, (list, tuple)) and v and all(isinstance(x, Estimator) for x in v):
                params[k] = {"__estimators__": [x._spec() for x in v]}
            else:
                if isinstance(v, tuple):
                    v = list(v)
                try:
                    json.dumps(v)
                except TypeError as e:
                    raise TypeError(
                        f"parameter {k}={v!r} of {type(self).__name__} cannot be saved: "
                        "parameters must be numbers, strings, lists or estimators."
                    ) from e
                params[k] = v
        return params

    def _spec(self) -> dict:
        """Class, its module and parameters (no fitted state): enough to rebuild an
        unfitted copy in any process. A composite saves the state of its parts in
        its own state."""
        cls = type(self)
        return {"class": cls.__name__, "module": cls.__module__,
                "params": self._params_for_json()}

    def _to_dict(self) -> dict:
        return {**self._spec(), "state": self._export_state() if self.is_fitted else None}

    @staticmethod
    def _from_dict(d: dict, v1: bool = False) -> "Estimator":
        if not isinstance(d, dict):
            raise ModelFileError(f"an estimator entry of the header is a {type(d).__name__},"
                                 " not a dict")
        need = ("class", "params") if v1 else ("class", "module", "params")
        missing = [k for k in need if k not in d]
        if missing:
            raise ModelFileError(f"an estimator entry of the header lacks {missing}")
        cls = _resolve_class(d["class"], None if v1 else d["module"])
        if not isinstance(d["params"], dict):
            raise ModelFileError(f"the parameters of {cls.__name__} are a "
                                 f"{type(d['params']).__name__}, not a dict")

        def part(key, spec):  # a nested estimator: class and parameters (state: ours)
            if not isinstance(spec, dict):
                raise ModelFileError(f"the parameter {key!r} of {cls.__name__} holds a "
                                     f"{type(spec).__name__}, not an estimator entry")
            return Estimator._from_dict({**spec, "state": None}, v1)

        params = {}
        for k, v in d["params"].items():
            if isinstance(v, dict) and "__estimator__" in v:
                v = part(k, v["__estimator__"])
            elif isinstance(v, dict) and "__estimators__" in v:
                if not isinstance(v["__estimators__"], list):
                    raise ModelFileError(f"the parameter {k!r} of {cls.__name__} is not a "
                                         "list of estimators")
                v = [part(k, x) for x in v["__estimators__"]]
            params[k] = v
        params = _available_devices(cls, params)
        try:
            obj = cls(**params)
        except MemoryError:
            raise
        except Exception as e:  # the constructor's own validation (or worse)
            raise ModelFileError(f"its parameters do not make a {cls.__name__} "
                                 f"({type(e).__name__}: {e})") from e
        state = d.get("state")
        if state is not None:
            obj._import_state(state)
        return obj

    # -- persistence --------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> str:
        """Write parameters and fitted state to ``path`` (a ``.npz`` file); returns the path.

        The file holds only arrays and JSON: it is read back with ``allow_pickle=False``.
        It is written to a temporary file in the same folder, flushed to disk, then
        renamed onto ``path`` in one step: a save that fails or is killed half-way
        (full disk, Ctrl-C) leaves any previous file at ``path`` intact.
        """
        from . import __version__
        path = _check_path(path, "save")
        if not path.endswith(".npz"):
            path += ".npz"
        d = self._to_dict()
        state = d.pop("state")
        arrays, meta = flatten_state(state) if state is not None else ({}, None)
        header = {"format": _FORMAT, "adkit_version": __version__, **d, "state": meta}
        arrays = {f"s/{k}": v for k, v in arrays.items()}
        header_bytes = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        # through a symbolic link, replace the file it points to (not the link)
        target = os.path.realpath(path) if os.path.islink(path) else os.path.abspath(path)
        folder = os.path.dirname(target)
        os.makedirs(folder, exist_ok=True)
        # a new name in the same folder (so the rename stays on one file system),
        # created with the usual permissions (umask), unlike mkstemp's 0600
        tmp = os.path.join(folder, f".{os.path.basename(target)}.{uuid.uuid4().hex}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez_compressed(fh, __header__=header_bytes, **arrays)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        try:  # make the rename itself durable (POSIX); harmless where unsupported
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Estimator":
        """Read an object written by :meth:`save` (no pickle, no code is loaded).

        Works in any process: the classes are imported from the adkit modules the
        file names. A file that is not a complete, untampered model saved by adkit
        raises :class:`ModelFileError` (naming the file, what is wrong and what to do).
        """
        path = _check_path(path, "load")
        if not os.path.exists(path) and os.path.exists(path + ".npz"):
            path += ".npz"
        if not os.path.exists(path):
            raise FileNotFoundError(f"no saved model at {path!r}.")
        try:
            header, arrays = _read_file(path)
            fmt = header.get("format")
            if fmt != _FORMAT and fmt not in _OLD_FORMATS:
                raise ModelFileError(
                    f"it has the unknown format {fmt!r}; this adkit reads {_FORMAT!r} and "
                    f"{', '.join(map(repr, _OLD_FORMATS))}",
                    hint="A file written by a newer adkit needs that version: upgrade "
                         "adkit, or fit the model again and .save() it with this one.")
            missing = [k for k in ("class", "params", "state") if k not in header]
            if missing:
                raise ModelFileError(f"its header lacks {missing}")
            d = dict(header)
            if d["state"] is not None:
                d["state"] = unflatten_state(arrays, d["state"])
            obj = Estimator._from_dict(d, v1=fmt in _OLD_FORMATS)
        except ModelFileError as e:
            if e.path is not None:
                raise
            raise ModelFileError(e.problem, path, e.hint) from e.__cause__
        if not isinstance(obj, cls):
            raise TypeError(f"{path!r} holds a {type(obj).__name__}, not a {cls.__name__}: "
                            f"load it with {type(obj).__name__}.load (or Estimator.load).")
        return obj


def _check_path(path, what: str) -> str:
    """A file path (str or os.PathLike) as a str; a TypeError for anything else."""
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{what} takes a file path (a str or pathlib.Path), got "
                        f"{type(path).__name__}: {path!r}.")
    path = os.fspath(path)
    if not isinstance(path, str) or not path or "\x00" in path:
        raise ValueError(f"{what} takes a file path, got {path!r}.")
    return path


def _read_file(path: str) -> tuple[dict, dict]:
    """(header, arrays) of a file written by :meth:`Estimator.save`; ModelFileError
    (with ``path``) for anything else."""
    if os.path.isdir(path):
        raise ModelFileError("it is a folder, not a file", path,
                             "Pass the .npz file that .save() wrote.")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(8)
    except OSError as e:
        raise ModelFileError(f"it cannot be read ({e.strerror or e})", path,
                             "Check the file's permissions.") from e
    if not magic:
        raise ModelFileError("it is empty (0 bytes), e.g. a save that was interrupted", path)
    if magic.startswith(b"\x93NUMPY"):
        raise ModelFileError("it is a single numpy array (.npy), not a model saved by adkit",
                             path, "Load it with numpy.load; a model is saved with .save().")
    if magic[:1] == b"\x80":
        raise ModelFileError(
            "it looks like a pickle file: adkit never loads pickles, since unpickling can "
            "run arbitrary code", path,
            "Fit the model again and .save() it: adkit's files hold only arrays and JSON.")
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise ModelFileError(f"it is not a .npz archive (it starts with {magic!r})", path,
                             "Pass a .npz file written by an adkit model's .save().")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "__header__" not in f.files:
                raise ModelFileError(
                    "it is a zip/.npz archive without an adkit header (e.g. a torch "
                    "checkpoint or a numpy archive): not a model saved by adkit", path,
                    "Pass a .npz file written by an adkit model's .save().")
            size = f.zip.getinfo("__header__.npy").file_size
            if size > _MAX_HEADER_BYTES:
                raise ModelFileError(f"its header is {size} bytes, too large for a header "
                                     "written by adkit", path)
            raw = f["__header__"]
            arrays = {}
            for k in f.files:
                if k.startswith("s/"):
                    a = f[k]
                    if not isinstance(a, np.ndarray):
                        raise ModelFileError(f"its entry {k!r} is not a numpy array", path)
                    arrays[k[2:]] = a
    except ModelFileError:
        raise
    except MemoryError:
        raise
    except Exception as e:  # BadZipFile, zlib.error, EOFError, numpy's format errors...
        what = ("it holds a pickled Python object, and adkit never loads pickles "
                "(unpickling can run arbitrary code)" if "allow_pickle" in str(e) else
                f"it is damaged or truncated ({type(e).__name__}: {e})")
        raise ModelFileError(what, path) from e
    if not (isinstance(raw, np.ndarray) and raw.dtype == np.uint8 and raw.ndim == 1):
        raise ModelFileError("its header is not a byte string", path)
    try:
        header = json.loads(raw.tobytes().decode("utf-8"))
    except RecursionError:
        raise ModelFileError(f"its header is nested more than {_MAX_DEPTH} levels deep",
                             path) from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise ModelFileError(f"its header is not valid JSON ({e})", path) from e
    if not isinstance(header, dict):
        raise ModelFileError(f"its header is a JSON {type(header).__name__}, not an object",
                             path)
    if "format" not in header:
        raise ModelFileError("its header has no 'format': not a model saved by adkit", path)
    try:
        _check_depth(header)
    except ModelFileError as e:
        raise ModelFileError(e.problem, path) from None
    return header, arrays
