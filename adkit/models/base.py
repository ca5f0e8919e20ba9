"""The detector contract: ``Detector`` and its output ``AnomalyResult``.

Every method of adkit follows one contract, in the spirit of scikit-learn::

    det = adkit.models.KNN(coreset=0.1)   # settings are constructor keywords
    det.fit(train)                        # returns self
    res = det.predict(test)               # AnomalyResult
    res.maps, res.scores, res.log_nfa
    res.segment(eps=1.0)                  # bool masks
    det.save("knn.npz"); adkit.models.KNN.load("knn.npz")

A subclass implements ``_fit(images)`` and ``_predict(images) -> AnomalyResult`` on
validated float32 (N, H, W, 3) arrays, plus the state hooks of every estimator,
``_get_state()`` / ``_set_state(state)`` (:mod:`adkit.estimator`), for saving. Input
validation, the fitted check, the size check and the training image size (saved
beside the hooks' state) live here, once.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..checks import check_images, check_same_size
from ..estimator import Estimator, ModelFileError, state_dict, state_ints
from ..params import EPS, Interval, Real, check_param

__all__ = ["Detector", "FeatureDetector", "AnomalyResult", "ExtrapolationWarning",
           "warn_extrapolated"]


class ExtrapolationWarning(UserWarning):
    """An ε below the range where a calibrated false-alarm rate was measured (1/n for n
    held-out normal images): the threshold comes from an extrapolated tail."""


def warn_extrapolated(eps, eps_min: float, n_images: int, stacklevel: int = 3) -> None:
    """Warn that ``eps`` < ``eps_min`` = 1/n is read on the extrapolated tail of a
    false-alarm curve measured on ``n_images`` normal images."""
    warnings.warn(
        f"eps below {eps_min:.2g} is extrapolated: the false alarms were counted on "
        f"{n_images} held-out normal images, which measure rates down to 1/{n_images} = "
        f"{eps_min:.2g} false region per image; a smaller eps is read on the exponential "
        "tail fitted above them (result.extrapolated(eps) says when). Calibrate on more "
        "normal images to measure it.", ExtrapolationWarning, stacklevel=stacklevel)


@dataclass
class AnomalyResult:
    """What a detector says about a batch of images.

    Attributes
    ----------
    maps : float32 (N, H, W)
        Anomaly maps at input resolution, higher = more anomalous.
    scores : float32 (N,)
        Image anomaly scores, higher = more anomalous.
    log_nfa : float32 (N, H, W) or None
        log10 of the Number of False Alarms of each pixel's detection, for methods
        with a background model (a contrario), or after calibration. ``None`` otherwise.
    threshold : float or None
        A map threshold chosen by the method or by calibration, used by
        :meth:`segment` when there is no ``log_nfa``.
    extras : dict
        Method-specific intermediate results (residuals per scale, uncertainty
        maps, latent variables...) for notebooks to show.
    """

    maps: np.ndarray
    scores: np.ndarray
    log_nfa: np.ndarray | None = None
    threshold: float | None = None
    extras: dict = field(default_factory=dict)

    def __post_init__(self):
        self.maps = np.asarray(self.maps, dtype=np.float32)
        if self.maps.ndim == 2:
            self.maps = self.maps[None]
        if self.maps.ndim != 3:
            raise ValueError(f"AnomalyResult.maps must be (N, H, W), got {self.maps.shape}.")
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if self.scores.shape[0] != self.maps.shape[0]:
            raise ValueError(
                f"AnomalyResult has {self.scores.shape[0]} scores for {self.maps.shape[0]} maps.")
        if self.log_nfa is not None:
            self.log_nfa = np.asarray(self.log_nfa, dtype=np.float32)
            if self.log_nfa.shape != self.maps.shape:
                raise ValueError(f"log_nfa shape {self.log_nfa.shape} != maps shape "
                                 f"{self.maps.shape}.")

    def __len__(self) -> int:
        return int(self.maps.shape[0])

    def __getitem__(self, index) -> "AnomalyResult":
        idx = np.atleast_1d(np.arange(len(self))[index])
        extras = {}
        for k, v in self.extras.items():
            if isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == len(self):
                extras[k] = v[idx]
            elif isinstance(v, list) and len(v) == len(self):
                extras[k] = [v[i] for i in idx]
            else:
                extras[k] = v
        return AnomalyResult(self.maps[idx], self.scores[idx],
                             None if self.log_nfa is None else self.log_nfa[idx],
                             self.threshold, extras)

    def extrapolated(self, eps: float) -> bool:
        """Whether ``eps`` is below the false-alarm rates that were measured for this
        result: True only for a calibrated result (``extras["eps_min"]`` = 1/n for n
        held-out normal images, :class:`adkit.models.Calibrated`) and ε < 1/n, where
        ``segment(eps)`` reads an extrapolated tail. A dashboard shows it beside ε."""
        eps_min = self.extras.get("eps_min")
        return eps_min is not None and float(eps) < float(eps_min)

    def segment(self, eps: float = 1.0, threshold: float | None = None) -> np.ndarray:
        """Binary anomaly masks (N, H, W).

        With a background model: ``log_nfa < log10(eps)``, i.e. a pixel is detected
        when the expected number of false alarms of its detection is below ``eps``
        (ε = 1: about one false detection per image on normal data).
        Pass ``threshold=`` to threshold ``maps`` directly instead.

        On a calibrated result, an ε below the measured range (:meth:`extrapolated`)
        gives an :class:`ExtrapolationWarning`.
        """
        if threshold is not None:
            return self.maps > check_param(threshold, Interval(Real), "threshold", "segment")
        eps = check_param(eps, EPS, "eps", "segment")
        if self.log_nfa is not None and self.extrapolated(eps):
            warn_extrapolated(eps, float(self.extras["eps_min"]),
                              int(self.extras.get("n_calibration_images", 0)))
        if self.log_nfa is not None:
            return self.log_nfa < np.log10(eps)
        if self.threshold is not None:
            return self.maps > self.threshold
        raise ValueError(
            "this result has no log_nfa (the method has no background model) and no "
            "calibrated threshold: pass threshold=..., or calibrate the detector on "
            "held-out normal images first."
        )


class Detector(Estimator):
    """Base class of every anomaly detector (one-class: fitted on normal images only)."""

    #: a short name for tables and the CLI
    name: str = "detector"

    def fit(self, images: Any, y: Any = None) -> "Detector":
        """Learn the normal appearance from ``images`` (array (N, H, W, 3) or a Split).

        ``y`` is ignored (one-class training); it is accepted so a Split's labels can
        be passed without thought. Anomalous images in a training Split are an error.
        """
        labels = getattr(images, "labels", None)
        if labels is not None and np.any(labels):
            raise ValueError(
                f"the training set holds {int(np.sum(labels))} anomalous image(s): "
                "anomaly detectors here are fitted on normal images only "
                "(use split.good)."
            )
        x = check_images(images, "train images")
        need = self._min_train
        if len(x) < need:
            why = f" ({self._min_train_why})" if self._min_train_why else ""
            raise ValueError(f"{type(self).__name__} needs at least {need} training images"
                             f"{why}, got {len(x)}: pass more normal images.")
        self.image_size_ = tuple(int(s) for s in x.shape[1:3])
        self._fit(x)
        self._mark_fitted()
        return self

    def predict(self, images: Any) -> AnomalyResult:
        """Anomaly maps and scores for ``images`` (array (N, H, W, 3), one image, or a Split)."""
        self._check_fitted("predict")
        x = check_images(images, "test images")
        if getattr(self, "_same_size_required", True):
            check_same_size(x, np.empty((1, *self.image_size_, 3)))
        res = self._predict(x)
        if res.maps.shape != x.shape[:3]:
            raise RuntimeError(  # a bug in the method, not the user's fault
                f"{type(self).__name__} returned maps {res.maps.shape} for images {x.shape}.")
        return res

    def fit_predict(self, train: Any, test: Any) -> AnomalyResult:
        """``fit(train)`` then ``predict(test)``."""
        return self.fit(train).predict(test)

    # -- for subclasses -------------------------------------------------------------
    #: the fewest training images ``fit`` accepts, and why (for the error message)
    _min_train: int = 1
    _min_train_why: str = ""

    def _fit(self, images: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict(self, images: np.ndarray) -> AnomalyResult:  # pragma: no cover
        raise NotImplementedError

    # the state hooks _get_state / _set_state are those of every Estimator; the
    # training image size is saved beside them, here, once (set before _set_state,
    # so a hook can check its arrays against it)
    def _export_state(self) -> dict:
        return {"image_size": list(self.image_size_), "model": self._get_state()}

    def _import_state(self, state) -> None:
        if not isinstance(state, dict):
            raise ModelFileError(f"the saved state of {type(self).__name__} is a "
                                 f"{type(state).__name__}, not a dict")
        try:
            size = state_ints(state, "image_size", length=2, minimum=1)
            model = state_dict(state, "model")
        except ModelFileError as e:
            raise ModelFileError(f"{type(self).__name__}: {e.problem}", hint=e.hint) from None
        self.image_size_ = tuple(size)
        super()._import_state(model)


class FeatureDetector(Detector):
    """A detector fitted on backbone feature maps (Gaussian, KNN).

    Besides ``fit`` / ``predict`` on images, it can be fitted and applied on features
    extracted once (``det.features(images)``), so a notebook comparing settings does
    not run the backbone again. Subclasses implement ``fit_features_(feats)`` and
    ``predict_features_(feats, image_size) -> AnomalyResult``.
    """

    def feature_strides(self) -> tuple:
        """The backbone stages :meth:`features` returns by default: those this
        detector's ``fit_features`` / ``predict_features`` read."""
        raise NotImplementedError  # pragma: no cover

    def features(self, images, strides=None) -> dict:
        """Backbone feature maps {stride: (N, C, h, w) float32 tensor} of ``images``
        (numpy (N, H, W, 3)), after the mirror padding ``pad`` where the detector has
        one; :meth:`fit_features` / :meth:`predict_features` take them, so a notebook
        can extract once and try several settings (same ``backbone`` and ``pad``).

        ``strides`` (default :meth:`feature_strides`) may name more stages: a dict
        holding a superset of a detector's stages serves it too, so one extraction at
        ``(4, 8, 16, 32)`` serves every choice of stages among them.
        """
        from ..backbone import check_pad, check_strides, get_extractor, run_extractor
        images = check_images(images)
        strides = self.feature_strides() if strides is None else \
            tuple(sorted(check_strides(strides, backbone=self.backbone)))
        pad = int(getattr(self, "pad", 0))
        check_pad(pad, strides)
        extractor = get_extractor(self.backbone, strides, self.device)
        feats = run_extractor(extractor, images, batch_size=self.batch_size, pad=pad,
                              progress=self.progress, desc=f"{type(self).__name__}: features")
        return dict(zip(strides, feats))

    def fit_features(self, feats: dict, image_size) -> "FeatureDetector":
        """Fit on feature maps from :meth:`features` of training images of size
        ``image_size`` (H, W); returns self."""
        self.fit_features_(feats)
        self.image_size_ = tuple(int(v) for v in image_size)
        self._mark_fitted()
        return self

    def predict_features(self, feats: dict) -> AnomalyResult:
        """:meth:`predict` on feature maps from :meth:`features`."""
        self._check_fitted("predict_features")
        return self.predict_features_(feats, self.image_size_)
