import json

import pytest

import adkit
from adkit import bench
from adkit.cli import main


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "synthetic/pill" in out and "reference" in out


def test_run_prints_metrics_table(capsys):
    code = main(["run", "--data", "synthetic/pill", "--method", "reference", "--size", "64",
                 "--n-train", "10", "--n-test", "10", "--param", "score_sigma=1.0"])
    assert code == 0
    header, row = capsys.readouterr().out.strip().splitlines()
    for col in ("fit_s", "predict_s", "peak_MB", "image_auroc", "pixel_auroc", "aupro"):
        assert col in header
    assert row.startswith("reference")


def test_bench_runs_each_pair_in_a_subprocess(capsys):
    code = main(["bench", "--data", "synthetic/pill", "--methods", "reference", "--size", "64",
                 "--n-train", "8", "--n-test", "8", "--json"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["n_fit"] == 8 and rows[0]["size"] == 64 and rows[0]["peak_MB"] > 10


def test_clear_errors(capsys):
    assert main(["run", "--data", "synthetic/pill", "--method", "nope"]) == 2
    assert "unknown method" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown step"):
        bench.make_detector("reference", steps=["sharpen"])


def test_format_table():
    text = bench.format_table([{"a": 1.23456, "b": "x"}, {"a": 2.0, "c": None}])
    lines = text.splitlines()
    assert lines[0].split() == ["a", "b", "c"] and "1.235" in lines[1] and "-" in lines[2]


def test_compare_calibrates_methods_without_a_background_model():
    from adkit.bench import compare
    train, test = adkit.data.load("synthetic/pill", n_train=16, n_test=6, size=48, seed=0)
    results, rows = compare(["reference"], train, test, steps=["midway"], progress=False)
    assert set(results["reference"]) == {"none", "midway"}
    assert all(r.log_nfa is not None for r in results["reference"].values())
    assert [r["preprocessing"] for r in rows] == ["none", "midway"]
    assert {"image_auroc", "miou", "false_alarms_per_good_image", "fit_s"} <= set(rows[0])


@pytest.mark.parametrize("address, warned", [("127.0.0.1", False), ("0.0.0.0", True)])
def test_dashboard_warns_when_it_listens_beyond_this_machine(monkeypatch, capsys, address,
                                                             warned):
    import panel as pn
    served = {}
    monkeypatch.setattr(pn, "serve", lambda app, **kw: served.update(kw, app=app))
    assert main(["dashboard", "--data", "synthetic/pill", "--size", "48", "--n-train", "12",
                 "--n-test", "6", "--address", address, "--port", "5999"]) == 0
    err = capsys.readouterr().err
    assert ("beyond this machine" in err) == warned
    assert served["address"] == address and served["port"] == 5999
    # from other machines the page comes under this machine's own name: any origin
    assert (served["websocket_origin"] == ["*"]) == warned
    assert served["app"]().objects              # a dashboard per session
