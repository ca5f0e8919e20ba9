"""The estimator contract shared by normalization steps and detectors.

In the spirit of scikit-learn: every setting is a constructor keyword, validated in
the constructor and stored under its own name; what ``fit`` learns lives in
attributes ending with ``_``. Saving writes one ``.npz`` file holding the class
name, the constructor parameters (as JSON) and the fitted arrays; loading reads it
back with ``allow_pickle=False``, so a saved model never carries code.

Subclasses implement ``_get_state() -> dict`` (nested dicts of numpy arrays,
torch tensors, numbers, strings, lists) and ``_set_state(state)``.
"""
from __future__ import annotations

import inspect
import json
import os
from typing import Any

import numpy as np

__all__ = ["Estimator", "NotFittedError", "REGISTRY", "flatten_state", "unflatten_state"]

#: every Estimator subclass by class name, so ``Estimator.load`` can rebuild it
REGISTRY: dict[str, type] = {}

_FORMAT = "adkit-estimator-v1"


class NotFittedError(RuntimeError):
    """Raised when predict/transform is called before fit."""


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
        if "/" in k:
            raise ValueError(f"state keys may not contain '/': {k!r}")
        key = f"{prefix}{k}"
        v = _to_numpy(v)
        if isinstance(v, dict):
            a, m = flatten_state(v, key + "/")
            arrays.update(a)
            meta[k] = {"__dict__": m}
        elif isinstance(v, np.ndarray):
            arrays[key] = v
            meta[k] = {"__array__": key}
        elif isinstance(v, np.generic):
            meta[k] = v.item()
        else:
            json.dumps(v)  # raises a TypeError for anything that is not plain data
            meta[k] = v
    return arrays, meta


def unflatten_state(arrays: dict, meta: dict) -> dict:
    out = {}
    for k, v in meta.items():
        if isinstance(v, dict) and "__array__" in v:
            out[k] = arrays[v["__array__"]]
        elif isinstance(v, dict) and "__dict__" in v:
            out[k] = unflatten_state(arrays, v["__dict__"])
        else:
            out[k] = v
    return out


class Estimator:
    """Base of every fitted object in adkit (normalization steps and detectors)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        REGISTRY[cls.__name__] = cls

    # -- parameters ---------------------------------------------------------------
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

    def _check_fitted(self, what: str = "predict") -> None:
        if not self.is_fitted:
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet: call .fit(train_images) "
                f"before .{what}()."
            )

    def _get_state(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def _set_state(self, state: dict) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

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
        """Class and parameters (no fitted state): enough to rebuild an unfitted copy.
        A composite (e.g. a Pipeline) saves the state of its parts in its own state."""
        return {"class": type(self).__name__, "params": self._params_for_json()}

    def _to_dict(self) -> dict:
        return {**self._spec(), "state": self._get_state() if self.is_fitted else None}

    @staticmethod
    def _from_dict(d: dict) -> "Estimator":
        cls = REGISTRY.get(d["class"])
        if cls is None:
            import adkit.models  # noqa: F401  (registers every detector)
            import adkit.normalize  # noqa: F401
            cls = REGISTRY.get(d["class"])
        if cls is None:
            raise ValueError(f"unknown estimator class {d['class']!r} in saved file.")
        params = {}
        for k, v in d["params"].items():
            if isinstance(v, dict) and "__estimator__" in v:
                v = Estimator._from_dict(v["__estimator__"])
            elif isinstance(v, dict) and "__estimators__" in v:
                v = [Estimator._from_dict(x) for x in v["__estimators__"]]
            params[k] = v
        obj = cls(**params)
        if d.get("state") is not None:
            obj._set_state(d["state"])
            obj.fitted_ = True
        return obj

    # -- persistence --------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> str:
        """Write parameters and fitted state to ``path`` (a ``.npz`` file); returns the path.

        The file holds only arrays and JSON: it is read back with ``allow_pickle=False``.
        """
        path = os.fspath(path)
        if not path.endswith(".npz"):
            path += ".npz"
        d = self._to_dict()
        state = d.pop("state")
        arrays, meta = flatten_state(state) if state is not None else ({}, None)
        header = {"format": _FORMAT, **d, "state": meta}
        arrays = {f"s/{k}": v for k, v in arrays.items()}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        np.savez_compressed(path, __header__=np.frombuffer(
            json.dumps(header).encode(), dtype=np.uint8), **arrays)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Estimator":
        """Read an object written by :meth:`save` (no pickle, no code is loaded)."""
        path = os.fspath(path)
        if not os.path.exists(path) and os.path.exists(path + ".npz"):
            path += ".npz"
        if not os.path.exists(path):
            raise FileNotFoundError(f"no saved model at {path!r}.")
        with np.load(path, allow_pickle=False) as f:
            if "__header__" not in f.files:
                raise ValueError(f"{path!r} is not a model saved by adkit.")
            header = json.loads(f["__header__"].tobytes().decode())
            arrays = {k[2:]: f[k] for k in f.files if k.startswith("s/")}
        if header.get("format") != _FORMAT:
            raise ValueError(f"{path!r} has unknown format {header.get('format')!r}.")

        def restore(d):
            if d.get("state") is not None:
                d = dict(d, state=unflatten_state(arrays, d["state"]))
            return d

        obj = Estimator._from_dict(restore(header))
        if not isinstance(obj, cls):
            raise TypeError(f"{path!r} holds a {type(obj).__name__}, not a {cls.__name__}.")
        return obj
