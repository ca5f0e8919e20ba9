"""Reading image and mask files from disk, never returning wrong data silently.

One set of rules serves every reader of folders (:mod:`adkit.data.mvtec`,
:mod:`adkit.data.folder`):

Images (:func:`read_image`) become float32 (H, W, 3) in [0, 1], scaled by the
*bit depth of the file*, never by the content of one image:

===========================================  ==========================================
file                                          value read
===========================================  ==========================================
8-bit gray, RGB, palette, RGBA (PNG, JPEG,    raw / 255 (alpha is ignored; gray and
BMP, TIFF)                                    palette images become RGB)
16-bit gray or RGB (PNG, TIFF)                raw / 65535, without going through 8 bits
1-bit (bilevel)                               0 or 1
32-bit float (TIFF, PIL mode ``F``)           the value itself; values outside [0, 1]
                                              (beyond a 1e-4 rounding tolerance, then
                                              clipped), NaN or infinity are an error:
                                              adkit does not guess a white level
32-bit integer (PIL mode ``I``), signed       an error: no standard white level; convert
integers, more than 4 channels                the file to 8/16-bit or to float in [0, 1]
===========================================  ==========================================

TIFF files are decoded by ``tifffile`` (exact for 16-bit and float RGB, planar or
not), falling back to Pillow for compressions that ``tifffile`` cannot decode
without ``imagecodecs`` (e.g. LZW). Pillow decodes 16-bit *RGB* PNG files at 8 bits
per channel only (the values are right to 1/255): :func:`read_image` says so with a
:class:`PrecisionWarning`. A multi-frame file (TIFF stack, animated GIF) is read as
its first frame.

Masks (:func:`read_mask`) become bool (H, W): **any non-zero pixel is defect**
(0/255 and 0/1 masks alike, any channel of a colour mask).

Hidden files and folders (names starting with ``.``, such as macOS's AppleDouble
``._000.png`` or ``.ipynb_checkpoints``, and ``__MACOSX``) are never read
(:func:`list_images`, :func:`list_folders`). Every error names the file.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..checks import check_positive_int
from .split import Split

__all__ = ["IMAGE_EXTENSIONS", "ImageFileError", "MissingMaskWarning", "PrecisionWarning",
           "Entry", "is_hidden", "list_images", "list_folders", "read_image", "read_mask",
           "read_split", "check_size", "check_count", "subsample", "index_by_stem",
           "find_mask", "warn_missing_masks"]

#: the file name endings read as images (case-insensitive)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

_TIFF = (".tif", ".tiff")


class ImageFileError(ValueError):
    """An image or mask file cannot be read as adkit expects; the message names it."""


class MissingMaskWarning(UserWarning):
    """Some anomalous images have no ground-truth mask (``Split.has_mask`` is False)."""


class PrecisionWarning(UserWarning):
    """A file was decoded with less precision than it holds."""


def is_hidden(path: Path) -> bool:
    """True for names starting with ``.`` (AppleDouble ``._x.png``, ``.DS_Store``,
    ``.ipynb_checkpoints``) and for ``__MACOSX``."""
    name = Path(path).name
    return name.startswith(".") or name == "__MACOSX"


def list_images(folder, extensions: Sequence[str] | None = None) -> list[Path]:
    """The image files directly in ``folder``, sorted by name; hidden files are skipped."""
    ext = tuple(e.lower() for e in (extensions or IMAGE_EXTENSIONS))
    return sorted(p for p in Path(folder).iterdir()
                  if not is_hidden(p) and p.suffix.lower() in ext and p.is_file())


def list_folders(folder) -> list[Path]:
    """The sub-folders of ``folder``, sorted by name; hidden folders are skipped."""
    return sorted(p for p in Path(folder).iterdir() if not is_hidden(p) and p.is_dir())


def check_size(size) -> tuple[int, int] | None:
    """``None``, an int or ``(height, width)`` → ``None`` or ``(height, width)``."""
    if size is None:
        return None
    if isinstance(size, (tuple, list)) and len(size) == 2:
        return (check_positive_int(size[0], "size[0]", 8),
                check_positive_int(size[1], "size[1]", 8))
    if isinstance(size, (tuple, list)):
        raise ValueError(f"size must be an int or (height, width), got {size!r}.")
    return (check_positive_int(size, "size", 8),) * 2


def check_count(n, name: str) -> int | None:
    """``None`` (all images) or a positive integer; bools, floats and strings refused."""
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{name} must be a positive integer or None (read all images), "
                        f"got {n!r} of type {type(n).__name__}.")
    if n < 1:
        raise ValueError(f"{name} must be a positive integer or None (read all images), "
                         f"got {n}.")
    return int(n)


# -- decoding ------------------------------------------------------------------------

def _error(path, what: str) -> ImageFileError:
    return ImageFileError(f"could not read the image file {path}: {what}")


def _decode_tiff(path: Path):
    """(array, note) with tifffile, or None where tifffile cannot decode the file."""
    try:
        import tifffile
    except ImportError:   # pragma: no cover - tifffile comes with scikit-image
        return None
    from PIL import Image
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            axes, shape = page.axes, page.shape
            pixels = int(np.prod([n for a, n in zip(axes, shape) if a in "YX"]))
            limit = Image.MAX_IMAGE_PIXELS
            if limit and pixels > 2 * limit:     # PIL's rule against decompression bombs
                raise ImageFileError(
                    f"the image file {path} is too large for PIL's safety limit against "
                    f"decompression bombs ({pixels} pixels > 2 x MAX_IMAGE_PIXELS = "
                    f"{2 * limit}). If you trust the file, raise the limit "
                    "(PIL.Image.MAX_IMAGE_PIXELS = None) or resize the file first.")
            arr = page.asarray()
    except ImageFileError:
        raise
    except Exception:   # unknown codec (LZW without imagecodecs), not a TIFF...: use PIL
        return None
    if "S" in axes and axes.index("S") != arr.ndim - 1:   # planar RGB: (3, H, W)
        arr = np.moveaxis(arr, axes.index("S"), -1)
    return arr, None


def _decode_pil(path: Path):
    from PIL import Image, UnidentifiedImageError
    note = None
    try:
        with Image.open(path) as im:
            mode = im.mode
            rawmodes = " ".join(str(getattr(t, "args", t)) for t in (im.tile or ()))
            im.load()
            if mode == "1":
                arr = np.asarray(im, dtype=bool)
            elif mode in ("L", "RGB"):
                arr = np.asarray(im)
                if mode == "RGB" and "16" in rawmodes:
                    note = (f"{path} holds 16 bits per channel in RGB; Pillow decodes it "
                            "at 8 bits per channel (values right to 1/255). Save it as a "
                            "16-bit TIFF to keep the full precision.")
            elif mode.startswith("I;16") and not mode.endswith("S"):
                arr = np.asarray(im).astype(np.uint16)
            elif mode == "I":
                if "16" not in rawmodes or "16S" in rawmodes:
                    raise _error(path, "it holds 32-bit (or signed) integers, which have no "
                                       "standard white level. Convert it to 8 or 16 bits, or "
                                       "to 32-bit float in [0, 1].")
                arr = np.asarray(im).astype(np.uint16)
            elif mode == "F":
                arr = np.asarray(im, dtype=np.float32)
            elif mode in ("P", "PA", "LA", "La", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"):
                arr = np.asarray(im.convert("RGB"))
            else:
                raise _error(path, f"PIL mode {mode!r} is not supported; save it as 8 or "
                                   "16-bit gray or RGB (PNG or TIFF).")
    except Image.DecompressionBombError as exc:
        raise ImageFileError(
            f"the image file {path} is too large for PIL's safety limit against "
            f"decompression bombs ({exc}). If you trust the file, raise the limit "
            "(PIL.Image.MAX_IMAGE_PIXELS = None) or resize the file first.") from exc
    except ImageFileError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _error(path, f"{exc}. The file is corrupt or not an image; re-download or "
                           "re-extract it, or remove that file.") from exc
    return arr, note


def _decode(path: Path):
    path = Path(path)
    if path.suffix.lower() in _TIFF:
        got = _decode_tiff(path)
        if got is not None:
            return got
    return _decode_pil(path)


def _gray_or_rgb(arr: np.ndarray, path) -> np.ndarray:
    """Drop alpha; (H, W) or (H, W, 3), else an error."""
    if arr.ndim == 3 and arr.shape[-1] in (2, 4):      # gray + alpha, RGBA: drop alpha
        arr = arr[..., :-1]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
        raise _error(path, f"its pixels have shape {arr.shape}; expected a gray or RGB "
                           "image (with or without alpha).")
    return arr


def _to_float(arr: np.ndarray, path) -> np.ndarray:
    """Native values → float32 in [0, 1], scaled by the bit depth."""
    if arr.dtype == bool:
        return arr.astype(np.float32)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float32)
        if not np.all(np.isfinite(out)):
            raise _error(path, "it holds NaN or infinite values.")
        lo, hi = float(out.min()), float(out.max())
        if lo < -1e-4 or hi > 1 + 1e-4:
            raise _error(path, f"it holds floating-point values in [{lo:.4g}, {hi:.4g}]; "
                               "adkit reads float images as intensities in [0, 1] and does "
                               "not guess a white level. Rescale the file to [0, 1] (or "
                               "save it as 8 or 16-bit integers).")
        return np.clip(out, 0, 1)
    raise _error(path, f"it holds {arr.dtype} values, which have no standard white "
                       "level. Convert it to 8 or 16 bits, or to float in [0, 1].")


def _resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear (PIL) resize of a (H, W) or (H, W, 3) image: uint8 on its 8-bit values,
    float32 channel by channel (no trip through 8 bits)."""
    from PIL import Image
    h, w = size
    if arr.shape[:2] == (h, w):
        return arr
    if arr.dtype == np.uint8:
        return np.asarray(Image.fromarray(arr).resize((w, h), Image.BILINEAR))
    planes = [arr] if arr.ndim == 2 else [arr[..., c] for c in range(arr.shape[-1])]
    out = [np.asarray(Image.fromarray(np.ascontiguousarray(p, np.float32)).resize(
        (w, h), Image.BILINEAR)) for p in planes]
    return np.clip(out[0] if arr.ndim == 2 else np.stack(out, -1), 0, 1)


def _read_image(path, size):
    arr, note = _decode(Path(path))
    arr = _gray_or_rgb(arr, path)
    native = arr.shape[:2]
    if arr.dtype != np.uint8:
        arr = _to_float(arr, path)
    if size is not None:
        arr = _resize(arr, size)
    img = _to_float(arr, path) if arr.dtype == np.uint8 else arr
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return img.astype(np.float32, copy=False), native, note


def read_image(path, size=None) -> np.ndarray:
    """Read an image file as float32 (H, W, 3) in [0, 1] (module docstring: the rules).

    ``size`` (int or (height, width)) resizes it bilinearly (PIL; 8-bit files are
    resized on their 8-bit values, deeper files on floats).
    """
    img, _, note = _read_image(path, check_size(size))
    if note:
        warnings.warn(note, PrecisionWarning, stacklevel=2)
    return img


def _read_mask(path) -> np.ndarray:
    arr, _ = _decode(Path(path))
    if arr.ndim == 3:
        if arr.shape[-1] in (2, 4):
            arr = arr[..., :-1]
        arr = arr.any(-1) if arr.dtype == bool else (arr != 0).any(-1)
    elif arr.ndim != 2:
        raise _error(path, f"a mask must be one gray (or colour) image, got pixels of "
                           f"shape {arr.shape}.")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise _error(path, "the mask holds NaN or infinite values.")
    return np.asarray(arr != 0)


def read_mask(path, size=None, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read a mask file as bool (H, W): any non-zero pixel is defect.

    ``shape`` is the native (height, width) of the mask's image: a mask of another
    size is an error (it is never stretched). ``size`` resizes it by nearest
    neighbour, like its image.
    """
    from PIL import Image
    m = _read_mask(path)
    if shape is not None and m.shape != tuple(shape):
        raise ImageFileError(
            f"the mask {path} is {m.shape[1]}x{m.shape[0]} pixels but its image is "
            f"{shape[1]}x{shape[0]}: a mask must have the size of its image (adkit does not "
            "stretch masks). Fix or remove that mask.")
    size = check_size(size)
    if size is not None and m.shape != size:
        m = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize(
            (size[1], size[0]), Image.NEAREST)) > 0
    return m


def subsample(n_total: int, n: int | None, rng, strata: np.ndarray | None = None
              ) -> np.ndarray:
    """Sorted indices of ``n`` of ``n_total`` items drawn by ``rng`` (all when ``n`` is
    None or too large); with ``strata`` the proportion of each stratum is kept."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    if strata is None:
        return np.sort(rng.choice(n_total, n, replace=False))
    picked = []
    groups = [np.flatnonzero(strata == v) for v in np.unique(strata)]
    quotas = [int(round(n * len(g) / n_total)) for g in groups]
    while sum(quotas) > n:
        quotas[int(np.argmax(quotas))] -= 1
    while sum(quotas) < n:
        quotas[int(np.argmin([q - len(g) for q, g in zip(quotas, groups)]))] += 1
    for g, q in zip(groups, quotas):
        picked.append(rng.choice(g, min(q, len(g)), replace=False))
    return np.sort(np.concatenate(picked))


def index_by_stem(files: Sequence[Path]) -> dict[str, list[Path]]:
    """``{file stem: [files]}`` (several files may share a stem)."""
    out: dict[str, list[Path]] = {}
    for f in files:
        out.setdefault(f.stem, []).append(f)
    return out


def find_mask(image: Path, masks: dict[str, list[Path]], folder) -> Path | None:
    """The mask file of ``image`` among ``masks`` (by stem): ``<stem>_mask.*``, else
    ``<stem>.*``; two candidates for one image are an error."""
    for key in (f"{image.stem}_mask", image.stem):
        found = [p for p in masks.get(key, []) if p.resolve() != image.resolve()]
        if len(found) > 1:
            raise ImageFileError(
                f"the image {image} has several mask files in {folder}: "
                f"{[p.name for p in found]}; keep one.")
        if found:
            return found[0]
    return None


def warn_missing_masks(test: Split, where: str) -> None:
    """Warn (:class:`MissingMaskWarning`) when some images of ``test`` have no mask."""
    unknown = ~test.has_mask
    if not unknown.any():
        return
    kinds = sorted({test.defect_types[i] for i in np.flatnonzero(unknown)})
    warnings.warn(
        f"{int(unknown.sum())} of {len(test)} test images ({', '.join(kinds)}) have no "
        f"ground-truth mask ({where}): their masks are unknown (test.has_mask is False, "
        "test.masks all False for them). Image metrics work; adkit.metrics.evaluate "
        "reports pixel metrics as NaN; test[test.has_mask] keeps the images whose "
        "masks are known.", MissingMaskWarning, stacklevel=3)


# -- a list of files → a Split ----------------------------------------------------------

@dataclass
class Entry:
    """One image file of a dataset and what is known about it.

    ``mask`` is the mask file of an anomalous image; ``has_mask=False`` marks an
    anomalous image without any (its mask is unknown, not empty). Good images
    (``label == 0``) need no mask file: their mask is known to be empty.
    """

    image: Path
    label: int
    defect_type: str
    name: str
    mask: Path | None = None
    has_mask: bool = True


def read_split(entries: Sequence[Entry], size=None, progress: bool = True,
               desc: str = "reading", shape: tuple[int, int] | None = None) -> Split:
    """Read the files of ``entries`` into a :class:`~adkit.data.Split`.

    With ``size=None`` every image must have the same native size (``shape`` when
    given, e.g. that of the training images); otherwise the first image of another
    size stops the reading with an error naming both files.
    """
    from tqdm.auto import tqdm
    size = check_size(size)
    imgs, masks, known, notes = [], [], [], []
    ref = None if shape is None else ("the training images are", tuple(shape))
    with tqdm(total=len(entries), desc=desc, disable=not progress, leave=False) as bar:
        for e in entries:
            img, native, note = _read_image(e.image, size)
            if note:
                notes.append(note)
            if size is None:
                if ref is None:
                    ref = (f"the image {e.image} is", native)
                elif native != ref[1]:
                    raise ImageFileError(
                        f"the image {e.image} is {native[1]}x{native[0]} pixels but "
                        f"{ref[0]} {ref[1][1]}x{ref[1][0]}: images of different sizes "
                        "need size= (e.g. size=256) to resize them all to one size.")
            imgs.append(img)
            # an anomalous image without a mask file has an unknown mask, not an empty one
            has = bool(e.has_mask) and (e.label == 0 or e.mask is not None)
            if e.mask is not None and has:
                masks.append(read_mask(e.mask, size, shape=native))
            else:
                masks.append(np.zeros(img.shape[:2], bool))
            known.append(has)
            bar.update()
    if notes:
        more = f" ({len(notes) - 1} more files alike)" if len(notes) > 1 else ""
        warnings.warn(notes[0] + more, PrecisionWarning, stacklevel=3)
    if not imgs:
        h, w = size or shape or (8, 8)
        return Split(np.zeros((0, h, w, 3), np.float32))
    return Split(np.stack(imgs), np.stack(masks),
                 np.array([e.label for e in entries], np.int64),
                 [e.defect_type for e in entries], [e.name for e in entries],
                 has_mask=np.array(known, bool))
