"""Parameter constraints: what the constructor of each estimator accepts, declared once.

In the spirit of scikit-learn's ``_parameter_constraints``: an estimator declares, as a
class attribute, one constraint (or a list of alternatives) per constructor keyword::

    class SelfSimilarity(Detector):
        _parameter_constraints = {
            "patch_size": Interval(Integral, 2, 64),
            "stride": [None, Interval(Integral, 1, 64)],
            "eps": EPS,                   # a positive number (false alarms per image)
            "seed": Seed(),
            "device": [None, Device()],
            "progress": Boolean(),
        }

        def __init__(self, *, patch_size=8, stride=None, eps=1.0, seed=0, device=None,
                     progress=True):
            self._set_params(locals())

        def _check_params(self, p):     # optional: rules that tie parameters together
            if p["stride"] is not None and p["stride"] > p["patch_size"]:
                raise ParameterValueError(...)

:meth:`adkit.estimator.Estimator._set_params` checks every keyword against its
constraints (:func:`validate_params`), runs the estimator's ``_check_params`` hook
(cross-parameter rules, and normalizations such as ``scales=3`` → ``(0, 1, 2)``), then
stores each value under its own name, so ``get_params()``, ``repr`` and save / load see
exactly what the constructor kept. The error is raised at the line the student wrote.

A value is checked against the alternatives in order: the first whose *kind* matches
(a number for :class:`Interval`, a string for :class:`Options`, a sequence for
:class:`Tuple`...) decides, and returns the value normalized (numpy scalars become
Python ``int`` / ``float``, sequences tuples). No alternative of the right kind is a
:class:`ParameterTypeError`; the right kind out of bounds a :class:`ParameterValueError`.
Both say which class, which parameter, what was expected and what was given.

Constraints
-----------
- ``None``: the value None;
- :class:`Interval` ``(Integral | Real, low, high, closed)``: an int / a finite real
  number (numpy scalars accepted, booleans refused, NaN and infinities refused) within
  the bounds (``what=`` words it otherwise, e.g. "the index of a training image");
  :data:`EPS` is the one for an NFA threshold ε;
- :class:`Options` ``(values)``: one of a few strings;
- :class:`Boolean`: True or False (``numpy.bool_`` accepted);
- :class:`Seed`: an int seed in [0, 2**32 - 1];
- :class:`Device`: ``'cpu'``, ``'cuda'``, ``'cuda:N'``, ``'mps'`` (or a ``torch.device``),
  checked to exist on this machine (use ``None`` in the list for "a GPU when present");
- :class:`Tuple` ``(item, length=, min_length=, max_length=, unique=, sort=)``: a
  sequence of values each checked by ``item``, returned as a tuple (or a list);
- :class:`Instance` ``(cls)``: an instance of a class (e.g. a Detector);
- :class:`Dict`: a dict with string keys (keywords for a function).

A constraint tied to one part of the library lives beside it and subclasses
:class:`Constraint` (e.g. :class:`adkit.backbone.Strides`, the strides of a backbone).

:func:`check_param` applies constraints to one value, for public functions (``eps`` of
``segment``, ``seed`` of a corruption...).
"""
from __future__ import annotations

import math
import re
from numbers import Integral, Real

import numpy as np

__all__ = ["InvalidParameterError", "ParameterTypeError", "ParameterValueError",
           "Constraint", "Interval", "Options", "Boolean", "Seed", "Device", "Tuple",
           "Instance", "Dict", "make_constraint", "alternatives", "validate_params",
           "check_param", "device_available", "SEED_MAX", "EPS", "Integral", "Real"]

#: the largest seed accepted: every generator (numpy, torch, faiss) takes it
SEED_MAX = 2 ** 32 - 1


class InvalidParameterError(Exception):
    """A parameter of an adkit estimator or function that is of the wrong type or out of
    its bounds. Raised as a :class:`ParameterTypeError` (also a ``TypeError``) or a
    :class:`ParameterValueError` (also a ``ValueError``)."""


class ParameterTypeError(InvalidParameterError, TypeError):
    """A parameter of a kind none of its constraints accepts (e.g. ``device=[1]``)."""


class ParameterValueError(InvalidParameterError, ValueError):
    """A parameter of the right kind but out of its bounds (e.g. ``seed=-1``)."""


def _is_bool(v) -> bool:
    return isinstance(v, (bool, np.bool_))


def _fmt(v) -> str:
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, float):
        return f"{v:g}"
    return repr(v)


def _short_repr(v, limit: int = 80) -> str:
    try:
        r = repr(v)
    except Exception:  # noqa: BLE001 - a broken __repr__ must not hide the real error
        r = f"<{type(v).__name__}>"
    return r if len(r) <= limit else r[:limit - 3] + "..."


class Constraint:
    """One kind of accepted value.

    Subclasses implement ``matches(value)`` (is the value of this constraint's kind?),
    ``convert(value, name)`` (the normalized value, or a :class:`ParameterValueError`)
    and ``__str__`` (what is accepted, in words: "an int in [1, 8]"). ``hint`` is added
    to every error message of the parameter (what to do).
    """

    hint: str | None = None

    def matches(self, value) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def convert(self, value, name: str):
        return value

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self}>"


class _NoneConstraint(Constraint):
    def matches(self, value) -> bool:
        return value is None

    def __str__(self) -> str:
        return "None"


class Interval(Constraint):
    """A number within bounds: ``Interval(Integral, 1, None)`` is an int >= 1,
    ``Interval(Real, 0, 1, closed="neither")`` a number in (0, 1).

    ``closed`` is ``"both"``, ``"left"``, ``"right"`` or ``"neither"`` (which bounds
    belong to the interval); a bound ``None`` is no bound. Real numbers must be finite;
    integers may be given as any ``numbers.Integral`` (numpy's included), reals as any
    ``numbers.Real``; booleans are refused. ``convert`` returns a Python int / float.
    """

    def __init__(self, kind, low=None, high=None, *, closed: str = "both",
                 hint: str | None = None, what: str | None = None):
        if kind not in (Integral, Real):
            raise TypeError("Interval's kind must be numbers.Integral or numbers.Real")
        if closed not in ("both", "left", "right", "neither"):
            raise ValueError(f"closed must be 'both', 'left', 'right' or 'neither', "
                             f"got {closed!r}")
        self.kind, self.low, self.high, self.closed, self.hint = kind, low, high, closed, hint
        self.what = what

    def matches(self, value) -> bool:
        return isinstance(value, self.kind) and not _is_bool(value)

    def _inside(self, v) -> bool:
        lo_in = self.closed in ("both", "left")
        hi_in = self.closed in ("both", "right")
        if self.low is not None and (v < self.low or (v == self.low and not lo_in)):
            return False
        if self.high is not None and (v > self.high or (v == self.high and not hi_in)):
            return False
        return True

    def convert(self, value, name):
        v = int(value) if self.kind is Integral else float(value)
        if self.kind is Real and not math.isfinite(v):
            raise ParameterValueError(f"must be {self}, got {_fmt(v)}")
        if not self._inside(v):
            raise ParameterValueError(f"must be {self}, got {_fmt(v)}")
        return v

    def __str__(self) -> str:
        if self.what:
            return self.what
        what = "an int" if self.kind is Integral else "a number"
        lo, hi = self.low, self.high
        lo_in = self.closed in ("both", "left")
        hi_in = self.closed in ("both", "right")
        if lo is not None and hi is not None:
            return (f"{what} in {'[' if lo_in else '('}{_fmt(lo)}, {_fmt(hi)}"
                    f"{']' if hi_in else ')'}")
        if lo is not None:
            return f"{what} {'>=' if lo_in else '>'} {_fmt(lo)}"
        if hi is not None:
            return f"{what} {'<=' if hi_in else '<'} {_fmt(hi)}"
        return what if self.kind is Integral else "a finite number"


#: the constraint of an NFA threshold ε (``segment(eps=...)``, ``SelfSimilarity(eps=...)``)
EPS = Interval(Real, 0, None, closed="neither",
               what="a positive number (the expected number of false detections per "
                    "normal image, e.g. 1)")


class Options(Constraint):
    """One of a few values (strings): ``Options("sum", "mean")``."""

    def __init__(self, *values, hint: str | None = None):
        if len(values) == 1 and isinstance(values[0], (list, tuple, set, frozenset)):
            values = tuple(values[0])
        self.values, self.hint = tuple(values), hint

    def matches(self, value) -> bool:
        return isinstance(value, str)

    def convert(self, value, name):
        if value not in self.values:
            raise ParameterValueError(f"must be {self}, got {value!r}")
        return str(value)

    def __str__(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


class Boolean(Constraint):
    """True or False (``numpy.bool_`` accepted, returned as a Python bool)."""

    def __init__(self, hint: str | None = None):
        self.hint = hint

    def matches(self, value) -> bool:
        return _is_bool(value)

    def convert(self, value, name):
        return bool(value)

    def __str__(self) -> str:
        return "True or False"


class Seed(Interval):
    """An int seed in [0, 2**32 - 1] (every generator, numpy's, torch's and faiss's,
    takes it); the same seed gives the same weights, draws and maps."""

    def __init__(self, hint: str | None = None):
        super().__init__(Integral, 0, SEED_MAX, hint=hint)

    def __str__(self) -> str:
        return "an int in [0, 2**32 - 1]"


_DEVICE_RE = re.compile(r"(cpu|mps|cuda)(:(\d+))?")


def device_available(device) -> str | None:
    """None when the torch device ``device`` (a string such as ``'cuda:0'``) exists on
    this machine, else the reason it does not (a sentence)."""
    m = _DEVICE_RE.fullmatch(str(device))
    if m is None:
        return f"{device!r} is not a device name"
    kind, index = m.group(1), m.group(3)
    if kind == "cpu":
        return None if index in (None, "0") else f"there is only one CPU device ('cpu')"
    import torch
    if kind == "cuda":
        if not torch.cuda.is_available():
            return "torch finds no CUDA GPU on this machine (torch.cuda.is_available() " \
                   "is False)"
        count = torch.cuda.device_count()
        if index is not None and int(index) >= count:
            return f"this machine has {count} CUDA GPU(s): 'cuda:0' to 'cuda:{count - 1}'"
        return None
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        return "torch finds no Apple GPU (torch.backends.mps.is_available() is False)"
    if index not in (None, "0"):
        return "there is only one Apple GPU ('mps')"
    return None


class Device(Constraint):
    """A torch device that exists here: ``'cpu'``, ``'cuda'``, ``'cuda:N'``, ``'mps'``
    (or a ``torch.device``, kept as its string). Put ``None`` beside it in the list of
    alternatives for "a GPU when present, else the CPU"."""

    hint = ("Pass device=None (a GPU when present, else the CPU) or device='cpu'.")

    def matches(self, value) -> bool:
        t = type(value)
        return isinstance(value, str) or (t.__module__ == "torch" and t.__name__ == "device")

    def convert(self, value, name):
        v = str(value)
        if _DEVICE_RE.fullmatch(v) is None:
            raise ParameterValueError(f"must be {self}, got {value!r}")
        why = device_available(v)
        if why is not None:
            raise ParameterValueError(f"is {v!r}, but {why}")
        return v

    def __str__(self) -> str:
        return "a device name ('cpu', 'cuda', 'cuda:N' or 'mps')"


class Tuple(Constraint):
    """A sequence (list, tuple, 1-D array) of values each checked by ``item``.

    ``length`` (exact), or ``min_length`` / ``max_length``; ``unique`` refuses repeated
    values; ``sort`` returns them sorted; ``container`` is the returned type (tuple).
    """

    def __init__(self, item, *, length: int | None = None, min_length: int = 1,
                 max_length: int | None = None, unique: bool = False, sort: bool = False,
                 container=tuple, hint: str | None = None):
        self.item = make_constraint(item)
        self.length, self.min_length, self.max_length = length, min_length, max_length
        self.unique, self.sort, self.container, self.hint = unique, sort, container, hint

    def matches(self, value) -> bool:
        if isinstance(value, np.ndarray):
            return value.ndim == 1
        return isinstance(value, (list, tuple))

    def convert(self, value, name):
        items = list(value)
        n = len(items)
        if self.length is not None and n != self.length:
            raise ParameterValueError(f"must be {self}, got {n} value(s): "
                                      f"{_short_repr(value)}")
        if n < self.min_length or (self.max_length is not None and n > self.max_length):
            raise ParameterValueError(f"must be {self}, got {n} value(s): "
                                      f"{_short_repr(value)}")
        out = []
        for i, v in enumerate(items):
            if not self.item.matches(v):
                raise ParameterTypeError(f"[{i}] must be {self.item}, got {_short_repr(v)} "
                                         f"(in {_short_repr(value)})")
            try:
                out.append(self.item.convert(v, f"{name}[{i}]"))
            except ParameterValueError as e:
                raise ParameterValueError(f"[{i}] {e} (in {_short_repr(value)})") from None
        if self.unique and len(set(out)) != len(out):
            raise ParameterValueError(f"must be {self}, got repeated values "
                                      f"{_short_repr(value)}")
        if self.sort:
            out = sorted(out)
        return self.container(out)

    def __str__(self) -> str:
        if self.length is not None:
            count = f"{self.length} "
        elif self.max_length is not None:
            count = f"{self.min_length} to {self.max_length} "
        else:
            count = f"at least {self.min_length} " if self.min_length > 1 else ""
        what = "distinct " if self.unique else ""
        kind = "a list" if self.container is list else "a tuple"
        return f"{kind} of {count}{what}values, each {self.item}"


class Instance(Constraint):
    """An instance of ``cls`` (e.g. ``Instance(Detector)``), kept as it is."""

    def __init__(self, cls, what: str | None = None, hint: str | None = None):
        self.cls, self.what, self.hint = cls, what, hint

    def matches(self, value) -> bool:
        return isinstance(value, self.cls)

    def __str__(self) -> str:
        if self.what:
            return self.what
        names = self.cls if isinstance(self.cls, tuple) else (self.cls,)
        return "an instance of " + " or ".join(c.__name__ for c in names)


class Dict(Constraint):
    """A dict with string keys (keywords passed on to a function), kept as it is."""

    def __init__(self, hint: str | None = None):
        self.hint = hint

    def matches(self, value) -> bool:
        return isinstance(value, dict)

    def convert(self, value, name):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise ParameterValueError(f"must have string keys (keyword names), got "
                                      f"{_short_repr(bad)}")
        return dict(value)

    def __str__(self) -> str:
        return "a dict of keywords"


def make_constraint(c) -> Constraint:
    """``None`` → the None constraint; a class → :class:`Instance`; a constraint → itself."""
    if c is None:
        return _NoneConstraint()
    if isinstance(c, Constraint):
        return c
    if isinstance(c, type):
        return Instance(c)
    raise TypeError(f"not a parameter constraint: {c!r}")


def alternatives(constraints) -> list[Constraint]:
    """A parameter's constraints (one, or a list of alternatives) as a list of
    :class:`Constraint` objects."""
    if not isinstance(constraints, (list, tuple)):
        constraints = [constraints]
    return [make_constraint(c) for c in constraints]


def _describe(cs: list[Constraint]) -> str:
    words = [str(c) for c in cs]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def check_param(value, constraints, name: str, owner: str | None = None):
    """``value`` checked against ``constraints`` (one, or a list of alternatives) and
    normalized; a :class:`ParameterTypeError` / :class:`ParameterValueError` naming
    ``owner`` (a class or function), ``name``, what is accepted and what was given."""
    cs = alternatives(constraints)
    where = f"{owner}: " if owner else ""
    for c in cs:
        if c.matches(value):
            try:
                return c.convert(value, name)
            except InvalidParameterError as e:
                msg = str(e)
                own = f"must be {c}"
                if len(cs) > 1 and msg.startswith(own):  # name the other alternatives too
                    msg = f"must be {_describe(cs)}" + msg[len(own):]
                hint = f" {c.hint}" if c.hint else ""
                sep = "" if msg.startswith("[") else " "
                raise type(e)(f"{where}{name}{sep}{msg}.{hint}") from None
    hints = " ".join(dict.fromkeys(c.hint for c in cs if c.hint))
    raise ParameterTypeError(f"{where}{name} must be {_describe(cs)}, got "
                             f"{_short_repr(value)} ({type(value).__name__})."
                             + (f" {hints}" if hints else ""))


def validate_params(constraints: dict, params: dict, owner: str | None = None) -> dict:
    """Every entry of ``params`` checked against ``constraints[name]`` (entries without a
    constraint are kept as given); returns the normalized dict."""
    return {k: (check_param(v, constraints[k], k, owner) if k in constraints else v)
            for k, v in params.items()}
