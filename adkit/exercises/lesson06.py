"""Exercises of lesson 06 (AESc and its corruptions): Gaussian-noise corruption, with the
paper's noise levels, which are variances (the standard deviation is their square root)."""
from __future__ import annotations

import numpy as np

from .base import Case, Exercise, Mistake, register

# -- 06.gaussian_noise -------------------------------------------------------------------------


def _noise_reference(image, variance, seed):
    from ..corruptions import gaussian
    return gaussian(image, seed=seed, variance=variance)[0]


def _noise_cases(rng):
    grey = np.full((32, 32, 3), 0.5, np.float32)
    yield Case("a mid-grey image, variance 0.1 (the paper's weakest, std 0.32)", (grey, 0.1, 0),
               hint="the paper's values are variances: the noise's standard deviation is "
                    "√variance (np.sqrt).")
    yield Case("a random image, variance 0.2 (some values clipped)",
               (rng.random((24, 20, 3)).astype(np.float32), 0.2, 7),
               hint="clip the noisy image to [0, 1] (np.clip).")
    yield Case("variance 0.01 (std 0.1, almost nothing clipped)", (grey, 0.01, 5))
    yield Case("variance 0.8, the paper's strongest (std 0.89)", (grey, 0.8, 3))
    yield Case("another seed", (grey, 0.1, 12345))


def _draw(image, seed):
    return np.random.default_rng(seed).standard_normal(image.shape)


def _noise_hints(case, got, expected):
    image, variance, seed = case.args
    g = np.asarray(got, np.float64)
    if g.shape != image.shape:
        return None
    if g.min() < 0 or g.max() > 1:
        return "some values are outside [0, 1]: clip the noisy image (np.clip(x, 0, 1))."
    r = g - image
    if r.std() > 0 and np.allclose(r[..., 0], r[..., 1]) and np.allclose(r[..., 1], r[..., 2]):
        return ("the three channels got the same noise: draw one value per pixel and "
                "channel, standard_normal(image.shape).")
    n = _draw(image, seed)
    for scale, says in ((variance, "your noise has the variance as its standard deviation: "
                                   "the standard deviation is √variance, multiply "
                                   "standard_normal by np.sqrt(variance)."),
                        (variance ** 2, "your noise has the standard deviation variance²: "
                                        "multiply standard_normal by np.sqrt(variance).")):
        if np.allclose(g, np.clip(image + scale * n, 0, 1), atol=1e-4):
            return says
    inside = (g > 0) & (g < 1)
    e = np.asarray(expected, np.float64)
    inside_e = (e > 0) & (e < 1)
    if inside.sum() > 100 and inside_e.sum() > 100:
        s, s_e = np.std(r[inside]), np.std((e - image)[inside_e])
        if abs(s - s_e) < 0.1 * s_e:
            return ("the noise has the right strength but other values: draw it with "
                    "np.random.default_rng(seed).standard_normal(image.shape), once.")
    return None


def _noise_solution(image, variance, seed):
    rng = np.random.default_rng(seed)
    std = np.sqrt(variance)
    return np.clip(image + std * rng.standard_normal(image.shape), 0, 1).astype(np.float32)


def _noise_variance_as_std(image, variance, seed):
    rng = np.random.default_rng(seed)
    return np.clip(image + variance * rng.standard_normal(image.shape), 0, 1)


def _noise_unclipped(image, variance, seed):
    rng = np.random.default_rng(seed)
    return image + np.sqrt(variance) * rng.standard_normal(image.shape)


register(Exercise(
    "06.gaussian_noise",
    title="Gaussian-noise corruption",
    statement="""AESc is trained to repair corrupted images; the simplest corruption is
    additive white Gaussian noise, x̃ = clip(x + √v·n, 0, 1), with n a standard normal value
    drawn for every pixel and channel. The paper gives the noise levels 0.1, 0.2, 0.4, 0.8
    as variances v (on [0, 1] intensities; the authors pass them as var= to
    skimage.util.random_noise), so the standard deviation of the noise is √v: 0.32 for
    v = 0.1 (adkit.corruptions.gaussian(image, variance=v)). Write a function that takes an
    image (H, W, 3), the variance v and a seed, and returns the corrupted image, drawing n
    with np.random.default_rng(seed).standard_normal(image.shape).""",
    signature="my_gaussian_noise(image, variance, seed) -> noisy",
    reference=_noise_reference, cases=_noise_cases, hints=[_noise_hints],
    solution=_noise_solution, atol=1e-5, rtol=0.0,
    mistakes=[
        Mistake("the variance as the standard deviation", _noise_variance_as_std,
                "√variance"),
        Mistake("no clipping", _noise_unclipped, "clip"),
    ]))
