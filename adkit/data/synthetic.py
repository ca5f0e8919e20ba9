"""Procedural industrial images: three rigid objects, two textures, five defects.

>>> from adkit.data import synthetic
>>> train, test = synthetic.load("pill", n_train=60, n_test=40, size=256, seed=0)
>>> image, mask = synthetic.make_one("nut", defect="crack", pose=False)

Everything is drawn at ``size`` directly from analytic shapes (signed distances,
normals lit by one lamp, smooth ramps for anti-aliased edges) with numpy only, so a
batch of 100 images of 256x256 takes a fraction of a second.

Categories
----------
Objects (:data:`OBJECTS`), on a plain dark-to-mid background with a vignette, a
slight grain and a soft shadow:

``pill``
    a white/cream capsule (a rounded rectangle seen from above) with a printed red
    mark "AK", lit from the top left;
``nut``
    a steel hexagonal nut with chamfered corners, a bevelled round hole showing the
    thread and the background through it, and brushed-metal reflections;
``bottle``
    an amber glass bottle seen from above: concentric rings (body, shoulder, a
    bright lip) around a dark mouth.

Textures (:data:`TEXTURES_SYN`), filling the whole image:

``fabric``
    a plain weave (warp and weft threads going over and under each other) whose
    threads vary in tone and thickness and have slubs along their length;
``tile``
    a grid of ceramic tiles separated by grout, each tile with its own tone, a
    bevel lit from the top left and a mottled glaze.

Normal variability (the knobs)
------------------------------
Every knob is ``True`` (default strength 1), ``False``/``0`` (off) or a float
strength ``s`` in [0, 5] that scales the ranges given below: the exposure ranges, the
pose translation and rotation (the scale range stops growing at ``s = 1``), the number
of speckles and dust particles (their opacity too when ``s < 1``), the noise
standard deviation. Each knob has its own random
stream, so turning one off does not change what the others draw. Each simulates a
nuisance that one normalization method of the course is meant to remove:

``exposure`` -- global gain ``exp(U(-0.18, 0.18))``, gamma ``exp(U(-0.15, 0.15))`` and a
    colour cast (a per-channel gain ``exp(U(-0.05, 0.05))``) per image: lamp and camera
    drift. Exercises **midway histogram equalization** (``adkit.normalize.Midway``).
``pose`` -- rigid jitter of the object: translation up to 6% of the image size,
    rotation up to 10 degrees, scale 0.95-1.05. For textures, a random shift (up to
    the image size) and rotation (up to 10 degrees) of the pattern. Exercises
    **alignment / registration** (``adkit.normalize.Align``).
``speckles`` -- on the pill, 25-40 small red/brown speckles at random places on the
    capsule, a new pattern per image (a *normal* variation, as in the MVTec AD pill
    class). Mild equivalents elsewhere: machining pits (dark dots) on the nut face,
    specks of dust on the bottle glass, lint nubs on the fabric, dark pores in the
    tiles (4-15 dots of low contrast). Exercises **Noise2Noise** variability
    normalization (``adkit.normalize.N2N``), which learns to remove what is
    unpredictable from one image to the next.
``dust`` -- objects only: 2-6 small dark or bright particles on the *background*
    (never on the object, never in the masks: not a defect). Exercises
    **background cleanup** (``adkit.normalize.BackgroundCleanup``). No effect on
    textures.
``noise`` -- additive Gaussian sensor noise of standard deviation 0.015 (times the
    strength), drawn independently per pixel and channel. Every method has to cope
    with it.

Defects (:data:`DEFECTS`)
-------------------------
Drawn on the object (objects) or anywhere (textures), sized like MVTec AD defects
(about 0.3-3% of the image), each with its exact mask: the pixels whose value the
defect changed, and no other (a pixel outside the mask equals the good rendering of
the same image; see ``return_clean``).

``crack`` a thin dark (bright on dark surfaces) branching polyline;
``scratch`` a thin bright or dark curve, a few pixels wide;
``contamination`` a blob of a foreign colour with its own grainy texture;
``missing`` a chunk of the object replaced by background (a chip at its edge), or a
    hole in a texture;
``stain`` a smooth-edged colour change.

``defect_contrast`` (default 1) scales how visible a defect is: below 1 the defect is
blended with the defect-free scene (same shape, place and mask), to make subtle
defects that normal variability can hide.

Randomness: ``seed`` goes through :class:`numpy.random.SeedSequence`. In :func:`load`
the train and test sets use two independent sub-streams (changing ``n_test`` does
not change the training images), and in :func:`make` image ``i`` uses sub-stream
``i`` (so the first images do not depend on ``n``) split again per knob and for
the defect. The same arguments give bit-identical arrays.
"""
from __future__ import annotations

import functools
import numbers
import zlib
from typing import NamedTuple, Sequence

import numpy as np

from ..checks import check_in_range, check_positive_int
from .split import Split

__all__ = ["CATEGORIES", "OBJECTS", "TEXTURES_SYN", "DEFECTS", "DEFAULTS",
           "Generated", "load", "make", "make_one"]

#: rigid objects on a background
OBJECTS = ("pill", "nut", "bottle")
#: textures filling the image
TEXTURES_SYN = ("fabric", "tile")
#: every category of the synthetic dataset
CATEGORIES = OBJECTS + TEXTURES_SYN
#: defect types, in the order used to cycle through them
DEFECTS = ("crack", "scratch", "contamination", "missing", "stain")
#: what strength 1 (``True``) of each knob means
DEFAULTS = {
    "exposure": "gain exp(U(-0.18,0.18)), gamma exp(U(-0.15,0.15)), cast exp(U(-0.05,0.05))",
    "pose": "translation <= 6% of size, rotation <= 10 deg, scale 0.95-1.05",
    "speckles": "pill: 25-40 red/brown dots; others: 4-15 faint dots",
    "dust": "2-6 particles of radius 0.4-0.9% of size on the background (objects)",
    "noise": "Gaussian sigma = 0.015",
}
_KNOBS = ("exposure", "pose", "speckles", "dust", "noise")
_NOISE_SIGMA = 0.015

_F = np.float32
_LIGHT = np.array([-0.42, -0.52, 0.74])
_LIGHT /= np.linalg.norm(_LIGHT)
_HALF = _LIGHT + np.array([0.0, 0.0, 1.0])
_HALF /= np.linalg.norm(_HALF)


class Generated(NamedTuple):
    """What :func:`make` returns.

    Attributes
    ----------
    images : float32 (N, H, W, 3) in [0, 1]
    masks : bool (N, H, W), True on the pixels a defect changed
    defect_types : list of str, ``"good"`` or one of :data:`DEFECTS`
    clean : float32 (N, H, W, 3) or None: the same images without their defect
        (same pose, exposure, speckles, dust and noise), when ``return_clean=True``
    """

    images: np.ndarray
    masks: np.ndarray
    defect_types: list
    clean: np.ndarray | None


# -- argument checks ------------------------------------------------------------------

def _check_category(category) -> str:
    if not isinstance(category, str) or category not in CATEGORIES:
        raise ValueError(
            f"unknown synthetic category {category!r}: choose one of {list(CATEGORIES)} "
            f"(objects {list(OBJECTS)}, textures {list(TEXTURES_SYN)}), e.g. "
            "adkit.data.load('synthetic/pill')."
        )
    return category


def _strength(value, name: str) -> float:
    """A knob: True -> 1, False/None -> 0, a number >= 0 -> that strength."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return 1.0 if value else 0.0
    if not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be True, False or a strength >= 0 (1 = default), got {value!r}.")
    return check_in_range(value, name, 0.0, 5.0)


def _check_defects(defects) -> tuple:
    if defects is None:
        return DEFECTS
    if isinstance(defects, str):
        defects = (defects,)
    defects = tuple(defects)
    if not defects:
        raise ValueError(f"defects is empty: give one or more of {list(DEFECTS)}.")
    for d in defects:
        if d not in DEFECTS:
            raise ValueError(f"unknown defect type {d!r}: choose among {list(DEFECTS)}.")
    return defects


def _check_contrast(value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"defect_contrast must be a number in (0, 1] (1 = fully visible defects), "
            f"got {value!r}.")
    value = float(value)
    if not 0.0 < value <= 1.0:
        raise ValueError(
            f"defect_contrast must be in (0, 1] (1 = fully visible defects, smaller = "
            f"fainter; 0 would erase them), got {value}.")
    return value


def _seed_sequence(seed) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)):
        if seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {seed}.")
        return np.random.SeedSequence(int(seed))
    raise TypeError(f"seed must be a non-negative int (or a numpy SeedSequence), got {seed!r}.")


def _child(ss: np.random.SeedSequence, *keys: int) -> np.random.SeedSequence:
    """Sub-stream ``keys`` of ``ss``, without the state that ``ss.spawn`` keeps."""
    return np.random.SeedSequence(ss.entropy, spawn_key=tuple(ss.spawn_key) + keys,
                                  pool_size=ss.pool_size)


def _rng(ss, *keys) -> np.random.Generator:
    return np.random.default_rng(_child(ss, *keys))


# -- small geometric helpers -------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def _grid(size: int):
    """Pixel-centre coordinates in pixels, float32 (size, size) each (x columns, y rows)."""
    c = np.arange(size, dtype=_F) + _F(0.5)
    return np.broadcast_to(c[None, :], (size, size)), np.broadcast_to(c[:, None], (size, size))


def _hash01(a, b, seed: int):
    """Deterministic pseudo-random values in [0, 1) for integer lattice points (a, b)."""
    h = (a.astype(np.int64) * 73856093) ^ (b.astype(np.int64) * 19349663) ^ seed
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return ((h & 0xFFFF).astype(_F)) / _F(65536.0)


@functools.lru_cache(maxsize=16)
def _fixed(category: str, size: int):
    """Per-category fixed ingredients (background grain, tables): the same in every image."""
    from scipy import ndimage
    rng = np.random.default_rng(zlib.crc32(category.encode()))
    g1 = ndimage.gaussian_filter(rng.standard_normal((size, size)), max(1.0, size / 64))
    g2 = ndimage.gaussian_filter(rng.standard_normal((size, size)), size / 16)
    g1 /= g1.std() + 1e-12
    g2 /= g2.std() + 1e-12
    grain = (0.012 * g1 + 0.02 * g2).astype(_F)
    x, y = _grid(size)
    xn, yn = x / size - 0.5, y / size - 0.5
    vignette = (1 - 0.35 * (xn ** 2 + yn ** 2) - 0.10 * (xn + yn)).astype(_F)
    tables = {
        "tone_w": 1 + 0.07 * rng.standard_normal(64), "tone_f": 1 + 0.07 * rng.standard_normal(64),
        "width_w": rng.uniform(0.72, 0.92, 64), "width_f": rng.uniform(0.72, 0.92, 64),
        "slub_len_w": rng.uniform(3, 9, 64), "slub_ph_w": rng.uniform(0, 2 * np.pi, 64),
        "slub_len_f": rng.uniform(3, 9, 64), "slub_ph_f": rng.uniform(0, 2 * np.pi, 64),
        "tile_tone": 1 + 0.06 * rng.standard_normal((16, 16)),
        "tile_hue": 0.01 * rng.standard_normal((16, 16, 3)),
        "mottle": [(rng.uniform(1.5, 5), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi))
                   for _ in range(5)],
    }
    tables = {k: (np.asarray(v, _F) if k != "mottle" else v) for k, v in tables.items()}
    return grain, vignette, tables


def _window(cx, cy, half, size):
    """Row and column slices of the square of half-side ``half`` px around (cx, cy)."""
    x0, x1 = int(max(0, np.floor(cx - half))), int(min(size, np.ceil(cx + half) + 1))
    y0, y1 = int(max(0, np.floor(cy - half))), int(min(size, np.ceil(cy + half) + 1))
    return slice(y0, max(y0, y1)), slice(x0, max(x0, x1))


def _seg_dist(px, py, segs):
    """Distance from points (px, py) to the nearest of the segments (n, 4): x0 y0 x1 y1."""
    segs = np.asarray(segs, _F)
    ax, ay, bx, by = (segs[:, k, None, None] for k in range(4))
    dx, dy = bx - ax, by - ay
    L2 = np.maximum(dx * dx + dy * dy, _F(1e-12))
    t = np.clip(((px - ax) * dx + (py - ay) * dy) / L2, 0, 1)
    d2 = (px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2
    return np.sqrt(d2.min(0))


def _dots(shape, cx, cy, radius, opacity):
    """Anti-aliased discs drawn in small windows: (alpha map, index of the dot per pixel)."""
    h, w = shape
    alpha = np.zeros(shape, _F)
    index = np.full(shape, -1, np.int64)
    if len(cx) == 0:
        return alpha, index
    k = int(np.ceil(np.max(radius) + 1.5))
    o = np.arange(-k, k + 1)
    ix = np.floor(cx)[:, None, None].astype(np.int64) + o[None, None, :]
    iy = np.floor(cy)[:, None, None].astype(np.int64) + o[None, :, None]
    ix, iy = np.broadcast_arrays(ix, iy)
    d = np.hypot(ix + 0.5 - cx[:, None, None], iy + 0.5 - cy[:, None, None])
    a = (opacity[:, None, None] * np.clip(radius[:, None, None] - d + 0.5, 0, 1)).astype(_F)
    keep = (a > 0.02) & (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    n_idx = np.broadcast_to(np.arange(len(cx))[:, None, None], a.shape)
    iy, ix, a, n_idx = iy[keep], ix[keep], a[keep], n_idx[keep]
    np.maximum.at(alpha, (iy, ix), a)
    index[iy, ix] = n_idx
    return alpha, index


def _paint_dots(img, alpha, index, colors):
    sel = index >= 0
    if sel.any():
        a = alpha[sel][:, None]
        img[sel] = img[sel] * (1 - a) + np.asarray(colors, _F)[index[sel]] * a
    return img


def _lambert(nx, ny, nz, lx, ly, shininess):
    """Diffuse and specular terms for the lamp of direction (lx, ly, LIGHT_z)."""
    hx, hy = lx * _HALF[0] / _LIGHT[0], ly * _HALF[1] / _LIGHT[1]
    ndl = np.clip(nx * lx + ny * ly + nz * _F(_LIGHT[2]), 0, None)
    ndh = np.clip(nx * hx + ny * hy + nz * _F(_HALF[2]), 0, None)
    return ndl, ndh ** shininess


def _smoothstep(t):
    t = np.clip(t, 0, 1)
    return t * t * (3 - 2 * t)


# -- pose ----------------------------------------------------------------------------

class _Pose(NamedTuple):
    tx: float  # fraction of size
    ty: float
    theta: float  # radians
    scale: float


def _draw_pose(rng, strength, texture):
    u = rng.uniform(-1, 1, 4)
    if texture:
        return _Pose(float(u[0] * strength), float(u[1] * strength),
                     float(np.deg2rad(10) * u[2] * strength), 1.0)
    return _Pose(float(0.06 * u[0] * strength), float(0.06 * u[1] * strength),
                 float(np.deg2rad(10) * u[2] * strength), float(1 + 0.05 * u[3] * min(strength, 1.0)))


def _object_frame(size, pose):
    """Object coordinates (u, v) of each pixel, in units of the image size."""
    x, y = _grid(size)
    c, s = np.cos(pose.theta), np.sin(pose.theta)
    X = x / _F(size) - _F(0.5 + pose.tx)
    Y = y / _F(size) - _F(0.5 + pose.ty)
    k = _F(1.0 / pose.scale)
    u = (_F(c) * X + _F(s) * Y) * k
    v = (-_F(s) * X + _F(c) * Y) * k
    return u, v


def _to_image(size, pose, u, v):
    """Pixel coordinates of object points (u, v)."""
    c, s = np.cos(pose.theta), np.sin(pose.theta)
    u, v = np.asarray(u) * pose.scale, np.asarray(v) * pose.scale
    X = c * u - s * v
    Y = s * u + c * v
    return (X + 0.5 + pose.tx) * size, (Y + 0.5 + pose.ty) * size


def _light_in_object(pose):
    c, s = np.cos(pose.theta), np.sin(pose.theta)
    return _F(c * _LIGHT[0] + s * _LIGHT[1]), _F(-s * _LIGHT[0] + c * _LIGHT[1])


# -- objects ------------------------------------------------------------------------------

_PILL_A, _PILL_R = 0.21, 0.145
_PILL_MARK = np.array([  # "AK" in object units
    [-0.085, 0.035, -0.0625, -0.035], [-0.0625, -0.035, -0.04, 0.035],
    [-0.076, 0.008, -0.049, 0.008],
    [0.02, -0.035, 0.02, 0.035], [0.062, -0.035, 0.021, 0.004], [0.033, -0.006, 0.064, 0.035],
])


def _pill_sdf(u, v):
    dx = u - np.clip(u, -_PILL_A, _PILL_A)
    d = np.sqrt(dx * dx + v * v)
    return d - _F(_PILL_R), dx, d


def _hex_sdf(u, v, r):
    """Signed distance to a regular hexagon of apothem r (flat sides left and right)."""
    kx, ky, kz = -0.866025404, 0.5, 0.577350269
    px, py = np.abs(v), np.abs(u)  # swap so that the flat sides face left/right
    dot = np.minimum(kx * px + ky * py, 0)
    px = px - 2 * dot * kx
    py = py - 2 * dot * ky
    px = px - np.clip(px, -kz * r, kz * r)
    py = py - r
    return (np.sqrt(px * px + py * py) * np.sign(py)).astype(_F)


_NUT_R, _NUT_CORNER, _NUT_HOLE = 0.25, 0.272, 0.105
_BOTTLE_R, _BOTTLE_MOUTH = 0.40, 0.145


def _object_sdf(category, u, v):
    if category == "pill":
        return _pill_sdf(u, v)[0]
    r = np.sqrt(u * u + v * v)
    if category == "nut":
        outer = np.maximum(_hex_sdf(u, v, _NUT_R), r - _F(_NUT_CORNER))
        return np.maximum(outer, _F(_NUT_HOLE) - r)
    return r - _F(_BOTTLE_R)


def _render_object(category, size, pose, grain, vignette):
    """Background, object colour, coverage and signed distance (px) for one pose."""
    u, v = _object_frame(size, pose)
    px = _F(1.0 / (size * pose.scale))  # object units per pixel
    lx, ly = _light_in_object(pose)
    r = np.sqrt(u * u + v * v)
    if category == "pill":
        sdf, dx, d = _pill_sdf(u, v)
        k = _F(0.82 / _PILL_R)
        nx, ny = dx * k, v * k
        nz = np.sqrt(np.clip(1 - nx * nx - ny * ny, 0, 1))
        diff, spec = _lambert(nx, ny, nz, lx, ly, 24)
        shade = 0.30 + 0.62 * diff
        base = np.array([0.88, 0.85, 0.76], _F)
        col = base * shade[..., None] + (0.22 * spec)[..., None]
        # the printed mark, drawn in its window only
        mx, my = _to_image(size, pose, 0.0, 0.0)
        rows, cols = _window(mx, my, 0.13 * size * pose.scale, size)
        dm = _seg_dist(u[rows, cols], v[rows, cols], _PILL_MARK)
        w = max(0.0045, 0.7 * float(px))
        am = np.clip((w - dm) / px + 0.5, 0, 1)[..., None] * _F(0.9)
        ink = np.array([0.60, 0.16, 0.13], _F) * (0.55 + 0.45 * shade[rows, cols, None])
        col[rows, cols] = col[rows, cols] * (1 - am) + ink * am
        bg_col = np.array([0.27, 0.26, 0.25], _F)
    elif category == "nut":
        hexd = _hex_sdf(u, v, _NUT_R)
        outer = np.maximum(hexd, r - _F(_NUT_CORNER))
        sdf = np.maximum(outer, _F(_NUT_HOLE) - r)
        inv_r = 1 / np.maximum(r, _F(1e-6))
        cx, cy = u * inv_r, v * inv_r
        # flat face with brushed (anisotropic) reflections and faint turning rings
        phi = np.arctan2(v, u)
        face = 0.50 + 0.10 * np.cos(2 * phi + 0.7) + 0.02 * np.sin(r * _F(2 * np.pi / 0.02))
        # outer chamfer: a cone band near the corners, normal tilted outwards
        w_ch = _smoothstep((r - _F(0.255)) / _F(0.012))
        d_ch, s_ch = _lambert(0.6 * cx, 0.6 * cy, _F(0.8), lx, ly, 16)
        # inner bevel: normal tilted inwards, then the thread
        w_bev = _smoothstep((_F(0.15) - r) / _F(0.01))
        d_bev, s_bev = _lambert(-0.65 * cx, -0.65 * cy, _F(0.76), lx, ly, 16)
        thread = (0.22 + 0.10 * np.cos(r * _F(2 * np.pi / 0.006))).astype(_F)
        w_th = _smoothstep((_F(0.122) - r) / _F(0.004))
        val = face * (1 - w_ch) + (0.15 + 0.55 * d_ch + 0.4 * s_ch) * w_ch
        val = val * (1 - w_bev) + (0.12 + 0.55 * d_bev + 0.4 * s_bev) * w_bev
        val = val * (1 - w_th) + thread * w_th
        # a soft dark line where the hexagon faces meet the chamfer
        val = val * (1 - 0.25 * np.exp(-((hexd + 0.004) / 0.004) ** 2))
        col = np.array([0.93, 0.95, 1.0], _F) * val[..., None]
        bg_col = np.array([0.20, 0.20, 0.22], _F)
    else:  # bottle
        sdf = r - _F(_BOTTLE_R)
        inv_r = 1 / np.maximum(r, _F(1e-6))
        cx, cy = u * inv_r, v * inv_r
        # radial slope of the glass surface: flat top of the body, sloping shoulder,
        # a rounded lip, then the dark mouth
        t_body = np.clip((r - _F(0.30)) / _F(0.10), 0, 1)
        t_lip = np.clip((r - _F(0.18)) / _F(0.035), -1, 1)
        lip = np.exp(-((r - _F(0.18)) / _F(0.03)) ** 2)
        slope = 0.85 * t_body ** 1.5 + 0.3 * (1 - t_body) * (r > 0.22) + 0.8 * t_lip * lip
        slope = np.clip(slope, -0.95, 0.95)
        nz = np.sqrt(1 - slope * slope)
        diff, spec = _lambert(slope * cx, slope * cy, nz, lx, ly, 30)
        rings = 1 + 0.06 * np.sin(r * _F(2 * np.pi / 0.022))
        glass = np.array([0.42, 0.27, 0.13], _F)
        val = (0.35 + 0.55 * diff) * rings
        col = glass * val[..., None] + (0.45 * spec)[..., None]
        col = col + (0.25 * lip * np.clip(diff, 0, 1))[..., None]
        mouth = _smoothstep((_F(_BOTTLE_MOUTH) - r) / px + 0.5)
        inner = (0.03 + 0.10 * np.clip(r / _BOTTLE_MOUTH, 0, 1) ** 3)[..., None] * glass * 2
        col = col * (1 - mouth[..., None]) + inner * mouth[..., None]
        bg_col = np.array([0.58, 0.58, 0.55], _F)
    col = col * (1 + grain[..., None] * 0.8)
    cov = np.clip(_F(0.5) - sdf / px, 0, 1)
    # background with a soft shadow cast towards the bottom right
    su, sv = _object_frame(size, pose._replace(tx=pose.tx - 0.018, ty=pose.ty - 0.025))
    ssdf = _object_sdf(category, su, sv)
    shadow = _smoothstep(0.5 - ssdf / _F(0.035))
    bg = bg_col * (vignette * (1 + grain))[..., None]
    shaded_bg = bg * (1 - 0.45 * shadow)[..., None]
    scene = shaded_bg + (col - shaded_bg) * cov[..., None]
    return {"scene": scene.astype(_F), "cov": cov, "sdf_px": sdf / px, "bg": shaded_bg,
            "u": u, "v": v, "r": r, "px": float(px)}


# -- textures -----------------------------------------------------------------------------

def _texture_frame(size, pose, period):
    x, y = _grid(size)
    c, s = np.cos(pose.theta), np.sin(pose.theta)
    X = x - _F(size * (0.5 + pose.tx))
    Y = y - _F(size * (0.5 + pose.ty))
    return ((_F(c) * X + _F(s) * Y) / _F(period)).astype(_F), \
        ((-_F(s) * X + _F(c) * Y) / _F(period)).astype(_F)


def _render_texture(category, size, pose, grain, tables):
    if category == "fabric":
        U, V = _texture_frame(size, pose, size / 16)
        fl_u, fl_v = np.floor(U), np.floor(V)
        fu, fv = U - fl_u, V - fl_v
        i, j = fl_u.astype(np.int32), fl_v.astype(np.int32)
        iw, jf = i % 64, j % 64
        ww, wf = tables["width_w"][iw], tables["width_f"][jf]
        cw = np.sqrt(np.clip(1 - ((fu - 0.5) / (ww / 2)) ** 2, 0, 1))
        cf = np.sqrt(np.clip(1 - ((fv - 0.5) / (wf / 2)) ** 2, 0, 1))
        tw = tables["tone_w"][iw] * (1 + 0.07 * np.sin(2 * np.pi * V / tables["slub_len_w"][iw]
                                                      + tables["slub_ph_w"][iw]))
        tf = tables["tone_f"][jf] * (1 + 0.07 * np.sin(2 * np.pi * U / tables["slub_len_f"][jf]
                                                      + tables["slub_ph_f"][jf]))
        warp_top = ((i + j) % 2) == 0
        bw = 0.7 + 0.3 * np.sin(np.pi * fv)
        bf = 0.7 + 0.3 * np.sin(np.pi * fu)
        vw = cw * bw * tw
        vf = cf * bf * tf
        top_is_w = np.where(warp_top, vw > 0.05, ~(vf > 0.05))
        val = np.where(warp_top, np.maximum(vw, 0.55 * vf), np.maximum(vf, 0.55 * vw))
        warp_col = np.array([0.60, 0.53, 0.42], _F)
        weft_col = np.array([0.52, 0.48, 0.40], _F)
        gap = np.array([0.10, 0.09, 0.08], _F)
        thread = np.where(top_is_w[..., None], warp_col, weft_col)
        img = gap + (thread - gap) * val[..., None]
    else:  # tile
        P = size / 3.6
        U, V = _texture_frame(size, pose, P)
        fl_u, fl_v = np.floor(U), np.floor(V)
        fu, fv = U - fl_u, V - fl_v
        i, j = fl_u.astype(np.int32), fl_v.astype(np.int32)
        g = 0.035  # half grout width, tile units
        e = np.minimum(np.minimum(fu, 1 - fu), np.minimum(fv, 1 - fv))
        a = np.clip((e - g) * _F(P) + 0.5, 0, 1)
        ti, tj = i % 16, j % 16
        tone = tables["tile_tone"][ti, tj]
        hue = tables["tile_hue"][ti, tj]

        def ramp(x):
            return np.clip(1 - (x - g) / 0.07, 0, 1) ** 2
        bevel = 0.16 * (ramp(fu) + ramp(fv) - ramp(1 - fu) - ramp(1 - fv))
        mottle = np.zeros_like(U)
        for f, ang, ph in tables["mottle"]:
            mottle += np.sin(f * (np.cos(ang) * U + np.sin(ang) * V) * 2 * np.pi + ph)
        val = tone * (1 + bevel + 0.012 * mottle)
        tile_col = (np.array([0.52, 0.50, 0.47], _F) + hue) * val[..., None]
        gr = _hash01(np.floor(U * P / 1.5), np.floor(V * P / 1.5), 7)
        grout = np.array([0.80, 0.78, 0.73], _F) * (0.92 + 0.12 * gr)[..., None]
        img = grout + (tile_col - grout) * a[..., None]
    img = img * (1 + 0.6 * grain[..., None])
    ones = np.ones((size, size), _F)
    return {"scene": img.astype(_F), "cov": ones, "sdf_px": -1e6 * ones, "bg": None,
            "U": U, "V": V}


# -- normal variations ---------------------------------------------------------------------

def _add_speckles(category, R, size, pose, rng, strength):
    if strength <= 0:
        return
    scene = R["scene"]
    if category == "pill":
        n = int(round(rng.integers(25, 41) * min(strength, 3.0)))
        # uniform on the capsule, a little inside its rim
        pts = rng.uniform([-_PILL_A - _PILL_R, -_PILL_R], [_PILL_A + _PILL_R, _PILL_R], (4 * n, 2))
        inside = _pill_sdf(pts[:, 0], pts[:, 1])[0] < -0.012
        pts = pts[inside][:n]
        cx, cy = _to_image(size, pose, pts[:, 0], pts[:, 1])
        radius = np.maximum(rng.uniform(0.0025, 0.006, len(pts)) * size * pose.scale, 0.6)
        opac = rng.uniform(0.5, 0.85, len(pts)) * min(strength, 1.0)
        palette = np.array([[0.62, 0.22, 0.16], [0.55, 0.30, 0.18], [0.70, 0.33, 0.25]])
        colors = palette[rng.integers(0, 3, len(pts))]
    else:
        n = int(round(rng.integers(4, 16) * min(strength, 3.0)))
        if category in OBJECTS:
            region = np.flatnonzero(R["sdf_px"].ravel() < -0.02 * size)
        else:
            region = np.arange(size * size)
        if region.size == 0:
            return
        pick = region[rng.integers(0, len(region), n)]
        cy, cx = pick // size + rng.uniform(0, 1, n), pick % size + rng.uniform(0, 1, n)
        radius = np.maximum(rng.uniform(0.002, 0.004, n) * size, 0.6)
        opac = rng.uniform(0.25, 0.45, n) * min(strength, 1.0)
        local = scene[np.minimum(cy.astype(int), size - 1), np.minimum(cx.astype(int), size - 1)]
        if category in ("nut", "tile"):
            colors = local * 0.45  # pits, pores: darker than the surface
        else:
            colors = np.minimum(local * 1.5 + 0.1, 1)  # dust specks, lint: lighter
    alpha, index = _dots(scene.shape[:2], np.asarray(cx, float), np.asarray(cy, float),
                         np.asarray(radius, float), np.asarray(opac, float))
    if category in OBJECTS:
        alpha *= R["cov"]
    _paint_dots(scene, alpha, index, colors)


def _add_dust(R, size, rng, strength):
    if strength <= 0 or R["bg"] is None:
        return
    n = int(round(rng.integers(2, 7) * min(strength, 3.0)))
    if n == 0:
        return
    radius = np.maximum(rng.uniform(0.004, 0.009, n) * size, 0.7)
    cand = rng.uniform(0.03 * size, 0.97 * size, (8 * n, 2))
    sdf = R["sdf_px"][cand[:, 1].astype(int), cand[:, 0].astype(int)]
    cand = cand[sdf > 0.02 * size + 3][:n]
    k = len(cand)
    bright = rng.uniform(0, 1, n)[:k] < 0.4
    colors = np.where(bright[:, None], [[0.80, 0.78, 0.74]], [[0.05, 0.05, 0.05]])
    opac = rng.uniform(0.6, 0.9, n)[:k] * min(strength, 1.0)
    alpha, index = _dots(R["scene"].shape[:2], cand[:, 0], cand[:, 1], radius[:k], opac)
    alpha *= 1 - R["cov"]
    _paint_dots(R["scene"], alpha, index, colors)


def _exposure(img, rng, strength):
    u = rng.uniform(-1, 1, 5)
    if strength <= 0:
        return img
    gain = np.exp(0.18 * strength * u[0])
    gamma = np.exp(0.15 * strength * u[1])
    cast = np.exp(0.05 * strength * u[2:5])
    return (np.power(np.clip(img, 0, None), _F(gamma)) * (gain * cast).astype(_F)).astype(_F)


# -- defects ------------------------------------------------------------------------------

def _blob_alpha(size, cx, cy, radius, soft, rng, aspect=True):
    """Alpha of an irregular blob with a soft edge of ``soft`` px (0 outside, full array)."""
    n_h = 4
    amp = rng.uniform(0, 0.22, n_h) / np.arange(2, 2 + n_h) * 2
    ph = rng.uniform(0, 2 * np.pi, n_h)
    asp = rng.uniform(0.65, 1.0) if aspect else 1.0
    ang = rng.uniform(0, np.pi)
    reach = radius * (1 + amp.sum()) + soft + 2
    rows, cols = _window(cx, cy, reach, size)
    x, y = _grid(size)
    X, Y = x[rows, cols] - _F(cx), y[rows, cols] - _F(cy)
    c, s = np.cos(ang), np.sin(ang)
    Xr, Yr = c * X + s * Y, (-s * X + c * Y) / asp
    d = np.sqrt(Xr * Xr + Yr * Yr)
    phi = np.arctan2(Yr, Xr)
    rr = np.ones_like(d)
    for k in range(n_h):
        rr += amp[k] * np.cos((k + 2) * phi + ph[k])
    rr *= radius
    a = np.zeros((size, size), _F)
    a[rows, cols] = np.clip((rr - d) / soft + 0.5, 0, 1)
    return a


def _polyline_alpha(size, pts_list, widths):
    """Alpha of anti-aliased polylines (lists of (k, 2) vertex arrays in px)."""
    a = np.zeros((size, size), _F)
    x, y = _grid(size)
    for pts, w in zip(pts_list, widths):
        pts = np.asarray(pts, float)
        if len(pts) < 2:
            continue
        lo, hi = pts.min(0) - w - 2, pts.max(0) + w + 2
        c = (lo + hi) / 2
        rows, cols = _window(c[0], c[1], float(np.max(hi - lo) / 2), size)
        if rows.stop <= rows.start or cols.stop <= cols.start:
            continue
        segs = np.concatenate([pts[:-1], pts[1:]], 1)
        d = _seg_dist(x[rows, cols], y[rows, cols], segs)
        a[rows, cols] = np.maximum(a[rows, cols], np.clip(w / 2 - d + 0.5, 0, 1))
    return a


def _pick_center(R, category, size, rng, where="inside"):
    if category in TEXTURES_SYN:
        return rng.uniform(0.18 * size, 0.82 * size, 2)
    sdf = R["sdf_px"]
    if where == "edge":  # a chip out of the outline (for the nut: its outer outline)
        cond = (sdf < -0.01 * size) & (sdf > -0.035 * size)
        if category == "nut":
            cond &= R["r"] > 0.2
    else:
        cond = sdf < -0.05 * size
        if category == "bottle":
            cond &= R["r"] > 0.20
        if category == "nut":
            cond &= R["r"] > 0.15
    idx = np.flatnonzero(cond.ravel())
    if idx.size == 0:  # object (almost) out of the frame at extreme pose strengths
        idx = np.flatnonzero((sdf < 0).ravel())
    if idx.size == 0:
        return rng.uniform(0.18 * size, 0.82 * size, 2)
    k = idx[rng.integers(0, idx.size)]
    return np.array([k % size + rng.uniform(), k // size + rng.uniform()])


def _luma(c):
    c = np.asarray(c)
    return 0.3 * c[..., 0] + 0.59 * c[..., 1] + 0.11 * c[..., 2]


def _local_mean(scene, alpha):
    w = alpha.sum()
    if w <= 0:
        return scene.reshape(-1, 3).mean(0)
    return (scene * alpha[..., None]).sum((0, 1)) / w


def _pick_color(rng, palette, ref, min_dist=0.35):
    order = rng.permutation(len(palette))
    dists = [np.abs(np.asarray(palette[i]) - ref).sum() for i in order]
    for i, dd in zip(order, dists):
        if dd >= min_dist:
            return np.asarray(palette[i], _F)
    return np.asarray(palette[order[int(np.argmax(dists))]], _F)


def _apply_defect(kind, R, category, size, rng, contrast=1.0):
    """Draw one defect on R['scene'] (in place). Returns the exact mask.

    ``contrast`` in (0, 1] scales the defect's opacity: the drawn pixels become
    ``clean + contrast * (defect - clean)``; the mask does not depend on it.
    """
    scene, cov = R["scene"], R["cov"]
    min_w = 1.3
    if kind == "crack":
        c = _pick_center(R, category, size, rng)
        step = 0.013 * size
        n = int(rng.integers(12, 17))
        ang = rng.uniform(0, 2 * np.pi)
        turns = np.cumsum(rng.normal(0, 0.35, n))
        main = c + np.cumsum(np.stack([np.cos(ang + turns), np.sin(ang + turns)], 1) * step, 0)
        main = np.vstack([c, main])
        main -= (main[-1] - main[0]) / 2  # centre the crack on c
        lines, widths = [main], [max(0.013 * size, min_w + 0.4)]
        for _ in range(int(rng.integers(1, 3))):
            start = main[int(rng.integers(2, n - 2))]
            b_ang = ang + rng.choice([-1, 1]) * rng.uniform(0.5, 1.1)
            m = int(rng.integers(4, 8))
            bt = b_ang + np.cumsum(rng.normal(0, 0.35, m))
            br = start + np.cumsum(np.stack([np.cos(bt), np.sin(bt)], 1) * step * 0.9, 0)
            lines.append(np.vstack([start, br]))
            widths.append(max(0.008 * size, min_w))
        a = _polyline_alpha(size, lines, widths) * cov
        ref = _luma(_local_mean(scene, a))
        if ref < 0.35:
            target = np.array([0.85, 0.84, 0.80], _F) * np.ones_like(scene)
        else:
            target = scene * _F(0.18)
        a = a * _F(0.92)
    elif kind == "scratch":
        c = _pick_center(R, category, size, rng)
        L = rng.uniform(0.28, 0.42) * size
        ang = rng.uniform(0, np.pi)
        dvec = np.array([np.cos(ang), np.sin(ang)])
        p0, p2 = c - dvec * L / 2, c + dvec * L / 2
        p1 = c + np.array([-dvec[1], dvec[0]]) * rng.uniform(-0.2, 0.2) * L
        t = np.linspace(0, 1, 24)[:, None]
        pts = (1 - t) ** 2 * p0 + 2 * t * (1 - t) * p1 + t ** 2 * p2
        w = max(rng.uniform(0.010, 0.015) * size, min_w)
        a = _polyline_alpha(size, [pts], [w]) * cov
        ref = _luma(_local_mean(scene, a))
        # dark on tiles (their grout is light), else whichever contrasts
        bright = category != "tile" and (ref < 0.3 or (ref < 0.6 and rng.uniform() < 0.5))
        if bright:
            target = np.array([0.95, 0.95, 0.93], _F) * np.ones_like(scene)
        else:
            target = scene * _F(0.2)
        a = a * _F(0.9)
    elif kind == "contamination":
        c = _pick_center(R, category, size, rng)
        a = _blob_alpha(size, c[0], c[1], rng.uniform(0.05, 0.08) * size,
                        max(1.0, 0.004 * size), rng) * cov
        ref = _local_mean(scene, a)
        palette = [[0.25, 0.15, 0.08], [0.20, 0.45, 0.18], [0.15, 0.20, 0.55],
                   [0.85, 0.55, 0.10], [0.06, 0.06, 0.06], [0.85, 0.85, 0.80]]
        col = _pick_color(rng, palette, ref, 0.5)
        from scipy import ndimage
        tex = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(_F),
                                      max(0.7, size / 200))
        tex = 1 + 0.9 * tex / (tex.std() + 1e-6) * 0.25
        target = np.clip(col * tex[..., None], 0, 1)
        a = a * _F(0.95)
    elif kind == "stain":
        c = _pick_center(R, category, size, rng)
        rad = rng.uniform(0.055, 0.085) * size
        a = _blob_alpha(size, c[0], c[1], rad, 0.28 * rad, rng) * cov
        ref = _local_mean(scene, a)
        palette = [[0.70, 0.38, 0.10], [0.55, 0.48, 0.12], [0.25, 0.30, 0.62],
                   [0.35, 0.22, 0.12], [0.75, 0.70, 0.35], [0.60, 0.20, 0.35]]
        col = _pick_color(rng, palette, ref, 0.6)
        target = scene * _F(0.3) + col * _F(0.7)
        a = a * _F(0.9)
    elif kind == "missing":
        if category in OBJECTS:
            c = _pick_center(R, category, size, rng, where="edge")
            a = _blob_alpha(size, c[0], c[1], rng.uniform(0.06, 0.085) * size,
                            1.0, rng) * cov
            target = R["bg"]
        else:
            c = _pick_center(R, category, size, rng)
            rad = rng.uniform(0.045, 0.065) * size
            a = _blob_alpha(size, c[0], c[1], rad, 1.0, rng)
            x, y = _grid(size)
            # a dark hole, its far (bottom-right) wall catching a little light
            wall = np.clip(((x - c[0]) + (y - c[1])) / (2 * rad), 0, 1)
            target = (np.array([0.04, 0.035, 0.03], _F) * (1 + 2 * wall)[..., None])
    else:  # pragma: no cover - checked before
        raise ValueError(kind)
    a = np.where(a >= 0.04, a, 0).astype(_F)
    mask = a > 0
    if mask.any():
        am = a[mask][:, None]
        if contrast != 1.0:  # the default keeps the exact arithmetic of contrast 1
            am = am * _F(contrast)
        scene[mask] = scene[mask] * (1 - am) + np.asarray(target, _F)[mask] * am
    return mask


# -- the generator -----------------------------------------------------------------------

def _render(category, size, ss, kind, strengths, want_clean, contrast=1.0):
    """One image from stream ``ss``: returns (image, mask, clean or None)."""
    st = strengths
    texture = category in TEXTURES_SYN
    grain, vignette, tables = _fixed(category, size)
    pose = _draw_pose(_rng(ss, 0), st["pose"], texture) if st["pose"] > 0 \
        else _Pose(0.0, 0.0, 0.0, 1.0)
    if texture:
        R = _render_texture(category, size, pose, grain, tables)
    else:
        R = _render_object(category, size, pose, grain, vignette)
    _add_speckles(category, R, size, pose, _rng(ss, 1), st["speckles"])
    _add_dust(R, size, _rng(ss, 2), st["dust"])
    clean_scene = R["scene"].copy() if (want_clean and kind != "good") else None
    if kind != "good":
        mask = _apply_defect(kind, R, category, size, _rng(ss, 5), contrast)
    else:
        mask = np.zeros((size, size), bool)
    noise = None
    if st["noise"] > 0:
        noise = (_rng(ss, 4).standard_normal((size, size, 3), dtype=np.float32)
                 * _F(_NOISE_SIGMA * st["noise"]))

    def finish(scene):
        img = _exposure(scene, _rng(ss, 3), st["exposure"])
        if noise is not None:
            img = img + noise
        return np.clip(img, 0, 1).astype(_F)

    image = finish(R["scene"])
    clean = None
    if want_clean:
        clean = image.copy() if clean_scene is None else finish(clean_scene)
    return image, mask, clean


def make(category: str, n: int = 1, size: int = 256, seed=0, defective=False,
         defects: Sequence[str] | None = None, exposure=True, pose=True, speckles=True,
         dust=True, noise=True, return_clean: bool = False,
         defect_contrast: float = 1.0) -> Generated:
    """Generate ``n`` images of one category.

    Parameters
    ----------
    category : str
        One of :data:`CATEGORIES`.
    n : int
        Number of images.
    size : int
        Side of the square images in pixels (>= 32).
    seed : int or numpy.random.SeedSequence
        Image ``i`` is drawn from sub-stream ``i`` of this seed.
    defective : bool or sequence of str
        ``False``: all good. ``True``: all defective, the defect types cycling through
        ``defects``. A sequence of ``n`` entries, each ``"good"`` or a defect type.
    defects : sequence of str, optional
        Defect types to cycle through when ``defective=True`` (default all of
        :data:`DEFECTS`).
    exposure, pose, speckles, dust, noise : bool or float
        The normal variability knobs, see the module docstring (True = strength 1).
    return_clean : bool
        Also return each image rendered without its defect (everything else equal).
    defect_contrast : float in (0, 1]
        Visibility of the defects: each defect is blended with the defect-free
        scene, ``clean + defect_contrast * (defect - clean)`` on its pixels (before
        exposure and noise are applied). 1 (the default) draws the defects fully;
        smaller values make them subtle (the same shapes, places and masks, the same
        random draws) -- e.g. 0.3 to see normal variability (speckles) hide a faint
        stain from a detector.

    Returns
    -------
    Generated
        ``(images, masks, defect_types, clean)``.
    """
    category = _check_category(category)
    n = check_positive_int(n, "n")
    size = check_positive_int(size, "size", minimum=32)
    ss = _seed_sequence(seed)
    defects = _check_defects(defects)
    strengths = {k: _strength(v, k) for k, v in
                 zip(_KNOBS, (exposure, pose, speckles, dust, noise))}
    contrast = _check_contrast(defect_contrast)
    if isinstance(defective, (bool, np.bool_)):
        kinds = [defects[i % len(defects)] for i in range(n)] if defective else ["good"] * n
    elif isinstance(defective, str) or not isinstance(defective, Sequence):
        raise TypeError(
            f"defective must be True, False or a list of {n} defect types "
            f"('good' or one of {list(DEFECTS)}), got {defective!r}.")
    else:
        kinds = list(defective)
        if len(kinds) != n:
            raise ValueError(f"defective lists {len(kinds)} types for n={n} images.")
        for k in kinds:
            if k != "good" and k not in DEFECTS:
                raise ValueError(
                    f"unknown defect type {k!r}: use 'good' or one of {list(DEFECTS)}.")
    images = np.empty((n, size, size, 3), _F)
    masks = np.zeros((n, size, size), bool)
    clean = np.empty_like(images) if return_clean else None
    for i, kind in enumerate(kinds):
        img, m, cl = _render(category, size, _child(ss, i), kind, strengths, return_clean,
                             contrast)
        images[i], masks[i] = img, m
        if return_clean:
            clean[i] = cl
    return Generated(images, masks, kinds, clean)


def make_one(category: str, defect: str | None = None, size: int = 256, seed=0,
             exposure=True, pose=True, speckles=True, dust=True, noise=True,
             return_clean: bool = False, defect_contrast: float = 1.0):
    """One image with chosen knobs, for a notebook to show.

    ``defect`` is ``None``/``"good"`` or one of :data:`DEFECTS`; ``defect_contrast``
    in (0, 1] scales its visibility (see :func:`make`). Returns
    ``(image, mask)`` (float32 (H, W, 3), bool (H, W)), plus the image without its
    defect when ``return_clean=True``. ``make_one(c, d, seed=s)`` is image 0 of
    ``make(c, 1, seed=s, defective=[d])``.
    """
    kind = "good" if defect is None else defect
    g = make(category, 1, size=size, seed=seed, defective=[kind], exposure=exposure,
             pose=pose, speckles=speckles, dust=dust, noise=noise, return_clean=return_clean,
             defect_contrast=defect_contrast)
    if return_clean:
        return g.images[0], g.masks[0], g.clean[0]
    return g.images[0], g.masks[0]


def load(category: str, n_train: int = 60, n_test: int = 40, size: int = 256, seed=0,
         exposure=True, pose=True, speckles=True, dust=True, noise=True,
         anomaly_ratio: float = 0.5, defects: Sequence[str] | None = None,
         defect_contrast: float = 1.0) -> tuple[Split, Split]:
    """Train (all good) and test (good + defective) splits of one synthetic category.

    Parameters
    ----------
    category : str
        One of :data:`CATEGORIES` (``adkit.data.load("synthetic/<category>")``).
    n_train, n_test : int
        Numbers of training and test images.
    size : int
        Image side in pixels (default 256, at least 32).
    seed : int
        Train and test are drawn from two independent sub-streams of this seed.
    exposure, pose, speckles, dust, noise : bool or float
        Normal variability knobs (module docstring); True = default strength.
    anomaly_ratio : float in [0, 1]
        Fraction of defective test images (rounded; at least one good and one
        defective image when 0 < ratio < 1 and ``n_test >= 2``).
    defects : sequence of str, optional
        Defect types of the test set, cycled through (default all of :data:`DEFECTS`).
    defect_contrast : float in (0, 1]
        Visibility of the defects (1 = fully drawn, the default; smaller = the defect
        blended with the defect-free image, same masks), see :func:`make`.

    Returns
    -------
    train, test : Split
        Test images are ordered good first, then by defect type, and named like
        ``good_003`` and ``crack_001``.
    """
    category = _check_category(category)
    n_train = check_positive_int(n_train, "n_train")
    n_test = check_positive_int(n_test, "n_test")
    ratio = check_in_range(anomaly_ratio, "anomaly_ratio", 0.0, 1.0)
    defects = _check_defects(defects)
    contrast = _check_contrast(defect_contrast)
    ss = _seed_sequence(seed)
    knobs = dict(size=size, exposure=exposure, pose=pose, speckles=speckles, dust=dust,
                 noise=noise)
    tr = make(category, n_train, seed=_child(ss, 0), **knobs)
    train = Split(tr.images, tr.masks, np.zeros(n_train, np.int64), ["good"] * n_train,
                  [f"good_{i:03d}" for i in range(n_train)])
    n_def = int(round(ratio * n_test))
    if 0 < ratio < 1 and n_test >= 2:
        n_def = min(max(n_def, 1), n_test - 1)
    kinds = ["good"] * (n_test - n_def) + [defects[k % len(defects)] for k in range(n_def)]
    te = make(category, n_test, seed=_child(ss, 1), defective=kinds, defects=defects,
              defect_contrast=contrast, **knobs)
    order = sorted(range(n_test), key=lambda i: (0 if kinds[i] == "good" else
                                                 1 + defects.index(kinds[i]), i))
    counts: dict = {}
    names = []
    for i in order:
        k = kinds[i]
        names.append(f"{k}_{counts.get(k, 0):03d}")
        counts[k] = counts.get(k, 0) + 1
    labels = np.array([0 if kinds[i] == "good" else 1 for i in order], np.int64)
    test = Split(te.images[order], te.masks[order], labels, [kinds[i] for i in order], names)
    return train, test
