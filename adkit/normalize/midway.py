r"""Midway histogram equalization of N images (Delon, JMIV 2004).

Two photographs of the same scene taken with different exposures have different
histograms. *Midway equalization* gives them all one common histogram, "in the middle"
of theirs, while keeping the order of the grey levels of each image (no pixel
becomes brighter than a pixel that was brighter than it).

With :math:`H_i` the cumulative histogram of image :math:`i` (per channel) and
:math:`H_i^{-1}` its inverse, the quantile function, the midway cumulative histogram
of N images is the harmonic-like mean

.. math::

    H_{\mathrm{mid}} = \Big(\frac{1}{N}\sum_{i=1}^{N} H_i^{-1}\Big)^{-1},

and every image is *specified* onto it: :math:`u_i \mapsto H_{\mathrm{mid}}^{-1}\circ H_i(u_i)`.
For two images this is Delon's original midway image pair; for N images it is the
"midway of N images" of the same paper. When all images have P pixels, the quantile
function of image i is simply its sorted pixel values, so

- the midway quantile function is the **average of the sorted pixel values**, and
- specification is **rank assignment**: the pixel of rank r receives the r-th value of
  the midway quantile function (ties broken stably, in raster order).

A test image is specified onto the midway quantile function of the *training* set
(:class:`Midway`), interpolated when its size differs. The result is exact: two
constant images meet halfway; an image and its gain-changed copy end with identical
histograms; the order of the N images does not matter.

Reference
---------
J. Delon, "Midway image equalization", Journal of Mathematical Imaging and Vision
21(2), 119-134, 2004.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..checks import check_image, check_images
from ..params import Integral, Interval
from .base import Transform

__all__ = ["Midway", "midway_equalize", "specify_histogram", "quantile_function"]


def _as_image_list(images: Any, name: str) -> list[np.ndarray]:
    """A list of validated (H, W, 3) float32 images; sizes may differ."""
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError(f"{name} is empty: expected at least one (H, W, 3) image.")
        return [check_image(im, f"{name}[{i}]") for i, im in enumerate(images)]
    return list(check_images(images, name))


def _resample_quantiles(q: np.ndarray, n: int) -> np.ndarray:
    """Quantile function ``q`` (..., Q) sampled at levels (k + 1/2)/Q, resampled to n levels.

    The value of rank r among n samples is the quantile of level (r + 1/2)/n, linearly
    interpolated between the stored levels (and held constant beyond the extreme ones).
    """
    m = q.shape[-1]
    if m == n:
        return q
    src = (np.arange(m) + 0.5) / m
    dst = (np.arange(n) + 0.5) / n
    flat = q.reshape(-1, m)
    return np.stack([np.interp(dst, src, row) for row in flat]).reshape(*q.shape[:-1], n)


def quantile_function(image: Any) -> np.ndarray:
    """Sorted values of each channel of one image: its quantile function, (3, H*W) float64."""
    x = check_image(image)
    return np.sort(x.reshape(-1, 3).T, axis=1).astype(np.float64)


# images per batch in the vectorized sorts (bounds the memory of the rank arrays)
_CHUNK_PIXELS = 2 ** 21


def _channels(x: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) -> (N, 3, H*W) contiguous, float32."""
    return np.ascontiguousarray(np.moveaxis(x.reshape(len(x), -1, 3), -1, 1), np.float32)


def _midway_quantiles(images, n_quantiles: int | None = None) -> np.ndarray:
    """The midway quantile function (3, Q) of a batch or a list of images (float64).

    Each image's sorted values are resampled to Q levels (Q = the largest number of
    pixels unless given) and averaged. The N values at each level are sorted before
    being summed, so the result does not depend on the order of the images, bit for bit.
    """
    if isinstance(images, np.ndarray):            # one size: sort the whole batch at once
        qs = np.sort(_channels(images), axis=-1).astype(np.float64)      # (N, 3, P)
        q = n_quantiles or qs.shape[-1]
        stack = _resample_quantiles(qs, q)
    else:
        qs = [np.sort(_channels(im[None])[0], axis=1).astype(np.float64) for im in images]
        q = n_quantiles or max(x.shape[1] for x in qs)
        stack = np.stack([_resample_quantiles(x, q) for x in qs])      # (N, 3, Q)
    # levels in rows, images in columns: sort each row, then average it
    per_level = np.sort(np.ascontiguousarray(stack.reshape(len(stack), -1).T), axis=1)
    return per_level.mean(axis=1).reshape(3, q)


def _specify_batch(x: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Rank assignment of each channel of (N, H, W, 3) images onto ``quantiles`` (3, Q)."""
    n, h, w, _ = x.shape
    p = h * w
    target = _resample_quantiles(quantiles, p).astype(np.float32)          # (3, P)
    out = np.empty((n, 3, p), np.float32)
    step = max(1, _CHUNK_PIXELS // (3 * p))
    for i in range(0, n, step):
        order = np.argsort(_channels(x[i:i + step]), axis=-1, kind="stable")
        np.put_along_axis(out[i:i + step], order, target[None], axis=-1)
    return np.moveaxis(out, 1, -1).reshape(n, h, w, 3)


def _specify(image: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Rank assignment of one (H, W, 3) image onto ``quantiles`` (3, Q)."""
    return _specify_batch(image[None], quantiles)[0]


def specify_histogram(images: Any, quantiles: Any) -> np.ndarray:
    r"""Give each image, per channel, the histogram described by ``quantiles``.

    Histogram specification by rank: within each channel the pixel of rank r (ties
    broken stably, in raster order) receives the value of level (r + 1/2)/P of the
    target quantile function, P being the number of pixels. That is
    :math:`u \mapsto H_{\mathrm{target}}^{-1}\circ H_u(u)` computed exactly.

    Parameters
    ----------
    images : array (N, H, W, 3) or (H, W, 3), or list of (H, W, 3) images
        Float images in [0, 1].
    quantiles : array (Q,), (3, Q), or an image (H', W', 3)
        The target quantile function (sorted values) shared by all channels (Q,), one
        per channel (3, Q), or a reference image whose histograms are copied.
        Q need not equal the number of pixels of the images (linear interpolation).

    Returns
    -------
    float32 array shaped like ``images`` (a list in, a list out).
    """
    q = np.asarray(quantiles, dtype=np.float64)
    if q.ndim == 3 and q.shape[-1] == 3:
        q = quantile_function(q)
    elif q.ndim == 1:
        q = np.broadcast_to(q, (3, q.shape[0]))
    elif not (q.ndim == 2 and q.shape[0] == 3):
        raise ValueError(
            f"quantiles has shape {q.shape}; expected a quantile function (Q,), one per "
            "channel (3, Q), or a reference image (H, W, 3).")
    if q.shape[-1] < 1 or not np.all(np.isfinite(q)):
        raise ValueError("quantiles must be a non-empty array of finite values.")
    q = np.sort(q, axis=-1)
    if isinstance(images, (list, tuple)):
        return [_specify(im, q) for im in _as_image_list(images, "images")]
    single = np.ndim(images) == 3
    x = check_images(images, "images")
    out = _specify_batch(x, q)
    return out[0] if single else out


def midway_equalize(images: Any, *more: Any) -> Any:
    r"""Midway equalization of N images, per channel (Delon 2004).

    :math:`H_{\mathrm{mid}} = (\frac{1}{N}\sum_i H_i^{-1})^{-1}`, then each image is
    specified onto :math:`H_{\mathrm{mid}}`. Every output image has the same histogram
    (exactly, for images of equal size), each keeps the order of its own grey levels.

    Call it with a batch ``midway_equalize(images)`` ((N, H, W, 3) array, or a list of
    (H, W, 3) images whose sizes may differ), or with the images one by one,
    ``u2, v2 = midway_equalize(u, v)`` (the two-image midway of the paper).

    Returns
    -------
    float32 array (N, H, W, 3), a list when given a list, or a tuple when given
    several images as separate arguments.
    """
    if more:
        ims = _as_image_list([images, *more], "images")
        q = _midway_quantiles(ims)
        return tuple(_specify(im, q) for im in ims)
    if isinstance(images, (list, tuple)):
        ims = _as_image_list(images, "images")
        q = _midway_quantiles(ims)
        return [_specify(im, q) for im in ims]
    x = check_images(images, "images")
    return _specify_batch(x, _midway_quantiles(x))


class Midway(Transform):
    r"""Midway equalization onto the training set (Delon, JMIV 2004), a normalization step.

    ``fit`` computes the midway quantile function of the N training images, per
    channel, :math:`H_{\mathrm{mid}}^{-1} = \frac{1}{N}\sum_i H_i^{-1}` (the average of
    their sorted pixel values); ``transform`` specifies every image (training or test)
    onto it by rank assignment. After it, every image has the same colour histogram, so
    lamp and camera drift (gain, gamma, colour cast) no longer differ between images,
    while the order of grey levels inside each image, and thus its content, is kept.

    Parameters
    ----------
    n_quantiles : int or None, default None
        Number of levels at which the midway quantile function is stored. ``None``
        keeps one per training pixel (exact; the paper's construction). A smaller value
        (e.g. 4096) makes the saved model lighter; values in between are interpolated.

    Attributes
    ----------
    quantiles_ : float32 (3, Q)
        The midway quantile function of the training images, per channel.

    Examples
    --------
    >>> step = Midway().fit(train)               # doctest: +SKIP
    >>> equalized = step.transform(test)         # doctest: +SKIP
    """

    _parameter_constraints = {"n_quantiles": [None, Interval(Integral, 2, 2 ** 24)]}

    def __init__(self, *, n_quantiles: int | None = None):
        self._set_params(locals())

    def _fit(self, images: np.ndarray) -> None:
        self.quantiles_ = _midway_quantiles(images, self.n_quantiles).astype(np.float32)

    def _transform(self, images: np.ndarray) -> np.ndarray:
        return _specify_batch(images, self.quantiles_.astype(np.float64))

    def _get_state(self) -> dict:
        return {"quantiles": self.quantiles_}

    def _set_state(self, state: dict) -> None:
        from ..estimator import ModelFileError, state_array
        self.quantiles_ = state_array(state, "quantiles", shape=(3, self.n_quantiles),
                                      min_value=0.0, max_value=1.0)
        if self.quantiles_.shape[1] < 2:
            raise ModelFileError("the saved 'quantiles' hold fewer than 2 levels")
