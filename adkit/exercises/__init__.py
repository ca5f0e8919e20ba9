r"""Exercises that check themselves: a student's function against adkit's, on generated data.

Each lesson ends with two to four exercises ("implement the midway of two images",
"the threshold γ_ε", "the next pick of the greedy coreset"...). An exercise has an id
(``"01.midway_two_images"``: the lesson, a dot, a name), a one-paragraph statement,
and a check that runs the student's function and adkit's own implementation (the
reference: :func:`adkit.normalize.midway_equalize`, :func:`adkit.metrics.image_auroc`...,
never a copy of it) on the same seeded cases, edge cases among them, and reports in a
student's words what differs: which case and its inputs, expected against obtained
(the largest difference and where, a wrong shape or dtype, an exception and its line),
and a hint when the typical mistake is recognised (counting pixels instead of
regions, forgetting to sort, using the variance for the standard deviation...).

>>> import adkit.exercises as ex
>>> "01.midway_two_images" in ex.list()
True
>>> import numpy as np
>>> def my_midway(u, v):                 # averages the pixels: the classic mistake
...     m = (u + v) / 2
...     return m, m
>>> result = ex.check("01.midway_two_images", my_midway)
>>> result.passed
False
>>> print(result.summary())
✗ 01.midway_two_images · Midway of two images: 2 of 5 cases agree with adkit's

``print(result)`` (or ending a notebook cell with it) shows the whole report: each
case with ✓ or ✗, and for a ✗ its inputs, what differs and the hint.

- :func:`list` — the ids (of one lesson with ``lesson=1``);
- :func:`get` — an :class:`Exercise` (shows its statement in a notebook);
- :func:`check` — ``check(id, my_function)`` → :class:`CheckResult` (``.passed``,
  ``.assert_passed()``, a ✓ / ✗ report as text and HTML).

The exercises of lesson NN live in ``adkit/exercises/lessonNN.py``; each is an
:class:`Exercise` given to :func:`register` there, with a student-style ``solution``
and its typical ``mistakes`` (:class:`Mistake`), which ``tests/test_exercises.py``
runs: the solution and the reference must pass, every mistake must fail with a report
that says what its ``says`` names.

Notebook convention
-------------------
At the end of a lesson, after a markdown cell ``## Exercises``, each exercise takes
three cells.

1. A markdown cell: a ``### Exercise k · title`` heading, the statement (the text of
   ``adkit.exercises.get(id).statement`` or a fuller one) and the function to write.

2. The **student cell**, tagged ``exercise``: a stub that defines the function and
   raises ``NotImplementedError``, then the check::

       def my_midway(u, v):
           # your code: return (u2, v2)
           raise NotImplementedError

       adkit.exercises.check("01.midway_two_images", my_midway)

   It runs under nbval: defining the stub raises nothing, and :func:`check` never
   raises (a stub gives "✗ ... not written yet"). Its output is not compared (no
   ``nbval-check-output`` tag, no ``# NBVAL_CHECK_OUTPUT`` marker), so whatever a
   student writes there never breaks the tests.

3. The **solution cell**, collapsed and tagged: cell metadata
   ``{"tags": ["solution", "hide-input"], "jupyter": {"source_hidden": true}}``
   (JupyterLab shows the cell folded, the documentation site shows a "show code"
   toggle, nbval runs it like any other)::

       # Solution
       def my_midway(u, v):
           ...
       adkit.exercises.check("01.midway_two_images", my_midway).assert_passed()

   ``assert_passed()`` raises (with the report) unless every case passes, so a
   solution that stops agreeing with the library fails the notebook's test; it
   returns the result, whose ✓ report is the cell's output. The solution reuses the
   student's function name, so after it the rest of the notebook may use it.

With nbformat: ``cell.metadata["tags"] = ["solution", "hide-input"]`` and
``cell.metadata["jupyter"] = {"source_hidden": True}``. The statement, the cases and
the hints live here, not in the notebook; keep solutions short (numpy, plus the scipy or
scikit-image function the statement names).
"""
from __future__ import annotations

import difflib

from .base import (ID_PATTERN, Case, CaseResult, CheckResult, Exercise, Mistake, compare,
                   describe, register, registered)

__all__ = ["list", "get", "check", "Exercise", "Case", "Mistake", "CheckResult",
           "CaseResult", "register", "registered", "compare", "describe", "ID_PATTERN"]


def get(id: str) -> Exercise:
    """The exercise ``id`` (e.g. ``"01.midway_two_images"``); shows its statement."""
    exercises = registered()
    if id in exercises:
        return exercises[id]
    close = difflib.get_close_matches(str(id), exercises, n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
    raise KeyError(f"there is no exercise {id!r}: {hint}adkit.exercises.list() gives them all.")


def check(id: str, student, seed: int = 0) -> CheckResult:
    """Check ``student`` (your function itself, without parentheses) against exercise
    ``id``; returns a :class:`CheckResult` (``.passed``, a ✓ / ✗ report)."""
    return get(id).check(student, seed=seed)


from . import (lesson00, lesson01, lesson02, lesson03, lesson04, lesson05,  # noqa: E402,F401
               lesson06, lesson07)


def list(lesson: int | None = None):  # noqa: A001 - adkit.exercises.list() reads well
    """The ids of the exercises, in order; only those of one lesson with ``lesson=NN``."""
    ids = sorted(registered())
    if lesson is None:
        return ids
    return [i for i in ids if int(i[:2]) == int(lesson)]
