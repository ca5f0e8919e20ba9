"""``Calibrated``: read any detector's maps on a false-alarm scale measured on held-out
normal images.

``Calibrated(KNN())`` fits the inner detector on part of the training images, predicts
the rest (held out, normal, never seen by the fit) and counts on their maps the false
regions per normal image as a function of the threshold, ``F(t)``
(:mod:`adkit.contrario.calibration`). From then on ``result.log_nfa = log10 F(map)``, so
``segment(eps)`` means "about ε false regions per normal image" for every method, as it
does for the a contrario ones.

``F`` is an empirical estimate, not a model's NFA: the expected number of false regions
per normal image, measured on the ``n`` held-out images. It resolves rates down to
``1/n`` (:attr:`Calibrated.eps_min_`; with ``n`` = 10, ε = 0.1), and below that it is an
exponential tail extrapolated from the measured part. So:

- ``fit`` warns when fewer than :data:`MIN_HOLDOUT_IMAGES` (10) images are held out;
- ``predict`` puts ``eps_min`` (1/n) and ``n_calibration_images`` in ``result.extras``;
  ``result.extrapolated(eps)`` says whether ε is below the measured range, and
  ``result.segment(eps)`` warns (:class:`~adkit.models.base.ExtrapolationWarning`) when
  it is, so notebooks and dashboards can show "extrapolated" next to the ε slider.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..contrario.calibration import FalseAlarmCurve, false_alarm_curve
from ..params import EPS, Instance, Integral, Interval, Real, Seed, check_param
from .base import AnomalyResult, Detector, warn_extrapolated

__all__ = ["Calibrated", "MIN_HOLDOUT_IMAGES"]

#: fewer held-out images than this: F is measured only down to a coarse 1/n, and fit warns
MIN_HOLDOUT_IMAGES = 10


class Calibrated(Detector):
    """Wrap a detector; calibrate its maps into log NFA on held-out normal images.

    Parameters
    ----------
    detector : Detector
        Any adkit detector (or a Pipeline).
    holdout : float in (0, 1)
        Share of the training images held out for calibration (default 0.2; at least
        2 images are held out and ``detector``'s minimum is left to fit it).
    n_levels : int
        Thresholds at which the false-alarm curve is measured (default 512).
    seed : int
        Chooses which training images are held out.
    """

    name = "calibrated"

    _parameter_constraints = {
        "detector": Instance(Detector, "an adkit detector such as KNN()"),
        "holdout": Interval(Real, 0, 1, closed="neither"),
        "n_levels": Interval(Integral, 8, 100000),
        "seed": Seed(),
    }

    def __init__(self, detector=None, *, holdout: float = 0.2, n_levels: int = 512,
                 seed: int = 0):
        self._set_params(locals())

    @property
    def _min_train(self):
        return self.detector._min_train + 2

    @property
    def _min_train_why(self):
        return (f"{type(self.detector).__name__}'s {self.detector._min_train} to fit it, "
                "and 2 held out to calibrate")

    def _split(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        n_hold = min(max(2, int(round(self.holdout * n))), n - self.detector._min_train)
        order = np.random.default_rng(self.seed).permutation(n)
        return np.sort(order[n_hold:]), np.sort(order[:n_hold])

    def _fit(self, images):
        fit_idx, hold_idx = self._split(len(images))
        n = len(hold_idx)
        if n < MIN_HOLDOUT_IMAGES:
            warnings.warn(
                f"Calibrated: the false-alarm curve is measured on only {n} held-out normal "
                f"images, so it resolves rates down to 1/{n} = {1 / n:.2g} false region per "
                f"image: every eps below {1 / n:.2g} is extrapolated from a tail fitted on a "
                f"few counts. Hold out at least {MIN_HOLDOUT_IMAGES} images (more training "
                f"images, or a larger holdout= than {self.holdout:g}).",
                UserWarning, stacklevel=3)
        self.detector.fit(images[fit_idx])
        held = self.detector.predict(images[hold_idx])
        self.curve_ = false_alarm_curve(held.maps, n_levels=self.n_levels)

    @property
    def n_holdout_(self) -> int:
        """The number n of held-out normal images the false-alarm curve was measured on."""
        self._check_fitted("n_holdout_")
        return self.curve_.n_images

    @property
    def eps_min_(self) -> float:
        """1/n: the smallest ε (false regions per normal image) that was measured; below
        it ``segment(eps)`` is extrapolated (see the module docstring)."""
        self._check_fitted("eps_min_")
        return self.curve_.eps_min

    def _predict(self, images):
        res = self.detector.predict(images)
        extras = dict(res.extras, false_alarm_curve=self.curve_,
                      eps_min=self.curve_.eps_min,
                      n_calibration_images=self.curve_.n_images)
        if res.log_nfa is not None:
            extras["model_log_nfa"] = res.log_nfa
        return AnomalyResult(res.maps, res.scores, self.curve_.log_nfa(res.maps),
                             self.curve_.threshold(1.0), extras)

    def threshold(self, eps: float = 1.0) -> float:
        """The map threshold that gives about ``eps`` false detections per normal image
        (extrapolated, with an :class:`~adkit.models.base.ExtrapolationWarning`, when
        ``eps`` < :attr:`eps_min_`)."""
        self._check_fitted("threshold")
        eps = check_param(eps, EPS, "eps", "Calibrated.threshold")
        if self.curve_.extrapolated(eps):
            warn_extrapolated(eps, self.curve_.eps_min, self.curve_.n_images)
        return self.curve_.threshold(eps)

    def _get_state(self):
        return {"detector": self.detector._export_state(), "curve": self.curve_.state()}

    def _set_state(self, state):
        from ..estimator import ModelFileError, state_array, state_dict
        self.detector._import_state(state_dict(state, "detector"))
        if self.detector.image_size_ != self.image_size_:
            raise ModelFileError(f"its detector was fitted on {self.detector.image_size_} "
                                 f"images, the calibration on {self.image_size_}")
        curve = state_dict(state, "curve")
        levels = state_array(curve, "levels", shape=(None,), dtype=np.float64)
        nfa = state_array(curve, "nfa", shape=levels.shape, dtype=np.float64, min_value=0.0)
        # (a, b, top, n_images); a is -inf for a curve without any detection
        tail = state_array(curve, "tail", shape=(4,), dtype=np.float64, finite=False)
        if len(levels) < 1 or np.any(np.diff(levels) < 0) or np.any(np.diff(nfa) > 0):
            raise ModelFileError("the saved false-alarm curve is not a non-increasing "
                                 "function of increasing thresholds")
        a, b, top, n = tail
        if np.isnan(a) or a == np.inf or not (np.isfinite(b) and b > 0 and np.isfinite(top)) \
                or not (n >= 1 and n == int(n)):
            raise ModelFileError(f"the saved false-alarm curve has a bad tail {tail.tolist()}")
        self.curve_ = FalseAlarmCurve.from_state({"levels": levels, "nfa": nfa,
                                                  "tail": tail})
