"""The benchmark grid (adkit.bench.grid, adkit.bench.report): a resumable grid of cells on a
Dask LocalCluster or in subprocesses, one row per cell whichever runs it."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from distributed import Client, LocalCluster

from adkit.bench import grid, report
from adkit.cli import main

#: 2 methods × 2 embedded datasets × 2 seeds, tiny
GRID = dict(methods=["reference", "knn"], datasets=["synthetic/pill", "textures/brick"],
            seeds=[0, 1], size=32, n_train=6, n_test=6)
METRICS = ("image_auroc", "pixel_auroc", "aupro")


def _cli_args(results):
    return ["bench", "--methods", *GRID["methods"], "--data", *GRID["datasets"],
            "--seeds", *map(str, GRID["seeds"]), "--size", str(GRID["size"]),
            "--n-train", str(GRID["n_train"]), "--n-test", str(GRID["n_test"]),
            "--results", str(results)]


def _kill_midway(results, timeout=120):
    """Start the grid's client (``--scheduler local``, 2 workers) in its own process group,
    kill the whole group (client, nannies, workers) as soon as the results file has a row;
    return the rows it had left."""
    cmd = [sys.executable, "-m", "adkit", *_cli_args(results), "--scheduler", "local",
           "--workers", "2", "--dashboard-address", "none"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        t0 = time.monotonic()
        while not grid.load_results(results):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() - t0 < timeout, "no row written"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    return grid.load_results(results)


@pytest.fixture
def keep_threads():
    """run_cell(threads=1) in this process: give the other tests their threads back."""
    import faiss
    import torch
    env = {v: os.environ.get(v) for v in grid.THREAD_VARS}
    torch_n, faiss_n = torch.get_num_threads(), faiss.omp_get_max_threads()
    yield
    torch.set_num_threads(torch_n)
    faiss.omp_set_num_threads(faiss_n)
    for k, v in env.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def test_grid_resumes_after_a_kill_and_matches_the_sequential_run(tmp_path, keep_threads):
    cells = grid.make_cells(**GRID)
    keys = [grid.cell_key(c) for c in cells]
    assert len(set(keys)) == 8
    results = tmp_path / "results.csv"

    before = _kill_midway(results)
    assert 1 <= len(before) < 8, f"the kill came too late: {len(before)} rows"
    assert {r["cell"] for r in before} < set(keys)
    [first_run] = {r["run_id"] for r in before}

    # a bad cell among them: its error row is recorded and the grid goes on
    bad = dict(cells[0], params={"no_such_keyword": 1})
    # the re-run goes to an existing cluster by its address (as --scheduler tcp://...)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        rows = grid.run_grid(cells + [bad], results, scheduler=cluster.scheduler_address,
                             progress=False, log=None)
        after = grid.load_results(results)
        # --retry-failed runs the error row again, and only it (here through a Client)
        with Client(cluster) as client:
            again = grid.run_grid(cells + [bad], results, client=client, retry_failed=True,
                                  progress=False, log=None)
    assert [r["cell"] for r in rows] == keys + [grid.cell_key(bad)]
    assert len(after) == 9 and all("error" not in r for r in rows[:8])
    assert "no_such_keyword" in rows[8]["error"] and rows[8]["method"] == "reference"
    # the rows finished before the kill are kept as they were; only the others ran again
    assert after[:len(before)] == before
    second_run = {r["run_id"] for r in rows} - {first_run}
    assert len(second_run) == 1
    ran = {r["cell"] for r in rows if r["run_id"] in second_run}
    assert ran == set(keys + [grid.cell_key(bad)]) - {r["cell"] for r in before}
    assert {r["host"] for r in rows} and {r["pid"] for r in rows[:8]} != {os.getpid()}
    assert [r["run_id"] for r in again[:8]] == [r["run_id"] for r in rows[:8]]
    assert again[8]["run_id"] not in {r["run_id"] for r in rows} and "error" in again[8]
    assert len(grid.load_results(results)) == 9

    # a sequential run computes the same rows: the same function (run_cell) one cell
    # after another in this process, and the sequential mode proper (a fresh subprocess
    # per cell, the default of python -m adkit bench) for one cell
    seq = [grid.run_cell(c, threads=1) for c in cells]
    [sub] = grid.run_grid([cells[1]], None, threads=1, progress=False, log=None)
    assert sub["pid"] not in {os.getpid(), rows[1]["pid"]}
    for d, s in list(zip(rows[:8], seq)) + [(rows[1], sub)]:
        assert (d["method"], d["data"], d["seed"], d["n_fit"], d["cell"]) == \
            (s["method"], s["data"], s["seed"], s["n_fit"], s["cell"])
        for m in METRICS:
            assert d[m] == pytest.approx(s[m], rel=1e-6, abs=1e-9), (d["cell"], m)
        assert s["peak_MB"] > 10
    dist_table, seq_table = report.summarize(rows[:8]), report.summarize(seq)
    assert dist_table["methods"] == ["reference", "knn"] == seq_table["methods"]
    for m in dist_table["methods"]:
        for d in dist_table["datasets"]:
            a, b = dist_table["cells"][m][d], seq_table["cells"][m][d]
            assert a["n"] == b["n"] == 2 and a["seeds"] == b["seeds"] == [0, 1]
            assert a["mean"] == pytest.approx(b["mean"]) and a["std"] == pytest.approx(b["std"])


def _row(method, data, seed, auroc, **extra):
    cell = grid.make_cells([method], [data], seeds=[seed], size=32)[0]
    return {"method": method, "data": data, "seed": seed, "size": 32,
            "image_auroc": auroc, "params": "{}", "cell": grid.cell_key(cell), **extra}


def test_report_table_json_and_heatmap(tmp_path, capsys):
    rows = [_row("reference", "synthetic/pill", 0, 0.8), _row("reference", "synthetic/pill", 1, 0.9),
            _row("reference", "textures/brick", 0, 0.5), _row("reference", "textures/brick", 1, 0.7),
            _row("knn", "synthetic/pill", 0, 1.0), _row("knn", "synthetic/pill", 1, 0.9),
            {**_row("knn", "textures/brick", 0, None), "error": "RuntimeError: boom"},
            _row("knn", "textures/brick", 1, 0.6)]
    rows[6].pop("image_auroc")
    path = tmp_path / "results.parquet"
    grid.save_results(rows, path)
    assert grid.load_results(path) == rows
    fig = tmp_path / "heat.png"
    assert main(["report", str(path), "--figure", str(fig)]) == 0
    out = capsys.readouterr().out
    assert fig.stat().st_size > 1000
    lines = out.splitlines()
    assert lines[0].split() == ["method", "synthetic/pill", "textures/brick", "mean"]
    assert lines[1].split()[:4] == ["reference", "0.850", "±", "0.071"]
    assert "0.600 (n=1) +1 err" in lines[2] and "1 error row" in out
    assert main(["report", str(path), "--json", "--figure", "none"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["cells"]["knn"]["textures/brick"] == {"mean": 0.6, "std": None, "n": 1,
                                                       "seeds": [1], "errors": 1}
    assert table["mean"]["reference"] == pytest.approx((0.85 + 0.6) / 2)
    assert main(["report", str(path), "--metric", "nope", "--figure", "none"]) == 2
    assert "no row has a value for metric 'nope'" in capsys.readouterr().err


def test_report_never_averages_unlike_settings():
    rows = [_row("knn", "synthetic/pill", 0, 0.9),
            {**_row("knn", "synthetic/pill", 0, 0.5),
             "cell": grid.cell_key(grid.make_cells(["knn"], ["synthetic/pill"], size=64)[0])}]
    table = report.summarize(rows)
    assert table["methods"] == ["knn [size=32]", "knn [size=64]"]


def test_results_file_survives_a_kill_during_a_write(tmp_path, monkeypatch):
    path = tmp_path / "r.csv"
    rows = [_row("reference", "synthetic/pill", 0, 0.8)]
    grid.save_results(rows, path)
    import pandas as pd

    def torn(self, *a, **k):       # the process dies half way through writing
        raise KeyboardInterrupt
    monkeypatch.setattr(pd.DataFrame, "to_csv", torn)
    with pytest.raises(KeyboardInterrupt):
        grid.save_results(rows + [_row("reference", "synthetic/pill", 1, 0.9)], path)
    assert grid.load_results(path) == rows and os.listdir(tmp_path) == ["r.csv"]


def test_cells_keys_and_clear_errors(tmp_path, capsys, monkeypatch):
    a = grid.make_cells(["knn"], ["synthetic/pill"], params={"k": 1},
                        method_params={"knn": {"coreset": 0.1}}, steps=("midway",))[0]
    assert a["params"] == {"coreset": 0.1, "k": 1} and a["steps"] == ["midway"]
    assert grid.cell_key(a) == grid.cell_key(json.loads(grid.cell_key(a)))
    assert grid.cell_key(dict(a, seed=1)) != grid.cell_key(a)
    with pytest.raises(ValueError, match="not in the grid"):
        grid.make_cells(["reference"], ["synthetic/pill"], method_params={"knn": {"k": 1}})
    with pytest.raises(ValueError, match="workers sizes a local cluster"):
        grid.run_grid([a], None, workers=2)
    with pytest.raises(ValueError, match="threads must be"):
        grid.run_grid([a], None, threads=0)
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        grid.load_results(tmp_path / "r.txt")
    # --scheduler without dask: an error naming the extra
    monkeypatch.setitem(sys.modules, "distributed", None)
    assert main([*_cli_args(tmp_path / "r.csv"), "--scheduler", "local"]) == 2
    assert '.[grid]' in capsys.readouterr().err


def test_dashboard_link_or_why_not(monkeypatch):
    with LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address="127.0.0.1:0") \
            as cluster, Client(cluster) as client:
        line = grid._dashboard(client)
        assert line == f"Dask dashboard: {client.dashboard_link}" and "/status" in line
    # without bokeh the scheduler serves a page that says so: print that, and go on
    monkeypatch.setitem(sys.modules, "distributed.dashboard.scheduler", None)
    with LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address="127.0.0.1:0") \
            as cluster, Client(cluster) as client:
        assert "lacks bokeh" in grid._dashboard(client)


def test_sequential_bench_needs_no_dask(tmp_path):
    """adkit imports, and python -m adkit bench (sequential) runs, where dask is missing."""
    for name in ("dask", "distributed"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('no {name} here')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    results = tmp_path / "r.csv"
    cmd = [sys.executable, "-m", "adkit", "bench", "--methods", "reference", "--size", "32",
           "--n-train", "4", "--n-test", "4", "--results", str(results), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [row] = json.loads(proc.stdout)
    assert row["n_fit"] == 4 and "image_auroc" in row and "error" not in row
    assert grid.load_results(results) == [row]
    proc = subprocess.run(cmd + ["--scheduler", "local"], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 2 and 'pip install -e ".[grid]"' in proc.stderr
