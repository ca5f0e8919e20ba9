import numpy as np

import adkit
from adkit import widgets
from adkit.models import AnomalyResult


def _result(n=3, size=16):
    rng = np.random.default_rng(0)
    maps = rng.random((n, size, size)).astype(np.float32)
    return AnomalyResult(maps, maps.max((1, 2)), log_nfa=-10 * maps)


def test_explore_eps_slider_changes_the_detection():
    res = _result()
    w = widgets.explore(res, images=np.zeros((3, 16, 16, 3), np.float32))
    image, level = w.children[0].children
    assert level.description == "ε"
    before = res[0].segment(eps=level.value).sum()
    level.value = 1e-8
    after = res[0].segment(eps=level.value).sum()
    assert after < before
    image.value = 2   # redraws without error


def test_explore_threshold_when_no_log_nfa():
    res = AnomalyResult(_result().maps, np.zeros(3))
    w = widgets.explore(res)
    assert w.children[0].children[1].description == "threshold"


def test_dataset_explorer_and_render():
    w = widgets.dataset_explorer("synthetic/pill", n=2, size=64)
    boxes = w.children[1].children
    assert [b.description for b in boxes] == ["exposure", "pose", "speckles", "dust", "noise"]
    boxes[0].value = False   # regenerates without the exposure knob
    train, test = adkit.data.load("synthetic/pill", n_train=2, n_test=2, size=64)
    fig = widgets.render_result(_result(2, 64), test, index=1)
    assert "pixels" in fig._suptitle.get_text()


def test_dashboard_needs_a_meaningful_eps_and_updates_its_status():
    import pytest
    res = _result()
    no_nfa = AnomalyResult(res.maps, res.scores)
    with pytest.raises(ValueError, match="Calibrated"):
        widgets.dashboard({"x": no_nfa})
    app = widgets.dashboard({"a": res, "b": {"none": res, "midway": res}})
    controls, view = app.objects
    eps = next(w for w in controls.objects if getattr(w, "name", "") == "log10 ε")
    status = view.objects[0]
    before = status.object
    eps.value = -5.0
    assert status.object != before and "ε = 1e-05" in status.object
