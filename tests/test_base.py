"""The detector contract, exercised through the reference detector and a Pipeline."""
import numpy as np
import pytest

from adkit.estimator import NotFittedError
from adkit.models import AnomalyResult, Pipeline, ReferenceGaussian
from adkit.models.base import Detector
from adkit.normalize.base import Transform


def _images(n=8, size=16, seed=0):
    return np.random.default_rng(seed).uniform(0.3, 0.7, (n, size, size, 3)).astype(np.float32)


def test_anomaly_result_segment_and_index():
    maps = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    log_nfa = -maps
    r = AnomalyResult(maps, [1, 2], log_nfa, extras={"per_image": np.array([5, 6])})
    np.testing.assert_array_equal(r.segment(eps=1e-3), log_nfa < -3)
    np.testing.assert_array_equal(r.segment(threshold=10), maps > 10)
    r1 = r[1]
    assert len(r1) == 1 and r1.scores[0] == 2 and r1.extras["per_image"].tolist() == [6]
    no_bg = AnomalyResult(maps, [1, 2])
    with pytest.raises(ValueError, match="no background model"):
        no_bg.segment(eps=1)
    with pytest.raises(ValueError, match="positive"):
        r.segment(eps=0)
    with pytest.raises(ValueError, match="scores"):
        AnomalyResult(maps, [1, 2, 3])


def test_not_fitted_and_size_errors():
    with pytest.raises(NotFittedError, match="fit"):
        ReferenceGaussian().predict(_images())
    det = ReferenceGaussian().fit(_images())
    with pytest.raises(ValueError, match="16x16"):
        det.predict(_images(size=24))
    with pytest.raises(ValueError, match="at least 2"):
        ReferenceGaussian().fit(_images(n=1))


def test_fit_refuses_anomalous_training_split():
    from adkit.data import Split
    masks = np.zeros((4, 16, 16), bool)
    masks[0, :2, :2] = True
    with pytest.raises(ValueError, match="normal images only"):
        ReferenceGaussian().fit(Split(_images(4), masks))


def test_constructor_validates():
    with pytest.raises(ValueError, match="sigma_min"):
        ReferenceGaussian(sigma_min=-1)
    with pytest.raises(TypeError):
        ReferenceGaussian(score_sigma="big")
    assert repr(ReferenceGaussian(score_sigma=1.0)) == "ReferenceGaussian(score_sigma=1.0)"
    assert ReferenceGaussian().get_params() == {"sigma_min": 0.02, "score_sigma": 2.0,
                                                "nfa_model": "empirical", "n_loo": 32}


def test_save_load_round_trip(tmp_path):
    x = _images()
    det = ReferenceGaussian(sigma_min=0.05).fit(x)
    path = det.save(tmp_path / "ref")
    assert path.endswith(".npz")
    back = ReferenceGaussian.load(path)
    assert back.sigma_min == 0.05
    np.testing.assert_array_equal(back.predict(x).maps, det.predict(x).maps)
    # the file holds no pickled object
    with np.load(path, allow_pickle=False) as f:
        assert all(f[k].dtype != object for k in f.files)
    with pytest.raises(TypeError, match="not a Pipeline"):
        Pipeline.load(path)
    with pytest.raises(FileNotFoundError):
        ReferenceGaussian.load(tmp_path / "missing.npz")


class Shift(Transform):
    """A toy step that rolls images by one pixel (and maps back)."""

    def _transform_info(self, images):
        return np.roll(images, 1, axis=2), None

    def _inverse_maps(self, maps, info):
        return np.roll(maps, -1, axis=2)


def test_pipeline_applies_steps_and_maps_back(tmp_path):
    x = _images()
    bare = ReferenceGaussian().fit(x)
    pipe = Pipeline([Shift()], ReferenceGaussian()).fit(x)
    np.testing.assert_allclose(pipe.predict(x[:2]).maps, bare.predict(x[:2]).maps, rtol=1e-6)
    back = Pipeline.load(pipe.save(tmp_path / "pipe.npz"))
    assert isinstance(back.steps[0], Shift) and back.is_fitted
    np.testing.assert_array_equal(back.predict(x[:2]).maps, pipe.predict(x[:2]).maps)
    with pytest.raises(TypeError, match="detector"):
        Pipeline([Shift()], None)
    with pytest.raises(TypeError, match="transforms"):
        Pipeline([ReferenceGaussian()], ReferenceGaussian())


def test_detector_subclass_output_is_checked():
    class Broken(Detector):
        def _fit(self, images):
            pass

        def _predict(self, images):
            return AnomalyResult(np.zeros((len(images), 4, 4)), np.zeros(len(images)))

    with pytest.raises(RuntimeError, match="returned maps"):
        Broken().fit(_images()).predict(_images())
