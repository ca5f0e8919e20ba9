r"""Background anomaly removal (Son, Kim, Kang, Lee, "Improvement on image anomaly
detection focusing on background anomaly").

Dust, lint or reflections on the *background* around an object are not defects of the
object, yet a detector fitted on clean backgrounds flags them. The method cleans the
background before detection, with four classic operations:

1. **Threshold of every channel.** A pixel whose three colour values
   :math:`u_R(x), u_G(x), u_B(x)` (on adkit's image scale [0, 1] like every image and
   threshold of the library) all lie in ``gray_range`` :math:`[g_{lo}, g_{hi}]` is taken
   as background:
   :math:`B_0 = \{x : g_{lo} \le u_c(x) \le g_{hi}\ \forall c \in \{R, G, B\}\}`, as in the
   paper, which thresholds each RGB channel in :math:`[150, 255]` on the 8-bit scale, i.e.
   ``(150 / 255, 1.0)`` here (:data:`PAPER_GRAY_RANGE`): a bright, nearly grey background
   around a darker or coloured object. ``threshold="luma"`` thresholds the grey level
   :math:`g(x)` (BT.601 luma) instead. The range selects the **background**; pass the range
   that your background occupies (adkit's synthetic objects lie on a dark-to-mid
   background: about ``(0, 100 / 255)``, see notebook 01). 8-bit values (above 1) are
   refused with a hint rather than read on another scale.
2. **Opening then closing** of that mask with a square structuring element of side
   ``kernel_size``: :math:`B = (B_0 \circ K) \bullet K`. The opening removes thin or
   small "background-coloured" parts of the object (a dark crack on a bright part stays
   part of the object); the closing fills the small holes of the background mask, which
   are exactly the dust particles whose colour fell outside the range.
3. **Blur** of the grey-level image :math:`g` (``blur="average"`` or ``"median"``, window
   ``blur_size``), as in the paper, which blurs the background in greyscale
   (``color="rgb"`` blurs each channel instead).
4. **Composite**: the blurred grey level on the background (in the three channels), the
   untouched image on the object,

   .. math:: u'_c(x) = \mathbb{1}_B(x)\,(\mathrm{blur}\ g)(x) + (1 - \mathbb{1}_B(x))\,u_c(x).

Particles smaller than half the blur window fade under the average (and disappear under
the median); the object, outside the mask, is left exactly as it was, so defects on it
stay visible.

Window sides may be even, as in the paper (e.g. 14): an even window of side k covers
the pixels from :math:`-\lfloor k/2 \rfloor` to :math:`\lceil k/2 \rceil - 1` around each
pixel (scipy's origin convention), a half-pixel shift of the mask or the blur.

Defaults: the paper's best setting, an average filter of size 11 (``blur="average",
blur_size=11``); the structuring element's side is 9 (the paper explores sizes from 5 to
15; 9 is this implementation's default, not a value from the paper).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from ..checks import check_choice, check_images
from ..params import (Integral, Interval, Options, ParameterValueError, Real, Tuple,
                      check_param)
from .base import Transform

__all__ = ["BackgroundCleanup", "clean_background", "background_mask", "PAPER_GRAY_RANGE"]

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601 (OpenCV's grey)
_BLURS = ("average", "median")
_THRESHOLDS = ("rgb", "luma")
_COLORS = ("gray", "rgb")


#: the paper's grey range of the background, 150-255 on the 8-bit scale, on adkit's
#: image scale [0, 1]
PAPER_GRAY_RANGE = (150 / 255, 1.0)
_GRAY_RANGE = Tuple(Interval(Real, 0, 1), length=2, hint=(
    "Grey levels are on adkit's image scale [0, 1], like the images: divide 8-bit levels "
    "by 255 (the paper's 150-255 is (150 / 255, 1.0))."))
_WINDOW = Interval(Integral, 1, 99)


def _check_order(lo, hi, owner=None) -> None:
    if lo > hi:
        where = f"{owner}: " if owner else ""
        raise ParameterValueError(f"{where}gray_range must be (low, high) with low <= high, "
                                  f"got ({lo:g}, {hi:g}).")


def _check_range(gray_range, owner=None) -> tuple[float, float]:
    lo, hi = check_param(gray_range, _GRAY_RANGE, "gray_range", owner)
    _check_order(lo, hi, owner)
    return lo, hi


def _check_window(value, name, owner=None) -> int:
    return check_param(value, _WINDOW, name, owner)


def background_mask(images: Any, gray_range=PAPER_GRAY_RANGE, kernel_size: int = 9,
                    threshold: str = "rgb") -> np.ndarray:
    """The cleaned background mask (N, H, W) bool: every channel (or the grey level) in
    ``gray_range``, then opening and closing.

    Parameters are those of :func:`clean_background`.
    """
    x = check_images(images, "images")
    lo, hi = _check_range(gray_range, "background_mask")
    k = _check_window(kernel_size, "kernel_size", "background_mask")
    check_choice(threshold, "threshold", _THRESHOLDS)
    if threshold == "rgb":
        raw = ((x >= lo) & (x <= hi)).all(-1)
    else:
        gray = x @ _LUMA
        raw = (gray >= lo) & (gray <= hi)
    st = np.ones((1, k, k), bool)
    # border_value=1 for the erosion inside the opening, so the image border is not eroded
    opened = ndimage.binary_dilation(ndimage.binary_erosion(raw, st, border_value=1), st)
    closed = ndimage.binary_erosion(ndimage.binary_dilation(opened, st), st, border_value=1)
    return closed


def _blur(x: np.ndarray, blur: str, size: int) -> np.ndarray:
    win = (1, size, size) + (1,) * (x.ndim - 3)
    if blur == "median":
        return ndimage.median_filter(x, size=win, mode="reflect")
    return ndimage.uniform_filter(x, size=win, mode="reflect")


def clean_background(images: Any, gray_range=PAPER_GRAY_RANGE, kernel_size: int = 9,
                     blur: str = "average", blur_size: int = 11, threshold: str = "rgb",
                     color: str = "gray", return_mask: bool = False):
    """Blur the background only, leaving the object untouched (Son et al.).

    Parameters
    ----------
    images : array (N, H, W, 3) or (H, W, 3)
        Float images in [0, 1].
    gray_range : (low, high) in [0, 1], default (150 / 255, 1.0)
        Levels of the **background** on the [0, 1] scale of the images, that each of
        its R, G and B values must lie in (the grey level with ``threshold="luma"``); the
        paper's value, 150-255 on the 8-bit scale, is for a bright background. For
        adkit's synthetic objects (dark background) use about (0, 100 / 255).
    kernel_size : int, default 9
        Side of the square structuring element of the opening and the closing of the
        background mask (even sides allowed, as in the paper).
    blur : {"average", "median"}, default "average"
        Filter applied to the background (the paper's best: average).
    blur_size : int, default 11
        Window side of the blur (the paper's best: 11; even sides allowed).
    threshold : {"rgb", "luma"}, default "rgb"
        Every channel in ``gray_range`` (the paper), or the BT.601 grey level.
    color : {"gray", "rgb"}, default "gray"
        Blur the grey level and put it on the background's three channels (the paper:
        the background is blurred in greyscale), or blur each channel.
    return_mask : bool
        Also return the background masks (N, H, W).

    Returns
    -------
    cleaned : float32, shaped like ``images``; and the masks if ``return_mask``.
    """
    single = np.ndim(images) == 3
    x = check_images(images, "images")
    check_choice(blur, "blur", _BLURS)
    check_choice(color, "color", _COLORS)
    b = _check_window(blur_size, "blur_size", "clean_background")
    mask = background_mask(x, gray_range, kernel_size, threshold)
    if color == "gray":
        blurred = _blur((x @ _LUMA).astype(np.float32), blur, b)[..., None]
    else:
        blurred = _blur(x, blur, b)
    out = np.where(mask[..., None], blurred, x).astype(np.float32)
    if single:
        out, mask = out[0], mask[0]
    return (out, mask) if return_mask else out


class BackgroundCleanup(Transform):
    """Background anomaly removal as a normalization step (Son et al.); nothing to fit.

    Every image gets its background (pixels whose R, G and B all lie in ``gray_range``,
    cleaned by an opening then a closing) replaced by the average (or median) blur of its
    grey level, the object kept untouched. See :func:`clean_background` for the
    parameters and the module docstring for the formulas. ``fit`` only records that the
    step is ready.

    Parameters
    ----------
    gray_range : (low, high) in [0, 1], default (150 / 255, 1.0)
        Levels of the background's channels on the [0, 1] scale of the images (paper:
        150-255 on the 8-bit scale, a bright background).
    kernel_size : int, default 9
    blur : {"average", "median"}, default "average" (the paper's best)
    blur_size : int, default 11 (the paper's best)
    threshold : {"rgb", "luma"}, default "rgb" (the paper: every channel)
    color : {"gray", "rgb"}, default "gray" (the paper: a greyscale background)
    """

    _parameter_constraints = {
        "gray_range": _GRAY_RANGE,
        "kernel_size": _WINDOW,
        "blur": Options(*_BLURS),
        "blur_size": _WINDOW,
        "threshold": Options(*_THRESHOLDS),
        "color": Options(*_COLORS),
    }

    def __init__(self, *, gray_range=PAPER_GRAY_RANGE, kernel_size: int = 9,
                 blur: str = "average", blur_size: int = 11, threshold: str = "rgb",
                 color: str = "gray"):
        self._set_params(locals())

    def _check_params(self, p):
        _check_order(*p["gray_range"])

    def _transform(self, images: np.ndarray) -> np.ndarray:
        return clean_background(images, self.gray_range, self.kernel_size, self.blur,
                                self.blur_size, self.threshold, self.color)

    def transform(self, images: Any) -> np.ndarray:
        """Clean the backgrounds (no fit needed: fitted on first use)."""
        self._mark_fitted()
        return super().transform(images)

    def transform_with_inverse(self, images: Any):
        self._mark_fitted()
        return super().transform_with_inverse(images)
