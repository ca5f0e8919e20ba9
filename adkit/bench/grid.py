"""The benchmark grid: every (method, dataset, seed) cell, resumable, on one machine or on a
Dask cluster.

A *cell* is one fit + predict of one method on one dataset with one seed, described by a
dict of plain values (:data:`CELL_FIELDS`); its *key* is that dict as canonical JSON
(:func:`cell_key`). :func:`run_cell` computes a cell's row wherever it runs: in a fresh
subprocess (the default, sequential mode of ``python -m adkit bench``) or as one task on a
``dask.distributed`` worker (``--scheduler local``, ``--scheduler tcp://HOST:8786`` or
``--scheduler-file PATH``). The worker loads the data itself (``root`` is a parameter), so
the client sends a few hundred bytes per cell and receives one row.

Rows are written to a results file (``.csv`` or ``.parquet``) on the client as cells finish:
the whole file is rewritten to a temporary file, flushed, fsynced and moved over the old one
with :func:`os.replace`, so a kill at any moment leaves either the old or the new file, never
a torn one. A re-run reads the file and skips every cell whose key is already there; a cell
that failed leaves an error row (with the message) and the grid goes on; ``retry_failed``
runs the error rows again.

dask is optional (``pip install -e ".[grid]"``): it is imported only when a scheduler is
asked for.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid

__all__ = ["CELL_FIELDS", "make_cells", "cell_key", "run_cell", "run_grid", "load_results",
           "save_results", "limit_threads", "connect", "GRID_EXTRA"]

#: what defines a cell (the arguments of :func:`adkit.bench.bench_one`)
CELL_FIELDS = ("method", "data", "seed", "params", "steps", "size", "n_train", "n_test",
               "root", "eps")

#: row columns that describe the run, not the cell's result
RUN_COLUMNS = ("cell", "run_id", "host", "pid", "started", "finished")

#: columns read back as integers from a results file (CSV turns them into floats when a
#: column has gaps)
INT_COLUMNS = ("seed", "size", "n_fit", "n_pred", "pid")

GRID_EXTRA = ('the Dask scheduler is an optional extra: pip install -e ".[grid]" '
              '(or pip install "dask[distributed]" pyarrow)')

#: the environment variables that size the thread pools of BLAS and OpenMP
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


# -- cells ------------------------------------------------------------------------------
def make_cells(methods, datasets, seeds=(0,), params: dict | None = None,
               method_params: dict | None = None, steps=(), size: int | None = None,
               n_train: int | None = None, n_test: int | None = None,
               root: str | None = None, eps: float = 1.0) -> list[dict]:
    """The cells of a grid, dataset by dataset, then method, then seed.

    Parameters
    ----------
    methods, datasets : list of str
        CLI names (``adkit.models.METHODS``, ``adkit.data.available()`` or
        ``mvtec/<category>`` with ``root``).
    seeds : list of int
        Each seed draws the data (synthetic data, subsets of real data) and seeds the
        detector where it has a ``seed`` keyword.
    params : dict
        Detector keywords for every method.
    method_params : dict
        ``{method: {keyword: value}}``, for one method only (wins over ``params``).
    steps, size, n_train, n_test, root, eps
        As in :func:`adkit.bench.bench_one`. ``root`` is made absolute here, so that a
        worker started elsewhere reads the same folder (on a cluster it must be a path
        that every worker sees).
    """
    if isinstance(methods, str) or isinstance(datasets, str):
        raise TypeError("methods and datasets must be lists of names, e.g. ['reference'], "
                        f"got {methods!r} and {datasets!r}.")
    seeds = [seeds] if isinstance(seeds, int) else list(seeds)
    if not methods or not datasets or not seeds:
        raise ValueError(f"a grid needs at least one method, dataset and seed, got "
                         f"methods={list(methods)}, datasets={list(datasets)}, seeds={seeds}.")
    unknown = set(method_params or {}) - set(methods)
    if unknown:
        raise ValueError(f"parameters given for method(s) {sorted(unknown)} that are not in "
                         f"the grid {list(methods)}.")
    if root is not None:
        root = os.path.abspath(os.path.expanduser(str(root)))
    cells = []
    for data in datasets:
        for method in methods:
            p = {**(params or {}), **((method_params or {}).get(method) or {})}
            for seed in seeds:
                cells.append(_canonical({
                    "method": method, "data": data, "seed": seed, "params": p,
                    "steps": list(steps), "size": size, "n_train": n_train,
                    "n_test": n_test, "root": root, "eps": eps}))
    return cells


def _canonical(cell: dict) -> dict:
    """The cell as it reads back from its key: JSON types only (tuples become lists)."""
    missing = [f for f in ("method", "data") if f not in cell]
    extra = sorted(set(cell) - set(CELL_FIELDS))
    if missing or extra:
        raise ValueError(f"a cell has the fields {list(CELL_FIELDS)} ('method' and 'data' "
                         f"required); missing {missing}, unknown {extra}.")
    full = {"seed": 0, "params": {}, "steps": [], "size": None, "n_train": None,
            "n_test": None, "root": None, "eps": 1.0, **cell}
    if not isinstance(full["seed"], int) or isinstance(full["seed"], bool):
        raise TypeError(f"a cell's seed must be an int, got {full['seed']!r}.")
    full["params"] = dict(full["params"] or {})
    full["steps"] = list(full["steps"] or [])
    full["eps"] = float(full["eps"])
    return json.loads(json.dumps(full, sort_keys=True))


def cell_key(cell: dict) -> str:
    """A cell's identity: its fields as canonical JSON (sorted keys, no spaces)."""
    return json.dumps(_canonical(cell), sort_keys=True, separators=(",", ":"))


# -- one cell ---------------------------------------------------------------------------
def limit_threads(n: int) -> None:
    """Use ``n`` threads for torch, faiss and the BLAS / OpenMP libraries of this process
    and its children.

    The environment variables (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``...) reach the
    libraries loaded later and subprocesses; ``torch.set_num_threads`` and
    ``faiss.omp_set_num_threads`` take effect now. A Dask worker runs one cell per worker
    thread, so one thread per cell keeps a worker per core from oversubscribing the cores.
    (A BLAS already loaded keeps the count it read at start: a LocalCluster and the
    default Dask nanny set these variables before a worker starts.)
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}.")
    for var in THREAD_VARS:
        os.environ[var] = str(n)
    import faiss
    import torch
    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)


def _reset_peak_memory() -> None:
    # Linux: writing 5 to clear_refs resets the process's resident-set high-water mark
    # (VmHWM, which getrusage's ru_maxrss reports), so a long-lived worker reports each
    # cell's own peak. Elsewhere the peak is the process's since it started.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def run_cell(cell: dict | str, run_id: str | None = None, threads: int | None = None) -> dict:
    """Fit and predict one cell in this process and return its row.

    The same function makes the row in every mode (a subprocess per cell, or a Dask
    task). An exception inside the cell does not propagate: the row then carries
    ``error`` (``"TypeName: message"``) and the cell's fields. Besides the columns of
    :func:`adkit.bench.bench_one`, a row has ``seed``, ``cell_s`` (wall seconds of the
    whole cell: reading or generating the data, fit, predict, metrics), ``params`` (JSON)
    and the run columns ``cell`` (the key), ``run_id``, ``host``, ``pid``, ``started``, ``finished``
    (Unix seconds). ``peak_MB`` is the peak resident memory of the process while it ran
    the cell (on Linux the high-water mark is reset first, so a worker that outlives its
    cells reports each one's own; Python and the libraries are included).
    """
    from . import bench_one
    spec = _canonical(json.loads(cell) if isinstance(cell, str) else cell)
    key = cell_key(spec)
    if threads is not None:
        limit_threads(threads)
    started = time.time()
    method = spec["method"] + "".join("+" + s for s in spec["steps"])
    head = {"method": method, "data": spec["data"], "seed": spec["seed"]}
    try:
        _reset_peak_memory()
        kw = {k: spec[k] for k in CELL_FIELDS if k != "steps"}
        out = bench_one(**kw, steps=tuple(spec["steps"]), progress=False)
        row = {**head, **{k: v for k, v in out.items() if k not in head}}
    except Exception as e:   # the grid goes on; the row says what went wrong
        row = {**head, "size": spec["size"], "error": f"{type(e).__name__}: {e}"}
    finished = time.time()
    row["cell_s"] = finished - started
    row["params"] = json.dumps(spec["params"], sort_keys=True)
    row.update({"cell": key, "run_id": run_id, "host": socket.gethostname(),
                "pid": os.getpid(), "started": started, "finished": finished})
    return row


def _error_row(cell: dict, message: str, run_id: str | None) -> dict:
    """The row of a cell that did not return one (its process died, the task was lost)."""
    spec = _canonical(cell)
    return {"method": spec["method"] + "".join("+" + s for s in spec["steps"]),
            "data": spec["data"], "seed": spec["seed"], "size": spec["size"],
            "error": message, "params": json.dumps(spec["params"], sort_keys=True),
            "cell": cell_key(spec), "run_id": run_id, "host": None, "pid": None,
            "started": None, "finished": time.time()}


def _run_in_subprocess(cell: dict, run_id: str, threads: int | None) -> dict:
    """:func:`run_cell` in a fresh Python process (its peak memory is its own)."""
    env = dict(os.environ)
    if threads is not None:
        env.update({var: str(threads) for var in THREAD_VARS})
    spec = json.dumps({"cell": cell, "run_id": run_id, "threads": threads})
    proc = subprocess.run([sys.executable, "-m", "adkit", "_cell", spec],
                          capture_output=True, text=True, env=env)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode == 0 and lines:
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    err = proc.stderr.strip().splitlines()
    return _error_row(cell, err[-1] if err else f"the cell's process exited with code "
                      f"{proc.returncode}", run_id)


# -- the results file -------------------------------------------------------------------
def _format(path) -> str:
    path = os.fspath(path)
    for suffix, fmt in ((".csv", "csv"), (".parquet", "parquet"), (".pq", "parquet")):
        if path.lower().endswith(suffix):
            return fmt
    raise ValueError(f"the results file must end in .csv or .parquet, got {path!r}.")


def _need_parquet():
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise ImportError("writing or reading .parquet results needs pyarrow: "
                          'pip install -e ".[grid]" (or pip install pyarrow), or use a '
                          ".csv results file.") from None


def load_results(path) -> list[dict]:
    """The rows of a results file (``[]`` when it does not exist), missing values left out."""
    import math

    import pandas as pd
    fmt = _format(path)
    if not os.path.exists(path):
        return []
    if fmt == "parquet":
        _need_parquet()
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    rows = []
    for rec in df.to_dict("records"):
        row = {}
        for k, v in rec.items():
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            if hasattr(v, "item"):          # numpy scalar → Python
                v = v.item()
            if k in INT_COLUMNS and isinstance(v, float) and v.is_integer():
                v = int(v)
            row[k] = v
        rows.append(row)
    return rows


def save_results(rows: list[dict], path) -> None:
    """Write ``rows`` to ``path`` atomically: a temporary file in the same folder, flushed
    and fsynced, then :func:`os.replace` over the old file (and the folder fsynced)."""
    import pandas as pd
    fmt = _format(path)
    if fmt == "parquet":
        _need_parquet()
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    df = pd.DataFrame(rows, columns=cols)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            if fmt == "parquet":
                df.to_parquet(f, index=False)
            else:
                f.write(df.to_csv(index=False).encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:      # e.g. Windows cannot open a folder
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- the grid ---------------------------------------------------------------------------
def connect(scheduler: str | None = None, scheduler_file: str | None = None,
            workers: int | None = None, threads: int = 1,
            dashboard_address: str | None = "127.0.0.1:8787"):
    """A ``dask.distributed`` Client: on a new LocalCluster (``scheduler="local"``: one
    worker process per core, one thread each, bound to 127.0.0.1) or on an existing
    scheduler (``"tcp://HOST:8786"``, or ``scheduler_file``). Every worker, also one that
    joins later, runs :func:`limit_threads` (``threads``) through a worker plugin.
    Returns ``(client, cluster)``; ``cluster`` is None for an existing scheduler."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ImportError(GRID_EXTRA) from None
    from .workers import ThreadLimits
    if (scheduler is None) == (scheduler_file is None):
        raise ValueError("give a scheduler ('local' or an address such as tcp://HOST:8786) "
                         "or a scheduler file, exactly one of them.")
    cluster = None
    if scheduler == "local":
        n = workers or _cores()
        env = {var: str(threads) for var in THREAD_VARS}
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=dashboard_address,
                               env=env)
        client = Client(cluster)
    elif scheduler_file is not None:
        if not os.path.exists(scheduler_file):
            raise FileNotFoundError(f"scheduler file {scheduler_file!r} not found: pass the "
                                    "file the scheduler wrote (dask scheduler "
                                    "--scheduler-file PATH).")
        client = Client(scheduler_file=scheduler_file)
    else:
        if workers is not None:
            raise ValueError("--workers sizes a local cluster; an existing scheduler has "
                             "its own workers.")
        client = Client(scheduler)
    try:
        client.register_plugin(ThreadLimits(threads))
    except BaseException:
        client.close()
        if cluster is not None:
            cluster.close()
        raise
    return client, cluster


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _dashboard(client) -> str:
    """The line to print about the scheduler's dashboard: its link when it answers."""
    import urllib.error
    import urllib.request
    try:
        link = client.dashboard_link
    except Exception as e:
        return f"Dask dashboard: unknown ({e}); going on without it"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(link, timeout=5) as r:
            page = r.read(20000).decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return (f"Dask dashboard: not available ({link} answers {e.code}: the scheduler "
                "runs without one); going on without it")
    except (OSError, ValueError) as e:
        return (f"Dask dashboard: {link} does not answer from this machine ({e}); going "
                "on without it")
    if "needs bokeh" in page.lower():
        return ("Dask dashboard: not available (the scheduler's machine lacks bokeh: pip "
                "install bokeh); going on without it")
    return f"Dask dashboard: {link}"


def run_grid(cells, results=None, *, scheduler: str | None = None,
             scheduler_file: str | None = None, client=None, workers: int | None = None,
             threads: int | None = None, dashboard_address: str | None = "127.0.0.1:8787",
             retry_failed: bool = False, progress: bool = True, log=print) -> list[dict]:
    """Run every cell not yet in ``results`` and return the rows of all cells, in order.

    Parameters
    ----------
    cells : list of dict
        From :func:`make_cells` (or hand-made, with the fields :data:`CELL_FIELDS`).
    results : path, optional
        ``.csv`` or ``.parquet``. Rows already there are kept and their cells skipped;
        each new row is added as its cell finishes (atomic rewrite). None: rows are only
        returned.
    scheduler, scheduler_file, client
        None of them: each cell in a fresh subprocess, one after another. ``"local"``: a
        LocalCluster of ``workers`` processes (default: one per core). An address
        (``tcp://HOST:8786``) or a scheduler file: an existing Dask cluster. Or an
        existing ``distributed.Client``.
    threads : int, optional
        torch / BLAS / OpenMP threads per cell; default 1 on Dask (a worker thread is a
        core), the libraries' own default in the sequential mode.
    dashboard_address : str or None
        Of a local cluster (None: no dashboard).
    retry_failed : bool
        Run the cells of error rows again (their old rows are dropped).
    log : callable
        Where the client's messages go (``print``; None for silence).
    """
    from tqdm.auto import tqdm
    say = log or (lambda *a, **k: None)
    dask_mode = client is not None or scheduler is not None or scheduler_file is not None
    for name, v in (("threads", threads), ("workers", workers)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"{name} must be a whole number >= 1, got {v!r}.")
    if workers is not None and scheduler != "local":
        raise ValueError("workers sizes a local cluster (scheduler='local'); the sequential "
                         "mode runs one cell at a time and an existing cluster has its own "
                         "workers.")
    if dask_mode:
        try:
            import distributed  # noqa: F401
        except ImportError:
            raise ImportError(GRID_EXTRA) from None
    cells = [_canonical(c) for c in cells]
    keys = [cell_key(c) for c in cells]
    by_key = dict(zip(keys, cells))
    stored = load_results(results) if results is not None else []
    if retry_failed:
        stored = [r for r in stored if "error" not in r]
    done = {r.get("cell"): r for r in stored}
    todo = [k for k in by_key if k not in done]
    run_id = uuid.uuid4().hex[:12]
    if results is not None:
        say(f"{len(by_key) - len(todo)} of {len(by_key)} cells already in {results}; "
            f"running {len(todo)} (run {run_id})", flush=True)
        if retry_failed:
            save_results(stored, results)
    rows = list(stored)
    new: dict = {}

    def store(row):
        new[row["cell"]] = row
        rows.append(row)
        if results is not None:
            save_results(rows, results)
        bar.update(1)
        errors = sum("error" in r for r in new.values())
        if errors:
            bar.set_postfix(errors=errors)

    own = None
    if dask_mode and todo and client is None:
        client, cluster = connect(scheduler, scheduler_file, workers,
                                  1 if threads is None else threads, dashboard_address)
        own = (client, cluster)
        say("Dask dashboard: off" if cluster is not None and dashboard_address is None
            else _dashboard(client), flush=True)
    elif dask_mode and todo:
        from .workers import ThreadLimits
        client.register_plugin(ThreadLimits(1 if threads is None else threads))
    bar = tqdm(total=len(todo), desc="cells", unit="cell", disable=not progress)
    try:
        if dask_mode and todo:
            from distributed import as_completed
            futures = {client.submit(run_cell, k, run_id, pure=False,
                                     key=f"adkit-cell-{run_id}-{i}"): k
                       for i, k in enumerate(todo)}
            for fut in as_completed(futures):
                k = futures.pop(fut)
                try:
                    row = fut.result()
                except Exception as e:    # the worker died, the task was lost...
                    row = _error_row(by_key[k], f"{type(e).__name__}: {e}", run_id)
                fut.release()
                store(row)
        else:
            for k in todo:
                store(_run_in_subprocess(by_key[k], run_id, threads))
    finally:
        bar.close()
        if own is not None:
            own[0].close()
            if own[1] is not None:
                own[1].close()
    every = {**done, **new}
    return [every[k] for k in by_key]
