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
method is compared with. ``nfa_model="gaussian"`` is that textbook model.

``nfa_model="empirical"`` (the default) keeps the a contrario form ``NFA = N · P`` but
measures both factors on the training images themselves, each one against the others
(leave-one-out z-scores ``z_i = (u_i − μ_{−i}) / σ_{−i}``, ``μ_{−i}``, ``σ_{−i}`` the
statistics of the other images): the tail law ``S`` of ``max_c |z_c|`` (empirical, with a
generalized Pareto tail) and the effective number of tests ``N = θ·H·W`` (θ the
extremal index of the map, the inverse mean size of its clusters of large values), see
:mod:`adkit.contrario.null`::

    log10 NFA(x) = log10(θ·H·W) + log10 S(map(x))

So ε keeps its meaning (about ε false regions per normal image) even where the
Gaussian model is wrong; what the wrong model costs is then seen in the detection
(large per-pixel variances hide small defects), not in the false alarms.
The image score is the maximum of the map after a light
Gaussian blur (``score_sigma``), so one noisy pixel does not decide.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..backbone import MAX_SIGMA
from ..params import Integral, Interval, Options, Real
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
    nfa_model : {"empirical", "gaussian"}, default "empirical"
        ``"gaussian"``: ``|z|`` standard normal, ``N = 3·H·W`` independent tests (the
        textbook model, tens of false regions per normal image). ``"empirical"``: tail
        law and effective number of tests measured on leave-one-out z-scores of the
        training images (see the module docstring).
    n_loo : int, default 32
        Training images whose leave-one-out z-scores estimate the empirical model.
    """

    name = "reference"
    _min_train = 2
    _min_train_why = "a per-pixel variance needs at least 2 samples"

    _parameter_constraints = {
        "sigma_min": Interval(Real, 0, 1, closed="right"),
        "score_sigma": Interval(Real, 0, MAX_SIGMA),
        "nfa_model": Options("empirical", "gaussian"),
        "n_loo": Interval(Integral, 1, 100000),
    }

    def __init__(self, *, sigma_min: float = 0.02, score_sigma: float = 2.0,
                 nfa_model: str = "empirical", n_loo: int = 32):
        self._set_params(locals())

    def _fit(self, images):
        x = images.astype(np.float64)
        self.mean_ = x.mean(0).astype(np.float32)
        self.std_ = np.sqrt(x.var(0) + self.sigma_min ** 2).astype(np.float32)
        self.background_ = None
        if self.nfa_model == "empirical":
            from ..contrario.null import PixelBackground
            self.loo_maps_ = self.loo_maps(images)
            self.background_ = PixelBackground.fit(self.loo_maps_)

    def loo_maps(self, images) -> np.ndarray:
        """Leave-one-out maps ``max_c |z_c|`` of ``n_loo`` training images (spread over
        the set), each against the mean and std of the *other* images (N', H, W)."""
        x = np.asarray(images, np.float64)
        n = len(x)
        s1, s2 = x.sum(0), (x * x).sum(0)
        out = []
        for i in np.unique(np.linspace(0, n - 1, min(n, self.n_loo)).round().astype(int)):
            mu = (s1 - x[i]) / (n - 1)
            var = np.maximum((s2 - x[i] ** 2) / (n - 1) - mu ** 2, 0)
            out.append(np.abs((x[i] - mu) / np.sqrt(var + self.sigma_min ** 2)).max(-1))
        return np.stack(out).astype(np.float32)

    def z_scores(self, images) -> np.ndarray:
        """Signed per-channel z-scores (N, H, W, 3)."""
        self._check_fitted("z_scores")
        return (np.asarray(images, np.float32) - self.mean_) / self.std_

    def _predict(self, images):
        z = self.z_scores(images)
        maps = np.abs(z).max(-1)
        if self.background_ is not None:
            n_tests = self.background_.n_tests
            log_nfa = self.background_.log_nfa(maps)
        else:
            n_tests = 3 * maps.shape[1] * maps.shape[2]
            log_nfa = log_nfa_gaussian(maps, n_tests)
        if self.score_sigma > 0:
            smooth = ndimage.gaussian_filter(maps, (0, self.score_sigma, self.score_sigma))
        else:
            smooth = maps
        scores = smooth.reshape(len(maps), -1).max(1)
        return AnomalyResult(maps, scores, log_nfa, extras={"n_tests": n_tests})

    def _get_state(self):
        out = {"mean": self.mean_, "std": self.std_}
        if self.background_ is not None:
            out["loo_maps"] = self.loo_maps_
        return out

    def _set_state(self, state):
        from ..estimator import state_array
        shape = (*self.image_size_, 3)
        self.mean_ = state_array(state, "mean", shape=shape)
        self.std_ = state_array(state, "std", shape=shape, positive=True)
        self.background_ = None
        if self.nfa_model == "empirical":    # the law is fitted again (deterministic)
            from ..contrario.null import PixelBackground
            self.loo_maps_ = state_array(state, "loo_maps", shape=(None, *self.image_size_),
                                         min_value=0.0)
            self.background_ = PixelBackground.fit(self.loo_maps_)
