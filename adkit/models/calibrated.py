"""``Calibrated``: give any detector an NFA measured on held-out normal images.

``Calibrated(KNN())`` fits the inner detector on part of the training images,
predicts the rest (held out, normal, never seen by the fit), measures on their
maps the expected number of false detections per normal image as a function of
the threshold, ``F(t)`` (:mod:`adkit.contrario.calibration`), and from then on
fills ``result.log_nfa = log10 F(map)``. ``segment(eps)`` then means "about ε
false detections per normal image" for every method, as it does for the
a contrario ones.
"""
from __future__ import annotations

import numpy as np

from ..checks import check_in_range
from ..params import Instance, Integral, Interval, Real, Seed
from ..contrario.calibration import FalseAlarmCurve, false_alarm_curve
from .base import AnomalyResult, Detector

__all__ = ["Calibrated"]


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
        self.detector.fit(images[fit_idx])
        held = self.detector.predict(images[hold_idx])
        self.curve_ = false_alarm_curve(held.maps, n_levels=self.n_levels)

    def _predict(self, images):
        res = self.detector.predict(images)
        extras = dict(res.extras, false_alarm_curve=self.curve_)
        if res.log_nfa is not None:
            extras["model_log_nfa"] = res.log_nfa
        return AnomalyResult(res.maps, res.scores, self.curve_.log_nfa(res.maps),
                             self.curve_.threshold(1.0), extras)

    def threshold(self, eps: float = 1.0) -> float:
        """The map threshold that gives about ``eps`` false detections per normal image."""
        self._check_fitted("threshold")
        check_in_range(eps, "eps", 0.0, None, low_inclusive=False)
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
