import numpy as np
import pytest

import adkit
from adkit import viz, widgets
from adkit.models import AnomalyResult


def _result(n=3, size=16):
    rng = np.random.default_rng(0)
    maps = rng.random((n, size, size)).astype(np.float32)
    return AnomalyResult(maps, maps.max((1, 2)), log_nfa=-10 * maps)


class _Test:
    """The parts of a Split the viewers read."""

    def __init__(self, labels, size=16):
        n = len(labels)
        self.labels = np.asarray(labels)
        self.images = np.full((n, size, size, 3), 0.5, np.float32)
        self.masks = np.zeros((n, size, size), bool)
        self.masks[self.labels == 1, 2:5, 2:5] = True
        self.names = [f"img{i}" for i in range(n)]
        self.defect_types = ["crack" if y else "good" for y in self.labels]


def _spot_result(spots, size=16):
    """log NFA 0 everywhere but -k on one pixel of the images listed in ``spots``
    ({index: k}): image i is detected for log10 ε > -k."""
    n = 4
    log_nfa = np.zeros((n, size, size), np.float32)
    for i, k in spots.items():
        log_nfa[i, 3, 3] = -k
    return AnomalyResult(-log_nfa, -log_nfa.min((1, 2)), log_nfa=log_nfa)


def test_opening_is_a_defective_image_on_which_something_is_detected():
    test = _Test([0, 1, 1, 1])
    # image 0 is good, 1 shows nothing at ε = 1, 2 does
    assert widgets.opening(_spot_result({0: 5, 2: 3}), test, eps=1.0) == (2, 0.0)
    # nothing on any defective image at ε = 1e-4: the highest-scoring one, at the
    # smallest ε of the slider grid that detects something on it
    assert widgets.opening(_spot_result({2: 1.0, 3: 2.0}), test, eps=1e-4) == (3, -1.75)
    # without a test split every image is a candidate
    assert widgets.opening(_spot_result({0: 5}), None, eps=1.0)[0] == 0


def test_explore_moves_log10_eps_and_redraws_only_the_detection():
    res = _result()
    w = widgets.explore(res, images=np.zeros((3, 16, 16, 3), np.float32))
    controls, status, pictures = w.children
    image, level, readout = controls.children
    assert level.description == "log10 ε"
    assert (level.min, level.max, level.step) == (widgets.LOG_EPS["start"],
                                                 widgets.LOG_EPS["end"], widgets.LOG_EPS["step"])
    assert readout.value == f"ε = {10 ** level.value:.2g}"
    views = [box.children[1] for box in pictures.children]
    assert len(views) == 3                       # image, map, detection: no ground truth
    before = [v.value for v in views]
    area = res[image.value].segment(eps=10 ** level.value).mean()
    level.value = -6.0
    after = [v.value for v in views]
    assert after[0] is before[0] and after[1] is before[1]   # image and map untouched
    assert after[2] != before[2]                              # the detection redrawn
    assert readout.value == "ε = 1e-06"
    assert res[image.value].segment(eps=1e-6).mean() < area
    shown = res[image.value].segment(eps=1e-6).mean()
    assert f"detected area: {100 * shown:.3f}%" in status.value
    image.value = (image.value + 1) % 3          # a new image redraws its map
    assert views[1].value != before[1]


def test_explore_threshold_when_no_log_nfa():
    res = AnomalyResult(_result().maps, np.zeros(3))
    w = widgets.explore(res)
    assert w.children[0].children[1].description == "threshold"


def test_explore_opens_on_a_detected_defect_with_ground_truth():
    test = _Test([0, 1, 1, 1])
    w = widgets.explore(_spot_result({2: 3}), test)
    controls, status, pictures = w.children
    image, level, readout = controls.children
    assert image.value == 2 and level.value == 0.0
    assert "1 region(s)" in status.value
    assert [b.children[0].value for b in pictures.children] == [
        "<b>image</b>", "<b>map</b>", "<b>detection</b>", "<b>ground truth</b>"]


def test_dataset_explorer_and_render():
    w = widgets.dataset_explorer("synthetic/pill", n=2, size=64)
    boxes = w.children[1].children
    assert [b.description for b in boxes] == ["exposure", "pose", "speckles", "dust", "noise"]
    boxes[0].value = False   # regenerates without the exposure knob
    train, test = adkit.data.load("synthetic/pill", n_train=2, n_test=2, size=64)
    fig = widgets.render_result(_result(2, 64), test, index=1)
    assert "pixels" in fig._suptitle.get_text()
    # image, map, its colorbar, detection, ground truth
    assert len(fig.axes) == 5


def _dashboard_parts(app):
    controls, view = app.objects
    by_name = {getattr(w, "name", ""): w for w in controls.objects}
    status, notice, pictures = view.objects
    return by_name, status, notice, pictures


def test_dashboard_needs_a_meaningful_eps_and_updates_its_status():
    res = _result()
    no_nfa = AnomalyResult(res.maps, res.scores)
    with pytest.raises(ValueError, match="Calibrated"):
        widgets.dashboard({"x": no_nfa})
    app = widgets.dashboard({"a": res, "b": {"none": res, "midway": res}})
    w, status, notice, pictures = _dashboard_parts(app)
    eps = w["log10 ε"]
    assert (eps.start, eps.end, eps.step) == (widgets.LOG_EPS["start"], widgets.LOG_EPS["end"],
                                              widgets.LOG_EPS["step"])
    views = [col.objects[1] for col in pictures.objects]
    before_status, before = status.object, [v.object for v in views]
    eps.value = -5.0
    assert status.object != before_status and "ε = 1e-05" in status.object
    after = [v.object for v in views]
    assert after[0] is before[0] and after[1] is before[1] and after[2] != before[2]


def test_dashboard_opens_on_a_detection_and_shows_a_notice_for_a_missing_variant():
    test = _Test([0, 1, 1, 1])
    res = _spot_result({2: 3})
    app = widgets.dashboard({"a": {"none": res, "midway": res}, "b": res}, test)
    w, status, notice, pictures = _dashboard_parts(app)
    assert w["image"].value == 2 and w["log10 ε"].value == 0.0
    assert "1 region(s)" in status.object and pictures.visible and not notice.visible
    assert len(pictures.objects) == 4            # image, map, detection, ground truth
    w["preprocessing"].value = "midway"
    w["method"].value = "b"                      # b was run without preprocessing only
    assert notice.visible and not pictures.visible
    assert "not run with 'midway'" in notice.object and status.object == ""
    w["preprocessing"].value = "none"
    assert pictures.visible and not notice.visible and "**b** (none)" in status.object


def _png_pixels(data):
    import io

    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_the_detection_picture_is_a_cyan_outline_and_the_truth_a_green_one():
    from adkit import viz
    test = _Test([0, 1, 1, 1])
    res = _spot_result({2: 3})
    w = widgets.explore(res, test)
    views = [box.children[1] for box in w.children[2].children]
    cyan = np.round(np.asarray(viz.DETECTION_COLOR) * 255).astype(int)
    green = np.round(np.asarray(viz.TRUTH_COLOR) * 255).astype(int)
    detection, truth = _png_pixels(views[2].value), _png_pixels(views[3].value)
    assert (detection == cyan).all(-1).sum() == 8          # the ring around the one pixel
    assert (truth == green).all(-1).sum() == 16            # around the 3×3 defect
    assert not (detection == green).all(-1).any()
    # the static figure draws the same pictures, the map with its colorbar
    fig = widgets.render_result(res, test, index=2, eps=1.0)
    panels = {ax.get_title(): ax for ax in fig.axes}
    det = np.asarray(panels["detection"].get_images()[0].get_array())
    assert np.isclose(det, viz.DETECTION_COLOR).all(-1).sum() == 8
    assert len(fig.axes) == 5 and fig.get_figwidth() * fig.dpi >= viz.MIN_FIGURE_WIDTH


def test_render_normalization_and_its_explorer_show_a_new_image_through_fitted_steps():
    from adkit.normalize import Align, Midway
    train, _ = adkit.data.load("synthetic/pill", n_train=6, n_test=2, size=64, seed=0)
    mid = Midway().fit(train)
    al = Align(progress=False).fit(mid.transform(train))
    steps = [mid, al]
    fig = widgets.render_normalization(steps, exposure=0.0, pose=0.0, seed=3)
    assert len(fig.axes) == 5 and "converged" in fig._suptitle.get_text()
    # the reference panel is the alignment's reference; the difference is small for a
    # pill without exposure and pose changes, larger with strong ones
    assert np.allclose(fig.axes[2].images[0].get_array()[..., :3], al.reference_, atol=1e-6)
    calm = float(np.mean(fig.axes[3].images[0].get_array()))
    wild = widgets.render_normalization([al], exposure=2.5, pose=0.0, seed=3)
    assert float(np.mean(wild.axes[3].images[0].get_array())) > calm
    w = widgets.normalization_explorer(steps, seed=3)
    sliders = w.children[0].children
    assert [s.description for s in sliders] == ["exposure", "pose", "seed"]
    sliders[1].value = 1.5                        # redraws without error
    with pytest.raises(ValueError, match="Align"):
        widgets.render_normalization([mid])
    with pytest.raises(ValueError, match="empty"):
        widgets.normalization_explorer([])


def test_status_line_says_where_each_methods_eps_comes_from():
    """Issue 14: per method, its own NFA or "calibrated on n held-out images, measured
    down to ε = 1/n" (and "extrapolated" below 1/n), in the dashboard and explore."""
    own = _spot_result({2: 3})
    cal = _spot_result({2: 3})
    cal.extras.update(eps_min=0.1, n_calibration_images=10)
    assert widgets.eps_origin(own) == "own NFA"
    text = "calibrated on 10 held-out images, measured down to ε = 1/10"
    assert widgets.eps_origin(cal, 1.0) == text
    assert widgets.eps_origin(cal, 0.01) == text + ", extrapolated at this ε"
    assert widgets.eps_origin(AnomalyResult(own.maps, own.scores, threshold=0.5)) \
        == "a fixed threshold on the map"

    test = _Test([0, 1, 1, 1])
    app = widgets.dashboard({"uflow": own, "knn": cal}, test)
    w, status, notice, pictures = _dashboard_parts(app)
    assert "**uflow** (none) · ε = 1 (own NFA) ·" in status.object
    w["method"].value = "knn"
    assert f"**knn** (none) · ε = 1 ({text}) ·" in status.object
    assert "extrapolated" not in status.object
    with pytest.warns(UserWarning, match="extrapolated"):
        w["log10 ε"].value = -2.0
    assert f"ε = 0.01 ({text}, extrapolated at this ε) ·" in status.object
    w["method"].value = "uflow"
    assert "own NFA" in status.object and "calibrated" not in status.object

    view = widgets.explore(cal, test)
    assert f"ε = 1 ({text}) ·" in view.children[1].value
    view = widgets.explore(own, test)
    assert "ε = 1 (own NFA) ·" in view.children[1].value


def test_scales_explorer_redraws_the_vote_for_each_setting(monkeypatch):
    """Lesson 03's widget: per-scale detections and the vote b^MS of a self-similarity
    result, re-thresholded (no new search) when ε, the scales or N_v move."""
    from adkit.data import load
    from adkit.models import SelfSimilarity
    train, test = load("synthetic/pill", n_train=6, n_test=6, size=48, seed=0)
    det = SelfSimilarity(scales=(0, 1), progress=False).fit(train)
    res = det.predict(test)
    calls, view = [], det.vote_view

    def spy(result, index, eps, n_votes, scales):
        calls.append((index, round(float(np.log10(eps)), 6), n_votes, scales))
        return view(result, index, eps, n_votes, scales)

    monkeypatch.setattr(det, "vote_view", spy)
    w = widgets.scales_explorer(det, res, test)
    (image, log_eps), (scales, votes) = w.children[0].children, w.children[1].children
    assert test.labels[image.value] == 1              # opens on a defective image
    assert votes.max == 2 and scales.value == (0, 1)
    log_eps.value = -3.0
    scales.value = (0,)
    votes.value = 1
    assert calls == [(image.value, 0.0, 2, (0, 1)), (image.value, -3.0, 2, (0, 1)),
                     (image.value, -3.0, 2, (0,)), (image.value, -3.0, 1, (0,))]
    # the view: N_v capped by the scales kept; the vote is the result's segment(ε)
    v = view(res, image.value, 1.0, 3, (0, 1))
    assert v["n_votes"] == 2 and set(v["per_scale"]) == {0, 1}
    np.testing.assert_array_equal(v["vote"], det.rethreshold(res, 1.0, 2).segment(1.0)[image.value])
    with pytest.raises(ValueError, match="no self-similarity residuals"):
        widgets.scales_explorer(det, AnomalyResult(np.zeros((2, 8, 8)), np.zeros(2)))
    with pytest.raises(ValueError, match="SelfSimilarity"):
        widgets.scales_explorer(object(), res)


def test_n2n_explorer_shows_each_networks_change_of_the_chosen_image(monkeypatch):
    """Lesson 02's widget: a pairing menu and an image menu over fitted normalizations;
    the static view draws the input, f(input) and |f(input) − input|."""
    from adkit.normalize import N2N
    train, test = adkit.data.load("synthetic/pill", n_train=4, n_test=4, size=32, seed=0)
    steps = {"images": N2N(epochs=1, crop=32, width=0.125, progress=False).fit(train),
             "nearest_images": N2N(pairing="nearest_images", epochs=1, crop=32, width=0.125,
                                   progress=False, seed=1).fit(train)}
    fig = widgets.render_n2n(steps["images"], test.images[1], title="t")
    change = fig.axes[2].images[0].get_array()
    out = steps["images"].transform(test.images[1:2])[0]
    np.testing.assert_allclose(change, np.abs(out - test.images[1]).mean(-1), atol=1e-6)
    calls, draw = [], widgets.render_n2n
    monkeypatch.setattr(widgets, "render_n2n",
                        lambda step, image, **kw: calls.append(step) or draw(step, image, **kw))
    w = widgets.n2n_explorer(steps, test, index=2)
    pairing, image = w.children[0].children
    pairing.value = "nearest_images"
    image.value = 3
    assert calls == [steps["images"], steps["nearest_images"], steps["nearest_images"]]
    with pytest.raises(ValueError, match="non-empty dict"):
        widgets.n2n_explorer({}, test)
    with pytest.raises(ValueError, match="one RGB image"):
        widgets.render_n2n(steps["images"], test.images)


def test_settings_explorer_prints_what_the_run_returns_and_the_reason_of_a_bad_setting():
    import ipywidgets as W
    calls = []

    def run(method, dataset, b):
        calls.append((method, dataset, b))
        if b < 2:
            raise ValueError("b must be >= 2")
        return {"image_auroc": 0.91234, "bank_size": np.int64(512), "fit_s": 0.0123}

    text = widgets.render_settings(run, {"dataset": "nut", "b": 9}, fixed={"method": "knn"})
    assert text == "dataset=nut, b=9 → image AUROC 0.912, bank 512, fit 0.01 s"
    assert widgets.render_settings(run, {"dataset": "nut", "b": 1}, {"method": "knn"}) == \
        "dataset=nut, b=1 → not possible: b must be >= 2"
    slider = W.IntSlider(value=3, min=1, max=9)
    w = widgets.settings_explorer(run, {"dataset": W.Dropdown(options=["nut", "tile"]), "b": slider},
                                  fixed={"method": "knn"})
    slider.value = 5
    assert calls[-2:] == [("knn", "nut", 3), ("knn", "nut", 5)]
    assert isinstance(w.children[1], W.Output)
    with pytest.raises(ValueError, match="non-empty dict"):
        widgets.settings_explorer(run, {})


def test_corruption_explorer_redraws_the_chosen_model_with_its_own_parameters(monkeypatch):
    """Lesson 06's widget: each model gets only its own keywords, the mixtures none; the
    static view shows the clean image, the corruption and its mask."""
    from adkit import corruptions, viz
    image = adkit.data.load("synthetic/tile", n_train=1, n_test=1, size=32, seed=1)[0].images[0]
    assert widgets.corruption_params("stain", stain_size=0.2, blur=0.1) == {"size": (0.01, 0.2), "blur": 0.1}
    assert widgets.corruption_params("drops", n_drops=3) == {"n_drops": 3}
    assert widgets.corruption_params("mix1") == {}
    fig = viz.show_corruption(image, "drops", seed=2, n_drops=3)
    out, mask = corruptions.corrupt(image, "drops", seed=2, n_drops=3)
    np.testing.assert_allclose(fig.axes[1].images[0].get_array(), out)
    assert fig.axes[2].get_title() == f"mask ({mask.mean():.1%} of the pixels)"
    calls, show = [], viz.show_corruption
    monkeypatch.setattr(viz, "show_corruption",
                        lambda img, kind, seed=0, **kw: calls.append((kind, seed, kw)) or show(img, kind, seed, **kw))
    w = widgets.corruption_explorer(image)
    kind, seed, _ = w.children[0].children
    kind.value = "gaussian"
    seed.value = 7
    kind.value = "mix2"
    assert calls == [("stain", 0, {"size": (0.01, 0.12), "blur": 0.15}), ("gaussian", 0, {"variance": 0.1}),
                     ("gaussian", 7, {"variance": 0.1}), ("mix2", 7, {})]
