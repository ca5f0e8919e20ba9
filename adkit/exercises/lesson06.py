"""Exercises of lesson 06 (AESc and its corruptions): Gaussian-noise corruption, with the
paper's noise levels, which are variances (the standard deviation is their square root), and
the mask of the Drops corruption drawn from a seed."""
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


# -- 06.drops_mask ---------------------------------------------------------------------------

def _drops_reference(h, w, seed, n_drops, size):
    from ..corruptions import drops
    return drops(np.full((h, w, 3), 0.5, np.float32), seed=seed, n_drops=n_drops,
                 size=size)[1]


def _drops_cases(rng):
    yield Case("a 64×64 image, the paper's 10 drops of 1–2 % of the side",
               (64, 64, 3, 10, (0.01, 0.02)),
               hint="r = max(1, U(size)·min(H, W)), drawn first with rng.uniform.")
    yield Case("a wide 48×96 image, 6 larger drops", (48, 96, 11, 6, (0.05, 0.08)),
               hint="x is the column (0..W), y the row (0..H): the disc is "
                    "(xx − dx)² + (yy − dy)² ≤ r² with yy, xx = np.mgrid[:H, :W].")
    yield Case("a tall 80×40 image, 4 drops of 10 %",
               (80, 40, int(rng.integers(1000)), 4, (0.1, 0.1)))
    yield Case("a 32×32 image: the radius is under one pixel, so r = 1",
               (32, 32, 5, 10, (0.01, 0.02)),
               hint="r = max(1, U(size)·min(H, W)): at least one pixel.")


def _drops_draw(h, w, seed, n_drops, size, swap=False, floor=True, scale_spread=True):
    rng = np.random.default_rng(seed)
    side = min(h, w)
    r = rng.uniform(*size) * side
    r = max(1.0, r) if floor else r
    margin = min(3 * r, side / 2)
    cx, cy = rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)
    yy, xx = np.mgrid[:h, :w]
    if swap:                                       # rows taken as x, columns as y
        xx, yy = yy, xx
    mask = np.zeros((h, w), bool)
    sd = r if scale_spread else 1.0
    for _ in range(n_drops):
        dx, dy = rng.normal(cx, sd), rng.normal(cy, sd)
        mask |= (xx - dx) ** 2 + (yy - dy) ** 2 <= r * r
    return mask


def _drops_hints(case, got, expected):
    h, w, seed, n_drops, size = case.args
    g = np.asarray(got)
    if g.shape == (w, h) and h != w:
        return "the mask is (H, W): rows first (np.zeros((h, w), bool))."
    if g.shape != (h, w):
        return None
    g = g.astype(bool)
    if not np.array_equal(_drops_draw(h, w, seed, n_drops, size, floor=False), expected) and \
            np.array_equal(g, _drops_draw(h, w, seed, n_drops, size, floor=False)):
        return "the radius is at least one pixel: r = max(1, U(size)·min(H, W))."
    if np.array_equal(g, _drops_draw(h, w, seed, n_drops, size, swap=True)):
        return ("x and y are swapped: x is the column, along W, and y the row, along H: "
                "yy, xx = np.mgrid[:h, :w], the disc (xx − dx)² + (yy − dy)² ≤ r².")
    if np.array_equal(g, _drops_draw(h, w, seed, n_drops, size, scale_spread=False)):
        return ("the centres scatter around (cx, cy) with a standard deviation of r "
                "(spread·r, spread = 1): rng.normal(cx, r), not rng.normal(cx, 1).")
    if g.sum() and abs(int(g.sum()) - int(expected.sum())) <= 0.5 * expected.sum():
        return ("the drops are there but elsewhere: draw in the order r, cx, cy, then dx, dy "
                "for each drop, from one np.random.default_rng(seed), with x the column and "
                "y the row.")
    return None


def _drops_solution(h, w, seed, n_drops, size):
    rng = np.random.default_rng(seed)
    side = min(h, w)
    r = max(1.0, rng.uniform(*size) * side)
    margin = min(3 * r, side / 2)
    cx, cy = rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)
    yy, xx = np.mgrid[:h, :w]
    mask = np.zeros((h, w), bool)
    for _ in range(n_drops):
        dx, dy = rng.normal(cx, r), rng.normal(cy, r)
        mask |= (xx - dx) ** 2 + (yy - dy) ** 2 <= r * r
    return mask


def _drops_xy_swapped(h, w, seed, n_drops, size):
    return _drops_draw(h, w, seed, n_drops, size, swap=True)      # rows taken as x


def _drops_no_floor(h, w, seed, n_drops, size):
    return _drops_draw(h, w, seed, n_drops, size, floor=False)    # r may be under a pixel


register(Exercise(
    "06.drops_mask",
    title="The mask of the Drops corruption",
    statement="""Drops, one of the paper's alternatives to Stain, paints n_drops partly
    overlapping discs of one radius around a random point. With
    rng = np.random.default_rng(seed) and side = min(H, W), adkit draws, in this order:
    the radius r = max(1, rng.uniform(lo, hi)·side) (size = (lo, hi), paper: 1–2 % of the
    side); with margin = min(3r, side/2), the centre cx = rng.uniform(margin, W − margin)
    (a column) then cy = rng.uniform(margin, H − margin) (a row); then for each drop its
    centre dx = rng.normal(cx, r), dy = rng.normal(cy, r). A pixel (row y, column x) is in
    the mask when it lies in some disc, (x − dx)² + (y − dy)² ≤ r². Write a function that
    returns this boolean mask (H × W): the mask adkit.corruptions.drops(image, seed=seed,
    n_drops=n_drops, size=size) returns with the corrupted image.""",
    signature="my_drops_mask(h, w, seed, n_drops, size) -> mask",
    reference=_drops_reference, cases=_drops_cases, hints=[_drops_hints],
    solution=_drops_solution,
    mistakes=[
        Mistake("x and y swapped", _drops_xy_swapped, "x is the column"),
        Mistake("no radius of at least one pixel", _drops_no_floor, "max(1"),
    ]))
