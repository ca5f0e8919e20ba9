import threading
from dataclasses import dataclass

import numpy as np
import pytest

from adkit import memo


@dataclass
class _Box:
    images: np.ndarray
    names: list


def test_once_computes_once_per_argument_values():
    memo.clear()
    calls = []

    def fit(box, k=1):
        calls.append(k)
        return {"k": k, "sum": float(box.images.sum())}

    a = _Box(np.ones((2, 3), np.float32), ["x", "y"])
    same = _Box(np.ones((2, 3), np.float32), ["x", "y"])     # equal values, another object
    first = memo.once(fit, a, k=2)
    assert memo.once(fit, same, k=2) is first and calls == [2]
    memo.once(fit, a, k=3)                                   # another setting
    memo.once(fit, _Box(np.zeros((2, 3), np.float32), ["x", "y"]), k=2)   # other data
    assert calls == [2, 3, 2]
    memo.clear()
    memo.once(fit, a, k=2)
    assert calls == [2, 3, 2, 2]


def test_once_waits_for_a_concurrent_computation():
    memo.clear()
    started, release, calls = threading.Event(), threading.Event(), []

    def slow():
        calls.append(1)
        started.set()
        release.wait(5)
        return object()

    out = []
    t1 = threading.Thread(target=lambda: out.append(memo.once(slow)))
    t1.start()
    started.wait(5)
    t2 = threading.Thread(target=lambda: out.append(memo.once(slow)))
    t2.start()
    release.set()
    t1.join(5)
    t2.join(5)
    assert len(calls) == 1 and out[0] is out[1]


def test_fingerprint_tells_values_apart_and_refuses_unknown_types():
    assert memo.fingerprint(np.zeros(3)) != memo.fingerprint(np.zeros(3, np.float32))
    assert memo.fingerprint({"a": 1, "b": 2}) == memo.fingerprint({"b": 2, "a": 1})
    assert memo.fingerprint([1]) != memo.fingerprint((1,))
    with pytest.raises(TypeError, match="cannot fingerprint"):
        memo.fingerprint(object())


# -- train once: fitted models on disk ---------------------------------------------------
def _images(seed=0, n=3, size=16):
    return np.random.default_rng(seed).random((n, size, size, 3)).astype(np.float32)


@pytest.fixture
def count_fits(monkeypatch):
    """Counts the calls of Midway.fit (the real fit still runs)."""
    from adkit.normalize import Midway
    calls = []
    real = Midway.fit

    def fit(self, images):
        calls.append(self.get_params())
        return real(self, images)

    monkeypatch.setattr(Midway, "fit", fit)
    return calls


def test_cached_fit_fits_once_then_loads_the_same_model(tmp_path, count_fits):
    from adkit.normalize import Midway
    x = _images()
    first = memo.cached_fit(Midway(), x, cache_dir=tmp_path)
    assert len(count_fits) == 1 and first.is_fitted
    [saved] = list(tmp_path.glob("*.npz"))
    assert saved.name == memo.cache_key(Midway(), x) + ".npz"
    again = memo.cached_fit(Midway(), x.copy(), cache_dir=tmp_path)   # equal values
    assert len(count_fits) == 1, "the second call fitted again instead of loading"
    assert again is not first and again.is_fitted
    np.testing.assert_array_equal(again.transform(x), first.transform(x))


def test_a_new_parameter_seed_data_or_code_gives_a_new_key(monkeypatch):
    from adkit.normalize import N2N, Midway
    x = _images()
    base = memo.cache_key(N2N(seed=0, epochs=1), x)
    assert memo.cache_key(N2N(seed=0, epochs=1), x.copy()) == base
    assert memo.cache_key(N2N(seed=1, epochs=1), x) != base                 # seed
    assert memo.cache_key(N2N(seed=0, epochs=2), x) != base                 # parameter
    assert memo.cache_key(N2N(seed=0, epochs=1), _images(seed=1)) != base   # data
    assert memo.cache_key(Midway(), x) != memo.cache_key(N2N(seed=0, epochs=1), x)
    # how a fit runs is not what it learns
    assert memo.cache_key(N2N(seed=0, epochs=1, progress=False, device="cpu"), x) == base
    # another code (an edited or upgraded adkit) never loads this model
    monkeypatch.setattr(memo, "_code_fingerprint", lambda: "another adkit")
    assert memo.cache_key(N2N(seed=0, epochs=1), x) != base
    # a Split is keyed by its images
    from adkit.data import Split
    assert memo.cache_key(Midway(), Split(x)) == memo.cache_key(Midway(), x)


def test_a_corrupt_cache_file_is_fitted_again_with_a_warning(tmp_path, count_fits):
    from adkit.normalize import Midway
    x = _images()
    memo.cached_fit(Midway(), x, cache_dir=tmp_path)
    [saved] = list(tmp_path.glob("*.npz"))
    saved.write_bytes(saved.read_bytes()[:50])                # a truncated file
    with pytest.warns(UserWarning, match="cannot be loaded.*fitting Midway again"):
        model = memo.cached_fit(Midway(), x, cache_dir=tmp_path)
    assert len(count_fits) == 2 and model.is_fitted
    memo.cached_fit(Midway(), x, cache_dir=tmp_path)          # replaced: loads again
    assert len(count_fits) == 2


def test_an_interrupted_fit_is_returned_but_not_stored(tmp_path, monkeypatch):
    from adkit.estimator import FitInterrupted
    from adkit.normalize import Midway
    real = Midway.fit

    def interrupted(self, images):
        import warnings
        real(self, images)
        warnings.warn("Midway training interrupted after 1 epoch(s)", FitInterrupted)
        return self

    monkeypatch.setattr(Midway, "fit", interrupted)
    with pytest.warns(UserWarning) as caught:
        model = memo.cached_fit(Midway(), _images(), cache_dir=tmp_path)
    texts = [str(w.message) for w in caught]
    assert any("interrupted after 1 epoch" in t for t in texts)     # fit's own warning
    assert any("not stored in the cache" in t for t in texts)
    assert model.is_fitted and not list(tmp_path.glob("*.npz"))


def test_default_folder_and_clear_cache(tmp_path, monkeypatch):
    from adkit.normalize import Midway
    folder = tmp_path / "cache"
    monkeypatch.setenv("ADKIT_CACHE", str(folder))
    assert memo.default_cache_dir() == folder
    memo.cached_fit(Midway(), _images(), cache_dir=None)
    memo.cached_fit(Midway(), _images(seed=2), cache_dir=None)
    assert len(list(folder.glob("midway-*.npz"))) == 2
    assert memo.clear_cache() == 2 and not folder.exists()
    assert memo.clear_cache() == 0
    # only the cache's own files are removed, the rest of a shared folder stays
    memo.cached_fit(Midway(), _images(), cache_dir=tmp_path / "shared")
    (tmp_path / "shared" / "notes.txt").write_text("mine")
    assert memo.clear_cache(tmp_path / "shared") == 1
    assert [p.name for p in (tmp_path / "shared").iterdir()] == ["notes.txt"]
    monkeypatch.delenv("ADKIT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert memo.default_cache_dir() == tmp_path / "xdg" / "adkit"


def test_cached_fit_refuses_what_is_not_an_estimator(tmp_path):
    with pytest.raises(TypeError, match="adkit estimator"):
        memo.cached_fit(object(), _images(), cache_dir=tmp_path)
