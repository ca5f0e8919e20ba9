"""Saved models: they load in any process, a failed save never destroys the previous
file, and a file that is not a complete model saved by adkit gives one clear error."""
import json
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
import warnings
import zipfile

import numpy as np
import pytest

import adkit
from adkit.estimator import Estimator, ModelFileError
from adkit.models import METHODS, Calibrated, KNN, Pipeline, ReferenceGaussian
from adkit.normalize import N2N, Align, BackgroundCleanup, Midway

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(adkit.__file__)))

#: the smallest settings that still exercise each method (as in test_contract.py)
FAST = {"reference": {}, "selfsim": {}, "gaussian": {}, "knn": {},
        "uflow": {"epochs": 1}, "aesc": {"epochs": 1}}


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in
                                                  [env.get("PYTHONPATH")] if p])
    return env


def _run_python(code: str, *args, cwd, one_thread: bool = False) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (nothing of adkit imported yet); ``one_thread``:
    every thread pool (OpenMP, BLAS, torch) on one thread, as :func:`_one_thread`."""
    env = _env()
    if one_thread:
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def _one_thread(fn, *args):
    """``fn(*args)`` with every thread pool on one thread: float sums (BLAS, torch, the
    alignment's iterations) then do not depend on how many threads this process or a
    fresh one runs, so outputs compare across interpreters."""
    import torch
    from threadpoolctl import threadpool_limits
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            return fn(*args)
    finally:
        torch.set_num_threads(n)


def _outputs(est, images) -> dict:
    if isinstance(est, adkit.models.Detector):
        res = est.predict(images)
        out = {"maps": res.maps, "scores": res.scores}
        if res.log_nfa is not None:
            out["log_nfa"] = res.log_nfa
        return out
    return {"images": est.transform(images)}


def _strip_modules(d):
    """The header as adkit-estimator-v1 wrote it: no 'module' keys."""
    if isinstance(d, dict):
        return {k: _strip_modules(v) for k, v in d.items() if k != "module"}
    if isinstance(d, list):
        return [_strip_modules(v) for v in d]
    return d


def _read(path):
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    return json.loads(arrays.pop("__header__").tobytes().decode()), arrays


def _write(path, header, arrays, raw=None):
    raw = json.dumps(header).encode() if raw is None else raw
    with open(path, "wb") as fh:
        np.savez(fh, __header__=np.frombuffer(raw, np.uint8), **arrays)


# -- 1. load in any process ------------------------------------------------------------
@pytest.fixture(scope="module")
def pill():
    return adkit.data.load("synthetic/pill", n_train=10, n_test=3, size=64, seed=0)


def _estimators():
    dets = {m: getattr(adkit.models, METHODS[m])(**FAST[m]) for m in sorted(METHODS)}
    steps = {"midway": Midway(), "align": Align(progress=False),
             "background": BackgroundCleanup(gray_range=(0, 100 / 255)),
             "n2n": N2N(epochs=1, crop=32, progress=False)}
    composites = {
        "pipeline": Pipeline([Midway(), Align(progress=False)], ReferenceGaussian()),
        "calibrated_knn": Calibrated(KNN()),
        "calibrated_pipeline": Calibrated(Pipeline([BackgroundCleanup(gray_range=(0, 100 / 255))],
                                                   ReferenceGaussian()), seed=1),
    }
    return {**dets, **steps, **composites}


def test_every_estimator_loads_in_a_fresh_interpreter(pill, tmp_path):
    train, test = pill
    cases, expected = {}, {}
    for name, est in _estimators().items():
        with warnings.catch_warnings():  # Align may warn about images it cannot align
            warnings.simplefilter("ignore", UserWarning)
            est.fit(train.images)
        path = est.save(tmp_path / name)
        cases[name] = [path, type(est).__name__]
        expected[name] = _one_thread(_outputs, est, test.images)
    # the same pipeline as adkit-estimator-v1 wrote it (no module names): still read
    header, arrays = _read(cases["pipeline"][0])
    header = dict(_strip_modules(header), format="adkit-estimator-v1")
    _write(tmp_path / "pipeline_v1.npz", header, arrays)
    cases["pipeline_v1"] = [str(tmp_path / "pipeline_v1.npz"), "Pipeline"]
    expected["pipeline_v1"] = expected["pipeline"]
    np.save(tmp_path / "test.npy", test.images)
    (tmp_path / "cases.json").write_text(json.dumps(cases))

    proc = _run_python("""
        import json, sys
        import numpy as np
        folder = sys.argv[1]
        assert not any(m.startswith("adkit") for m in sys.modules)
        import torch
        torch.set_num_threads(1)       # as the expected outputs (OMP/BLAS: the environment)
        # the acceptance line of the issue, first, while nothing else is imported
        from adkit.models import Pipeline
        first = Pipeline.load(folder + "/pipeline.npz")
        from adkit.estimator import Estimator
        from adkit.models import Detector
        cases = json.load(open(folder + "/cases.json"))
        x = np.load(folder + "/test.npy")
        out, report = {}, {}
        for name, (path, cls) in cases.items():
            try:
                est = first if name == "pipeline" else Estimator.load(path)
                parts = [est] + list(getattr(est, "steps", []))
                inner = getattr(est, "detector", None)
                while inner is not None:
                    parts += [inner] + list(getattr(inner, "steps", []))
                    inner = getattr(inner, "detector", None)
                assert all(p.is_fitted for p in parts), "a part is not fitted"
                if isinstance(est, Detector):
                    res = est.predict(x)
                    res_out = {"maps": res.maps, "scores": res.scores}
                    if res.log_nfa is not None:
                        res_out["log_nfa"] = res.log_nfa
                else:
                    res_out = {"images": est.transform(x)}
                for k, v in res_out.items():
                    out[f"{name}/{k}"] = v
                report[name] = type(est).__name__
            except Exception as e:
                report[name] = f"{type(e).__name__}: {e}"
        np.savez(folder + "/out.npz", **out)
        print("REPORT" + json.dumps(report))
        """, tmp_path, cwd=tmp_path, one_thread=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.split("REPORT")[-1])
    assert report == {name: cls for name, (_, cls) in cases.items()}
    with np.load(tmp_path / "out.npz") as f:
        for name, outs in expected.items():
            for k, v in outs.items():
                # both sides on one thread: equal up to float32 rounding
                np.testing.assert_allclose(f[f"{name}/{k}"], v, rtol=1e-5, atol=1e-6,
                                           err_msg=f"{name}/{k}")


def test_the_header_names_each_class_and_its_module(tmp_path):
    x = np.random.default_rng(0).uniform(0.3, 0.7, (4, 16, 16, 3)).astype(np.float32)
    pipe = Pipeline([Midway()], ReferenceGaussian()).fit(x)
    header, arrays = _read(pipe.save(tmp_path / "p"))
    assert header["format"] == "adkit-estimator-v2"
    assert (header["class"], header["module"]) == ("Pipeline", "adkit.models.pipeline")
    step = header["params"]["steps"]["__estimators__"][0]
    assert (step["class"], step["module"]) == ("Midway", "adkit.normalize.midway")
    det = header["params"]["detector"]["__estimator__"]
    assert (det["class"], det["module"]) == ("ReferenceGaussian", "adkit.models.reference")
    assert all(k.startswith("s/") for k in arrays)


# -- 2. atomic save --------------------------------------------------------------------
@pytest.mark.skipif(sys.platform == "win32", reason="resource limits are POSIX")
def test_a_failed_save_keeps_the_previous_file(tmp_path):
    folder = tmp_path / "models"
    proc = _run_python("""
        import os, resource, signal, sys
        import numpy as np
        from adkit.models import ReferenceGaussian
        path = sys.argv[1]
        rng = np.random.default_rng(0)
        old = ReferenceGaussian().fit(rng.uniform(0, 1, (4, 16, 16, 3)).astype(np.float32))
        assert old.save(path) == path
        assert os.path.getsize(path) < 32_000
        big = ReferenceGaussian().fit(rng.uniform(0, 1, (4, 96, 96, 3)).astype(np.float32))
        # writing past 32 kB now fails with EFBIG ("File too large"), as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (32_000, resource.RLIM_INFINITY))
        try:
            big.save(path)
        except OSError as e:
            print("FAILED AS EXPECTED", e)
        else:
            raise SystemExit("the save did not fail")
        back = ReferenceGaussian.load(path)
        np.testing.assert_array_equal(back.mean_, old.mean_)
        """, folder / "ref.npz", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "FAILED AS EXPECTED" in proc.stdout
    assert sorted(os.listdir(folder)) == ["ref.npz"]      # no temporary file left
    assert ReferenceGaussian.load(folder / "ref.npz").image_size_ == (16, 16)


def test_save_replaces_the_file_with_the_usual_permissions(tmp_path):
    x = np.random.default_rng(0).uniform(0.3, 0.7, (4, 16, 16, 3)).astype(np.float32)
    path = ReferenceGaussian().fit(x).save(tmp_path / "ref")
    ReferenceGaussian(sigma_min=0.1).fit(x[:, :8, :8]).save(path)
    assert ReferenceGaussian.load(path).image_size_ == (8, 8)
    assert os.listdir(tmp_path) == ["ref.npz"]       # replaced, no temporary file left
    umask = os.umask(0)
    os.umask(umask)
    if sys.platform != "win32":
        assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
        # through a symbolic link the file it points to is replaced, the link kept
        (tmp_path / "sub").mkdir()
        link = tmp_path / "sub" / "link.npz"
        link.symlink_to(path)
        ReferenceGaussian().fit(x).save(link)
        assert link.is_symlink() and ReferenceGaussian.load(path).image_size_ == (16, 16)
        assert sorted(os.listdir(tmp_path)) == ["ref.npz", "sub"]


# -- 3. clear errors on bad files -------------------------------------------------------
def _images(n=6, size=16, seed=0):
    return np.random.default_rng(seed).uniform(0.3, 0.7, (n, size, size, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """One small saved file of each kind the cases below tamper with."""
    d = tmp_path_factory.mktemp("sources")
    x = _images()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pipe = Pipeline([Midway(), Align(progress=False, max_iter=2)],
                        ReferenceGaussian()).fit(x)
    return {
        "ref": ReferenceGaussian().fit(x).save(d / "ref"),
        "pipe": pipe.save(d / "pipe"),
        "cal": Calibrated(ReferenceGaussian()).fit(x).save(d / "cal"),
        "n2n": N2N(epochs=1, crop=16, batch_size=2, width=0.125, progress=False)
        .fit(x).save(d / "n2n"),
        "knn": KNN(progress=False).fit(_images(4, 32)).save(d / "knn"),
    }


def _flip_a_byte(src, dst):
    data = bytearray(open(src, "rb").read())
    with zipfile.ZipFile(src) as z:
        info = max(z.infolist(), key=lambda i: i.compress_size)
    # the middle of the largest member's compressed data
    name_len = int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.compress_size // 2] ^= 0xFF
    open(dst, "wb").write(bytes(data))


def _edit(src, dst, header=None, arrays=None, raw=None):
    h, a = _read(src)
    if header:
        h = header(h)
    if arrays:
        a = arrays(a)
    _write(dst, h, a, raw)


def _set(d, keys, value):
    for k in keys[:-1]:
        d = d[k]
    d[keys[-1]] = value
    return None


def _with(h, keys, value):
    _set(h, keys, value)
    return h


def _nested(depth):
    d = {}
    for _ in range(depth):
        d = {"a": d}
    return d


def _halve_a_conv(arrays):
    key = next(k for k, v in arrays.items() if k.endswith(".weight") and v.ndim == 4)
    return dict(arrays, **{key: arrays[key][: len(arrays[key]) // 2]})


def _pickle_file(src, dst):
    with open(dst, "wb") as fh:
        pickle.dump({"model": [1, 2, 3]}, fh)


def _object_array(src, dst):
    h, a = _read(src)
    a["s/model/mean"] = np.array([{"x": 1}], dtype=object)
    with open(dst, "wb") as fh:   # numpy pickles object arrays into the archive
        np.savez(fh, __header__=np.frombuffer(json.dumps(h).encode(), np.uint8), **a)


#: name -> (source, how to make the bad file from it, what the message must say)
CASES = {
    "truncated": ("ref", lambda s, d: open(d, "wb").write(open(s, "rb").read()[:300]),
                  "damaged or truncated"),
    "flipped_byte": ("ref", _flip_a_byte, "damaged or truncated"),
    "empty": ("ref", lambda s, d: open(d, "wb").close(), "empty"),
    "text_file": ("ref", lambda s, d: open(d, "w").write("mean = 0.5\nstd = 0.1\n"),
                  "not a .npz archive"),
    "pickle_file": ("ref", _pickle_file, "pickle"),
    "pickled_array_inside": ("ref", _object_array, "pickle"),
    "npy_file": ("ref", lambda s, d: np.save(open(d, "wb"), np.zeros(3)), "single numpy array"),
    "other_npz": ("ref", lambda s, d: np.savez(open(d, "wb"), weights=np.zeros(3)),
                  "without an adkit header"),
    "bad_json": ("ref", lambda s, d: _edit(s, d, raw=b'{"format": "adkit-estim'),
                 "not valid JSON"),
    "header_not_utf8": ("ref", lambda s, d: _edit(s, d, raw=b"\xff\xfe{}"), "not valid JSON"),
    "header_not_object": ("ref", lambda s, d: _edit(s, d, raw=b"[1, 2]"), "not an object"),
    "no_format": ("ref", lambda s, d: _edit(s, d, header=lambda h: {
        k: v for k, v in h.items() if k != "format"}), "no 'format'"),
    "unknown_format": ("ref", lambda s, d: _edit(s, d, header=lambda h: dict(
        h, format="adkit-estimator-v99")), "unknown format 'adkit-estimator-v99'"),
    "older_format": ("ref", lambda s, d: _edit(s, d, header=lambda h: dict(
        h, format="adkit-estimator-v0")), "unknown format 'adkit-estimator-v0'"),
    "missing_params": ("ref", lambda s, d: _edit(s, d, header=lambda h: {
        k: v for k, v in h.items() if k != "params"}), r"lacks \['params'\]"),
    "missing_module": ("ref", lambda s, d: _edit(s, d, header=lambda h: {
        k: v for k, v in h.items() if k != "module"}), r"lacks \['module'\]"),
    "missing_state_key": ("ref", lambda s, d: _edit(s, d, header=lambda h: _with(
        h, ["state", "model", "__dict__"], {"mean": h["state"]["model"]["__dict__"]["mean"]})),
        "lacks 'std'"),
    "missing_array": ("ref", lambda s, d: _edit(s, d, arrays=lambda a: {
        k: v for k, v in a.items() if not k.endswith("std")}), "does not hold"),
    "nested_100k_deep": ("ref", lambda s, d: _edit(
        s, d, raw=b'{"format": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"), "nested"),
    "nested_300_deep": ("ref", lambda s, d: _edit(s, d, header=lambda h: dict(
        h, params=_nested(300))), "nested more than 200 levels"),
    "module_outside_adkit": ("ref", lambda s, d: _edit(s, d, header=lambda h: dict(
        h, module="evil_module")), "not one of adkit's modules"),
    "private_adkit_module": ("ref", lambda s, d: _edit(s, d, header=lambda h: dict(
        h, module="adkit.__main__")), "not one of adkit's modules"),
    "module_without_class": ("ref", lambda s, d: _edit(s, d, header=lambda h: dict(
        h, module="adkit.checks", **{"class": "Nothing"})), "defines no estimator"),
    "class_not_an_estimator": ("ref", lambda s, d: _edit(s, d, header=lambda h: dict(
        h, module="adkit.checks", **{"class": "check_images"})), "defines no estimator"),
    "bad_param_value": ("ref", lambda s, d: _edit(s, d, header=lambda h: _with(
        h, ["params", "sigma_min"], -1.0)), "sigma_min"),
    "unknown_param": ("ref", lambda s, d: _edit(s, d, header=lambda h: _with(
        h, ["params", "bogus"], 1)), "bogus"),
    "state_not_a_dict": ("ref", lambda s, d: _edit(s, d, header=lambda h: dict(h, state=5)),
                         "not a dict"),
    "nested_entry_not_a_dict": ("pipe", lambda s, d: _edit(s, d, header=lambda h: _with(
        h, ["params", "steps"], {"__estimators__": [5]})), "not an estimator entry"),
    "image_size_not_ints": ("ref", lambda s, d: _edit(s, d, header=lambda h: _with(
        h, ["state", "image_size"], ["16", 16])), "image_size"),
    "wrong_shape": ("ref", lambda s, d: _edit(s, d, arrays=lambda a: dict(
        a, **{"s/model/mean": a["s/model/mean"][:8]})), r"shape \(8, 16, 3\), expected "
        r"\(16, 16, 3\)"),
    "nan_values": ("ref", lambda s, d: _edit(s, d, arrays=lambda a: dict(
        a, **{"s/model/mean": np.where(a["s/model/mean"] > 0.5, np.nan,
                                       a["s/model/mean"])})), "NaN or infinite"),
    "zero_std": ("ref", lambda s, d: _edit(s, d, arrays=lambda a: dict(
        a, **{"s/model/std": 0 * a["s/model/std"]})), "must be > 0"),
    "text_array": ("ref", lambda s, d: _edit(s, d, arrays=lambda a: dict(
        a, **{"s/model/mean": a["s/model/mean"].astype(str)})), "dtype"),
    "pipeline_step_state": ("pipe", lambda s, d: _edit(s, d, arrays=lambda a: dict(
        a, **{"s/model/steps/0/quantiles": a["s/model/steps/0/quantiles"][:2]})),
        "Pipeline: Midway: the saved 'quantiles' has shape"),
    "pipeline_missing_step": ("pipe", lambda s, d: _edit(s, d, header=lambda h: _with(
        h, ["state", "model", "__dict__", "steps", "__dict__"],
        {"0": h["state"]["model"]["__dict__"]["steps"]["__dict__"]["0"]})), "entries"),
    "pipeline_sizes_differ": ("pipe", lambda s, d: _edit(s, d, header=lambda h: _with(
        h, ["state", "image_size"], [16, 17])), "fitted on"),
    "calibration_curve": ("cal", lambda s, d: _edit(s, d, arrays=lambda a: dict(
        a, **{"s/model/curve/nfa": a["s/model/curve/nfa"][::-1].copy()})), "non-increasing"),
    "network_weight_shape": ("n2n", lambda s, d: _edit(s, d, arrays=_halve_a_conv),
                             r"\.weight' has shape"),
    "network_weight_missing": ("n2n", lambda s, d: _edit(s, d, header=lambda h: _with(
        h, ["state", "net", "__dict__"], dict(list(
            h["state"]["net"]["__dict__"].items())[1:]))), "missing"),
    "knn_bank_width": ("knn", lambda s, d: _edit(s, d, header=lambda h: _with(
        h, ["params", "projection"], 7)), r"shape \(\d+, \d+\), expected \(\*, 7\)"),
    "knn_grid": ("knn", lambda s, d: _edit(s, d, header=lambda h: _with(
        h, ["state", "model", "__dict__", "grid"], [40, 4])), "patch grid"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_file_gives_one_clear_error(case, sources, tmp_path):
    source, make, message = CASES[case]
    bad = tmp_path / f"{case}.npz"
    make(sources[source], bad)
    with pytest.raises(ModelFileError, match=message) as err:
        Estimator.load(bad)
    text = str(err.value)
    assert str(bad) in text and err.value.path == str(bad)
    assert text.startswith(f"cannot load {str(bad)!r}: ")
    assert "allow_pickle" not in text   # never a hint to load "unsafely"
    assert isinstance(err.value, ValueError)


def test_a_folder_and_a_missing_file(tmp_path):
    (tmp_path / "model.npz").mkdir()
    with pytest.raises(ModelFileError, match="is a folder") as err:
        ReferenceGaussian.load(tmp_path / "model.npz")
    assert str(tmp_path / "model.npz") in str(err.value)
    with pytest.raises(FileNotFoundError, match="no saved model"):
        ReferenceGaussian.load(tmp_path / "nothing.npz")


def test_a_module_outside_adkit_is_never_imported(sources, tmp_path, monkeypatch):
    marker = tmp_path / "imported"
    (tmp_path / "evil_module.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "from adkit.models import ReferenceGaussian\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    bad = tmp_path / "bad.npz"
    _edit(sources["ref"], bad, header=lambda h: dict(h, module="evil_module"))
    with pytest.raises(ModelFileError, match="import its module before loading"):
        ReferenceGaussian.load(bad)
    assert not marker.exists() and "evil_module" not in sys.modules


def test_the_error_survives_pickling(tmp_path):
    # e.g. raised on a dask worker and shown in the client
    (tmp_path / "x.npz").write_text("hello")
    with pytest.raises(ModelFileError) as err:
        Estimator.load(tmp_path / "x.npz")
    again = pickle.loads(pickle.dumps(err.value))
    assert str(again) == str(err.value) and again.path == err.value.path


def test_an_untampered_copy_still_loads(sources, tmp_path):
    # the tampering helpers themselves do not break a file
    for name, src in sources.items():
        dst = tmp_path / f"{name}.npz"
        _edit(src, dst)
        assert Estimator.load(dst).is_fitted
        shutil.copy(src, tmp_path / "copy.npz")
        assert Estimator.load(tmp_path / "copy.npz").is_fitted
