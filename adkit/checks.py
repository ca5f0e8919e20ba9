"""Input validation shared by every layer.

Each check turns a user's input into the library's convention (scikit-image's):
images are float32 arrays in [0, 1] of shape (N, H, W, 3); masks are bool (N, H, W).
When the input is wrong, the error says what was wrong, what was expected and
what to do, so a student never meets a traceback deep inside numpy or torch.
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

__all__ = [
    "check_images",
    "check_image",
    "check_masks",
    "check_same_size",
    "check_in_range",
    "check_choice",
    "check_positive_int",
    "check_seed",
    "check_batch_memory",
    "check_array",
]


def _as_array(images: Any, name: str) -> np.ndarray:
    if isinstance(images, np.ndarray):
        return images
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError(
                f"{name} is empty: expected at least one image of shape (H, W, 3)."
            )
        shapes = {np.shape(im) for im in images}
        if len(shapes) > 1:
            sizes = sorted({tuple(s[:2]) for s in shapes})
            if len(sizes) > 1:
                raise ValueError(
                    f"{name} must all have the same size, got {sizes[0]} and {sizes[1]}: "
                    "resize them first (e.g. skimage.transform.resize) or load the "
                    "dataset with size=."
                )
            raise ValueError(
                f"{name} must all have the same number of channels, got shapes "
                f"{sorted(shapes)}: convert them all to RGB (skimage.color.gray2rgb)."
            )
        return np.stack([np.asarray(im) for im in images])
    if hasattr(images, "images") and isinstance(getattr(images, "images"), np.ndarray):
        return images.images  # a Split
    raise TypeError(
        f"{name} must be a numpy array of shape (N, H, W, 3) or a list of (H, W, 3) "
        f"arrays, got {type(images).__name__}."
    )


def check_images(images: Any, name: str = "images", min_count: int = 1,
                 min_size: int = 8) -> np.ndarray:
    """Validate a batch of RGB images and return it as float32 (N, H, W, 3) in [0, 1].

    Accepts a (N, H, W, 3) array, a single (H, W, 3) image (returned as a batch of
    one), a list of equally sized images, or a ``Split``. uint8 input is rejected
    with a hint (``skimage.img_as_float32``) rather than silently rescaled, because
    a student who passes 0..255 floats by mistake would otherwise get nonsense.
    """
    arr = _as_array(images, name)
    if arr.dtype == np.uint8 or arr.dtype == np.uint16:
        raise TypeError(
            f"{name} have dtype {arr.dtype}; adkit expects float images in [0, 1]. "
            "Convert with skimage.img_as_float32(images)."
        )
    if arr.dtype.kind not in "fiu":  # bool, complex, strings, objects, dates...
        raise TypeError(
            f"{name} have dtype {arr.dtype}; expected float32 values in [0, 1]."
        )
    if arr.ndim == 3 and arr.shape[-1] == 3:
        arr = arr[None]
    if arr.ndim == 3 or (arr.ndim == 4 and arr.shape[-1] == 1):
        raise ValueError(
            f"{name} look grayscale (shape {arr.shape}); adkit expects RGB images of "
            "shape (N, H, W, 3). Convert with skimage.color.gray2rgb."
        )
    if arr.ndim == 2:
        raise ValueError(
            f"{name} has shape {arr.shape}, a single grayscale image; expected an RGB "
            "image (H, W, 3) or a batch of them (N, H, W, 3). Use "
            "skimage.color.gray2rgb(image)."
        )
    if arr.ndim != 4 or arr.shape[-1] != 3:
        if arr.ndim == 4 and arr.shape[1] == 3:
            hint = " It looks channel-first (N, 3, H, W): use np.moveaxis(x, 1, -1)."
        elif arr.ndim == 4 and arr.shape[-1] == 4:
            hint = " It has 4 channels (RGBA): drop alpha with x[..., :3]."
        else:
            hint = ""
        raise ValueError(
            f"{name} has shape {arr.shape}; expected (N, H, W, 3) RGB images.{hint}"
        )
    if arr.shape[0] < min_count:
        raise ValueError(
            f"{name} is empty: expected at least {min_count} image(s), got {arr.shape[0]}."
            if arr.shape[0] == 0 else
            f"{name}: expected at least {min_count} images, got {arr.shape[0]}."
        )
    if min(arr.shape[1:3]) < min_size:
        raise ValueError(
            f"{name} are {arr.shape[1]}x{arr.shape[2]} pixels; expected at least "
            f"{min_size}x{min_size}."
        )
    arr = arr.astype(np.float32, copy=False)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contain NaN or infinite values.")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -1e-4 or hi > 1 + 1e-4:
        hint = (" They look like 0..255 values: divide by 255."
                if hi > 1.5 and hi <= 255 else "")
        raise ValueError(
            f"{name} have values in [{lo:.3g}, {hi:.3g}]; expected [0, 1].{hint}"
        )
    if lo < 0 or hi > 1:
        arr = np.clip(arr, 0, 1)
    return arr


def check_image(image: Any, name: str = "image") -> np.ndarray:
    """Validate one RGB image and return it as float32 (H, W, 3) in [0, 1]."""
    arr = np.asarray(image) if not isinstance(image, np.ndarray) else image
    if arr.ndim == 4:
        if arr.shape[0] != 1:
            raise ValueError(f"{name}: expected one image (H, W, 3), got a batch {arr.shape}.")
        arr = arr[0]
    return check_images(arr[None] if arr.ndim == 3 and arr.shape[-1] == 3 else arr, name)[0]


def check_masks(masks: Any, shape: Sequence[int] | None = None, name: str = "masks") -> np.ndarray:
    """Validate boolean masks, returning bool (N, H, W); ``shape`` is the expected (N, H, W)."""
    arr = np.asarray(masks)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"{name} has shape {arr.shape}; expected (N, H, W).")
    if arr.dtype != bool:
        if np.issubdtype(arr.dtype, np.number) and np.isin(np.unique(arr), [0, 1]).all():
            arr = arr.astype(bool)
        else:
            raise TypeError(
                f"{name} must be boolean (or 0/1) arrays, got dtype {arr.dtype}; "
                "threshold it first, e.g. mask > 0.5."
            )
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise ValueError(f"{name} has shape {arr.shape}; expected {tuple(shape)}.")
    return arr


def check_same_size(a: np.ndarray, b: np.ndarray, what_a: str = "test images",
                    what_b: str = "train images") -> None:
    """Raise if two batches do not share (H, W)."""
    if a.shape[1:3] != b.shape[1:3]:
        raise ValueError(
            f"{what_a} are {a.shape[1]}x{a.shape[2]} but the {what_b} were "
            f"{b.shape[1]}x{b.shape[2]}: resize them to the same size."
        )


def check_in_range(value: Any, name: str, low: float | None = None, high: float | None = None,
                   low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    """Validate a real number within [low, high] (bounds optional)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}.")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    bad = ((low is not None and (v < low or (v == low and not low_inclusive))) or
           (high is not None and (v > high or (v == high and not high_inclusive))))
    if bad:
        lb = "[" if low_inclusive else "("
        hb = "]" if high_inclusive else ")"
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        raise ValueError(f"{name} must be in {lb}{lo}, {hi}{hb}, got {value!r}.")
    return v


def check_positive_int(value: Any, name: str, minimum: int = 1,
                       maximum: int | None = None) -> int:
    """Validate an integer >= ``minimum`` (and <= ``maximum`` when given)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}.")
    return int(value)


#: the most memory one batch of images made or loaded by adkit may take
MAX_BATCH_BYTES = 8 * 2 ** 30


def check_batch_memory(n: int, h: int, w: int, what: str = "images",
                       channels: int = 3) -> None:
    """Refuse a batch of ``n`` float32 images of ``h`` x ``w`` pixels that would take
    more than :data:`MAX_BATCH_BYTES` (8 GiB), before allocating it."""
    nbytes = int(n) * int(h) * int(w) * int(channels) * 4
    if nbytes > MAX_BATCH_BYTES:
        raise ValueError(
            f"{n} {what} of {h}x{w} pixels would take {nbytes / 2 ** 30:.3g} GiB of memory "
            f"(float32), more than adkit's limit of {MAX_BATCH_BYTES / 2 ** 30:.0f} GiB: ask "
            "for fewer or smaller images.")


def check_choice(value: Any, name: str, choices: Sequence[Any]) -> Any:
    """Validate that ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}.")
    return value


def check_seed(seed: Any) -> np.random.Generator:
    """Turn ``None``, an int >= 0 or a Generator into a numpy Generator."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, numbers.Integral)
                        and not isinstance(seed, (bool, np.bool_))):
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be None, an int >= 0 or a numpy Generator, got "
                             f"{seed}.")
        return np.random.default_rng(None if seed is None else int(seed))
    raise TypeError(f"seed must be None, an int >= 0 or a numpy Generator, got {seed!r}.")


def check_array(values: Any, name: str, *, ndim: int | Sequence[int] | None = None,
                finite: bool = True, allow_bool: bool = False, allow_empty: bool = False,
                dtype=np.float64, owner: str | None = None) -> np.ndarray:
    """``values`` as a numpy array of real numbers of ``dtype``, checked.

    ``dtype=None`` keeps the array's own dtype.
    ``ndim``: the accepted number(s) of dimensions; ``finite`` refuses NaN and
    infinities; ``allow_bool`` accepts booleans (as 0/1); ``allow_empty`` accepts an
    array without elements. Anything else (strings, objects, complex numbers, ragged
    lists) raises a ``TypeError`` / ``ValueError`` that names ``owner`` and ``name``.
    """
    where = f"{owner}: " if owner else ""
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError):  # ragged nested lists
        raise ValueError(f"{where}{name} must be an array of numbers, got a ragged or "
                         f"mixed {type(values).__name__}.") from None
    kinds = "fiub" if allow_bool else "fiu"
    if arr.dtype.kind not in kinds:
        what = "numbers or booleans" if allow_bool else "real numbers"
        raise TypeError(f"{where}{name} must be an array of {what}, got dtype {arr.dtype} "
                        f"({type(values).__name__}).")
    if ndim is not None:
        dims = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in dims:
            want = " or ".join(str(d) for d in dims)
            raise ValueError(f"{where}{name} must have {want} dimension(s), got shape "
                             f"{arr.shape}.")
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{where}{name} is empty (shape {arr.shape}).")
    out = arr if dtype is None else arr.astype(dtype, copy=False)
    if finite and out.dtype.kind == "f" and not np.isfinite(out).all():
        raise ValueError(f"{where}{name} holds NaN or infinite values.")
    return out
