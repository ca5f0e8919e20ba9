"""The reference detector: a per-pixel Gaussian on aligned normal images.

Every pixel ``x`` and channel ``c`` of a normal image is modelled as an independent
Gaussian, with mean μ and standard deviation σ estimated over the training images::

    z_c(x) = (u_c(x) − μ_c(x)) / σ_c(x),      σ_c = sqrt(var_c + σ_min²)
    map(x) = max_c |z_c(x)|

Under that background model each :math:`|z_c(x)|` is the absolute value of a standard normal
variable, so a detection at ``map(x) ≥ t`` has probability at most
:math:`3 P(|Z| ≥ t) = 3 \\operatorname{erfc}(t/\\sqrt{2})`, and with N_tests = 3·H·W tests (every pixel, every
channel) the log NFA of a pixel is::

    log10 NFA(x) = log10(3·H·W) + log10 erfc(map(x)/√2)

``segment(eps)`` keeps the pixels whose NFA is below ε: about ε false detections
per *normal* image, if the model were right. It is not: pixels are not Gaussian nor
independent, and the model only holds if the object sits at the same place with
the same exposure in every image. That is exactly what the normalization lessons
fix (midway equalization, alignment) and why this is the baseline that every later
method is compared with. The image score is the maximum of the map after a light
Gaussian blur (``score_sigma``), so one noisy pixel does not decide.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..backbone import MAX_SIGMA
from ..params import Interval, Real
from ..contrario.gaussian import log_nfa_gaussian
from .base import AnomalyResult, Detector

__all__ = ["ReferenceGaussian"]


class ReferenceGaussian(Detector):
    """Per-pixel Gaussian (mean and std per pixel and channel) with a z-score map.

    Parameters
    ----------
    sigma_min : float, default 0.02
        Floor added in quadrature to the per-pixel std (on the [0, 1] scale), so
        pixels that never vary in training (a flat background) do not give infinite
        z-scores for sensor noise.
    score_sigma : float, default 2.0
        Std (pixels) of the Gaussian blur applied to the map before taking its
        maximum as the image score. 0 takes the raw maximum.
    """

    name = "reference"
    _min_train = 2
    _min_train_why = "a per-pixel variance needs at least 2 samples"

    _parameter_constraints = {
        "sigma_min": Interval(Real, 0, 1, closed="right"),
        "score_sigma": Interval(Real, 0, MAX_SIGMA),
    }

    def __init__(self, *, sigma_min: float = 0.02, score_sigma: float = 2.0):
        self._set_params(locals())

    def _fit(self, images):
        x = images.astype(np.float64)
        self.mean_ = x.mean(0).astype(np.float32)
        self.std_ = np.sqrt(x.var(0) + self.sigma_min ** 2).astype(np.float32)

    def z_scores(self, images) -> np.ndarray:
        """Signed per-channel z-scores (N, H, W, 3)."""
        self._check_fitted("z_scores")
        return (np.asarray(images, np.float32) - self.mean_) / self.std_

    def _predict(self, images):
        z = self.z_scores(images)
        maps = np.abs(z).max(-1)
        n_tests = 3 * maps.shape[1] * maps.shape[2]
        log_nfa = log_nfa_gaussian(maps, n_tests)
        if self.score_sigma > 0:
            smooth = ndimage.gaussian_filter(maps, (0, self.score_sigma, self.score_sigma))
        else:
            smooth = maps
        scores = smooth.reshape(len(maps), -1).max(1)
        return AnomalyResult(maps, scores, log_nfa, extras={"n_tests": n_tests})

    def _get_state(self):
        return {"mean": self.mean_, "std": self.std_}

    def _set_state(self, state):
        from ..estimator import state_array
        shape = (*self.image_size_, 3)
        self.mean_ = state_array(state, "mean", shape=shape)
        self.std_ = state_array(state, "std", shape=shape, positive=True)
