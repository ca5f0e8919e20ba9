"""Tests of the U-Flow detector (adkit.models.uflow) on the embedded synthetic data."""
import numpy as np
import pytest
import torch

from adkit import metrics
from adkit.data import load
from adkit.models.uflow import UFlow

torch.set_num_threads(1)  # the measured figures below; the same on any machine

# the default configuration (written out: the test pins what it measured)
CONFIG = dict(size=128, strides=(8, 16, 32), n_steps=2, epochs=10, batch_size=8,
              weight_decay=1e-3, pad=32, nfa="measured", image_quantile=0.9, holdout=0.2,
              nfa_scales="finest", seed=0, progress=False)
#: false regions per good image at ε = 1: about 1 (the band of tests/test_eps.py)
BAND = (1 / 3, 3.0)


@pytest.fixture(scope="module")
def trained():
    train, test = load("synthetic/bottle", n_train=96, n_test=24, size=128, seed=0)
    det = UFlow(**CONFIG).fit(train)
    return det, test, det.predict(test)


def _threshold_report(test, res):
    """Defective-only mIoU at ε = 1 and of the oracle (the best single threshold of the
    maps on the defective images), false regions per good image at ε = 1 and the
    smallest log10 ε ≤ 3 at which a good image has a false region."""
    bad, good = test.labels == 1, test.labels == 0
    seg = res.segment(1.0)
    auto = metrics.miou(test.masks[bad], seg[bad])
    oracle = metrics.optimal_threshold(test.masks[bad], res.maps[bad], return_score=True)[1]
    fa = metrics.false_alarms_per_image(seg, good)
    first = next((le for le in range(-3, 4)
                  if metrics.false_alarms_per_image(res.log_nfa < le, good) > 0), None)
    return auto, oracle, fa, first


def test_finds_the_defects(trained):
    det, test, res = trained
    assert res.maps.shape == test.images.shape[:3]
    assert res.log_nfa is not None and res.log_nfa.shape == res.maps.shape
    assert metrics.pixel_auroc(test.masks, res.maps) >= 0.95   # measured 0.991
    assert metrics.image_auroc(test.labels, res.scores) >= 0.9


def test_finds_the_defects_of_the_pill():
    train, test = load("synthetic/pill", n_train=96, n_test=24, size=128, seed=0)
    res = UFlow(**CONFIG).fit(train).predict(test)
    assert metrics.pixel_auroc(test.masks, res.maps) >= 0.95   # measured 0.975
    fa = metrics.false_alarms_per_image(res.segment(1.0), test.labels == 0)
    assert BAND[0] <= fa <= BAND[1]                            # measured 0.67


def test_a_contrario_threshold_close_to_oracle_on_an_object(trained):
    det, test, res = trained
    auto, oracle, fa, first = _threshold_report(test, res)
    assert auto >= oracle - 0.1        # defective images only: measured 0.323 vs 0.268
    bad = np.flatnonzero(test.labels == 1)
    seg = res.segment(1.0)
    assert np.mean([(seg[i] & test.masks[i]).any() for i in bad]) >= 0.8  # measured 1.0
    # about one false region per good image at ε = 1, as for every method (test_eps)
    assert BAND[0] <= fa <= BAND[1]    # measured 1.5 false regions per good image
    assert first is not None           # ε means something: false regions by ε = 1e3
    # the paper's mIoU (a good image scores 1 without a detection, 0 with one) pays for
    # them: at ε = 1 it is far below its oracle (measured 0.245 vs 0.634); at ε = 0.1
    # (0.25 false region per good image) it is within 0.1 again
    oracle_all = metrics.optimal_threshold(test.masks, res.maps, return_score=True)[1]
    assert metrics.miou(test.masks, res.segment(0.1)) >= oracle_all - 0.1  # 0.596 vs 0.634


def test_a_contrario_threshold_close_to_oracle_on_a_texture():
    train, test = load("textures/gravel", n_train=96, n_test=24, size=128, seed=0)
    res = UFlow(**CONFIG).fit(train).predict(test)
    assert metrics.pixel_auroc(test.masks, res.maps) >= 0.93   # measured 0.949
    auto, oracle, fa, first = _threshold_report(test, res)
    assert auto >= oracle - 0.1        # measured 0.295 vs 0.197
    assert BAND[0] <= fa <= BAND[1] and first is not None       # measured 1.5, at ε = 0.01


def test_the_held_out_test_is_a_bound():
    """``nfa="held-out"`` (the union bound: the number of tests not measured) keeps at
    most about ε false regions, and on unseen good images far fewer than the measured
    default (the settings of tests/test_eps.py)."""
    train, test = load("synthetic/bottle", n_train=45, n_test=24, size=64, seed=0,
                       anomaly_ratio=0.0)
    kw = dict(size=64, epochs=4, progress=False, seed=0)
    fa = {}
    for nfa in ("held-out", "measured"):
        det = UFlow(nfa=nfa, **kw).fit(train)
        fa[nfa] = metrics.false_alarms_vs_eps(det.predict(test).log_nfa, [1.0, 10.0])
        assert (det.log_shift_ == 0.0) == (nfa == "held-out")
    assert fa["held-out"][1] <= 1.0            # measured 0 at ε = 1, 0.17 at ε = 10
    assert BAND[0] <= fa["measured"][0] <= BAND[1]   # measured 1.0 at ε = 1


def test_texture_pixel_auroc():
    # textures were the hard case (tile: 0.942 without the mirror padding)
    train, test = load("synthetic/tile", n_train=96, n_test=24, size=128, seed=0)
    res = UFlow(**CONFIG).fit(train).predict(test)
    assert metrics.pixel_auroc(test.masks, res.maps) >= 0.95   # measured 0.969
    seg = res.segment(1.0)
    assert metrics.false_alarms_per_image(seg, test.labels == 0) <= 3.0   # measured 0
    bad = np.flatnonzero(test.labels == 1)
    assert np.mean([(seg[i] & test.masks[i]).any() for i in bad]) >= 0.8  # measured 1.0


def test_background_law_from_held_out_images(trained):
    det, test, res = trained
    assert det.n_holdout_ == 19 and len(det.backgrounds_) == len(det.strides)
    # the latents of unseen normal images are not χ²_C: heavier-tailed and correlated
    bg = det.backgrounds_[0]
    c = det.z_channels_[0]
    from adkit.contrario.tree import chi2_log_sf
    good = test.labels == 0
    q = np.quantile(res.extras[f"chi2_{det.strides[0]}"][good], 0.999)
    assert chi2_log_sf(q, c) < -5          # χ²_C calls the 1e-3 quantile of good cells < 1e-5
    assert bg.kappa > 1.5                  # neighbouring cells correlate
    assert res.extras["tests"][0].kappa == bg.kappa and len(res.extras["tests"]) == 1
    # the measured number of tests: the union bound over-counts about 10^δ times
    assert res.extras["tests"][0].shift == det.log_shift_
    assert 1.0 <= det.log_shift_ <= 4.0    # measured 2.46
    assert bg.image_quantile == CONFIG["image_quantile"]


def test_paper_nfa_trains_on_every_image_and_keeps_its_count():
    train, test = load("synthetic/nut", n_train=12, n_test=4, size=64, seed=1)
    kw = dict(size=64, epochs=1, batch_size=4, progress=False)
    det = UFlow(nfa="paper", **kw).fit(train)
    assert det.n_holdout_ == 0 and det.backgrounds_ is None
    res = det.predict(test)
    from adkit.contrario.tree import polyomino_tests, tree_log_nfa
    chi2 = [res.extras[f"chi2_{s}"][0].astype(np.float64) for s in det.strides]
    assert res.extras["log_n_tests"] == pytest.approx(polyomino_tests([c.shape for c in chi2]))
    np.testing.assert_allclose(res.log_nfa[0], tree_log_nfa(chi2, det.z_channels_, (64, 64)),
                               rtol=1e-5, atol=1e-3)
    # every scale tested with the held-out law too
    res_all = UFlow(nfa_scales="all", **kw).fit(train).predict(test)
    assert len(res_all.extras["tests"]) == len(det.strides)
    assert all(t.n_scales == 3 for t in res_all.extras["tests"])


def test_training_history_and_latents(trained):
    det, test, res = trained
    assert len(det.history_) == CONFIG["epochs"]
    assert det.history_[-1] < det.history_[0]
    z = det.latents(test.images[test.labels == 0][:2])
    assert [zi.shape[1] for zi in z] == det.z_channels_
    assert [zi.shape[2] for zi in z] == [128 // s for s in CONFIG["strides"]]
    # latents of the normal test images are roughly standard normal
    allz = np.concatenate([zi.ravel() for zi in z])
    assert abs(allz.mean()) < 0.5 and 0.5 < allz.std() < 2.0


def test_save_load_round_trip(trained, tmp_path):
    det, test, res = trained
    path = det.save(tmp_path / "uflow.npz")
    det2 = UFlow.load(path)
    assert det2.get_params() == det.get_params()
    res2 = det2.predict(test.images[:3])
    np.testing.assert_allclose(res2.maps, res.maps[:3], atol=1e-5)
    np.testing.assert_allclose(res2.log_nfa, res.log_nfa[:3], atol=1e-3)
    assert det2.history_ == det.history_


def test_flow_of_the_model_is_invertible(trained):
    det, test, res = trained
    feats = det.features(test.images[:3])             # public, numpy, finest first
    assert [f.shape[1] for f in feats] == list(det.net_.in_channels)
    assert all(f.dtype == np.float32 for f in feats)
    z = det.latents(test.images[:3])
    np.testing.assert_allclose(z[0], res.extras[f"z_{det.strides[0]}"][:3], atol=1e-4)  # batches
    rec = det.inverse(z)
    for a, b in zip(rec, feats):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=1e-4 * max(1.0, float(np.abs(b).max())))
    # the features of other images are different: the check can fail
    other = det.features(test.images[3:6])
    assert max(float(np.abs(a - b).max()) for a, b in zip(other, feats)) > 1e-2
    with pytest.raises(ValueError, match="one per scale"):
        det.inverse(z[:2])
    with pytest.raises(ValueError, match=r"latents\[1\]"):
        det.inverse([z[0], z[2], z[1]])


def test_same_seed_same_weights_and_maps():
    train, test = load("synthetic/nut", n_train=12, n_test=2, size=64, seed=1)
    kw = dict(size=64, epochs=1, batch_size=4, seed=3, progress=False)
    a = UFlow(**kw).fit(train)  # first fit also builds the backbone (draws from torch)
    b = UFlow(**kw).fit(train)
    np.testing.assert_array_equal(a.predict(test).maps, b.predict(test).maps)


def test_predict_before_fit_and_bad_images():
    det = UFlow(progress=False)
    with pytest.raises(Exception, match="fit"):
        det.predict(np.zeros((1, 64, 64, 3), np.float32))


def test_clear_errors():
    with pytest.raises(ValueError, match="double"):
        UFlow(strides=(8, 32))
    with pytest.raises(ValueError, match="multiple of the largest stride"):
        UFlow(size=100)
    with pytest.raises(ValueError, match="permutation"):
        UFlow(permutation="soft")
    with pytest.raises(ValueError, match="n_steps"):
        UFlow(n_steps=0)
    with pytest.raises(ValueError, match="pad must be a multiple"):
        UFlow(pad=8)
    with pytest.raises(ValueError, match="nfa"):
        UFlow(nfa="chi2")
    with pytest.raises(ValueError, match="holdout"):
        UFlow(holdout=1.0)
    with pytest.raises(ValueError, match="nfa_scales"):
        UFlow(nfa_scales="coarsest")
    det = UFlow(size=None, epochs=1, nfa="paper", progress=False)
    with pytest.raises(ValueError, match="multiples of the largest stride"):
        det.fit(np.zeros((2, 40, 40, 3), np.float32))
    with pytest.raises(ValueError, match="at least 5 normal images"):
        UFlow(epochs=1, progress=False).fit(np.zeros((4, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="at least 4 normal images"):
        UFlow(epochs=1, nfa="held-out", progress=False).fit(np.zeros((3, 64, 64, 3),
                                                                    np.float32))
    with pytest.raises(ValueError, match="image_quantile"):
        UFlow(image_quantile=0.0)
