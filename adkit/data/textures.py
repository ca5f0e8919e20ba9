"""Real photographs of textures, shipped inside scikit-image, with inserted defects.

>>> from adkit.data import textures
>>> train, test = textures.load("gravel", n_train=60, n_test=40, size=128, seed=0)

Each texture is one 512x512 photograph bundled in the scikit-image wheel (no
download). Its bottom-right quadrant is kept for the test crops and the rest of the
photograph (an L shape) for the training crops, so no test pixel was ever seen in
training. A crop is a random square of the photograph, turned by a random flip or
90° rotation (the *normal* variability: a texture looks the same in every
orientation), converted to RGB float32 in [0, 1].

Anomalous test crops receive one defect each, with an exact boolean mask (the
pixels the defect changed):

``scratch``
    a thin bright or dark curve (a quadratic Bézier stroke, 3-5 px wide at 128 px);
``color``
    a blob tinted with a saturated colour (the texture stays visible under it);
``patch``
    a blob of another texture pasted in (foreign material);
``blur``
    a blob where the texture is blurred (a Gaussian of σ = 2-4 px at 128 px:
    lost detail, e.g. a smear or an out-of-focus bump).

Sources (as documented by scikit-image, all under the Creative Commons CC0 licence):
``brick`` (a brick wall, CC0Textures "Bricks25"), ``grass`` (DeviantArt user
linolafett, "Grass-01"), ``gravel`` (CC0Textures "Gravel04").
"""
from __future__ import annotations

import functools
import zlib

import numpy as np

from ..checks import check_batch_memory, check_in_range, check_positive_int, check_seed
from .split import Split

__all__ = ["TEXTURES", "DEFECTS", "ORIGIN", "load", "photo"]

#: names of the photographs (functions of :mod:`skimage.data` bundled in its wheel)
TEXTURES = ("brick", "grass", "gravel")

#: defect types inserted in the anomalous test crops
DEFECTS = ("scratch", "color", "patch", "blur")

#: where each photograph comes from (scikit-image's documentation)
ORIGIN = {
    "brick": "a brick wall; CC0Textures 'Bricks25' (cc0textures.com), CC0 licence; "
             "perspective-corrected, rotated, cropped and scaled by scikit-image",
    "grass": "grass; DeviantArt 'Grass-01' by linolafett, CC0 licence; cropped to "
             "512x512 and converted to grayscale by scikit-image",
    "gravel": "gravel; CC0Textures 'Gravel04' (cc0textures.com), CC0 licence; rescaled, "
              "cropped to 512x512 and converted to grayscale by scikit-image",
}

# The orientations that leave a texture "normal". Bricks have horizontal mortar
# lines and vertical joints: a 90° turn would make a new kind of wall, so only flips.
_ORIENTATIONS = {"brick": "flips", "grass": "dihedral", "gravel": "dihedral"}


def _check_name(name: str) -> str:
    if name not in TEXTURES:
        raise ValueError(
            f"unknown texture {name!r}: the photographs shipped with scikit-image are "
            f"{list(TEXTURES)} (e.g. adkit.data.load('textures/{TEXTURES[0]}')).")
    return name


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    import skimage.data
    from skimage import img_as_float32
    from skimage.color import gray2rgb
    try:
        im = getattr(skimage.data, name)()
    except Exception as exc:  # pragma: no cover - a broken scikit-image install
        raise RuntimeError(
            f"could not read the photograph {name!r} from scikit-image ({exc}); it ships "
            "inside the scikit-image wheel: reinstall scikit-image.") from exc
    im = img_as_float32(im)
    if im.ndim == 2:
        im = gray2rgb(im)
    im = np.ascontiguousarray(im[..., :3], dtype=np.float32)
    im.setflags(write=False)
    return im


def photo(name: str) -> np.ndarray:
    """The whole photograph ``name`` as RGB float32 (H, W, 3) in [0, 1] (read-only).

    The test crops come from its bottom-right quadrant, the training crops from the
    rest.
    """
    return _photo(_check_name(name))


# -- crops -----------------------------------------------------------------------------

def _orient(crop: np.ndarray, code: int) -> np.ndarray:
    """One of the 8 symmetries of the square: ``code % 4`` quarter turns, then a
    left-right flip when ``code >= 4``."""
    out = np.rot90(crop, code % 4)
    if code >= 4:
        out = out[:, ::-1]
    return out


def _random_orientation(name: str, rng: np.random.Generator) -> int:
    if _ORIENTATIONS[name] == "dihedral":
        return int(rng.integers(8))
    # identity, up-down flip (= half turn + left-right flip), left-right flip, half turn
    return int(rng.choice([0, 6, 4, 2]))


def _resize(crop: np.ndarray, size: int) -> np.ndarray:
    if crop.shape[0] == size:
        return np.ascontiguousarray(crop, dtype=np.float32)
    from skimage.transform import resize
    return resize(crop, (size, size), order=1, mode="reflect",
                  anti_aliasing=crop.shape[0] > size).astype(np.float32)


def _crops(name: str, n: int, side: int, size: int, test: bool,
           rng: np.random.Generator) -> np.ndarray:
    im = _photo(name)
    h, w = im.shape[:2]
    h2, w2 = h // 2, w // 2
    out = np.empty((n, size, size, 3), np.float32)
    for i in range(n):
        if test:
            y = int(rng.integers(h2, h - side + 1))
            x = int(rng.integers(w2, w - side + 1))
        else:
            while True:  # anywhere not touching the test quadrant
                y = int(rng.integers(0, h - side + 1))
                x = int(rng.integers(0, w - side + 1))
                if y + side <= h2 or x + side <= w2:
                    break
        crop = _orient(im[y:y + side, x:x + side], _random_orientation(name, rng))
        out[i] = _resize(crop, size)
    return out


# -- defects ---------------------------------------------------------------------------

def _blob(size: int, radius: float, rng: np.random.Generator) -> np.ndarray:
    """A random smooth blob: an ellipse whose radius wobbles with a few harmonics."""
    from skimage.draw import polygon
    t = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    r = np.ones_like(t)
    for k in (2, 3, 4, 5):
        r += rng.uniform(0, 0.25 / k * 2) * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    r = np.clip(r, 0.4, None)
    aspect = rng.uniform(0.6, 1.0)
    angle = rng.uniform(0, np.pi)
    dx, dy = radius * r * np.cos(t), radius * aspect * r * np.sin(t)
    px = dx * np.cos(angle) - dy * np.sin(angle)
    py = dx * np.sin(angle) + dy * np.cos(angle)
    reach = float(np.max(np.hypot(px, py)))
    margin = reach + 2
    cy, cx = rng.uniform(margin, size - margin, 2) if size > 2 * margin + 1 else \
        (size / 2, size / 2)
    rr, cc = polygon(cy + py, cx + px, shape=(size, size))
    mask = np.zeros((size, size), bool)
    mask[rr, cc] = True
    if not mask.any():
        mask[int(cy), int(cx)] = True
    return mask


def _scratch(im, rng, size):
    from scipy import ndimage
    length = rng.uniform(0.3, 0.7) * size
    a = rng.uniform(0, 2 * np.pi)
    margin = 0.1 * size
    mid = rng.uniform(margin + length / 2, size - margin - length / 2, 2) \
        if size - 2 * margin > length else np.array([size / 2, size / 2])
    d = 0.5 * length * np.array([np.sin(a), np.cos(a)])
    p0, p2 = mid - d, mid + d
    bend = rng.uniform(-0.3, 0.3) * length
    p1 = mid + bend * np.array([np.cos(a), -np.sin(a)])
    s = np.linspace(0, 1, int(4 * length) + 2)[:, None]
    pts = (1 - s) ** 2 * p0 + 2 * s * (1 - s) * p1 + s ** 2 * p2
    pts = np.clip(np.round(pts).astype(int), 0, size - 1)
    mask = np.zeros((size, size), bool)
    mask[pts[:, 0], pts[:, 1]] = True
    radius = int(rng.integers(1, max(2, round(size / 64)) + 1))
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    mask = ndimage.binary_dilation(mask, structure=yy ** 2 + xx ** 2 <= radius ** 2)
    mean = float(im[mask].mean())
    level = rng.uniform(0.0, 0.08) if mean > 0.5 else rng.uniform(0.92, 1.0)
    out = im.copy()
    out[mask] = 0.15 * im[mask] + 0.85 * level
    return out, mask


def _color(im, rng, size):
    from skimage.color import hsv2rgb
    mask = _blob(size, rng.uniform(0.06, 0.14) * size, rng)
    colour = hsv2rgb(np.array([[[rng.uniform(0, 1), rng.uniform(0.7, 1.0), 1.0]]]))[0, 0]
    alpha = rng.uniform(0.5, 0.8)
    tint = (1 - alpha) + alpha * colour / colour.mean()
    out = im.copy()
    out[mask] = np.clip(im[mask] * tint + 0.15 * alpha * colour, 0, 1)
    return out, mask


def _patch(im, rng, size, name):
    others = [t for t in TEXTURES if t != name]
    src_name = others[int(rng.integers(len(others)))]
    src = _photo(src_name)
    side = min(size, src.shape[0] // 2)
    y = int(rng.integers(0, src.shape[0] - side + 1))
    x = int(rng.integers(0, src.shape[1] - side + 1))
    src = _resize(_orient(src[y:y + side, x:x + side], int(rng.integers(8))), size)
    mask = _blob(size, rng.uniform(0.1, 0.2) * size, rng)
    out = im.copy()
    out[mask] = src[mask]
    return out, mask


def _blur(im, rng, size):
    from scipy import ndimage
    mask = _blob(size, rng.uniform(0.1, 0.2) * size, rng)
    sigma = rng.uniform(2.0, 4.0) * size / 128
    blurred = ndimage.gaussian_filter(im, sigma=(sigma, sigma, 0), mode="reflect")
    out = im.copy()
    out[mask] = blurred[mask]
    return out, mask


def _insert(kind: str, im: np.ndarray, rng: np.random.Generator, name: str):
    size = im.shape[0]
    if kind == "scratch":
        return _scratch(im, rng, size)
    if kind == "color":
        return _color(im, rng, size)
    if kind == "patch":
        return _patch(im, rng, size, name)
    return _blur(im, rng, size)


# -- public ----------------------------------------------------------------------------

def load(name: str, n_train: int = 60, n_test: int = 40, size: int = 128, seed=0,
         anomaly_ratio: float = 0.5, defects=None) -> tuple[Split, Split]:
    """Crops of a scikit-image texture photograph, with inserted defects in the test set.

    Parameters
    ----------
    name : str
        One of :data:`TEXTURES` (``"brick"``, ``"grass"``, ``"gravel"``).
    n_train : int, default 60
        Number of training crops (all good), from the photograph outside its
        bottom-right quadrant.
    n_test : int, default 40
        Number of test crops, from the bottom-right quadrant.
    size : int, default 128
        Side of the square crops in pixels. Crops are cut at the photograph's
        resolution up to 256 px (the side of the test quadrant); larger sizes are
        upsampled (bilinear) from 256 px crops.
    seed : int or numpy Generator, default 0
        Same seed, same crops and defects. Training crops do not depend on
        ``n_test`` and the other test settings.
    anomaly_ratio : float in [0, 1], default 0.5
        Fraction of the test crops that get a defect (rounded to an integer count).
    defects : sequence of str or None
        Defect types to insert, among :data:`DEFECTS`; None means all. The anomalous
        crops are shared out evenly among them, in the given order.

    Returns
    -------
    train, test : Split
        Test images come good first, then grouped by defect type; names look like
        ``"good/003"`` or ``"scratch/001"``.
    """
    _check_name(name)
    n_train = check_positive_int(n_train, "n_train")
    n_test = check_positive_int(n_test, "n_test")
    size = check_positive_int(size, "size", 16, maximum=4096)
    check_batch_memory(n_train + n_test, size, size, "texture crops")
    anomaly_ratio = check_in_range(anomaly_ratio, "anomaly_ratio", 0, 1)
    if defects is None:
        defects = DEFECTS
    if isinstance(defects, str):
        defects = (defects,)
    defects = tuple(defects)
    bad = [d for d in defects if d not in DEFECTS]
    if bad or not defects:
        raise ValueError(f"defects must be a non-empty list among {list(DEFECTS)}, got "
                         f"{list(defects)}.")
    rng = check_seed(seed)
    # independent streams: the training crops do not depend on the test settings
    # (and each photograph gets its own defect placements for the same seed)
    entropy = [int(rng.integers(2 ** 63)), zlib.crc32(name.encode())]
    streams = np.random.SeedSequence(entropy).spawn(3)
    train_rng, test_rng, defect_rng = (np.random.default_rng(s) for s in streams)

    im = _photo(name)
    side = min(size, im.shape[0] // 2, im.shape[1] // 2)
    train_imgs = _crops(name, n_train, side, size, False, train_rng)
    test_imgs = _crops(name, n_test, side, size, True, test_rng)

    n_anom = int(round(anomaly_ratio * n_test))
    n_good = n_test - n_anom
    kinds = [defects[i % len(defects)] for i in range(n_anom)]
    kinds = sorted(kinds, key=defects.index)  # grouped, in the given order
    masks = np.zeros((n_test, size, size), bool)
    types = ["good"] * n_good
    names = [f"good/{i:03d}" for i in range(n_good)]
    counter = {k: 0 for k in defects}
    for j, kind in enumerate(kinds):
        i = n_good + j
        test_imgs[i], masks[i] = _insert(kind, test_imgs[i], defect_rng, name)
        types.append(kind)
        names.append(f"{kind}/{counter[kind]:03d}")
        counter[kind] += 1
    labels = np.r_[np.zeros(n_good, np.int64), np.ones(n_anom, np.int64)]

    train = Split(train_imgs, np.zeros((n_train, size, size), bool),
                  np.zeros(n_train, np.int64), ["good"] * n_train,
                  [f"good/{i:03d}" for i in range(n_train)])
    test = Split(test_imgs, masks, labels, types, names)
    return train, test
