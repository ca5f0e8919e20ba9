"""Parameters declared once and validated by ``Estimator`` (issue 12, item 6).

Every detector and transform declares one ``_parameter_constraints`` dict; its
keyword-only constructor only calls ``_set_params(locals())``. The tests below check the
mechanism (adkit.params), that every estimator follows it, and each defect the issue
listed (each failed before: OOM, minutes of search, IndexError, errors deep in torch or
scipy, silent no-ops, rejected numpy scalars, BatchNorm crash, 1e16 scores).
"""
from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import adkit
from adkit.estimator import Estimator
from adkit.models import (AESc, Calibrated, Gaussian, KNN, Pipeline, ReferenceGaussian,
                          SelfSimilarity, UFlow)
from adkit.models.base import AnomalyResult
from adkit.normalize import N2N, Align, BackgroundCleanup, Midway
from adkit.params import (Boolean, Device, Dict, Instance, Integral, Interval,
                          InvalidParameterError, Options, ParameterTypeError,
                          ParameterValueError, Real, Seed, Tuple, alternatives, check_param,
                          validate_params)

LEAVES = [SelfSimilarity, Gaussian, KNN, UFlow, AESc, ReferenceGaussian,
          Midway, Align, BackgroundCleanup, N2N]
#: composites take the estimators they wrap positionally (as scikit-learn's Pipeline and
#: CalibratedClassifierCV do); every setting is keyword-only
COMPOSITES = {Pipeline: ("steps", "detector"), Calibrated: ("detector",)}


def _make(cls, **kw):
    if cls is Pipeline:
        return Pipeline([Midway()], ReferenceGaussian(), **kw)
    if cls is Calibrated:
        return Calibrated(ReferenceGaussian(), **kw)
    return cls(**kw)


def _images(n=3, size=32, seed=0):
    return np.random.default_rng(seed).random((n, size, size, 3)).astype(np.float32)


# -- the mechanism ------------------------------------------------------------------
def test_interval_accepts_numpy_scalars_and_refuses_bools_nan_inf():
    c = Interval(Integral, 1, 8)
    for v in (3, np.int64(3), np.uint8(3), np.int32(3)):
        out = check_param(v, c, "n")
        assert out == 3 and type(out) is int
    r = Interval(Real, 0, None, closed="neither")
    for v in (0.5, np.float32(0.5), np.float64(0.5), np.int64(1)):
        out = check_param(v, r, "x")
        assert type(out) is float and out == float(v)
    for bad in (True, np.bool_(True), "3", 3.0, None, [3]):
        with pytest.raises(ParameterTypeError, match=r"n must be an int in \[1, 8\]"):
            check_param(bad, c, "n")
    for bad in (0, 0.0, -1, np.nan, np.inf, -np.inf, np.float32("nan")):
        with pytest.raises(ParameterValueError, match=r"x must be a number > 0, got"):
            check_param(bad, r, "x")
    with pytest.raises(ParameterValueError, match=r"\[1, 8\], got 9"):
        check_param(9, c, "n")


@pytest.mark.parametrize("closed, text, inside, outside", [
    ("both", "[0, 1]", [0, 1], [-0.1, 1.1]),
    ("left", "[0, 1)", [0, 0.5], [1]),
    ("right", "(0, 1]", [1, 0.5], [0]),
    ("neither", "(0, 1)", [0.5], [0, 1]),
])
def test_interval_bounds(closed, text, inside, outside):
    c = Interval(Real, 0, 1, closed=closed)
    assert str(c) == f"a number in {text}"
    for v in inside:
        assert check_param(v, c, "x") == v
    for v in outside:
        with pytest.raises(ParameterValueError, match=fr"x must be a number in \{text[0]}"):
            check_param(v, c, "x")


def test_alternatives_options_tuple_and_messages():
    cs = [Options("a", "b"), None]
    assert check_param(None, cs, "mode") is None and check_param("a", cs, "mode") == "a"
    with pytest.raises(ParameterValueError,
                       match=r"^Det: mode must be one of 'a', 'b' or None, got 'c'\.$"):
        check_param("c", cs, "mode", "Det")
    with pytest.raises(ParameterTypeError, match=r"got 3 \(int\)"):
        check_param(3, cs, "mode")
    t = Tuple(Interval(Integral, 0, 7), max_length=3, unique=True, sort=True)
    assert check_param([2, np.int64(0)], t, "s") == (0, 2)
    assert check_param(np.array([1, 0]), t, "s") == (0, 1)
    with pytest.raises(ParameterValueError, match=r"s\[1\] must be an int in \[0, 7\], got 9"):
        check_param((1, 9), t, "s")
    with pytest.raises(ParameterTypeError, match=r"s\[0\] must be an int"):
        check_param((1.5,), t, "s")
    with pytest.raises(ParameterValueError, match="repeated"):
        check_param((1, 1), t, "s")
    with pytest.raises(ParameterValueError, match="1 to 3"):
        check_param((0, 1, 2, 3), t, "s")
    with pytest.raises(ParameterTypeError):
        check_param("012", t, "s")
    assert check_param(np.True_, Boolean(), "b") is True
    with pytest.raises(ParameterTypeError, match="True or False"):
        check_param(1, Boolean(), "b")
    assert check_param({"a": 1}, Dict(), "kw") == {"a": 1}
    with pytest.raises(ParameterValueError, match="string keys"):
        check_param({1: 1}, Dict(), "kw")
    assert validate_params({"a": Seed()}, {"a": np.uint32(7), "b": "kept"}) == \
        {"a": 7, "b": "kept"}


def test_seed_constraint():
    assert check_param(np.int64(2 ** 32 - 1), Seed(), "seed") == 2 ** 32 - 1
    for bad in (-1, 2 ** 32, 2 ** 63):
        with pytest.raises(ParameterValueError, match=r"seed must be an int in \[0, 2\*\*32 - 1\]"):
            check_param(bad, Seed(), "seed")
    for bad in (np.inf, 1.0, "0", True):
        with pytest.raises(ParameterTypeError, match="seed must be an int"):
            check_param(bad, Seed(), "seed")


def test_device_constraint(monkeypatch):
    import torch
    cs = [None, Device()]
    assert check_param("cpu", cs, "device") == "cpu"
    assert check_param(torch.device("cpu"), cs, "device") == "cpu"
    with pytest.raises(ParameterTypeError, match=r"device must be None or a device name"):
        check_param([1], cs, "device")
    with pytest.raises(ParameterTypeError):
        check_param(0, cs, "device")
    with pytest.raises(ParameterValueError, match="'cpu', 'cuda', 'cuda:N' or 'mps'"):
        check_param("tpu", cs, "device")
    with pytest.raises(ParameterValueError, match="cuda:99"):
        check_param("cuda:99", cs, "device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for dev in ("cuda", "cuda:0"):
        with pytest.raises(ParameterValueError,
                           match=r"no CUDA GPU.*Pass device=None .* or device='cpu'"):
            check_param(dev, cs, "device")
        with pytest.raises(ValueError, match="no CUDA GPU"):
            KNN(device=dev)


# -- every estimator follows the contract -------------------------------------------
@pytest.mark.parametrize("cls", LEAVES + list(COMPOSITES), ids=lambda c: c.__name__)
def test_constructor_is_keyword_only_and_declared(cls):
    sig = inspect.signature(cls.__init__)
    params = [p for p in sig.parameters.values() if p.name != "self"]
    positional = COMPOSITES.get(cls, ())
    for p in params:
        want = p.POSITIONAL_OR_KEYWORD if p.name in positional else p.KEYWORD_ONLY
        assert p.kind == want, f"{cls.__name__}.{p.name} must be keyword-only"
    # one constraint per parameter, no stale one
    assert set(cls._parameter_constraints) == {p.name for p in params}
    obj = _make(cls)
    params = obj.get_params()
    again = type(obj)(**params).get_params()
    assert repr(again) == repr(params)
    if cls in LEAVES:
        assert repr(obj) == f"{cls.__name__}()"      # the defaults pass unchanged
        for name, default in ((p.name, p.default) for p in
                              inspect.signature(cls.__init__).parameters.values()
                              if p.name != "self"):
            assert getattr(obj, name) == (tuple(default) if isinstance(default, list)
                                          else default), name


def _interval(cls, name):
    found = [c for c in alternatives(cls._parameter_constraints[name])
             if isinstance(c, Interval) and not isinstance(c, Seed)]
    return found[0] if found else None


def _cases(kind):
    for cls in LEAVES + list(COMPOSITES):
        for name in cls._parameter_constraints:
            c = _interval(cls, name)
            if c is not None and (kind != "high" or c.high is not None):
                yield pytest.param(cls, name, c, id=f"{cls.__name__}.{name}")


@pytest.mark.parametrize("cls, name, c", list(_cases("high")))
def test_every_number_has_an_upper_bound_that_is_checked(cls, name, c):
    high = c.high * 10 + 10
    with pytest.raises(ParameterValueError, match=fr"^{cls.__name__}: {name} "):
        _make(cls, **{name: high if c.kind is Real else int(high)})


@pytest.mark.parametrize("cls, name, c", list(_cases("any")))
def test_numbers_accept_numpy_scalars_and_refuse_bools(cls, name, c):
    default = inspect.signature(cls.__init__).parameters[name].default
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        np_value = np.int64(default) if isinstance(default, int) else np.float64(default)
        obj = _make(cls, **{name: np_value})
        assert getattr(obj, name) == default and type(getattr(obj, name)) is type(default)
    with pytest.raises(ParameterTypeError, match=fr"{name} must be"):
        _make(cls, **{name: True})
    with pytest.raises(InvalidParameterError, match=name):
        _make(cls, **{name: float("nan")})


def test_all_numbers_bounded():
    """Every int / float parameter of every estimator has an upper bound (or is an index
    checked against the data at fit, like Align's reference)."""
    unbounded = [(cls.__name__, name) for cls in LEAVES + list(COMPOSITES)
                 for name in cls._parameter_constraints
                 if (c := _interval(cls, name)) is not None and c.high is None]
    assert sorted(unbounded) == [("Align", "reference"), ("SelfSimilarity", "eps")]


@pytest.mark.parametrize("cls", [c for c in LEAVES if "seed" in c._parameter_constraints]
                         + [Calibrated], ids=lambda c: c.__name__)
def test_one_seed_constraint_everywhere(cls):
    assert isinstance(cls._parameter_constraints["seed"], Seed)
    assert _make(cls, seed=np.uint16(5)).seed == 5
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*32 - 1\], got -1"):
        _make(cls, seed=-1)
    with pytest.raises(TypeError, match="seed must be an int"):
        _make(cls, seed=float("inf"))
    with pytest.raises(TypeError, match="seed must be an int"):
        _make(cls, seed=None)


@pytest.mark.parametrize("cls", [c for c in LEAVES if "device" in c._parameter_constraints],
                         ids=lambda c: c.__name__)
def test_one_device_constraint_everywhere(cls, monkeypatch):
    import torch
    assert any(isinstance(c, Device) for c in alternatives(cls._parameter_constraints["device"]))
    assert cls(device="cpu").device == "cpu" and cls(device=None).device is None
    with pytest.raises(TypeError, match="device must be None or a device name"):
        cls(device=[1])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        cls(device="cuda")


def test_saved_device_missing_here_loads_on_what_is_here(tmp_path, monkeypatch):
    import adkit.params as params
    path = Align(device="cpu", progress=False).fit(_images(2, 32)).save(tmp_path / "a.npz")
    real = params.device_available
    monkeypatch.setattr(params, "device_available",
                        lambda d: "this machine lacks it" if d == "cpu" else real(d))
    with pytest.warns(UserWarning, match=r"saved with device='cpu', but this machine lacks "
                                         r"it: loaded with device=None"):
        step = Align.load(path)
    assert step.device is None and step.is_fitted


def test_cross_parameter_rules_name_the_class():
    with pytest.raises(ParameterValueError, match=r"^SelfSimilarity: n_votes=3 is more than"):
        SelfSimilarity(scales=2, n_votes=3)
    with pytest.raises(ParameterValueError, match=r"^SelfSimilarity: window=4 is smaller"):
        SelfSimilarity(window=4)
    with pytest.raises(ParameterValueError, match=r"stride=9 is larger than patch_size=8"):
        SelfSimilarity(stride=9)
    with pytest.raises(ParameterValueError, match=r"^KNN: pad must be a multiple"):
        KNN(pad=8)
    with pytest.raises(ParameterValueError, match=r"^UFlow: size must be a multiple"):
        UFlow(size=100)
    with pytest.raises(ParameterValueError, match=r"^BackgroundCleanup: gray_range must be "
                                                  r"\(low, high\) with low <= high"):
        BackgroundCleanup(gray_range=(0.8, 0.2))
    # normalization: scales=3 is (0, 1, 2), stored under its own name
    assert SelfSimilarity(scales=np.int64(3)).scales == (0, 1, 2)
    assert SelfSimilarity(scales=[2, 0]).scales == (0, 2)
    assert AESc(dropout=[0, 0, 0.1, 0.2, 0.3, 0.4]).dropout == (0.0, 0.0, 0.1, 0.2, 0.3, 0.4)


def test_user_subclass_without_constraints_still_works():
    class Mine(ReferenceGaussian):
        _parameter_constraints = {}

        def __init__(self, *, anything=object()):
            self._set_params(locals())

    assert isinstance(Mine().anything, object)


# -- the defects of issue 12 item 6 -------------------------------------------------
def test_selfsim_scales_bounded_instead_of_oom():
    with pytest.raises(ParameterValueError, match=r"scales must be an int in \[1, 8\] or a "
                                                  r"tuple .*got 1000000000"):
        SelfSimilarity(scales=10 ** 9)
    with pytest.raises(ParameterValueError, match=r"scales\[0\] must be an int in \[0, 7\]"):
        SelfSimilarity(scales=(10 ** 9,))


def test_selfsim_window_checked_against_the_images():
    with pytest.raises(ValueError, match=r"window=200 is larger than the 64x64 training "
                                         r"images.*window <= 64"):
        SelfSimilarity(window=200, progress=False).fit(_images(3, 64))


def test_selfsim_n_neighbors_checked_against_the_candidates():
    x = _images(3, 32)
    with pytest.raises(ValueError, match=r"n_neighbors=1000 is more than the 98 candidate "
                                         r"patches.*n_neighbors <= 98"):
        SelfSimilarity(n_neighbors=1000, scales=1, n_votes=1, progress=False).fit(x)
    # the largest accepted value works (it failed with an IndexError before)
    det = SelfSimilarity(n_neighbors=98, scales=1, n_votes=1, progress=False).fit(x)
    res = det.predict(x[:1])
    assert np.isfinite(res.maps).all()


def test_seeds_checked_at_construction():
    with pytest.raises(ValueError, match=r"^KNN: seed must be an int in \[0, 2\*\*32 - 1\], "
                                         r"got -1\."):
        KNN(seed=-1)
    with pytest.raises(TypeError, match=r"^AESc: seed must be an int .*got inf \(float\)"):
        AESc(seed=float("inf"))


def test_devices_checked_at_construction():
    import torch
    with pytest.raises(TypeError, match=r"^Gaussian: device must be None or a device name"):
        Gaussian(device=[1])
    if not torch.cuda.is_available():   # the machines that test without a GPU
        with pytest.raises(ValueError, match="torch.cuda.is_available"):
            UFlow(device="cuda")


@pytest.mark.parametrize("make", [
    lambda: Gaussian(sigma=1e9), lambda: KNN(sigma=1e9),
    lambda: ReferenceGaussian(score_sigma=1e9)], ids=["gaussian", "knn", "reference"])
def test_sigmas_bounded(make):
    with pytest.raises(ValueError, match=r"sigma must be a number in \[0, 64\], got 1e\+09"):
        make()


def test_segment_accepts_numpy_numbers():
    maps = np.zeros((1, 4, 4), np.float32)
    log_nfa = np.full((1, 4, 4), -1.0, np.float32)
    r = AnomalyResult(maps, np.zeros(1), log_nfa)
    for eps in (1, 1.0, np.float32(1), np.int64(1), np.float16(1)):
        assert r.segment(eps=eps).all()
    assert r.segment(eps=np.float32(0.01)).sum() == 0
    assert r.segment(threshold=np.float32(-1)).all()
    for bad in (0, -1, np.nan, np.inf, np.float32(0), True, "1", None):
        with pytest.raises((TypeError, ValueError), match="eps must be a positive number"):
            r.segment(eps=bad)


def test_aesc_needs_two_images():
    x = np.zeros((1, 64, 64, 3), np.float32)
    with pytest.raises(ValueError, match=r"AESc needs at least 2 training images \(its "
                                         r"BatchNorm"):
        AESc(epochs=1, progress=False).fit(x)
    with pytest.raises(ValueError, match="BatchNorm needs at least 2 images per batch"):
        AESc(batch_size=1)


@pytest.mark.parametrize("make, need", [
    (lambda: SelfSimilarity(), 2), (lambda: Gaussian(), 2), (lambda: ReferenceGaussian(), 2),
    (lambda: AESc(), 2), (lambda: Calibrated(ReferenceGaussian()), 4),
    (lambda: Calibrated(KNN()), 3), (lambda: Pipeline([N2N()], KNN()), 2),
    (lambda: N2N(), 2)], ids=["selfsim", "gaussian", "reference", "aesc", "calibrated",
                              "calibrated-knn", "pipeline-n2n", "n2n"])
def test_minimum_training_images_named(make, need):
    det = make()
    x = _images(need - 1, 64)
    with pytest.raises(ValueError, match=fr"{type(det).__name__} needs at least {need} "
                                         r"training images \(.+\), got"):
        det.fit(x)


def test_knn_bank_smaller_than_b_is_said():
    with pytest.warns(UserWarning, match=r"memory bank holds 1 patch feature.*fewer than the "
                                         r"b=9 neighbours of the image score, which will use 1"):
        det = KNN(coreset=0.001, progress=False).fit(_images(1, 64))
    assert np.isfinite(det.predict(_images(1, 64, seed=1)).scores).all()


def test_gaussian_warns_when_too_few_images_for_its_covariance():
    train, _ = adkit.data.load("synthetic/pill", n_train=16, n_test=2, size=64, seed=0)
    det = Gaussian(progress=False, map_strides=())
    with pytest.warns(UserWarning, match=r"the 4 training images vary in at most 3 .*Fit on "
                                         r"more training images"):
        det.fit(train.images[:4])
    assert det.predict(train.images[4:6]).scores.max() > 1e8   # what the warning is about
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        det.fit(train.images)                                   # 16 images: no warning
    assert det.predict(train.images[:2]).scores.max() < 1e6


def test_estimator_base_validates_nothing_it_does_not_know():
    assert Estimator._parameter_constraints == {}
    assert isinstance(Calibrated._parameter_constraints["detector"], Instance)


def test_public_functions_accept_numpy_scalars():
    """ε, sizes, counts and seeds given as numpy scalars (what np.arange, a slider or an
    array element gives) are accepted everywhere, like Python numbers."""
    import torch

    from adkit import contrario, metrics
    from adkit.backbone import blur_maps
    from adkit.coreset import greedy_coreset
    from adkit.corruptions import gaussian, stain
    from adkit.neighbors import nearest_neighbors
    i, f = np.int64, np.float32
    train, test = adkit.data.load("synthetic/pill", n_train=i(3), n_test=i(4), size=i(32),
                                  seed=i(1), anomaly_ratio=f(0.5))
    assert train.images.shape == (3, 32, 32, 3) and len(test) == 4
    a, b = train.split(fraction=f(0.5), seed=i(2))
    assert len(a) + len(b) == 3
    x = np.random.default_rng(0).random((100, 8)).astype(np.float32)
    assert len(greedy_coreset(x, ratio=f(0.1), dim=i(4), seed=i(0))) == 10
    assert nearest_neighbors(x[:3], x, k=i(2))[0].shape == (3, 2)
    assert contrario.gaussian_threshold(f(1), i(100)) == pytest.approx(
        contrario.gaussian_threshold(1.0, 100))
    assert contrario.count_tests([(i(4), i(4))], i(3)) == 48
    assert contrario.polyomino_tests(i(16)) == contrario.polyomino_tests(16)
    assert stain(test.images[0], seed=i(3), n_points=i(8))[0].shape == (32, 32, 3)
    assert gaussian(test.images, seed=np.uint8(1), variance=f(0.2))[0].shape == (4, 32, 32, 3)
    maps = np.random.default_rng(0).random(test.masks.shape)
    assert 0 <= metrics.aupro(test.masks, maps, max_fpr=f(0.3)) <= 1
    assert np.isfinite(metrics.optimal_threshold(test.masks, maps, n_thresholds=i(16)))
    assert blur_maps(torch.zeros(1, 8, 8), f(1.0)).shape == (1, 8, 8)
    det = ReferenceGaussian(sigma_min=f(0.05), score_sigma=i(1)).fit(train)
    res = det.predict(test)
    assert res.segment(eps=f(10)).shape == test.masks.shape
    assert metrics.evaluate(res, test, eps=np.float64(1))["image_auroc"] >= 0
