import numpy as np
import pytest
from scipy import ndimage

import adkit
from adkit.contrario.calibration import false_alarm_curve
from adkit.models import Calibrated, ReferenceGaussian


def _brute_force_counts(maps, levels):
    s = np.ones((3, 3), bool)
    return np.array([np.mean([ndimage.label(m > t, structure=s)[1] for m in maps])
                     for t in levels])


def test_curve_counts_components_of_upper_level_sets_exactly():
    rng = np.random.default_rng(0)
    maps = ndimage.gaussian_filter(rng.normal(size=(3, 40, 40)), (0, 2, 2))
    curve = false_alarm_curve(maps, n_levels=64)
    raw = _brute_force_counts(maps, curve.levels)
    expected = np.maximum.accumulate(raw[::-1])[::-1]      # made non-increasing
    np.testing.assert_allclose(curve.nfa, expected)
    assert np.all(np.diff(curve.nfa) <= 0)


def test_two_bumps_by_hand():
    m = np.zeros((1, 20, 20))
    m[0, 3:6, 3:6] = 2.0
    m[0, 12:15, 12:15] = 3.0
    curve = false_alarm_curve(m, n_levels=16)
    # below 2 both bumps are detected, between 2 and 3 only the higher one
    assert curve.log_nfa(np.array([1.0]))[0] == pytest.approx(np.log10(2))
    assert curve.log_nfa(np.array([2.0]))[0] == pytest.approx(np.log10(2))
    assert curve.log_nfa(np.array([2.5]))[0] == pytest.approx(0.0)
    # above the largest value seen the tail keeps decreasing
    assert curve.log_nfa(np.array([4.0]))[0] < 0
    assert curve.threshold(1.5) == pytest.approx(2.0)


def test_calibrated_reference_keeps_the_promise_of_eps():
    """At ε = 1, about one false detection per good test image (factor 3)."""
    train, test = adkit.data.load("synthetic/pill", n_train=60, n_test=40, size=96, seed=0,
                                  pose=False, exposure=False)
    det = Calibrated(ReferenceGaussian(), holdout=0.25).fit(train)
    res = det.predict(test)
    good = test.labels == 0
    fa = [adkit.metrics.false_alarms_per_image(res.segment(e), good) for e in (0.1, 1, 10)]
    assert 1 / 3 <= fa[1] <= 3, fa
    assert fa[0] <= fa[1] <= fa[2]
    # ranking is the inner detector's: calibration is a monotone map of the scores
    assert adkit.metrics.image_auroc(test.labels, res.scores) >= 0.9
    t = det.threshold(1.0)
    np.testing.assert_array_equal(res.segment(1.0), res.maps > t)


def test_calibrated_round_trip(tmp_path):
    train, test = adkit.data.load("synthetic/nut", n_train=12, n_test=4, size=48, seed=1)
    det = Calibrated(ReferenceGaussian(), seed=3).fit(train)
    again = Calibrated.load(det.save(tmp_path / "cal"))
    a, b = det.predict(test), again.predict(test)
    np.testing.assert_array_equal(a.log_nfa, b.log_nfa)
    assert again.get_params()["seed"] == 3


def test_clear_errors():
    with pytest.raises(TypeError, match="adkit detector"):
        Calibrated("knn")
    with pytest.raises(ValueError, match="holdout"):
        Calibrated(ReferenceGaussian(), holdout=1.0)
    with pytest.raises(ValueError, match="NaN"):
        false_alarm_curve(np.full((1, 4, 4), np.nan))
    with pytest.raises(ValueError, match="at least"):
        Calibrated(ReferenceGaussian()).fit(np.zeros((2, 16, 16, 3), np.float32))


def test_calibration_is_honest_about_its_range():
    """Issue 14 item 4: with n held-out normal images F is measured down to 1/n and
    extrapolated below; fit warns when n < 10, the measured range is exposed, and an ε
    below 1/n is flagged as extrapolated (result.extrapolated, a warning from segment)."""
    import warnings

    from adkit.models.base import AnomalyResult, ExtrapolationWarning
    from adkit.models.calibrated import MIN_HOLDOUT_IMAGES
    train, test = adkit.data.load("synthetic/nut", n_train=20, n_test=6, size=48, seed=1)
    assert MIN_HOLDOUT_IMAGES == 10
    with pytest.warns(UserWarning, match=r"only 4 held-out normal images.*1/4 = 0.25.*"
                                         r"at least 10"):
        few = Calibrated(ReferenceGaussian()).fit(train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        det = Calibrated(ReferenceGaussian(), holdout=0.5).fit(train)   # 10 held out
    assert det.n_holdout_ == 10 and det.eps_min_ == pytest.approx(0.1)
    lo, hi = det.curve_.measured_range
    assert lo == pytest.approx(0.1) and hi >= 1
    assert det.curve_.extrapolated(0.05) and not det.curve_.extrapolated(0.1)
    res = det.predict(test)
    assert res.extras["eps_min"] == pytest.approx(0.1)
    assert res.extras["n_calibration_images"] == 10
    assert res.extrapolated(np.float32(0.01)) and not res.extrapolated(1)
    assert res[:2].extrapolated(0.01)                      # indexing keeps it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res.segment(0.1), res.segment(1.0), det.threshold(0.5)
    with pytest.warns(ExtrapolationWarning, match=r"eps below 0.1 is extrapolated.*10 "
                                                  r"held-out normal images"):
        masks = res.segment(0.01)
    assert masks.shape == res.maps.shape                   # still answered
    with pytest.warns(ExtrapolationWarning):
        det.threshold(0.01)
    # a result of a method's own NFA is never "extrapolated"
    own = AnomalyResult(res.maps, res.scores, res.log_nfa)
    assert not own.extrapolated(1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        own.segment(1e-9)
    # the coarse calibration flags more of the ε range; a loaded model keeps its range
    assert few.predict(test).extrapolated(0.2) and not res.extrapolated(0.2)
    import os
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        again = Calibrated.load(det.save(os.path.join(d, "c")))
    assert again.eps_min_ == det.eps_min_ and again.predict(test).extrapolated(0.05)


def test_docstrings_say_what_f_is():
    import adkit.contrario.calibration as cal
    import adkit.models.calibrated as calibrated
    for mod in (cal, calibrated):
        doc = " ".join(mod.__doc__.split())
        assert "exactly the NFA" not in doc and "empirical estimate" in doc
        assert "1/n" in doc and "extrapolated" in doc
