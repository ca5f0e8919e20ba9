"""The machinery of the self-checking exercises: :class:`Exercise`, :class:`Case`,
:class:`CheckResult` and the registry (see :mod:`adkit.exercises` for the conventions).

An exercise runs a student's function and the library's reference on the same
generated inputs (a few seeded cases, edge cases among them) and says, in a student's
words, what differs: which case, what the inputs were, the expected and the obtained
value (largest difference and where, a wrong shape, a wrong dtype, an exception with
its line), and a hint when the typical mistake can be recognised.
"""
from __future__ import annotations

import copy
import html
import re
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import numpy as np

__all__ = ["Case", "Mistake", "Exercise", "CaseResult", "CheckResult", "register",
           "registered", "compare", "describe", "ID_PATTERN"]

#: the form of an exercise id: two digits of the lesson, a dot, a snake_case name
ID_PATTERN = re.compile(r"\d\d\.[a-z][a-z0-9_]*")

_MISSING = object()
_REGISTRY: dict = {}


# -- what an exercise is made of ----------------------------------------------------------
@dataclass
class Case:
    """One input of an exercise.

    Parameters
    ----------
    name : str
        What the case is, for a student ("two constant images (0.2 and 0.8)").
    args, kwargs
        The arguments the student's function (and the reference) is called with. Each
        call gets its own deep copy.
    hint : str, optional
        What this case is built to catch, shown when it fails ("pixels that touch by a
        corner form one region: use 8-connectivity").
    expected : optional
        The expected result, when the exercise's reference cannot compute it from the
        arguments alone (e.g. the next pick of a coreset, read from the library's whole
        selection); by default ``reference(*args, **kwargs)``.
    """

    name: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    hint: str | None = None
    expected: Any = _MISSING


@dataclass(frozen=True)
class Mistake:
    """A typical wrong solution of an exercise and a piece of what the checker says about
    it (case-insensitive). The tests run every one of them: it must fail, and the report
    must contain ``says``; the lessons may show them as "typical mistakes"."""

    what: str
    fn: Callable
    says: str


class _Raised:
    """The reference raised: the student's function must raise the same type."""

    def __init__(self, error: BaseException):
        self.error = error


# -- describing values ----------------------------------------------------------------------
def _num(x) -> str:
    if isinstance(x, (bool, np.bool_)):
        return str(bool(x))
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.6g}"
    return repr(x)


def describe(value) -> str:
    """A short description of a value: ``float32 array (8, 8, 3)``, ``0.01``, ``list of 3``."""
    if isinstance(value, np.ndarray):
        if value.ndim == 0:
            return _num(value.item())
        if value.size <= 6 and value.ndim == 1:
            return f"{value.dtype} array {np.array2string(value, precision=4, separator=', ')}"
        return f"{value.dtype} array {tuple(value.shape)}"
    if isinstance(value, (bool, int, float, np.generic)):
        return _num(value)
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "None"
    if isinstance(value, (list, tuple)):
        kind = type(value).__name__
        if len(value) <= 4 and all(isinstance(v, (bool, int, float, np.generic)) for v in value):
            return f"{kind} ({', '.join(_num(v) for v in value)})" if kind == "tuple" else \
                f"[{', '.join(_num(v) for v in value)}]"
        return f"{kind} of {len(value)}"
    return type(value).__name__


def _index(i) -> str:
    return "(" + ", ".join(str(int(v)) for v in i) + ")"


def _kind_name(dtype) -> str:
    return {"b": "booleans", "i": "integers", "u": "integers", "f": "floats",
            "c": "complex numbers"}.get(np.dtype(dtype).kind, str(dtype))


def _is_number(x) -> bool:
    return isinstance(x, (bool, int, float, np.generic)) or (
        isinstance(x, np.ndarray) and x.ndim == 0)


# -- comparing values -----------------------------------------------------------------------
def compare(expected, got, *, atol: float = 1e-6, rtol: float = 1e-6, dtype: str = "kind",
            name: str = "the result", names: Sequence[str] | None = None
            ) -> tuple[str | None, list[str]]:
    """What differs between ``got`` and ``expected``, in a student's words.

    Returns ``(problem, notes)``: ``problem`` is None when they agree (numbers and arrays
    within ``atol + rtol·|expected|``, booleans and integers exactly), else one sentence;
    ``notes`` are remarks that do not fail the case (a float64 image where adkit gives
    float32...). ``dtype``: ``"same"`` (the dtype must be the expected one), ``"kind"``
    (the same kind: booleans, integers or floats) or ``None`` (any). ``names`` names the
    parts of a tuple result (``("u2", "v2")``).
    """
    notes: list[str] = []
    problem = _compare(expected, got, atol, rtol, dtype, name, names, notes)
    return problem, notes


def _compare(expected, got, atol, rtol, dtype, name, names, notes):
    if got is None and expected is not None:
        return f"{name} is None: did you forget the `return` line?"
    if isinstance(expected, (tuple, list)) and not _is_number(expected):
        return _compare_sequence(expected, got, atol, rtol, dtype, name, names, notes)
    if isinstance(expected, np.ndarray) and expected.ndim > 0:
        return _compare_array(expected, got, atol, rtol, dtype, name, notes)
    if _is_number(expected):
        return _compare_number(expected, got, atol, rtol, dtype, name, notes)
    try:
        same = bool(expected == got)
    except Exception:
        same = False
    return None if same else f"{name}: expected {expected!r}, got {got!r}."


def _compare_sequence(expected, got, atol, rtol, dtype, name, names, notes):
    n = len(expected)
    parts = names if names is not None and len(names) == n else \
        [f"{name}[{i}]" for i in range(n)]
    what = f"a tuple of {n} values ({', '.join(parts)})" if names else f"{n} values"
    if isinstance(got, np.ndarray) and got.ndim >= 1 and got.shape[0] == n:
        got = list(got)
    if not isinstance(got, (tuple, list)):
        return f"{name}: expected {what}, got {describe(got)}."
    if len(got) != n:
        return f"{name}: expected {what}, got {len(got)} value(s)."
    for e, g, part in zip(expected, got, parts):
        problem = _compare(e, g, atol, rtol, dtype, part, None, notes)
        if problem:
            return problem
    return None


def _compare_number(expected, got, atol, rtol, dtype, name, notes):
    e = expected.item() if isinstance(expected, np.ndarray) else expected
    if isinstance(got, np.ndarray) and got.size == 1:
        if got.ndim > 0:
            notes.append(f"{name} is an array of shape {got.shape}; one number is "
                         "expected (float(...) or .item()).")
        got = got.reshape(()).item()
    elif isinstance(got, (list, tuple)) and len(got) == 1 and _is_number(got[0]):
        notes.append(f"{name} is a {type(got).__name__} of one number; return the number.")
        got = got[0]
    if not _is_number(got):
        return f"{name}: expected one number ({_num(e)}), got {describe(got)}."
    g = got.item() if isinstance(got, np.generic) else got
    if isinstance(e, (bool, np.bool_)):
        if not isinstance(g, (bool, np.bool_, int)):
            return f"{name}: expected {e} (a boolean), got {_num(g)}."
        return None if bool(g) == bool(e) else f"{name}: expected {e}, got {bool(g)}."
    if isinstance(e, (int, np.integer)):
        if isinstance(g, float):
            if not np.isfinite(g) or g != int(g):
                return f"{name}: expected the integer {e}, got {_num(g)}."
            if dtype is not None:
                notes.append(f"{name} is the float {_num(g)}; an integer is expected "
                             "(int(...)).")
            g = int(g)
        return None if int(g) == int(e) else f"{name}: expected {e}, got {_num(g)}."
    e, g = float(e), float(g)
    if np.isnan(e) and np.isnan(g):
        return None
    if np.isnan(g):
        return f"{name}: expected {_num(e)}, got NaN (a 0/0, or a NaN in the computation?)."
    if np.isinf(g) or np.isinf(e):
        return None if e == g else f"{name}: expected {_num(e)}, got {_num(g)}."
    if abs(g - e) <= atol + rtol * abs(e):
        return None
    return f"{name}: expected {_num(e)}, got {_num(g)} (difference {_num(abs(g - e))})."


def _shape_advice(e_shape, g_shape) -> str:
    if sorted(e_shape) == sorted(g_shape):
        return " — the same sizes in another order: are axes swapped (transpose, moveaxis)?"
    if int(np.prod(e_shape)) == int(np.prod(g_shape)):
        return f" — the same number of values: reshape to {e_shape}."
    if tuple(s for s in g_shape if s != 1) == tuple(s for s in e_shape if s != 1):
        return " — extra or missing axes of length 1 (np.squeeze or [..., None])."
    return ""


def _compare_array(expected, got, atol, rtol, dtype, name, notes):
    shape = tuple(expected.shape)
    if isinstance(got, (list, tuple)):
        kind = type(got).__name__
        try:
            got = np.asarray(got)
        except (ValueError, TypeError):
            return f"{name}: expected an array of shape {shape}, got a ragged {kind}."
        notes.append(f"{name} is a {kind}; a numpy array is expected (np.asarray).")
    if not isinstance(got, np.ndarray):
        if _is_number(got):
            return f"{name}: expected an array of shape {shape}, got one number " \
                   f"({_num(got)})."
        return f"{name}: expected an array of shape {shape}, got {describe(got)}."
    if tuple(got.shape) != shape:
        return f"{name} has the wrong shape: expected {shape}, got {tuple(got.shape)}" + \
            _shape_advice(shape, tuple(got.shape)) + "."
    ek, gk = expected.dtype.kind, got.dtype.kind
    if dtype == "same" and expected.dtype != got.dtype:
        return f"{name} has the wrong dtype: expected {expected.dtype}, got {got.dtype}" + \
            (" (adkit's images are float32: .astype(np.float32))." if expected.dtype ==
             np.float32 else f" (.astype(np.{expected.dtype}))).")
    if dtype is not None:
        same_kind = ek == gk or {ek, gk} <= {"i", "u"}
        if not same_kind:
            return f"{name} has the wrong dtype: expected {_kind_name(expected.dtype)} " \
                   f"({expected.dtype}), got {_kind_name(got.dtype)} ({got.dtype})" + \
                   (": a mask is boolean (e.g. values > threshold)." if ek == "b" else ".")
        if ek == "f" and expected.dtype != got.dtype:
            notes.append(f"{name} is {got.dtype}; adkit gives {expected.dtype}.")
    if ek in "biu" or gk == "b":
        diff = expected != got
        if ek == "b" and gk != "b":
            diff = expected != got.astype(bool)
        n_bad = int(np.count_nonzero(diff))
        if n_bad == 0:
            return None
        first = tuple(np.argwhere(diff)[0])
        return (f"{name}: {n_bad} of {expected.size} values differ; the first at index "
                f"{_index(first)}: expected {_num(expected[first])}, got {_num(got[first])}.")
    e = expected.astype(np.float64)
    try:
        g = got.astype(np.float64)
    except (TypeError, ValueError):
        return f"{name}: expected numbers, got an array of {got.dtype}."
    bad_nan = np.isnan(g) & ~np.isnan(e)
    if bad_nan.any():
        first = tuple(np.argwhere(bad_nan)[0])
        return (f"{name} has {int(bad_nan.sum())} NaN value(s) where numbers are expected, "
                f"the first at index {_index(first)} (expected {_num(e[first])}): a 0/0, or "
                "a NaN in the computation?")
    close = np.isclose(g, e, atol=atol, rtol=rtol, equal_nan=True)
    if close.all():
        return None
    err = np.where(close, 0.0, np.abs(np.nan_to_num(g - e, nan=np.inf, posinf=np.inf,
                                                     neginf=np.inf)))
    worst = np.unravel_index(int(np.argmax(err)), err.shape)
    n_bad = int(np.count_nonzero(~close))
    return (f"{name}: values differ: largest difference {_num(abs(g[worst] - e[worst]))} "
            f"at index {_index(worst)} (expected {_num(e[worst])}, got {_num(g[worst])}); "
            f"{n_bad} of {e.size} values are off by more than {atol:g}.")


def _same_value(a, b) -> bool:
    """Whether an argument is unchanged by the call (arrays compared by value)."""
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.shape == b.shape and a.dtype == b.dtype \
            and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and \
            all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and \
            all(_same_value(a[k], b[k]) for k in a)
    try:
        return bool(a == b)
    except Exception:
        return True


def _exception_text(error: BaseException, fn) -> str:
    """What a student reads when their function raised."""
    if isinstance(error, NotImplementedError):
        return ("not written yet: the function raises NotImplementedError. Replace the "
                "`raise NotImplementedError` line by your code.")
    where = ""
    code = getattr(fn, "__code__", None)
    if code is not None:
        frames = [f for f in traceback.extract_tb(error.__traceback__)
                  if f.filename == code.co_filename]
        if frames:
            f = frames[-1]
            line = f" `{f.line.strip()}`" if f.line else ""
            where = f" at line {f.lineno - code.co_firstlineno + 1} of {fn.__name__}{line}"
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"it raised {type(error).__name__}{where}" + (f": {message}" if message else ".")


# -- results ----------------------------------------------------------------------------------
@dataclass
class CaseResult:
    """The outcome of one case: ``passed``, and when it failed ``problem`` (what differs)
    and ``hints`` (the likely mistake); ``notes`` are remarks that do not fail it."""

    number: int
    name: str
    inputs: str
    passed: bool
    problem: str | None = None
    hints: list = field(default_factory=list)
    notes: list = field(default_factory=list)


class CheckResult:
    """What :meth:`Exercise.check` found: ``passed`` (every case agrees with the
    library), ``cases`` (one :class:`CaseResult` each) and ``problem`` (a reason that
    stopped the check before any case, e.g. something else than a function was given).

    Shows as a ✓ / ✗ report, as text (``print``) and in a notebook (HTML).
    """

    def __init__(self, exercise: "Exercise", cases: list, problem: str | None = None):
        self.exercise = exercise
        self.cases = cases
        self.problem = problem

    @property
    def passed(self) -> bool:
        return self.problem is None and bool(self.cases) and all(c.passed for c in self.cases)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def n_passed(self) -> int:
        return sum(c.passed for c in self.cases)

    @property
    def not_written(self) -> bool:
        """Every case raised NotImplementedError: the stub of a student cell."""
        return bool(self.cases) and all(c.problem is not None and
                                        c.problem.startswith("not written yet")
                                        for c in self.cases)

    def summary(self) -> str:
        """One line: ✓ or ✗, the exercise and how many cases pass."""
        ex = self.exercise
        head = f"{'✓' if self.passed else '✗'} {ex.id} · {ex.title}"
        if self.problem is not None:
            return f"{head}: {self.problem}"
        if self.not_written:
            return (f"{head}: not written yet ({ex.function_name} raises NotImplementedError; "
                    "replace that line by your code)")
        if self.passed:
            return f"{head}: all {len(self.cases)} cases agree with adkit's"
        return f"{head}: {self.n_passed} of {len(self.cases)} cases agree with adkit's"

    def assert_passed(self) -> "CheckResult":
        """Raise AssertionError with the report unless every case passed; returns self
        (for a solution cell that must fail loudly under nbval when wrong)."""
        if not self.passed:
            raise AssertionError("\n" + self.report())
        return self

    def _shown(self):
        """Per case: (case, hints not shown for an earlier case, notes not shown before)."""
        seen_hints, seen_notes, out = set(), set(), []
        for c in self.cases:
            hints = [h for h in c.hints if h not in seen_hints]
            notes = [n for n in c.notes if n not in seen_notes]
            seen_hints.update(hints)
            seen_notes.update(notes)
            out.append((c, hints, notes))
        return out

    def report(self) -> str:
        """The whole report as text: one line per case, and for each ✗ its inputs, what
        differs and the hints (each hint and note once)."""
        lines = [self.summary()]
        if self.not_written:
            return lines[0]
        for c, hints, notes in self._shown():
            mark = "✓" if c.passed else "✗"
            lines.append(f"  {mark} {c.number}. {c.name}")
            if not c.passed:
                lines.append(f"      called with {c.inputs}")
                lines.append(f"      {c.problem}")
                lines += [f"      hint: {h}" for h in hints]
            lines += [f"      note: {n}" for n in notes]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()

    __repr__ = __str__

    def _repr_html_(self) -> str:
        e = html.escape
        ok = self.passed
        color = "#1a7f37" if ok else "#cf222e"
        rows = []
        for c, hints, notes in ([] if self.not_written else self._shown()):
            mark = ('<span style="color:#1a7f37">✓</span>' if c.passed else
                    '<span style="color:#cf222e">✗</span>')
            body = ""
            if not c.passed:
                body += (f'<div>called with <code>{e(c.inputs)}</code></div>'
                         f'<div>{e(c.problem)}</div>')
                body += "".join(f'<div><b>hint:</b> {e(h)}</div>' for h in hints)
            body += "".join(f'<div style="color:#57606a">note: {e(n)}</div>' for n in notes)
            rows.append(f'<li>{mark} {c.number}. {e(c.name)}'
                        + (f'<div style="margin-left:1.6em">{body}</div>' if body else "")
                        + "</li>")
        cases = (f'<ul style="list-style:none;padding-left:1em;margin:0.3em 0">'
                 f'{"".join(rows)}</ul>') if rows else ""
        if ok and cases:
            cases = f"<details><summary>the cases</summary>{cases}</details>"
        return (f'<div class="adkit-exercise" style="border-left:4px solid {color};'
                f'padding:0.3em 0.8em;margin:0.3em 0">'
                f'<div style="color:{color};font-weight:bold">{e(self.summary())}</div>'
                f'{cases}</div>')


# -- the exercise -----------------------------------------------------------------------------
def _param_names(signature: str) -> list[str]:
    m = re.search(r"\((.*?)\)", signature)
    if not m:
        return []
    names = []
    for part in m.group(1).split(","):
        part = part.strip().lstrip("*").split("=")[0].split(":")[0].strip()
        if part and part != "/":
            names.append(part)
    return names


class Exercise:
    """An exercise: a statement, and a check of a student's function against adkit.

    Parameters
    ----------
    id : str
        ``"NN.snake_case_name"``, NN the lesson (``"01.midway_two_images"``).
    title : str
        A few words ("Midway of two images").
    statement : str
        One paragraph: what to write, with the formula or the rule, in a student's words.
    signature : str
        The function to write, e.g. ``"my_midway(u, v) -> (u2, v2)"``; its parameter
        names label the inputs in the report.
    reference : callable, optional
        Computes the expected result from a case's arguments by calling the library
        (``adkit.normalize.midway_equalize``...), never re-implementing it. Optional
        when every case carries its ``expected``.
    cases : callable ``(rng) -> iterable of Case``
        Generates the cases from a numpy Generator (seeded by :meth:`check`): several
        ordinary inputs and the edge cases that catch the typical mistakes.
    hints : sequence of callables ``(case, got, expected) -> str or None``
        Recognise a typical mistake from a failing case's result (e.g. the result is
        1 − AUROC); each may call the library (with other arguments) to tell.
    solution : callable, optional
        A correct solution written as a student would, with numpy (and scipy / skimage
        where the statement allows). The tests check that it passes; a lesson's hidden
        solution cell may show the same code.
    mistakes : sequence of :class:`Mistake`
        Typical wrong solutions, each with a piece of what the report must say (tested).
    atol, rtol, dtype
        How results are compared (see :func:`compare`).
    outputs : sequence of str, optional
        Names of the parts of a tuple result, for the report (``("u2", "v2")``).
    """

    def __init__(self, id: str, *, title: str, statement: str, signature: str,
                 cases: Callable[[np.random.Generator], Iterable[Case]],
                 reference: Callable | None = None, hints: Sequence[Callable] = (),
                 solution: Callable | None = None, mistakes: Sequence[Mistake] = (),
                 atol: float = 1e-6, rtol: float = 1e-6, dtype: str | None = "kind",
                 outputs: Sequence[str] | None = None):
        if not isinstance(id, str) or not ID_PATTERN.fullmatch(id):
            raise ValueError(f"exercise id {id!r}: expected two digits of the lesson, a dot "
                             "and a snake_case name, e.g. '01.midway_two_images'.")
        if dtype not in ("same", "kind", None):
            raise ValueError(f"dtype must be 'same', 'kind' or None, got {dtype!r}.")
        self.id = id
        self.lesson = int(id[:2])
        self.title = title
        self.statement = " ".join(statement.split())
        self.signature = signature
        self.reference = reference
        self.cases = cases
        self.hints = tuple(hints)
        self.solution = solution
        self.mistakes = tuple(mistakes)
        self.atol, self.rtol, self.dtype = float(atol), float(rtol), dtype
        self.outputs = tuple(outputs) if outputs is not None else None
        self._params = _param_names(signature)

    @property
    def function_name(self) -> str:
        """The name of the function the student writes (``my_midway``)."""
        return self.signature.split("(")[0].strip()

    # -- running ------------------------------------------------------------------------
    def make_cases(self, seed: int = 0) -> list:
        """The cases of a check with this seed (the same seed, the same cases)."""
        return [c for c in self.cases(np.random.default_rng(seed))]

    def _inputs(self, case: Case) -> str:
        parts = []
        for i, a in enumerate(case.args):
            label = self._params[i] if i < len(self._params) else f"argument {i + 1}"
            parts.append(f"{label} = {describe(a)}")
        parts += [f"{k} = {describe(v)}" for k, v in case.kwargs.items()]
        return ", ".join(parts) if parts else "no arguments"

    def expected(self, case: Case):
        """The library's result for a case (or the exception it raises, wrapped)."""
        if case.expected is not _MISSING:
            return case.expected
        if self.reference is None:
            raise RuntimeError(f"exercise {self.id}: case {case.name!r} has no expected "
                               "value and the exercise has no reference.")
        try:
            return self.reference(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
        except Exception as e:   # the library refuses this input: so must the student
            return _Raised(e)

    def _run(self, student, number: int, case: Case) -> CaseResult:
        expected = self.expected(case)
        args, kwargs = copy.deepcopy(case.args), copy.deepcopy(case.kwargs)
        result = CaseResult(number, case.name, self._inputs(case), passed=False)
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                got = student(*args, **kwargs)
        except Exception as error:
            if isinstance(expected, _Raised) and isinstance(error, type(expected.error)):
                result.passed = True
                return result
            result.problem = _exception_text(error, student)
            if case.hint and not isinstance(error, NotImplementedError):
                result.hints.append(case.hint)
            return result
        if not (_same_value(case.args, args) and _same_value(case.kwargs, kwargs)):
            changed = [self._params[i] if i < len(self._params) else f"argument {i + 1}"
                       for i, (a, b) in enumerate(zip(case.args, args)) if not _same_value(a, b)]
            changed += [k for k in case.kwargs if not _same_value(case.kwargs[k], kwargs.get(k))]
            result.notes.append(f"it changed its input {', '.join(changed)} in place: the "
                                "caller's data changed too. Work on a copy (x = x.copy()).")
        if isinstance(expected, _Raised):
            err = expected.error
            result.problem = (f"adkit raises {type(err).__name__} for this input "
                              f"({str(err).splitlines()[0] if str(err) else 'invalid input'}), "
                              f"but it returned {describe(got)}.")
            if case.hint:
                result.hints.append(case.hint)
            return result
        problem, notes = compare(expected, got, atol=self.atol, rtol=self.rtol,
                                 dtype=self.dtype, names=self.outputs)
        result.notes += notes
        if problem is None:
            result.passed = True
            return result
        result.problem = problem
        for hint in self.hints:
            try:
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    text = hint(case, got, expected)
            except Exception:        # a hint that cannot tell says nothing
                text = None
            if text and text not in result.hints:
                result.hints.append(text)
        if case.hint and not result.hints:   # what this case is built to catch
            result.hints.append(case.hint)
        return result

    def check(self, student, seed: int = 0) -> CheckResult:
        """Run ``student`` (the function itself) on every case; returns a
        :class:`CheckResult` (``.passed``, a ✓ / ✗ report). Never raises for a wrong or
        unfinished function: the report says what went wrong."""
        if not callable(student):
            hint = (f"pass the function itself, {self.function_name} without parentheses"
                    if not isinstance(student, type) else "pass a function")
            return CheckResult(self, [], problem=f"expected a function, got "
                                                 f"{describe(student)}: {hint}.")
        cases = self.make_cases(seed)
        return CheckResult(self, [self._run(student, i + 1, c) for i, c in enumerate(cases)])

    # -- showing ------------------------------------------------------------------------
    def text(self) -> str:
        return (f"{self.id} · {self.title}\n\n{self.statement}\n\n"
                f"Write {self.signature}, then check it with\n"
                f"    adkit.exercises.check({self.id!r}, {self.function_name})")

    def __repr__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        e = html.escape
        return (f'<div class="adkit-exercise"><b>{e(self.id)} · {e(self.title)}</b>'
                f'<p>{e(self.statement)}</p><p>Write <code>{e(self.signature)}</code>, then '
                f'check it with <code>adkit.exercises.check({e(repr(self.id))}, '
                f'{e(self.function_name)})</code>.</p></div>')


def register(exercise: Exercise) -> Exercise:
    """Add an exercise to the registry (its id must be new); returns it."""
    old = _REGISTRY.get(exercise.id)
    if old is not None and (old.title, old.signature) != (exercise.title, exercise.signature):
        raise ValueError(f"two exercises have the id {exercise.id!r}: give each its own.")
    _REGISTRY[exercise.id] = exercise
    return exercise


def registered() -> dict:
    """Every registered exercise, by id (a copy)."""
    return dict(_REGISTRY)
