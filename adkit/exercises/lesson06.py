"""Exercises of lesson 06 (AESc and its corruptions): Gaussian-noise corruption, with the
standard-deviation convention of adkit.corruptions."""
from __future__ import annotations

import numpy as np

from .base import Case, Exercise, Mistake, register

# -- 06.gaussian_noise -------------------------------------------------------------------------


def _noise_reference(image, sigma, seed):
    from ..corruptions import gaussian
    return gaussian(image, seed=seed, sigma=sigma)[0]


def _noise_cases(rng):
    grey = np.full((32, 32, 3), 0.5, np.float32)
    yield Case("a mid-grey image, σ = 0.1", (grey, 0.1, 0))
    yield Case("a random image, σ = 0.2 (some values clipped)",
               (rng.random((24, 20, 3)).astype(np.float32), 0.2, 7),
               hint="clip the noisy image to [0, 1] (np.clip).")
    yield Case("σ = 0.8, the paper's strongest noise", (grey, 0.8, 3))
    yield Case("another seed", (grey, 0.1, 12345))


def _residual_std(case, got):
    image, sigma, _ = case.args
    g = np.asarray(got, np.float64)
    inside = (g > 0) & (g < 1)
    return float(np.std((g - image)[inside])) if inside.sum() > 100 else None


def _noise_hints(case, got, expected):
    image, sigma, _ = case.args
    g = np.asarray(got, np.float64)
    if g.shape != image.shape:
        return None
    if g.min() < 0 or g.max() > 1:
        return "some values are outside [0, 1]: clip the noisy image (np.clip(x, 0, 1))."
    r = g - image
    if r.std() > 0 and np.allclose(r[..., 0], r[..., 1]) and np.allclose(r[..., 1], r[..., 2]):
        return ("the three channels got the same noise: draw one value per pixel and "
                "channel, standard_normal(image.shape).")
    s = _residual_std(case, got)
    if s is not None and sigma < 0.5:
        if abs(s - sigma ** 2) < 0.25 * sigma ** 2:
            return ("your noise has the standard deviation σ² (the variance): standard_normal "
                    "has variance 1, multiply it by σ, the standard deviation.")
        if abs(s - np.sqrt(sigma)) < 0.15 * np.sqrt(sigma):
            return "your noise has the standard deviation √σ: σ is already the standard deviation."
        if abs(s - sigma) < 0.15 * sigma:
            return ("the noise has the right strength but other values: draw it with "
                    "np.random.default_rng(seed).standard_normal(image.shape), once.")
    return None


def _noise_solution(image, sigma, seed):
    rng = np.random.default_rng(seed)
    return np.clip(image + sigma * rng.standard_normal(image.shape), 0, 1).astype(np.float32)


def _noise_variance(image, sigma, seed):
    rng = np.random.default_rng(seed)
    return np.clip(image + sigma ** 2 * rng.standard_normal(image.shape), 0, 1)


def _noise_unclipped(image, sigma, seed):
    rng = np.random.default_rng(seed)
    return image + sigma * rng.standard_normal(image.shape)


register(Exercise(
    "06.gaussian_noise",
    title="Gaussian-noise corruption",
    statement="""AESc is trained to repair corrupted images; the simplest corruption is
    additive white Gaussian noise, x̃ = clip(x + σ·n, 0, 1), with n a standard normal value
    drawn for every pixel and channel, and σ its standard deviation on [0, 1] intensities
    (adkit.corruptions.gaussian; the paper's levels 0.1, 0.2, 0.4, 0.8). Write a function that
    takes an image (H, W, 3), σ and a seed, and returns the corrupted image, drawing n with
    np.random.default_rng(seed).standard_normal(image.shape).""",
    signature="my_gaussian_noise(image, sigma, seed) -> noisy",
    reference=_noise_reference, cases=_noise_cases, hints=[_noise_hints],
    solution=_noise_solution, atol=1e-5, rtol=0.0,
    mistakes=[
        Mistake("σ² as the standard deviation", _noise_variance, "the variance"),
        Mistake("no clipping", _noise_unclipped, "clip"),
    ]))
