"""Benchmarks: time fit / predict of detectors on datasets, and named micro-tasks.

Speed in adkit is measured here, never by a timed test. ``python -m adkit bench``
runs each (method, dataset) pair in a fresh subprocess so that its peak memory
(maximum resident set size of the process, which includes Python, torch and the
data) is its own, and prints one table row per pair::

    method  data            size  n_fit  n_pred  fit_s  predict_s  pred_img/s  peak_MB  image_auroc  pixel_auroc  aupro

Micro-tasks (``--task NAME``) time one acceptance criterion each (e.g. aligning 100
images, one ε-slider update); see :data:`TASKS`.

Modules: :mod:`adkit.bench.tasks` holds every micro-task (a ``bench_*`` function each),
:mod:`adkit.bench.settings` the settings of the lessons that a benchmark reproduces.
The method modules know nothing of benchmarks or notebooks. :mod:`adkit.bench.grid` runs
the whole grid (methods × datasets × seeds), resumable, sequentially or on a Dask cluster,
and :mod:`adkit.bench.report` summarizes its results file.
"""
from __future__ import annotations

import inspect
import os
import resource
import sys
import time

import numpy as np

from .tasks import TASKS

__all__ = ["make_detector", "compare", "bench_one", "bench", "format_table", "TASKS",
           "run_task", "CALIBRATE"]

#: normalization steps by CLI name
STEPS = {"midway": "Midway", "align": "Align", "background": "BackgroundCleanup", "n2n": "N2N"}


def make_detector(method: str, params: dict | None = None, steps=(), progress=None):
    """Build a detector from its CLI name (see ``adkit.models.METHODS``), wrapped in a
    Pipeline when normalization ``steps`` (CLI names, see :data:`STEPS`) are given.
    ``progress`` (when not None) goes to the detector and the steps that show a bar."""
    from .. import models, normalize
    if method not in models.METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {sorted(models.METHODS)}.")

    def build(cls, kw):
        if progress is not None and "progress" in inspect.signature(cls).parameters:
            kw = {"progress": progress, **kw}
        return cls(**kw)

    det = build(getattr(models, models.METHODS[method]), dict(params or {}))
    if steps:
        bad = [s for s in steps if s not in STEPS]
        if bad:
            raise ValueError(f"unknown step(s) {bad}; choose from {sorted(STEPS)}.")
        det = models.Pipeline([build(getattr(normalize, STEPS[s]), {}) for s in steps], det)
    return det


#: methods without a background model: wrapped in ``Calibrated`` by :func:`compare`
CALIBRATE = ("reference", "gaussian", "knn", "aesc")


def compare(methods, train, test, steps=(), params: dict | None = None,
            calibrate: bool = True, eps: float = 1.0, holdout: float = 0.2,
            progress: bool = True) -> tuple[dict, list[dict]]:
    """Fit and predict several methods on one dataset, in this process.

    Each method runs bare and, when ``steps`` are given, also behind those
    normalization steps. Methods of :data:`CALIBRATE` are wrapped in
    :class:`adkit.models.Calibrated` (when ``calibrate``; ``calibrate="all"`` wraps the
    a contrario methods too, whose own NFA then stays in ``extras["model_log_nfa"]``),
    so ``segment(eps)`` means about ε false detections per normal image for every
    method. Each row also reports ``model_false_alarms`` (false detections per good
    image at ``eps`` under the method's own NFA) where the method has one.

    Parameters
    ----------
    methods : list of str
        CLI names (``adkit.models.METHODS``).
    train, test : Split
    steps : list of str
        Normalization steps (CLI names, :data:`STEPS`) for the second variant.
    params : dict
        ``{method: {keyword: value}}`` for the detectors.

    Returns
    -------
    results : dict
        ``{method: {"none" | "+".join(steps): AnomalyResult}}``, what
        :func:`adkit.widgets.dashboard` takes.
    rows : list of dict
        One row per (method, variant): metrics at ``eps`` and fit / predict seconds.
    """
    from tqdm.auto import tqdm

    from .. import models
    params = params or {}
    variants = [()] + ([tuple(steps)] if steps else [])
    results: dict = {}
    rows = []
    jobs = [(m, v) for m in methods for v in variants]
    for method, variant in tqdm(jobs, desc="methods", disable=not progress):
        kw = dict(params.get(method) or {})
        cls = getattr(models, models.METHODS.get(method, ""), None)
        if cls is not None and "progress" in cls._param_names():
            kw.setdefault("progress", progress)
        det = make_detector(method, kw, variant)
        if calibrate == "all" or (calibrate and method in CALIBRATE):
            det = models.Calibrated(det, holdout=holdout)
        t0 = time.perf_counter()
        det.fit(train)
        t1 = time.perf_counter()
        res = det.predict(test)
        t2 = time.perf_counter()
        name = "+".join(variant) or "none"
        results.setdefault(method, {})[name] = res
        row = {"method": method, "preprocessing": name}
        row.update(_quality(res, test, eps))
        row.update({"fit_s": t1 - t0, "predict_s": t2 - t1})
        rows.append(row)
    return results, rows


def _quality(res, test, eps: float) -> dict:
    """All metrics at ``eps``, plus the false alarms under the method's own NFA when a
    calibration replaced it (``model_false_alarms``)."""
    from .. import metrics
    row = metrics.evaluate(res, test, eps=eps)
    own = res.extras.get("model_log_nfa")
    good = np.asarray(test.labels) == 0
    if own is not None and good.any():
        row["model_false_alarms"] = metrics.false_alarms_per_image(own[good] < np.log10(eps))
    return row


def _peak_mb() -> float:
    # ru_maxrss is in kilobytes on Linux, bytes on macOS
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 if sys.platform != "darwin" else r / 2 ** 20


def bench_one(method: str, data: str, params: dict | None = None, steps=(),
              size: int | None = None, n_train: int | None = None, n_test: int | None = None,
              seed: int = 0, root: str | None = None, eps: float = 1.0,
              progress: bool = True) -> dict:
    """Fit and predict one method on one dataset in this process; returns a row dict.

    ``seed`` draws the data and seeds the detector too where it has a ``seed`` keyword
    (unless ``params`` sets it), so that seeds of a grid differ also on real data.
    ``progress=False`` hides the progress bars of the reader and of the detector."""
    from .. import data as D
    from .. import models
    kw = {"seed": seed}
    if size is not None:
        kw["size"] = size
    if n_train is not None:
        kw["n_train"] = n_train
    if n_test is not None:
        kw["n_test"] = n_test
    if root is not None:
        kw["root"] = root
    if not progress and data.partition("/")[0] in ("mvtec", "folder"):
        kw["progress"] = False         # the readers of files show a bar
    train, test = D.load(data, **kw)
    params = dict(params or {})
    cls = getattr(models, models.METHODS.get(method, ""), None)
    if cls is not None and "seed" in inspect.signature(cls).parameters:
        params.setdefault("seed", seed)
    det = make_detector(method, params, steps, progress=None if progress else False)
    t0 = time.perf_counter()
    det.fit(train)
    t1 = time.perf_counter()
    res = det.predict(test)
    t2 = time.perf_counter()
    row = {"method": method + ("+" + "+".join(steps) if steps else ""), "data": data,
           "size": int(train.size[0]), "n_fit": len(train), "n_pred": len(test),
           "fit_s": t1 - t0, "predict_s": t2 - t1, "pred_img/s": len(test) / (t2 - t1),
           "peak_MB": _peak_mb()}
    if test.labels.min() != test.labels.max():
        row.update(_quality(res, test, eps))
    return row


def bench(methods, datasets, params: dict | None = None, seeds=None, **kw) -> list[dict]:
    """Run :func:`bench_one` for every (method, dataset) pair (and seed), each in a fresh
    subprocess, one after another; returns the rows of :func:`adkit.bench.grid.run_cell`.

    ``params`` go to every method; other keywords (``steps``, ``size``, ``n_train``,
    ``n_test``, ``root``, ``eps``, ``seed``) to :func:`adkit.bench.grid.make_cells`, and
    ``results``, ``scheduler``... to :func:`adkit.bench.grid.run_grid` (a Dask cluster
    instead of subprocesses, a resumable results file)."""
    from . import grid
    run_kw = {k: kw.pop(k) for k in ("results", "scheduler", "scheduler_file", "client",
                                     "workers", "threads", "dashboard_address",
                                     "retry_failed", "progress", "log") if k in kw}
    run_kw.setdefault("progress", False)
    run_kw.setdefault("log", None)
    seed = kw.pop("seed", 0)
    cells = grid.make_cells(methods, datasets, seeds=[seed] if seeds is None else seeds,
                            params=params, **kw)
    return grid.run_grid(cells, **run_kw)


def format_table(rows: list[dict]) -> str:
    """Rows of dicts → a fixed-width text table (floats to 3 significant digits)."""
    if not rows:
        return "(no rows)"
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]

    def fmt(v):
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 1000 else f"{v:.0f}"
        return str(v)

    cells = [[fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


# -- micro-tasks ------------------------------------------------------------------------
def run_task(name: str, **kw) -> dict:
    """Run the micro-task ``name`` of :data:`TASKS` with the options it takes among ``kw``
    (e.g. ``size``); returns its figures plus ``total_s``, ``peak_MB`` and ``cores``."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {sorted(TASKS)}.")
    fn = TASKS[name]
    params = inspect.signature(fn).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        kw = {k: v for k, v in kw.items() if k in params}
    t0 = time.perf_counter()
    out = fn(**kw)
    return {"task": name, **out, "total_s": time.perf_counter() - t0, "peak_MB": _peak_mb(),
            "cores": os.cpu_count()}
