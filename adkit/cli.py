"""Command line: ``python -m adkit run|bench|report|list|dashboard``.

Examples::

    python -m adkit list
    python -m adkit run --data synthetic/pill --method reference --steps midway align
    python -m adkit run --data synthetic/pill --method knn --param coreset=0.1 --size 128
    python -m adkit bench --data synthetic/pill synthetic/nut --methods reference knn
    python -m adkit bench --data mvtec/bottle --root /data/mvtec --methods knn
    python -m adkit bench --data mvtec/bottle --root /data/mvtec --methods all --size 256
    python -m adkit bench --task reference
    python -m adkit bench --data synthetic/pill synthetic/nut --methods reference knn \
        --seeds 0 1 2 --scheduler local --results results.parquet
    python -m adkit report results.parquet --metric image_auroc --figure report.png
    python -m adkit dashboard --data synthetic/pill --methods reference knn --steps midway align
"""
from __future__ import annotations

import argparse
import ast
import json
import sys

__all__ = ["main"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _parse_params(items) -> dict:
    params = {}
    for item in items or []:
        if "=" not in item:
            raise SystemExit(f"--param expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            params[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            params[k] = v
    return params


def _bench_params(items) -> tuple[dict, dict]:
    """``--param key=value`` (every method) and ``--param method.key=value`` (one)."""
    every, per = {}, {}
    for k, v in _parse_params(items).items():
        method, dot, name = k.partition(".")
        if dot:
            per.setdefault(method, {})[name] = v
        else:
            every[k] = v
    return every, per


def _data_kwargs(args) -> dict:
    kw = {}
    for name in ("size", "n_train", "n_test", "root"):
        v = getattr(args, name)
        if v is not None:
            kw[name] = v
    return kw


def _add_data_args(p):
    p.add_argument("--size", type=int, default=None, help="image side in pixels")
    p.add_argument("--n-train", dest="n_train", type=int, default=None)
    p.add_argument("--n-test", dest="n_test", type=int, default=None)
    p.add_argument("--root", default=None, help="MVTec AD root folder (for mvtec/<category>)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eps", type=float, default=1.0, help="ε for mIoU / F1 (default 1)")
    p.add_argument("--json", action="store_true", help="print JSON rows instead of a table")


def _serve_dashboard(args) -> int:
    import panel as pn

    from . import bench as B
    from . import data, widgets
    kw = _data_kwargs(args)
    try:
        train, test = data.load(args.data, seed=args.seed, **kw)
        results, rows = B.compare(args.methods, train, test, steps=args.steps, eps=args.eps)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(B.format_table(rows), flush=True)

    def app():   # one set of widgets per browser session, over results fitted once
        return widgets.dashboard(results, test, eps=args.eps, title=f"adkit · {args.data}")
    local = args.address in LOOPBACK
    if not local:
        print(f"warning: listening on {args.address}, beyond this machine: anyone who can "
              f"reach it on port {args.port} can open the dashboard (no password). Serve "
              "only on a network you trust, and stop the server (Ctrl-C) after class.",
              file=sys.stderr, flush=True)
    shown = args.address if args.address not in ("0.0.0.0", "::") else "<this machine's address>"
    print(f"serving on http://{shown}:{args.port}/ (Ctrl-C to stop)", flush=True)
    # from other machines the page is opened under any of this machine's names or addresses
    origins = ([f"{args.address}:{args.port}", f"localhost:{args.port}",
                f"127.0.0.1:{args.port}"] if local else ["*"])
    pn.serve(app, port=args.port, address=args.address, show=False, websocket_origin=origins)
    return 0


def _bench_grid(args) -> int:
    from . import bench as B
    from .bench import grid
    every, per = _bench_params(args.param)
    dashboard = None if str(args.dashboard_address).lower() == "none" else args.dashboard_address
    try:
        cells = grid.make_cells(args.methods, args.data,
                                seeds=args.seeds if args.seeds else [args.seed],
                                params=every, method_params=per, steps=args.steps,
                                eps=args.eps, **_data_kwargs(args))
        rows = grid.run_grid(cells, args.results, scheduler=args.scheduler,
                             scheduler_file=args.scheduler_file, workers=args.workers,
                             threads=args.threads, dashboard_address=dashboard,
                             retry_failed=args.retry_failed,
                             progress=args.results is not None or args.scheduler is not None
                             or args.scheduler_file is not None,
                             log=lambda *a, **k: print(*a, file=sys.stderr, **k))
    except (ValueError, TypeError, FileNotFoundError, ImportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        hide = set(grid.RUN_COLUMNS)
        if all(r.get("params", "{}") == "{}" for r in rows):
            hide.add("params")
        if len({r.get("seed") for r in rows}) == 1:
            hide.add("seed")
        print(B.format_table([{k: v for k, v in r.items() if k not in hide} for r in rows]))
        if args.results:
            print(f"\nsummary: python -m adkit report {args.results}", file=sys.stderr)
    return 1 if any("error" in r for r in rows) else 0


def _report(args) -> int:
    from .bench import grid, report
    try:
        rows = grid.load_results(args.results)
        if not rows:
            raise FileNotFoundError(f"no rows in {args.results!r}: run python -m adkit bench "
                                    f"... --results {args.results} first.")
        table = report.summarize(rows, args.metric)
        figure = args.figure
        if figure is None:
            stem = args.results.rsplit(".", 1)[0]
            figure = f"{stem}_{args.metric.replace('/', '_')}.png"
        if figure.lower() != "none":
            report.heatmap(table, figure)
    except (ValueError, TypeError, FileNotFoundError, ImportError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(table, indent=1) if args.json else report.format_summary(table))
    if figure.lower() != "none":
        print(f"heatmap: {figure}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    from . import bench as B
    parser = argparse.ArgumentParser(prog="python -m adkit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="datasets and methods available")

    p_run = sub.add_parser("run", help="fit and evaluate one method on one dataset")
    p_run.add_argument("--data", required=True)
    p_run.add_argument("--method", required=True)
    p_run.add_argument("--param", action="append", help="detector keyword, key=value")
    p_run.add_argument("--steps", nargs="*", default=[], help=f"normalization: {sorted(B.STEPS)}")
    _add_data_args(p_run)

    p_b = sub.add_parser("bench", help="time fit/predict per method, dataset and seed (a "
                         "resumable grid, sequential or on Dask), or a micro-task")
    p_b.add_argument("--data", nargs="*", default=["synthetic/pill"])
    p_b.add_argument("--methods", nargs="*", default=["reference"],
                     help="detectors (python -m adkit list), or 'all' for every one")
    p_b.add_argument("--param", action="append",
                     help="detector keyword, key=value (every method) or method.key=value")
    p_b.add_argument("--steps", nargs="*", default=[])
    p_b.add_argument("--task", nargs="*", default=None, help=f"micro-tasks: {sorted(B.TASKS)}")
    _add_data_args(p_b)
    g = p_b.add_argument_group("grid", "seeds, a resumable results file, a Dask cluster")
    g.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="several seeds (default: --seed)")
    g.add_argument("--results", default=None,
                   help="results file (.csv or .parquet): rows added as cells finish, cells "
                        "already there skipped")
    g.add_argument("--retry-failed", dest="retry_failed", action="store_true",
                   help="run the cells of the file's error rows again")
    g.add_argument("--scheduler", default=None,
                   help="'local' (a LocalCluster, one worker per core) or the address of "
                        "a Dask scheduler (tcp://HOST:8786); default: one subprocess per "
                        "cell, one after another")
    g.add_argument("--scheduler-file", dest="scheduler_file", default=None,
                   help="the scheduler file of an existing Dask cluster")
    g.add_argument("--workers", type=int, default=None,
                   help="worker processes of --scheduler local (default: one per core)")
    g.add_argument("--threads", type=int, default=None,
                   help="torch/BLAS threads per cell (default 1 on Dask)")
    g.add_argument("--dashboard-address", dest="dashboard_address", default="127.0.0.1:8787",
                   help="dashboard of --scheduler local ('none': no dashboard)")

    p_r = sub.add_parser("report", help="method × dataset table (mean ± std over seeds) of "
                         "a results file, and its heatmap")
    p_r.add_argument("results", help="results file of `bench --results` (.csv or .parquet)")
    p_r.add_argument("--metric", default="image_auroc",
                     help="column to summarize (default image_auroc)")
    p_r.add_argument("--figure", default=None,
                     help="heatmap file (default: next to the results, <name>_<metric>.png; "
                          "'none': no figure)")
    p_r.add_argument("--json", action="store_true", help="print the table as JSON")

    p_d = sub.add_parser("dashboard", help="serve the comparison dashboard (panel) on a port")
    p_d.add_argument("--data", default="synthetic/pill")
    p_d.add_argument("--methods", nargs="*", default=["reference"])
    p_d.add_argument("--steps", nargs="*", default=[])
    p_d.add_argument("--port", type=int, default=5006)
    p_d.add_argument("--address", default="127.0.0.1",
                     help="interface to listen on (default 127.0.0.1, this machine only); "
                          "0.0.0.0 serves a classroom: every machine that can reach this one")
    _add_data_args(p_d)

    p_cell = sub.add_parser("_cell")  # internal: one grid cell's row in a fresh process
    p_cell.add_argument("spec")

    args = parser.parse_args(argv)
    if "all" in (getattr(args, "methods", None) or []):
        from . import models
        args.methods = sorted(models.METHODS)
    if args.command == "list":
        from . import data, models
        print("datasets:", ", ".join(data.available()), "+ mvtec/<category> with --root")
        print("methods: ", ", ".join(sorted(models.METHODS)))
        print("steps:   ", ", ".join(sorted(B.STEPS)))
        print("tasks:   ", ", ".join(sorted(B.TASKS)))
        return 0
    if args.command == "_cell":
        from .bench import grid
        print(json.dumps(grid.run_cell(**json.loads(args.spec))))
        return 0
    if args.command == "dashboard":
        return _serve_dashboard(args)
    if args.command == "report":
        return _report(args)
    if args.command == "bench" and not args.task:
        return _bench_grid(args)
    try:
        if args.command == "run":
            rows = [B.bench_one(args.method, args.data, _parse_params(args.param), args.steps,
                                seed=args.seed, eps=args.eps, **_data_kwargs(args))]
        else:
            # a task takes the image size, the numbers of images and --param keywords
            # that it knows (e.g. --task aesc --param epochs=100)
            kw = {k: v for k, v in _data_kwargs(args).items() if k != "root"}
            rows = [B.run_task(t, **kw, **_parse_params(args.param)) for t in args.task]
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(rows, indent=1) if args.json else B.format_table(rows))
    return 1 if any("error" in r for r in rows) else 0
