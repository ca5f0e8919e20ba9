"""Fuzz tests of every public entry point (issue 12, item 7), with hypothesis.

Generated bad arrays (wrong dtype, shape, NaN/inf, out of range, empty, tiny), bad
parameters (wrong types, out of bounds, booleans, NaN) and bad files are thrown at the
detectors (constructors, fit, predict, segment), the transforms, ``data.load``, the
metrics, the contrario functions, the corruptions and ``Estimator.load``. Each must
answer with **adkit's own error**: a ``TypeError`` / ``ValueError`` (or adkit's
``NotFittedError``, a ``FileNotFoundError`` for a missing file) with a message, raised
by a ``raise`` statement in adkit's code — never an exception from inside numpy, torch,
scipy or scikit-learn, nor an accidental ``TypeError`` of adkit's own arithmetic. Where a
generated input may be valid, the entry point either answers with a well-formed result
(finite numbers, the documented shape) or with such an error.

Runs derandomized (the same examples every run, no example database), a few dozen
examples per test, in well under 2 minutes on 2 cores (``python -m pytest
tests/test_fuzz.py``).
"""
from __future__ import annotations

import io
import json
import math
import os
import traceback
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import adkit
from adkit import contrario, corruptions, metrics
from adkit.estimator import Estimator, ModelFileError, NotFittedError
from adkit.models import (AESc, Calibrated, Gaussian, KNN, Pipeline, ReferenceGaussian,
                          SelfSimilarity, UFlow)
from adkit.models.base import AnomalyResult
from adkit.normalize import N2N, Align, BackgroundCleanup, Midway
from adkit.params import Boolean, Device, Dict, Instance, Interval, Options, Tuple, alternatives

FUZZ = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
FEW = settings(FUZZ, max_examples=12)

ADKIT_DIR = os.path.dirname(os.path.abspath(adkit.__file__)) + os.sep
ERRORS = (TypeError, ValueError, NotFittedError, FileNotFoundError)
SIZE = 64


# -- what counts as adkit's own error ---------------------------------------------------
def _raising_frame(exc: BaseException) -> traceback.FrameSummary:
    return traceback.extract_tb(exc.__traceback__)[-1]


def check_adkit_error(exc: BaseException, what: str = "") -> None:
    """``exc`` is an error adkit raised on purpose: an expected type, a message, and the
    innermost frame of its traceback a ``raise`` statement in adkit's own source."""
    tb = "".join(traceback.format_exception(exc))
    if not isinstance(exc, ERRORS):
        pytest.fail(f"{what}: {type(exc).__name__} is not an adkit error:\n{tb}")
    frame = _raising_frame(exc)
    own = os.path.abspath(frame.filename).startswith(ADKIT_DIR) and \
        (frame.line or "").lstrip().startswith("raise")
    if not own:
        pytest.fail(f"{what}: {type(exc).__name__} raised inside {frame.filename}:"
                    f"{frame.lineno} ({frame.line!r}), not by adkit:\n{tb}")
    if len(str(exc).strip()) < 10:
        pytest.fail(f"{what}: {type(exc).__name__} without a useful message: {exc!r}")


def expect_error(fn, *args, **kwargs) -> BaseException:
    """``fn(*args, **kwargs)`` must raise adkit's own error."""
    what = getattr(fn, "__qualname__", repr(fn))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - what is raised is the point of the test
        check_adkit_error(e, what)
        return e
    pytest.fail(f"{what} accepted bad input and returned {type(out).__name__}")


def result_or_error(fn, *args, **kwargs):
    """``fn(...)``'s result, or None when it raised adkit's own error."""
    what = getattr(fn, "__qualname__", repr(fn))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001
        check_adkit_error(e, what)
        return None


def test_the_error_check_can_fail():
    """The criterion tells adkit's errors from the others."""
    with pytest.raises(pytest.fail.Exception, match="inside"):
        expect_error(np.zeros(3).reshape, (2, 2))            # numpy's own ValueError
    with pytest.raises(pytest.fail.Exception, match="not an adkit error"):
        expect_error(lambda: [][1])
    with pytest.raises(pytest.fail.Exception, match="accepted"):
        expect_error(lambda: 1)
    expect_error(adkit.checks.check_images, "image.png")


# -- generated bad inputs -----------------------------------------------------------------
finite01 = st.floats(0, 1, allow_nan=False, width=32)
out_of_range = st.one_of(st.floats(1.01, 1e30), st.floats(-1e30, -0.01))
nonfinite = st.sampled_from([np.nan, np.inf, -np.inf])
junk = st.one_of(st.none(), st.text(max_size=6), st.binary(max_size=4), st.complex_numbers(),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
                 st.lists(st.integers(), max_size=3).map(set),
                 st.just(object()), st.just(print))


def _valid(n, h=SIZE, w=SIZE, seed=0):
    return np.random.default_rng(seed).random((n, h, w, 3)).astype(np.float32)


@st.composite
def bad_images(draw, size=SIZE, n_max=2):
    """An input that is not a batch of float RGB images in [0, 1] of at least 8x8."""
    n = draw(st.integers(1, n_max))
    kind = draw(st.sampled_from(["dtype", "shape", "nonfinite", "range", "empty", "small",
                                 "list", "object"]))
    x = _valid(n, size, size, draw(st.integers(0, 3)))
    if kind == "dtype":
        dt = draw(st.sampled_from(["uint8", "uint16", "int32", "int64", "bool", "complex64",
                                   "str", "object", "datetime64[s]"]))
        if dt == "str":
            return np.full(x.shape, "a")
        if dt == "object":
            return np.full(x.shape, None, dtype=object)
        if dt == "complex64":
            return (x + 1j * x).astype(np.complex64)
        if dt == "datetime64[s]":
            return np.zeros(x.shape, dt)
        if dt == "bool":
            return x > 0.5
        return np.full(x.shape, draw(st.integers(2, 255)), dtype=dt)
    if kind == "shape":
        shape = draw(st.sampled_from([(), (size,), (size, size), (n, size, size),
                                      (n, size, size, 1), (n, size, size, 2),
                                      (n, size, size, 4), (n, 3, size, size),
                                      (1, n, size, size, 3)]))
        return np.full(shape, draw(finite01), np.float32)
    if kind == "nonfinite":
        i = draw(st.integers(0, x.size - 1))
        x.flat[i] = draw(nonfinite)
        return x
    if kind == "range":
        i = draw(st.integers(0, x.size - 1))
        x.flat[i] = draw(out_of_range)
        return x.astype(draw(st.sampled_from([np.float32, np.float64])))
    if kind == "empty":
        shape = draw(st.sampled_from([(0, size, size, 3), (n, 0, size, 3), (n, size, 0, 3),
                                      (0,)]))
        return np.zeros(shape, np.float32)
    if kind == "small":
        h, w = draw(st.integers(1, 7)), draw(st.integers(1, size))
        if draw(st.booleans()):
            h, w = w, h
        return np.full((n, h, w, 3), 0.5, np.float32)
    if kind == "list":
        return draw(st.sampled_from([[], [x[0], x[0, :-1]], [x[0], "x"], [x[0], None],
                                     [x[0], x[0, ..., :2]]]))
    return draw(junk)


def other_size(size=SIZE):
    return st.integers(8, 40).filter(lambda s: s != size).map(lambda s: _valid(1, s, s))


# -- fitted estimators (once per module, tiny data) ----------------------------------------
@pytest.fixture(scope="module")
def pill():
    return adkit.data.load("synthetic/pill", n_train=6, n_test=2, size=SIZE, seed=0)


def _detectors():
    return {
        "reference": lambda: ReferenceGaussian(),
        "selfsim": lambda: SelfSimilarity(scales=2, n_votes=1, progress=False),
        "gaussian": lambda: Gaussian(progress=False),
        "knn": lambda: KNN(progress=False),
        "uflow": lambda: UFlow(epochs=1, size=32, progress=False),
        "aesc": lambda: AESc(epochs=1, width=0.125, batch_size=2, n_samples=2,
                             progress=False),
        "calibrated": lambda: Calibrated(ReferenceGaussian()),
        "pipeline": lambda: Pipeline([Midway(), Align(progress=False)], ReferenceGaussian()),
    }


def _transforms():
    return {
        "midway": lambda: Midway(),
        "align": lambda: Align(progress=False),
        "background": lambda: BackgroundCleanup(),
        "n2n": lambda: N2N(epochs=1, crops_per_image=1, crop=32, progress=False),
    }


@pytest.fixture(scope="module")
def fitted(pill):
    train, _ = pill
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, make in {**_detectors(), **_transforms()}.items():
            out[name] = make().fit(train.images)
    return out


DETECTORS = sorted(_detectors())
TRANSFORMS = sorted(_transforms())


# -- detectors and transforms: bad arrays --------------------------------------------------
MANY = settings(FUZZ, max_examples=60)


@pytest.mark.parametrize("name", DETECTORS + TRANSFORMS)
@MANY
@given(images=bad_images())
def test_fit_refuses_bad_images(name, images):
    make = {**_detectors(), **_transforms()}[name]
    expect_error(make().fit, images)


@pytest.mark.parametrize("name", DETECTORS)
@MANY
@given(images=st.one_of(bad_images(), other_size()))
def test_predict_refuses_bad_images(name, fitted, images):
    expect_error(fitted[name].predict, images)


@pytest.mark.parametrize("name", TRANSFORMS)
@FUZZ
@given(images=st.one_of(bad_images(), other_size()))
def test_transform_refuses_bad_images(name, fitted, images):
    step = fitted[name]
    out = result_or_error(step.transform, images)
    if out is None:
        expect_error(step.transform_with_inverse, images)
    else:   # valid images of another size: steps that work at any size answer them
        assert name != "align" and isinstance(images, np.ndarray) and images.shape[1] != SIZE
        assert out.dtype == np.float32 and out.shape == images.shape
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("name", DETECTORS + TRANSFORMS)
def test_unfitted_use_is_an_error(name, pill):
    make = {**_detectors(), **_transforms()}[name]
    est = make()
    if name == "background":
        return          # nothing to fit: a BackgroundCleanup is ready as built
    run = est.predict if name in DETECTORS else est.transform
    e = expect_error(run, pill[1].images)
    assert isinstance(e, NotFittedError) and "fit" in str(e)


# -- constructors: bad parameters ------------------------------------------------------------
ESTIMATORS = {**_detectors(), **_transforms()}
CLASSES = [SelfSimilarity, Gaussian, KNN, UFlow, AESc, ReferenceGaussian, Calibrated,
           Pipeline, Midway, Align, BackgroundCleanup, N2N]


def _make(cls, **kw):
    if cls is Pipeline:
        kw.setdefault("steps", [Midway()])
        kw.setdefault("detector", ReferenceGaussian())
    if cls is Calibrated:
        kw.setdefault("detector", ReferenceGaussian())
    return cls(**kw)


def _bad_for(c) -> st.SearchStrategy:
    """Values that the one constraint ``c`` refuses."""
    wrong_kind = junk.filter(lambda v: not c.matches(v))
    if isinstance(c, Interval):
        out = [wrong_kind, st.booleans(), st.just(np.True_)]
        if c.kind.__name__ == "Integral":
            out.append(st.floats(allow_nan=True).filter(lambda v: not float(v).is_integer()
                                                        if math.isfinite(v) else True))
            if c.low is not None:
                out.append(st.integers(-2 ** 62, int(c.low) - 1).map(np.int64))
            if c.high is not None:
                out.append(st.integers(min_value=int(c.high) + 1, max_value=2 ** 80))
        else:
            out.append(nonfinite)
            if c.low is not None:
                out.append(st.floats(max_value=c.low, exclude_max=c.closed in ("both", "left"),
                                     allow_nan=False, allow_infinity=False))
            if c.high is not None:
                out.append(st.floats(min_value=c.high, exclude_min=c.closed in ("both", "right"),
                                     allow_nan=False, allow_infinity=False))
        return st.one_of(out)
    if isinstance(c, Options):
        return st.one_of(wrong_kind, st.text(max_size=8).filter(lambda v: v not in c.values))
    if isinstance(c, Boolean):
        return st.one_of(wrong_kind, st.integers(), st.text(max_size=3))
    if isinstance(c, Device):
        return st.one_of(wrong_kind, st.integers(), st.lists(st.integers(), max_size=2),
                         st.text(max_size=8).filter(lambda v: v not in ("cpu", "cuda", "mps")
                                                    and not v.startswith(("cuda:", "cpu"))))
    if isinstance(c, Tuple):
        item = _bad_for(c.item)
        return st.one_of(wrong_kind.filter(lambda v: not isinstance(v, (list, tuple))),
                         st.lists(item, min_size=1, max_size=3).map(tuple))
    if isinstance(c, (Instance, Dict)):
        return st.one_of(wrong_kind, st.integers(), st.text(max_size=3))
    return st.one_of(wrong_kind, st.integers(), st.text(max_size=3))   # e.g. Strides


def _refused(cs, v) -> bool:
    """Whether no alternative of ``cs`` accepts ``v`` (so an error is due)."""
    for c in cs:
        if c.matches(v):
            try:
                c.convert(v, "x")
                return False
            except Exception:  # noqa: BLE001
                return True
    return True


PARAMS = [(cls, name) for cls in CLASSES for name in cls._parameter_constraints]


@pytest.mark.parametrize("cls, name", PARAMS, ids=[f"{c.__name__}.{n}" for c, n in PARAMS])
@FEW
@given(data=st.data())
def test_constructor_refuses_bad_parameters(cls, name, data):
    cs = alternatives(cls._parameter_constraints[name])
    value = data.draw(st.one_of([_bad_for(c) for c in cs]), label=name)
    assume(_refused(cs, value))
    e = expect_error(_make, cls, **{name: value})
    assert name in str(e)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
@FUZZ
@given(data=st.data())
def test_any_accepted_parameters_are_saved_and_rebuilt(cls, data):
    """Whatever mix of values a constructor accepts, it validates it, saves it as JSON
    and rebuilds the same object (numpy scalars and sequences normalized)."""
    kw = {}
    for name in cls._parameter_constraints:
        if name in ("detector", "steps") or not data.draw(st.booleans(), label="set " + name):
            continue
        kw[name] = data.draw(st.one_of(junk, st.booleans(), st.integers(-3, 300),
                                       st.floats(-1, 300), nonfinite,
                                       st.integers(0, 64).map(np.int64),
                                       st.floats(0, 2, width=32).map(np.float32),
                                       st.lists(st.integers(0, 32), max_size=6).map(tuple),
                                       st.sampled_from(["cpu", "sum", "stain", "median",
                                                        "patch", "l2", "images", "fixed"])),
                             label=name)
    obj = result_or_error(_make, cls, **kw)
    if obj is None:
        return
    params = obj.get_params()
    json.dumps(obj._params_for_json())
    again = type(obj)(**params)
    assert repr(again) == repr(obj)
    for k, v in params.items():
        assert not isinstance(v, (np.generic, np.ndarray)), (k, v)


@FEW
@given(eps=st.one_of(junk, st.booleans(), nonfinite, st.floats(max_value=0),
                     st.integers(max_value=0)))
def test_segment_and_thresholds_refuse_bad_eps(eps):
    r = AnomalyResult(np.zeros((1, 8, 8)), np.zeros(1), np.zeros((1, 8, 8)))
    expect_error(r.segment, eps=eps)
    expect_error(contrario.gaussian_threshold, eps, 100)
    if eps is not None and not (isinstance(eps, (int, float)) and not isinstance(eps, bool)
                                and math.isfinite(eps)):
        expect_error(r.segment, threshold=eps)


@FUZZ
@given(eps=st.one_of(st.floats(1e-6, 1e6), st.integers(1, 100)),
       cast=st.sampled_from([float, np.float32, np.float64, np.int64, np.float16]))
def test_segment_accepts_any_positive_number(eps, cast):
    assume(not (cast in (np.int64,) and eps != int(eps)))
    with np.errstate(over="ignore"):
        e = cast(eps)
    assume(float(e) > 0 and math.isfinite(float(e)))
    r = AnomalyResult(np.zeros((1, 8, 8)), np.zeros(1), np.full((1, 8, 8), -1.0))
    assert r.segment(eps=e).dtype == bool


@pytest.fixture(scope="module")
def selfsim_result(fitted, pill):
    return fitted["selfsim"].predict(pill[1].images)


@FUZZ
@given(eps=st.one_of(junk, st.booleans(), nonfinite, st.floats(max_value=0),
                     st.floats(1e-3, 10)),
       n_votes=st.one_of(junk, st.booleans(), st.integers(-2, 4), st.floats(0, 3)),
       scales=st.one_of(st.none(), junk, st.integers(-2, 12),
                        st.lists(st.integers(-2, 12), max_size=3).map(tuple)))
def test_rethreshold_and_calibrated_threshold(fitted, selfsim_result, eps, n_votes, scales):
    from adkit.models.selfsim import rethreshold
    out = result_or_error(rethreshold, selfsim_result, eps, n_votes, scales)
    if out is not None:
        assert out.log_nfa.shape == selfsim_result.maps.shape
        assert np.isfinite(out.scores).all()
    t = result_or_error(fitted["calibrated"].threshold, eps)
    if t is not None:
        assert isinstance(t, float) and not math.isnan(t)


# -- data.load -----------------------------------------------------------------------------
@FUZZ
@given(name=st.one_of(junk, st.text(max_size=20),
                      st.sampled_from(["synthetic/", "synthetic/xyz", "textures/none",
                                       "mvtec/", "folder/", "pill", "synthetic/pill/x",
                                       "mvtec/bottle"])))
def test_data_load_refuses_bad_names(name, tmp_path_factory):
    root = str(tmp_path_factory.getbasetemp() / "no_dataset_here")
    kw = {"root": root} if isinstance(name, str) and name.startswith("mvtec") else {}
    out = result_or_error(adkit.data.load, name, **kw)
    assert out is None, f"{name!r} loaded"


@FEW
@given(root=st.one_of(junk.filter(lambda v: v is not None), st.just("/nonexistent/folder"),
                      st.just(__file__), st.just("")))
def test_data_load_folder_refuses_bad_roots(root):
    expect_error(adkit.data.load, "folder", root=root)


@FUZZ
@given(key=st.sampled_from(["n_train", "n_test", "size", "seed"]),
       value=st.one_of(junk, st.booleans(), nonfinite, st.floats(-10, 10),
                       st.integers(-(2 ** 70), 0), st.integers(10 ** 6, 10 ** 12)))
def test_data_load_refuses_bad_settings(key, value):
    assume(not (key == "seed" and isinstance(value, int) and not isinstance(value, bool)
                and 0 <= value))
    if isinstance(value, float) and value.is_integer() and value > 0 and key != "seed":
        assume(False)
    kw = {"n_train": 2, "n_test": 2, "size": 32, key: value}
    expect_error(adkit.data.load, "synthetic/pill", **kw)


# -- metrics ------------------------------------------------------------------------------
def _array(draw, shape, kind):
    if kind == "float":
        return np.random.default_rng(draw(st.integers(0, 9))).normal(size=shape)
    if kind == "nan":
        a = np.random.default_rng(0).normal(size=shape)
        if a.size:
            a.flat[draw(st.integers(0, a.size - 1))] = draw(nonfinite)
        return a
    if kind == "bool":
        return np.random.default_rng(draw(st.integers(0, 9))).random(shape) > 0.5
    if kind == "int":
        return np.random.default_rng(draw(st.integers(0, 9))).integers(-1, 3, shape)
    if kind == "str":
        return np.full(shape, "a")
    if kind == "object":
        return np.full(shape, None, object)
    return draw(junk)


@st.composite
def metric_inputs(draw, ndim):
    """Two arrays of possibly different shapes and kinds (ndim 1: labels/scores, 3: masks,
    maps)."""
    n = draw(st.integers(0, 3))
    base = (n,) if ndim == 1 else (n, draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    shapes = [base, base, base[:-1], base + (1,), (), (n + 1,) + base[1:]]
    a = _array(draw, draw(st.sampled_from(shapes)),
               draw(st.sampled_from(["bool", "int", "nan", "str", "object", "junk", "bool"])))
    b = _array(draw, draw(st.sampled_from(shapes)),
               draw(st.sampled_from(["float", "nan", "bool", "str", "object", "junk"])))
    return a, b


def _finite_result(out, what):
    if isinstance(out, dict):
        for v in out.values():
            _finite_result(v, what)
    elif isinstance(out, tuple):
        for v in out:
            _finite_result(v, what)
    else:
        a = np.asarray(out, dtype=np.float64)
        assert np.isfinite(a).all(), f"{what} returned {out!r}"


@pytest.mark.parametrize("fn", ["image_auroc", "roc_curve"])
@FUZZ
@given(args=metric_inputs(1))
def test_label_metrics(fn, args):
    out = result_or_error(getattr(metrics, fn), *args)
    if out is not None:   # (roc_curve's first threshold is +inf, scikit-learn's convention)
        _finite_result(out if fn == "image_auroc" else out[:2], fn)


@pytest.mark.parametrize("fn", ["pixel_auroc", "aupro", "pro_curve", "miou", "f1",
                                "optimal_threshold"])
@FUZZ
@given(args=metric_inputs(3))
def test_map_metrics(fn, args):
    masks, maps = args
    if fn in ("miou", "f1") and isinstance(maps, np.ndarray) and maps.dtype.kind == "f":
        maps = maps > 0
    out = result_or_error(getattr(metrics, fn), masks, maps)
    if out is not None and not (fn == "miou" and out is None):
        _finite_result(out if fn != "pro_curve" else out[:2], fn)


@FUZZ
@given(mask=st.one_of(bad_images(), junk, st.just(np.zeros((2, 2, 2, 2), bool)),
                      st.just(np.full((3, 3), np.nan))),
       good=st.one_of(st.none(), junk, st.just(np.array([1, 0, 2])), st.just([True])))
def test_region_metrics(mask, good):
    out = result_or_error(metrics.count_regions, mask)
    if out is not None:
        assert isinstance(out, (int, np.integer)) and out >= 0
    out = result_or_error(metrics.false_alarms_per_image, mask, good)
    if out is not None:
        assert math.isfinite(out) and out >= 0


@FEW
@given(eps=st.one_of(junk, st.booleans(), nonfinite, st.floats(max_value=0)))
def test_evaluate_refuses_bad_eps(pill, eps):
    _, test = pill
    r = AnomalyResult(np.zeros(test.images.shape[:3]), np.zeros(len(test)),
                      np.zeros(test.images.shape[:3]))
    expect_error(metrics.evaluate, r, test, eps=eps)


# -- contrario ------------------------------------------------------------------------------
numbers_or_junk = st.one_of(junk, st.booleans(), nonfinite, st.floats(-1e3, 1e3),
                            st.integers(-5, 5), st.integers(0, 100).map(np.int64))


@FUZZ
@given(z=st.one_of(junk, st.just(np.array([np.nan, 1.0])), st.just(np.array(["a"])),
                   st.just(np.zeros((2, 2)))),
       n_tests=numbers_or_junk, eps=numbers_or_junk, n_votes=numbers_or_junk)
def test_gaussian_nfa_functions(z, n_tests, eps, n_votes):
    for fn, args in [(contrario.log_nfa_gaussian, (z, n_tests)),
                     (contrario.gaussian_threshold, (eps, n_tests)),
                     (contrario.gaussian_nfa, (eps, n_tests)),
                     (contrario.normalize_residual, (z,)),
                     (contrario.vote_log_nfa, (z, n_votes)),
                     (contrario.count_tests, ([z.shape] if isinstance(z, np.ndarray) else z,
                                              n_votes)),
                     (contrario.log10_gaussian_tail, (z,))]:
        out = result_or_error(fn, *args)
        if out is not None and fn is not contrario.log10_gaussian_tail:
            a = np.asarray(out, np.float64)
            assert not np.isnan(a).any(), (fn.__name__, args, out)


@FUZZ
@given(chi2=st.one_of(junk, st.just(np.full((4, 4), np.nan)), st.just(np.zeros((0, 3))),
                      st.just(-np.ones((4, 4))), st.just(np.ones((2, 2, 2))),
                      st.just(np.ones((5, 5))), st.just(np.array([["a"]]))),
       channels=numbers_or_junk, sizes=st.one_of(junk, st.lists(st.tuples(
           st.integers(-2, 4), st.integers(-2, 4)), max_size=2)))
def test_tree_functions(chi2, channels, sizes):
    for fn, args in [(contrario.level_set_tree, (chi2, channels)),
                     (contrario.tree_log_nfa, ([chi2], [channels])),
                     (contrario.polyomino_tests, (sizes,)),
                     (contrario.chi2_region_log_pfa, (chi2, chi2, channels))]:
        out = result_or_error(fn, *args)
        if out is not None and fn is not contrario.level_set_tree:
            a = np.asarray(out, np.float64)
            assert not np.isnan(a).any(), (fn.__name__, out)


@FUZZ
@given(maps=st.one_of(junk, st.just(np.full((1, 4, 4), np.nan)), st.just(np.zeros((0, 4, 4))),
                      st.just(np.zeros(5)), st.just(np.ones((2, 3, 3), bool)),
                      st.just(np.array([[["x"]]]))),
       n_levels=numbers_or_junk)
def test_calibration_functions(maps, n_levels):
    out = result_or_error(contrario.false_alarm_curve, maps, n_levels=n_levels)
    if out is not None:
        assert np.isfinite(out.levels).all() and np.isfinite(out.nfa).all()


# -- corruptions ---------------------------------------------------------------------------
CORRUPTION_PARAMS = {
    "stain": ["size", "gray", "n_points"], "gaussian": ["variance", "sigma"],
    "scratch": ["gray", "length", "shape"], "drops": ["n_drops", "size", "gray", "spread"],
    "mix1": [], "mix2": [],
}


@pytest.mark.parametrize("kind", sorted(CORRUPTION_PARAMS))
@FUZZ
@given(data=st.data())
def test_corruptions(kind, data):
    fn = getattr(corruptions, kind)
    if data.draw(st.booleans(), label="bad image"):
        expect_error(fn, data.draw(bad_images(size=16)), seed=0)
        return
    image = _valid(data.draw(st.integers(1, 2)), 16, 16)
    kw = {"seed": data.draw(st.one_of(st.integers(0, 9), st.integers(-9, -1), junk,
                                      st.booleans(), nonfinite), label="seed")}
    for p in CORRUPTION_PARAMS[kind]:
        if data.draw(st.booleans(), label="set " + p):
            kw[p] = data.draw(st.one_of(junk, st.booleans(), nonfinite, st.floats(-2, 2),
                                        st.integers(-3, 40),
                                        st.tuples(st.floats(-1, 2), st.floats(-1, 2)),
                                        st.sampled_from(["line", "curve", "random"])),
                              label=p)
    out = result_or_error(fn, image, **kw)
    if out is not None:
        out = out[0] if isinstance(out, tuple) else out
        assert out.shape == image.shape and out.dtype == np.float32
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    expect_error(corruptions.corrupt, image, kind=data.draw(
        st.one_of(junk, st.text(max_size=5).filter(lambda k: k not in CORRUPTION_PARAMS))))


# -- Estimator.load: bad files -------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "ref.npz"
    fitted["calibrated"].save(path)
    return path.read_bytes()


@FUZZ
@given(data=st.data())
def test_load_refuses_bad_files(saved, tmp_path_factory, data):
    kind = data.draw(st.sampled_from(["bytes", "truncated", "flipped", "header", "zip"]))
    if kind == "bytes":
        raw = data.draw(st.binary(max_size=64))
    elif kind == "truncated":
        raw = saved[:data.draw(st.integers(0, len(saved) - 1))]
    elif kind == "flipped":
        raw = bytearray(saved)
        for _ in range(data.draw(st.integers(1, 3))):
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= data.draw(st.integers(1, 255))
        raw = bytes(raw)
    else:
        json_values = st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                      st.text(max_size=5)),
            lambda inner: st.one_of(st.lists(inner, max_size=3),
                                    st.dictionaries(st.text(max_size=6), inner, max_size=3)),
            max_leaves=8)
        header = data.draw(st.one_of(
            json_values,
            st.fixed_dictionaries({"format": st.just("adkit-estimator-v2"),
                                   "class": st.one_of(st.sampled_from(
                                       ["Calibrated", "KNN", "Midway", "Pipeline", "os"]),
                                       json_values),
                                   "module": st.one_of(st.sampled_from(
                                       ["adkit.models.calibrated", "adkit.models.knn",
                                        "os", "adkit.__main__"]), json_values),
                                   "params": st.one_of(st.just({}), json_values),
                                   "state": json_values})))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            arr = np.frombuffer(json.dumps(header).encode(), np.uint8)
            b = io.BytesIO()
            np.save(b, arr)
            z.writestr("__header__.npy", b.getvalue())
            if kind == "zip":
                b = io.BytesIO()
                np.save(b, np.full(3, np.nan) if data.draw(st.booleans()) else np.ones((2, 2)))
                z.writestr("s/" + data.draw(st.sampled_from(["levels", "x", "curve/nfa"]))
                           + ".npy", b.getvalue())
        raw = buf.getvalue()
    path = tmp_path_factory.mktemp("bad") / "model.npz"
    path.write_bytes(raw)
    out = result_or_error(Estimator.load, path)
    if out is not None:                          # a change that happened to be harmless
        assert isinstance(out, Estimator)
    else:
        e = expect_error(Estimator.load, path)
        assert isinstance(e, ModelFileError) and str(path) in str(e)


@FEW
@given(path=st.one_of(junk.filter(lambda v: not isinstance(v, (str, bytes))),
                      st.just("/nonexistent/dir/model.npz")))
def test_load_refuses_bad_paths(path):
    expect_error(Estimator.load, path)
