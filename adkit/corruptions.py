"""Synthetic corruptions used to train AESc (and to draw synthetic defects).

Collin & De Vleeschouwer, "Improved anomaly detection by training an autoencoder
with skip connections on images corrupted with Stain-shaped noise", ICPR 2020
(arXiv:2008.12977), Section III-B. An autoencoder with skip connections trained to
reproduce clean images learns the identity; trained to map a *corrupted* clean image
back to the clean image, it must learn what a normal image looks like, and so it
also "repairs" real defects at test time. The corruption models of the paper:

``stain``
    a closed cubic curve through ~20 points jittered around an ellipse whose
    semi-axes are 1–12 % of the smaller image side, randomly oriented, filled with
    a random gray level (10–220 on 0–255) and a faint noise, edges optionally blurred.
    The paper's proposal.
``gaussian``
    additive white Gaussian noise of **variance** σ² ∈ {0.1, 0.2, 0.4, 0.8} (on [0, 1]
    intensities, standard deviation √σ² ≈ 0.32–0.89; σ² = 0.1 by default), clipped
    to [0, 1]. The paper's values are variances: the authors' code draws the noise
    with ``skimage.util.random_noise(..., var=σ²)``.
``scratch``
    a 3 px wide curve (at 256 px) between two random points, following a
    straight, sinusoidal or square-root path, random gray level.
``drops``
    10 partly overlapping discs of radius 1–2 % of the side, one random gray level.
``mix1``
    60 % stain, 20 % scratch, 20 % drops (drawn independently for each image).
``mix2``
    60 % stain, 40 % Gaussian noise (variance 0.1).

Every function takes a float32 image (H, W, 3) in [0, 1] or a batch (N, H, W, 3)
(each image of a batch gets its own independent draw) and a ``seed`` (int, None or a
numpy Generator, so a training loop can pass one Generator along), and returns
``(corrupted, mask)``: the corrupted image(s), float32, and a bool mask (H, W) or
(N, H, W) of the pixels the corruption changed. Pixels outside the mask are left
exactly as they were. The same seed gives the same corruption.

>>> import numpy as np
>>> from adkit import corruptions
>>> x = np.full((64, 64, 3), 0.5, np.float32)
>>> y, m = corruptions.corrupt(x, "stain", seed=0)
>>> bool(np.all(y[~m] == x[~m]))
True
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.interpolate import CubicSpline
from skimage.draw import polygon as _polygon

import inspect

from .checks import check_choice, check_images, check_seed
from .params import Boolean, Integral, Interval, ParameterValueError, Real, Tuple, check_param

__all__ = ["CORRUPTIONS", "GAUSSIAN_VARIANCES", "corrupt", "stain", "gaussian", "scratch",
           "drops", "mix1", "mix2"]

#: names accepted by :func:`corrupt`
CORRUPTIONS = ("stain", "gaussian", "scratch", "drops", "mix1", "mix2")

#: the noise variances of the paper's Gaussian-noise experiments (Table III), on [0, 1]
GAUSSIAN_VARIANCES = (0.1, 0.2, 0.4, 0.8)

#: (kind, probability) of the paper's mixtures
MIXTURES = {
    "mix1": (("stain", 0.6), ("scratch", 0.2), ("drops", 0.2)),
    "mix2": (("stain", 0.6), ("gaussian", 0.4)),
}

# the authors' gray range 10..220 on 0..255, and the faint noise of a stain
_GRAY = (10 / 255, 220 / 255)
_GRAY_NOISE = float(np.sqrt(0.05 / 255))  # std of the stain's texture (variance 0.05/255)


# -- input handling ---------------------------------------------------------------------
def _as_batch(image) -> tuple[np.ndarray, bool]:
    """(batch (N, H, W, 3) float32 in [0, 1], whether one image was given)."""
    single = isinstance(image, np.ndarray) and image.ndim == 3
    return check_images(image, "image"), single


def _apply(image, seed, one, **kw):
    """Run ``one(img, rng, **kw) -> (img, mask)`` over an image or a batch."""
    x, single = _as_batch(image)
    rng = check_seed(seed)
    out = np.empty_like(x)
    masks = np.zeros(x.shape[:3], bool)
    for i in range(x.shape[0]):
        out[i], masks[i] = one(x[i], rng, **kw)
    return (out[0], masks[0]) if single else (out, masks)


def _range(value, name, lo=0.0, hi=None, owner=None):
    """A (min, max) pair from a number or a pair, validated."""
    one = Interval(Real, lo, hi)
    value = check_param(value, [one, Tuple(one, length=2)], name, owner)
    if not isinstance(value, tuple):
        value = (value, value)
    if value[0] > value[1]:
        raise ParameterValueError(f"{owner + ': ' if owner else ''}{name} must be a (min, "
                                  f"max) pair with min <= max, got {value!r}.")
    return value


def _paint(img, alpha, gray, rng, noise=_GRAY_NOISE):
    """Blend a gray layer (with a faint noise) into ``img`` where ``alpha`` > 0."""
    alpha = alpha.astype(np.float32)
    mask = alpha > 0
    out = img.copy()
    if not mask.any():
        return out, mask
    layer = gray + noise * rng.standard_normal((int(mask.sum()), 1)).astype(np.float32)
    a = alpha[mask][:, None]
    out[mask] = np.clip(img[mask] * (1 - a) + layer * a, 0, 1)
    return out, mask


# -- Stain ------------------------------------------------------------------------------
def _stain_alpha(h, w, rng, size=(0.01, 0.12), n_points=20, irregularity=0.1, blur=0.15):
    side = min(h, w)
    a, b = (max(1.0, rng.uniform(*size) * side) for _ in range(2))
    r = max(a, b)
    cx = rng.uniform(min(r, w / 2), max(w - r, w / 2))
    cy = rng.uniform(min(r, h / 2), max(h - r, h / 2))
    theta = rng.uniform(0, 2 * np.pi)
    t = np.linspace(0, 2 * np.pi, n_points, endpoint=False) + rng.uniform(0, 2 * np.pi / n_points)
    jitter = irregularity * (a + b) / 2
    ex = a * np.cos(t) + rng.uniform(-jitter, jitter, n_points)
    ey = b * np.sin(t) + rng.uniform(-jitter, jitter, n_points)
    px = cx + ex * np.cos(theta) - ey * np.sin(theta)
    py = cy + ex * np.sin(theta) + ey * np.cos(theta)
    # closed (periodic) cubic spline through the jittered points
    s = np.arange(n_points + 1)
    spline = CubicSpline(s, np.c_[np.r_[px, px[0]], np.r_[py, py[0]]], bc_type="periodic")
    curve = spline(np.linspace(0, n_points, 20 * n_points, endpoint=False))
    rr, cc = _polygon(curve[:, 1], curve[:, 0], shape=(h, w))
    alpha = np.zeros((h, w), np.float32)
    alpha[rr, cc] = 1
    if alpha.sum() == 0:  # tiny stain between pixel centres: keep at least one pixel
        alpha[int(np.clip(cy, 0, h - 1)), int(np.clip(cx, 0, w - 1))] = 1
    if blur > 0:
        # blur only the stain's box, widened by twice the kernel radius: the same values
        # as blurring the whole (zero elsewhere) image, at a fraction of the cost
        sigma = blur * r
        m = 2 * (int(4.0 * sigma + 0.5) + 1)   # gaussian_filter's radius: truncate=4
        ys, xs = np.nonzero(alpha)
        y0, y1 = max(ys.min() - m, 0), min(ys.max() + m + 1, h)
        x0, x1 = max(xs.min() - m, 0), min(xs.max() + m + 1, w)
        box = ndimage.gaussian_filter(alpha[y0:y1, x0:x1], sigma)
        box /= max(box.max(), 1e-6)
        box[box < 1 / 255] = 0  # below one gray level: leave the pixel untouched
        alpha[y0:y1, x0:x1] = box
    return alpha


def _stain_one(img, rng, size, gray, n_points, irregularity, blur):
    alpha = _stain_alpha(img.shape[0], img.shape[1], rng, size, n_points, irregularity, blur)
    return _paint(img, alpha, rng.uniform(*gray), rng)


def stain(image, seed=None, size=(0.01, 0.12), gray=_GRAY, n_points=20,
          irregularity=0.1, blur=0.15):
    r"""The Stain noise model (Collin & De Vleeschouwer 2020, Sec. III-B).

    An ellipse of semi-axes :math:`a, b \sim U(\text{size}) \cdot \min(H, W)`,
    rotated by :math:`\theta \sim U[0, 2\pi)`, is sampled at ``n_points`` angles;
    each point is moved by up to ``irregularity`` · (a + b)/2 pixels in x and y; a
    closed (periodic) cubic spline through the points bounds the stain, which is
    filled with a gray level :math:`g \sim U(\text{gray})` plus a faint noise
    (std √(0.05/255)). With ``blur`` > 0 the stain's edge is smoothed by a Gaussian
    of σ = blur · max(a, b) pixels and blended (alpha matte).

    Parameters
    ----------
    image : float32 (H, W, 3) or (N, H, W, 3) in [0, 1]
    seed : int, None or numpy Generator
    size : (float, float), default (0.01, 0.12)
        Range of the semi-axes as a fraction of the smaller image side (paper: 1–12 %).
    gray : (float, float), default (10/255, 220/255)
        Range of the fill gray level (the authors' 10–220).
    n_points : int, default 20
        Number of jittered points the cubic curve passes through.
    irregularity : float, default 0.1
        Jitter of each point, as a fraction of the mean semi-axis.
    blur : float, default 0.15
        Edge blur (σ as a fraction of the largest semi-axis); 0 gives a sharp stain.

    Returns
    -------
    corrupted : float32, same shape as ``image``
    mask : bool (H, W) or (N, H, W), the pixels that changed (alpha > 0)
    """
    size = _range(size, "size", 0.0, 0.5, "stain")
    gray = _range(gray, "gray", 0.0, 1.0, "stain")
    n_points = check_param(n_points, Interval(Integral, 4, 1000, hint=(
        "A closed cubic curve needs at least 4 points.")), "n_points", "stain")
    irregularity = check_param(irregularity, Interval(Real, 0, 10), "irregularity", "stain")
    blur = check_param(blur, Interval(Real, 0, 10), "blur", "stain")
    return _apply(image, seed, _stain_one, size=size, gray=gray, n_points=n_points,
                  irregularity=irregularity, blur=blur)


# -- Gaussian noise ---------------------------------------------------------------------
def _gaussian_one(img, rng, variance):
    std = np.float32(np.sqrt(variance))
    noisy = np.clip(img + std * rng.standard_normal(img.shape).astype(np.float32), 0, 1)
    return noisy.astype(np.float32), np.ones(img.shape[:2], bool)


def gaussian(image, seed=None, variance=0.1, *, sigma=None):
    r"""Additive white Gaussian noise of variance :math:`\sigma^2`,
    :math:`\tilde x = \mathrm{clip}_{[0,1]}(x + \sqrt{\sigma^2}\, n)`,
    :math:`n \sim \mathcal N(0, 1)` i.i.d. per pixel and channel.

    The paper compares the variances :math:`\sigma^2 \in \{0.1, 0.2, 0.4, 0.8\}`
    (:data:`GAUSSIAN_VARIANCES`, intensities in [0, 1]: standard deviations 0.32, 0.45,
    0.63, 0.89); 0.1 is the one used inside Mix2. (The authors' code passes these
    values as ``var=`` to ``skimage.util.random_noise``.) The mask is the whole image.

    Parameters
    ----------
    image : float32 (H, W, 3) or (N, H, W, 3) in [0, 1]
    seed : int, None or numpy Generator
    variance : float, default 0.1
        :math:`\sigma^2`, the variance of the noise (not its standard deviation).
    sigma : not accepted
        Raises a ``TypeError`` that says to pass ``variance=`` (an earlier version
        took the paper's values as standard deviations).
    """
    if sigma is not None:
        as_std = ""
        if isinstance(sigma, Real) and not isinstance(sigma, bool) and np.isfinite(sigma):
            as_std = (f", or variance={float(sigma) ** 2:g} for a standard deviation of "
                      f"{sigma!r}")
        raise TypeError(f"gaussian() takes the noise variance, not sigma: the paper's values "
                        f"{GAUSSIAN_VARIANCES} are variances. Pass variance= (e.g. "
                        f"variance={sigma!r} for the paper's level{as_std}).")
    variance = check_param(variance, Interval(Real, 0, 10, closed="right", what=(
        f"a positive number up to 10, the variance of the noise (paper: "
        f"{GAUSSIAN_VARIANCES})")), "variance", "gaussian")
    return _apply(image, seed, _gaussian_one, variance=variance)


# -- Scratch ----------------------------------------------------------------------------
def _scratch_path(h, w, rng, length, shape):
    side = min(h, w)
    p0 = np.array([rng.uniform(w / 6, 5 * w / 6), rng.uniform(h / 6, 5 * h / 6)])
    L = rng.uniform(*length) * side
    phi = rng.uniform(0, 2 * np.pi)
    u = np.array([np.cos(phi), np.sin(phi)])
    n = np.array([-u[1], u[0]])
    p1 = p0 + L * u
    t = np.linspace(0, 1, max(8, int(4 * L)))[:, None]
    if shape == "line":
        off = np.zeros_like(t)
    elif shape == "sine":
        off = rng.uniform(0.03, 0.08) * side * np.sin(2 * np.pi * rng.integers(1, 4) * t)
    else:  # root: a square-root shaped bow, 0 at both ends
        off = rng.choice([-1, 1]) * rng.uniform(0.1, 0.3) * L * 4 * (np.sqrt(t) - t)
    return p0 + t * (p1 - p0) + off * n


def _scratch_one(img, rng, gray, length, shape):
    h, w = img.shape[:2]
    kind = shape if shape != "random" else ("line", "sine", "root")[rng.integers(3)]
    pts = _scratch_path(h, w, rng, length, kind)
    line = np.zeros((h, w), bool)
    xi, yi = np.rint(pts[:, 0]).astype(int), np.rint(pts[:, 1]).astype(int)
    keep = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    line[yi[keep], xi[keep]] = True
    if not line.any():
        line[h // 2, w // 2] = True
    half = max(1, int(round(min(h, w) / 256)))  # 3 px wide at 256 px
    line = ndimage.binary_dilation(line, np.ones((2 * half + 1,) * 2, bool))
    # the authors draw each pixel ~ N(g, 20/255)
    return _paint(img, line.astype(np.float32), rng.uniform(*gray), rng, noise=20 / 255)


def scratch(image, seed=None, gray=_GRAY, length=(0.1, 0.35), shape="random"):
    r"""A scratch: a thin curve between two random points, random gray level.

    The start point is uniform in the central 2/3 of the image, the end point at a
    distance ``length`` · min(H, W) in a random direction. The path is straight
    (``"line"``), a sine wave around the chord (1–3 periods, amplitude 3–8 % of the
    side) or a square-root shaped bow (``"root"``); ``"random"`` picks one of the
    three uniformly. The stroke is 3 px wide at 256 px (2·round(side/256)+1), each
    pixel drawn from :math:`\mathcal N(g, (20/255)^2)`, :math:`g \sim U(\text{gray})`.
    """
    gray = _range(gray, "gray", 0.0, 1.0, "scratch")
    length = _range(length, "length", 0.0, 2.0, "scratch")
    shape = check_choice(shape, "shape", ("random", "line", "sine", "root"))
    return _apply(image, seed, _scratch_one, gray=gray, length=length, shape=shape)


# -- Drops ------------------------------------------------------------------------------
def _drops_one(img, rng, n_drops, size, gray, spread):
    h, w = img.shape[:2]
    side = min(h, w)
    r = max(1.0, rng.uniform(*size) * side)
    margin = min(3 * r, side / 2)
    cx, cy = rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)
    yy, xx = np.mgrid[:h, :w]
    alpha = np.zeros((h, w), np.float32)
    for _ in range(n_drops):
        dx, dy = rng.normal(cx, spread * r), rng.normal(cy, spread * r)
        alpha[(xx - dx) ** 2 + (yy - dy) ** 2 <= r * r] = 1
    if not alpha.any():
        alpha[int(np.clip(cy, 0, h - 1)), int(np.clip(cx, 0, w - 1))] = 1
    return _paint(img, alpha, rng.uniform(*gray), rng)


def drops(image, seed=None, n_drops=10, size=(0.01, 0.02), gray=_GRAY, spread=1.0):
    r"""Drops: ``n_drops`` discs of one radius :math:`r \sim U(\text{size})\cdot\min(H,W)`
    (paper: 10 discs, 1–2 % of the side) whose centres scatter around a random point
    with a standard deviation of ``spread`` · r, so that they partly overlap; filled
    with one random gray level plus a faint noise.
    """
    size = _range(size, "size", 0.0, 0.5, "drops")
    gray = _range(gray, "gray", 0.0, 1.0, "drops")
    n_drops = check_param(n_drops, Interval(Integral, 1, 10000), "n_drops", "drops")
    spread = check_param(spread, Interval(Real, 0, 100), "spread", "drops")
    return _apply(image, seed, _drops_one, n_drops=n_drops, size=size, gray=gray,
                  spread=spread)


# -- mixtures ---------------------------------------------------------------------------
_ONE = {
    "stain": lambda img, rng: _stain_one(img, rng, (0.01, 0.12), _GRAY, 20, 0.1, 0.15),
    "gaussian": lambda img, rng: _gaussian_one(img, rng, 0.1),  # variance 0.1
    "scratch": lambda img, rng: _scratch_one(img, rng, _GRAY, (0.1, 0.35), "random"),
    "drops": lambda img, rng: _drops_one(img, rng, 10, (0.01, 0.02), _GRAY, 1.0),
}


def _mix(image, seed, name, return_kind):
    return_kind = check_param(return_kind, Boolean(), "return_kind", name)
    x, single = _as_batch(image)
    rng = check_seed(seed)
    kinds, probs = zip(*MIXTURES[name])
    out = np.empty_like(x)
    masks = np.zeros(x.shape[:3], bool)
    chosen = []
    for i in range(x.shape[0]):
        k = kinds[int(np.searchsorted(np.cumsum(probs), rng.uniform(), side="right"))]
        chosen.append(k)
        out[i], masks[i] = _ONE[k](x[i], rng)
    res = (out[0], masks[0]) if single else (out, masks)
    if return_kind:
        return (*res, chosen[0] if single else chosen)
    return res


def mix1(image, seed=None, return_kind=False):
    """Mix1: for each image, Stain with probability 0.6, Scratch 0.2, Drops 0.2
    (default settings of each). ``return_kind=True`` also returns the kind(s) drawn."""
    return _mix(image, seed, "mix1", return_kind)


def mix2(image, seed=None, return_kind=False):
    """Mix2: for each image, Stain with probability 0.6, Gaussian noise of variance 0.1
    (standard deviation 0.32) with probability 0.4.
    ``return_kind=True`` also returns the kind(s) drawn."""
    return _mix(image, seed, "mix2", return_kind)


_FUNCS = {"stain": stain, "gaussian": gaussian, "scratch": scratch, "drops": drops,
          "mix1": mix1, "mix2": mix2}


def corrupt(image, kind="stain", seed=None, **params):
    """Corrupt ``image`` with the corruption ``kind`` (one of :data:`CORRUPTIONS`).

    ``params`` go to the function of that kind (:func:`stain`, :func:`gaussian`,
    :func:`scratch`, :func:`drops`, :func:`mix1`, :func:`mix2`). Returns
    ``(corrupted, mask)``; deterministic for a given ``seed``.
    """
    kind = check_choice(kind, "kind", CORRUPTIONS)
    fn = _FUNCS[kind]
    known = [p for p in inspect.signature(fn).parameters if p not in ("image", "seed")]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise TypeError(f"corrupt: {kind} takes the keywords {known}, not {unknown}.")
    return fn(image, seed=seed, **params)
