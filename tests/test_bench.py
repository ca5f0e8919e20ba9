"""Micro-benchmarks (adkit.bench.tasks): each returns its figures, and the quality that
shows the timed work was done right. Speed itself is measured by
``python -m adkit bench --task NAME``, never asserted here."""
import json

import numpy as np
import pytest
import torch

from adkit.bench import TASKS, run_task
from adkit.bench.settings import NOTEBOOK_SETTINGS
from adkit.bench.tasks import (bench_aesc_fit, bench_aesc_step, bench_aesc_train, bench_align,
                               bench_coreset, bench_eps_update, bench_nfa_segmentation, bench_selfsim_predict, bench_tree)
from adkit.cli import main


def test_bench_align_recovers_known_warps():
    r = bench_align(n=4, size=64)
    assert set(r) >= {"seconds", "images_per_s", "mean_residual_px"}
    assert r["mean_residual_px"] < 0.5 and r["converged"] == 1.0


def test_bench_selfsim_functions_return_their_figures():
    a = bench_selfsim_predict(size=64, n_train=4, repeat=1)
    assert a["scales"] == 3 and a["predict_1_s"] > 0 and a["fit_s"] > 0
    assert all(0 <= a[f"fallback_s{s}"] <= 1 for s in range(3)) and a["fit_cpu_s"] > 0
    b = bench_eps_update(size=64, n_train=4, repeat=3)
    assert 0 < b["eps_update_best_s"] <= b["eps_update_s"]


def test_bench_coreset_compares_equal_selections():
    out = bench_coreset(n=300, d=20)
    assert out["n_select"] == 30 and out["same_selection"]
    assert out["naive_s"] > 0 and out["vectorized_s"] > 0


def test_bench_tree_returns_seconds():
    t = bench_nfa_segmentation(size=64, repeat=1)
    assert isinstance(t, float) and t > 0
    assert bench_nfa_segmentation(size=64, repeat=1, test="paper") > 0
    assert set(bench_tree(size=32)) == {"nfa_segmentation_32_s", "nfa_segmentation_paper_32_s"}
    with pytest.raises(ValueError, match="test"):
        bench_nfa_segmentation(size=16, test="exact")


def test_bench_aesc_reports_timings_and_auroc():
    out = bench_aesc_train(epochs=1, width=0.125, threads=None)  # None: keep torch's setting
    assert out["epochs"] == 1 and out["size"] == NOTEBOOK_SETTINGS["size"]
    assert out["threads"] == torch.get_num_threads()
    for tag in ("stain", "clean"):
        assert out[f"fit_{tag}_s"] > 0 and 0 <= out[f"image_auroc_{tag}"] <= 1


def test_bench_aesc_fit_reports_epochs_times_and_quality():
    out = bench_aesc_fit(size=64, n_train=10, n_test=6, threads=1, width=0.125, epochs=3,
                         n_samples=2)
    assert out["epochs_run"] <= out["epoch_budget"] == 3 and out["threads"] == 1
    assert 1 <= out["best_epoch"] <= out["epochs_run"] and out["val_loss"] > 0
    assert out["fit_s"] > 0 and out["fit_cpu_s"] > 0 and out["epoch_s"] > 0
    assert 0 <= out["image_auroc"] <= 1 and 0 <= out["pixel_auroc"] <= 1
    assert out["load_before"] >= 0
    assert len(out["val_curve"].split()) == len(out["train_curve"].split()) == out["epochs_run"]


def test_bench_aesc_step_times_each_layout_and_thread_count():
    out = bench_aesc_step(size=64, width=0.125, batch_size=2, repeat=1, threads=(1,))
    for what in ("train", "infer"):
        for layout in ("contiguous", "channels_last"):
            assert out[f"{what}_{layout}_1t_ms"] > 0 and out[f"{what}_{layout}_1t_cpu_ms"] > 0
    assert out["speedup_channels_last"] > 0 and out["infer_no_grad_1t_cpu_ms"] > 0


def test_tasks_take_only_the_options_they_know():
    assert set(TASKS) == {"reference", "synthetic", "align", "selfsim", "eps", "coreset",
                          "knn", "nfa", "aesc", "aesc_notebook", "aesc_step", "gaussian"}
    row = run_task("coreset", size=32, n=200, d=8)     # bench_coreset has no size
    assert row["task"] == "coreset" and row["n"] == 200 and row["same_selection"]
    assert row["total_s"] > 0 and row["peak_MB"] > 10


def test_cli_runs_a_task(capsys):
    assert main(["bench", "--task", "nfa", "--size", "32", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["task"] == "nfa" and np.isfinite(row["nfa_segmentation_32_s"])


def test_seed_study_gives_one_row_per_variant_and_seed_and_a_summary():
    from adkit.bench import seed_study, summarize_study
    rows = seed_study({"none": [], "midway": ["midway"],
                       "background": [("background", {"gray_range": (0, 0.4)})]},
                      seeds=(0, 1), n_train=6, n_test=8, size=32, progress=False)
    assert list(rows["variant"]) == ["none", "midway", "background"] * 2
    assert list(rows["seed"]) == [0, 0, 0, 1, 1, 1]
    assert rows["image_auroc"].between(0, 1).all()
    # the variants of one seed see the same data: the bare detector of seed 0 again
    again, results = seed_study({"none": []}, seeds=(0, 1), n_train=6, n_test=8, size=32,
                                progress=False, keep_results=True)
    assert np.allclose(again["pixel_auroc"], rows.loc[rows.variant == "none", "pixel_auroc"])
    assert sorted(results) == [("none", 0), ("none", 1)]
    assert results[("none", 1)].maps.shape == (8, 32, 32)
    summary = summarize_study(rows)
    assert list(summary.index) == ["none", "midway", "background"]
    sub = rows.loc[rows.variant == "midway", "aupro"]
    assert summary.loc["midway", ("aupro", "mean")] == pytest.approx(sub.mean())
    assert summary.loc["midway", ("aupro", "std")] == pytest.approx(sub.std(ddof=1))
    # reuse: a prediction made before is evaluated, not fitted again (here a fake one
    # whose scores are the labels, image AUROC 1)
    import dataclasses

    from adkit import data as D
    test1 = D.load("synthetic/pill", seed=1, n_train=6, n_test=8, size=32)[1]
    fake = results[("none", 1)]
    fake = dataclasses.replace(fake, scores=test1.labels.astype(np.float32))
    reused = seed_study({"none": []}, seeds=(0, 1), n_train=6, n_test=8, size=32,
                        progress=False, reuse={("none", 1): fake})
    assert reused["image_auroc"].iloc[1] == 1.0
    assert reused["pixel_auroc"].iloc[1] == pytest.approx(again["pixel_auroc"].iloc[1])
    assert reused["image_auroc"].iloc[0] == pytest.approx(again["image_auroc"].iloc[0])
    with pytest.raises(ValueError, match="reuse keys"):
        seed_study({"none": []}, seeds=(0, 1), reuse={("none", 5): fake})
    with pytest.raises(ValueError, match="at least 2"):
        seed_study({"none": []}, seeds=(0,))
    with pytest.raises(ValueError, match="unknown step 'midwya'"):
        seed_study({"oops": ["midwya"]})
    with pytest.raises(ValueError, match="non-empty dict"):
        seed_study([])


def test_seed_study_compares_methods_and_self_similarity_auroc_moves_with_eps():
    """Artola's Table 2 / Fig. 5 machinery: dict variants name their own method, and the
    image AUROC of self-similarity results is recomputed per ε from the stored
    residuals (the reference, with no residuals, stays flat)."""
    from adkit.bench import seed_study
    from adkit.bench.study import auroc_against_eps
    from adkit.data import load
    from adkit.models.selfsim import rethreshold
    from adkit.metrics import image_auroc
    kw = dict(n_train=6, n_test=10, size=48)
    rows, results = seed_study({"ref": {"method": "reference"},
                                "ss": {"method": "selfsim", "params": {"scales": (0, 1)}}},
                               seeds=(0, 1), keep_results=True, progress=False, **kw)
    assert list(rows["variant"]) == ["ref", "ss"] * 2
    assert "residual_s0" in results[("ss", 0)].extras
    assert "residual_s0" not in results[("ref", 0)].extras
    tests = {s: load("synthetic/pill", seed=s, **kw)[1] for s in (0, 1)}
    grid = [1e-6, 1.0, 100.0]
    curve = auroc_against_eps(results, tests, grid)
    assert len(curve) == 4 * len(grid)
    flat = curve[(curve.variant == "ref") & (curve.seed == 0)]["image_auroc"]
    assert flat.nunique() == 1 and flat.iloc[0] == pytest.approx(rows.image_auroc.iloc[0])
    got = curve[(curve.variant == "ss") & (curve.seed == 1) & (curve.eps == 1e-6)]
    want = image_auroc(tests[1].labels, rethreshold(results[("ss", 1)], 1e-6, 2).scores)
    assert got["image_auroc"].iloc[0] == pytest.approx(want)
    with pytest.raises(ValueError, match="unknown key"):
        seed_study({"x": {"method": "reference", "step": []}}, seeds=(0, 1), **kw)


def test_seed_study_test_knobs_change_only_the_test_split(monkeypatch):
    """Son et al.'s setting: train on clean backgrounds, test with dust. The training
    split comes from the study's knobs, the test split from the same draw with
    ``test_knobs`` changed."""
    import adkit.data as D
    from adkit.bench import seed_study
    calls, load = [], D.load

    def spy(name, **kw):
        calls.append(kw)
        return load(name, **kw)

    monkeypatch.setattr(D, "load", spy)
    rows = seed_study({"none": []}, seeds=(0, 1), test_knobs={"dust": 2.0}, dust=False,
                      n_train=4, n_test=6, size=32, progress=False)
    assert len(rows) == 2
    assert [c["dust"] for c in calls] == [False, 2.0, False, 2.0]
    assert [c["seed"] for c in calls] == [0, 0, 1, 1]
    clean = load("synthetic/pill", seed=0, dust=False, n_train=4, n_test=6, size=32)[1]
    dusty = load("synthetic/pill", seed=0, dust=2.0, n_train=4, n_test=6, size=32)[1]
    assert np.array_equal(clean.labels, dusty.labels) and np.array_equal(clean.masks, dusty.masks)
    assert not np.array_equal(clean.images, dusty.images)


def test_gaussian_task_reports_gaussian_and_padim():
    row = run_task("gaussian", n_train=8, n_test=4, size=32)
    for name in ("gaussian", "former", "padim"):
        assert row[f"{name}_fit_s"] > 0 and row[f"{name}_predict_s"] > 0
        assert 0 <= row[f"{name}_pixel_auroc"] <= 1
    # the default map is PaDiM's (float32 precisions: equal to 1e-3)
    assert abs(row["gaussian_pixel_auroc"] - row["padim_pixel_auroc"]) < 1e-3, row


def test_feature_study_shares_features_and_matches_seed_study(monkeypatch):
    """Variants that agree on the feature parameters share one backbone pass per draw,
    and give what a full fit of each variant gives."""
    from adkit.bench import seed_study
    from adkit.bench.study import feature_study
    from adkit.models import KNN
    kw = dict(n_train=6, n_test=6, size=32, seeds=(0, 1), progress=False)
    variants = {"patchcore": {}, "knn_mean": {"score": "knn_mean"}, "no pad": {"pad": 0}}
    calls, features = [], KNN.features
    monkeypatch.setattr(KNN, "features", lambda self, x, strides=None: calls.append(self.pad)
                        or features(self, x, strides))
    rows = feature_study(variants, method="knn", **kw)
    assert calls == [32, 32, 0, 0] * 2           # train + test, once per padding, per draw
    full = seed_study({k: {"method": "knn", "params": v} for k, v in variants.items()},
                      metrics=("image_auroc", "pixel_auroc", "aupro"), **kw)
    np.testing.assert_allclose(rows[["image_auroc", "pixel_auroc"]].to_numpy(),
                               full[["image_auroc", "pixel_auroc"]].to_numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="deep-feature"):
        feature_study({"a": {}}, method="reference", **kw)


def test_feature_runs_extract_once_and_give_what_a_full_fit_gives(monkeypatch):
    """One backbone pass per dataset and input (a stage not extracted yet triggers one
    pass with all the stages asked so far); each run equals fit + predict on images."""
    import adkit
    from adkit.bench.study import FeatureRuns
    from adkit.models import KNN, Gaussian
    from adkit.metrics import image_auroc
    data = {c: adkit.data.load(f"synthetic/{c}", n_train=6, n_test=6, size=32, seed=0)
            for c in ("pill", "tile")}
    runs = FeatureRuns(data)
    calls, features = [], Gaussian.features
    monkeypatch.setattr(Gaussian, "features", lambda self, x, strides=None:
                        calls.append(tuple(strides or ())) or features(self, x, strides))
    a = runs.run("pill", "gaussian", strides=(16,), map_strides=(8,))
    runs.run("pill", "gaussian", strides=(16,), map_strides=(8,), pca="plain")
    assert calls == [(8, 16)] * 2                       # train + test, once
    b = runs.run("pill", "gaussian", strides=(32,), map_strides=(8,))
    runs.run("pill", "gaussian", strides=(8,), map_strides=())
    assert calls == [(8, 16)] * 2 + [(8, 16, 32)] * 2   # one more pass, the union of stages
    train, test = data["pill"]
    for r, kw in ((a, {"strides": (16,)}), (b, {"strides": (32,)})):
        full = Gaussian(progress=False, map_strides=(8,), **kw).fit(train).predict(test)
        np.testing.assert_allclose(r["result"].scores, full.scores, rtol=1e-5)
        np.testing.assert_allclose(r["result"].maps, full.maps, rtol=1e-4, atol=1e-5)
        assert r["image_auroc"] == image_auroc(test.labels, full.scores)
        assert set(r) == {"detector", "result", "image_auroc", "pixel_auroc", "fit_s", "predict_s"}
    k = runs.scores("tile", "knn", coreset=0.5, metrics=("image_auroc", "aupro"))
    assert set(k) == {"image_auroc", "aupro", "bank_size", "fit_s", "predict_s"}
    assert k["bank_size"] == int(0.5 * 6 * 4 * 4)       # half of 6 images x 4 x 4 cells
    table = runs.table("knn", {"b=3": {"b": 3}, "b=9": {"b": 9}}, metrics=("image_auroc", "pixel_auroc"))
    assert list(table.columns) == ["pill", "tile", "mean"] and len(table) == 4
    np.testing.assert_allclose(table["mean"], table[["pill", "tile"]].mean(axis=1))
    one = runs.table("knn", {"b=3": {"b": 3}}, datasets=["tile"])
    assert list(one.index) == ["b=3"] and one.loc["b=3", "tile"] == table.loc[("b=3", "image_auroc"), "tile"]
    with pytest.raises(ValueError, match="unknown dataset 'nut'"):
        runs.run("nut", "gaussian")
    with pytest.raises(ValueError, match="not a deep-feature detector"):
        runs.run("pill", "reference")
    with pytest.raises(ValueError, match="unknown metric"):
        runs.run("pill", "knn", metrics=("f1",))
    with pytest.raises(ValueError, match="pair of splits"):
        FeatureRuns({"pill": data["pill"][0]})


def test_compare_study_runs_compare_on_each_draw_and_reuses_given_rows():
    from adkit import data as D
    from adkit.bench import compare
    from adkit.bench.study import compare_study, summarize_study
    kw = dict(n_train=8, n_test=8, size=32, speckles=2.5)
    train, test = D.load("synthetic/pill", seed=0, **kw)
    _, rows0 = compare(["reference"], train, test, steps=["midway"], progress=False)
    rows = compare_study(["reference"], seeds=(0, 1), steps=["midway"], reuse={0: rows0},
                         progress=False, **kw)
    assert list(rows["variant"]) == ["reference", "reference + midway"] * 2
    assert list(rows["seed"]) == [0, 0, 1, 1]
    assert rows.loc[0, "image_auroc"] == rows0[0]["image_auroc"]
    _, rows1 = compare(["reference"], *D.load("synthetic/pill", seed=1, **kw), steps=["midway"],
                       progress=False)
    assert rows.loc[3, "pixel_auroc"] == pytest.approx(rows1[1]["pixel_auroc"])
    table = summarize_study(rows)          # every numeric column, the method's names dropped
    assert list(table.index) == ["reference", "reference + midway"]
    assert ("pixel_auroc", "std") in table.columns and ("method", "mean") not in table.columns
    with pytest.raises(ValueError, match="not in seeds"):
        compare_study(["reference"], seeds=(0, 1), reuse={2: rows0}, **kw)


def test_threshold_study_studies_each_variant_on_each_draw_and_fits_once(tmp_path, monkeypatch):
    """U-Flow's automatic threshold against the oracle, over draws: one row and one
    study per (variant, seed), the models cached, the figure of the curves drawn."""
    from adkit import data as D
    from adkit import metrics as M
    from adkit import viz
    from adkit.bench.study import summarize_study, threshold_study
    from adkit.models import SelfSimilarity
    monkeypatch.setenv("ADKIT_CACHE", str(tmp_path))
    kw = dict(n_train=6, n_test=6, size=32)
    variants = {"1 vote": {"n_votes": 1, "n_neighbors": 4}, "2 votes": {"n_votes": 2, "n_neighbors": 4}}
    rows, studies = threshold_study(variants, method="selfsim", seeds=(0, 1), log_eps=[-2, -1, 0, 2],
                                    progress=False, **kw)
    assert list(rows["variant"]) == ["1 vote"] * 2 + ["2 votes"] * 2 and set(studies) == {
        (v, s) for v in variants for s in (0, 1)}
    assert {"miou_auto", "miou_oracle_defective", "false_alarms_eps1", "miou_auto_eps0.1"} <= set(rows)
    train, test = D.load("synthetic/pill", seed=1, **kw)
    res = SelfSimilarity(n_votes=2, n_neighbors=4, progress=False).fit(train).predict(test)
    direct = M.nfa_threshold_study(res, test, log_eps=[-2, -1, 0, 2])
    assert rows.iloc[3]["miou_auto"] == pytest.approx(direct["miou_auto"])
    np.testing.assert_allclose(studies["2 votes", 1]["miou_curve"], direct["miou_curve"])
    assert len(list(tmp_path.glob("*.npz"))) == 4          # each model fitted and kept once
    assert summarize_study(rows, metrics=["miou_auto"]).shape == (2, 2)
    fig = viz.plot_threshold_study(studies)
    assert [a.get_title() for a in fig.axes] == ["every image (the paper's mIoU)", "defective images only"]
    mean = np.mean([studies["1 vote", s]["miou_curve"] for s in (0, 1)], axis=0)
    assert any(np.allclose(line.get_ydata(), mean) for line in fig.axes[0].lines)
    with pytest.raises(ValueError, match="non-empty dict"):
        threshold_study({}, seeds=(0, 1))
