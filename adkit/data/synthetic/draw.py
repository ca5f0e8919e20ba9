"""Drawing primitives in float32: the pixel grid, the lamp, anti-aliased dots and segments,
and the per-category ingredients that are the same in every image (grain, vignette,
texture tables).
"""
from __future__ import annotations

import functools
import zlib

import numpy as np

__all__ = ["F32", "LIGHT", "HALF", "pixel_grid", "hash01", "fixed_ingredients",
           "square_window", "segment_distance", "draw_dots", "paint_dots", "lambert",
           "smoothstep"]


F32 = np.float32
LIGHT = np.array([-0.42, -0.52, 0.74])
LIGHT /= np.linalg.norm(LIGHT)
HALF = LIGHT + np.array([0.0, 0.0, 1.0])
HALF /= np.linalg.norm(HALF)


@functools.lru_cache(maxsize=8)
def pixel_grid(size: int):
    """Pixel-centre coordinates in pixels, float32 (size, size) each (x columns, y rows)."""
    c = np.arange(size, dtype=F32) + F32(0.5)
    return np.broadcast_to(c[None, :], (size, size)), np.broadcast_to(c[:, None], (size, size))


def hash01(a, b, seed: int):
    """Deterministic pseudo-random values in [0, 1) for integer lattice points (a, b)."""
    h = (a.astype(np.int64) * 73856093) ^ (b.astype(np.int64) * 19349663) ^ seed
    h = (h ^ (h >> 13)) * 1274126177
    h = h ^ (h >> 16)
    return ((h & 0xFFFF).astype(F32)) / F32(65536.0)


@functools.lru_cache(maxsize=16)
def fixed_ingredients(category: str, size: int):
    """Per-category fixed ingredients (background grain, tables): the same in every image."""
    from scipy import ndimage
    rng = np.random.default_rng(zlib.crc32(category.encode()))
    g1 = ndimage.gaussian_filter(rng.standard_normal((size, size)), max(1.0, size / 64))
    g2 = ndimage.gaussian_filter(rng.standard_normal((size, size)), size / 16)
    g1 /= g1.std() + 1e-12
    g2 /= g2.std() + 1e-12
    grain = (0.012 * g1 + 0.02 * g2).astype(F32)
    x, y = pixel_grid(size)
    xn, yn = x / size - 0.5, y / size - 0.5
    vignette = (1 - 0.35 * (xn ** 2 + yn ** 2) - 0.10 * (xn + yn)).astype(F32)
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
    tables = {k: (np.asarray(v, F32) if k != "mottle" else v) for k, v in tables.items()}
    return grain, vignette, tables


def square_window(cx, cy, half, size):
    """Row and column slices of the square of half-side ``half`` px around (cx, cy)."""
    x0, x1 = int(max(0, np.floor(cx - half))), int(min(size, np.ceil(cx + half) + 1))
    y0, y1 = int(max(0, np.floor(cy - half))), int(min(size, np.ceil(cy + half) + 1))
    return slice(y0, max(y0, y1)), slice(x0, max(x0, x1))


def segment_distance(px, py, segs):
    """Distance from points (px, py) to the nearest of the segments (n, 4): x0 y0 x1 y1."""
    segs = np.asarray(segs, F32)
    ax, ay, bx, by = (segs[:, k, None, None] for k in range(4))
    dx, dy = bx - ax, by - ay
    L2 = np.maximum(dx * dx + dy * dy, F32(1e-12))
    t = np.clip(((px - ax) * dx + (py - ay) * dy) / L2, 0, 1)
    d2 = (px - ax - t * dx) ** 2 + (py - ay - t * dy) ** 2
    return np.sqrt(d2.min(0))


def draw_dots(shape, cx, cy, radius, opacity):
    """Anti-aliased discs drawn in small windows: (alpha map, index of the dot per pixel)."""
    h, w = shape
    alpha = np.zeros(shape, F32)
    index = np.full(shape, -1, np.int64)
    if len(cx) == 0:
        return alpha, index
    k = int(np.ceil(np.max(radius) + 1.5))
    o = np.arange(-k, k + 1)
    ix = np.floor(cx)[:, None, None].astype(np.int64) + o[None, None, :]
    iy = np.floor(cy)[:, None, None].astype(np.int64) + o[None, :, None]
    ix, iy = np.broadcast_arrays(ix, iy)
    d = np.hypot(ix + 0.5 - cx[:, None, None], iy + 0.5 - cy[:, None, None])
    a = (opacity[:, None, None] * np.clip(radius[:, None, None] - d + 0.5, 0, 1)).astype(F32)
    keep = (a > 0.02) & (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    n_idx = np.broadcast_to(np.arange(len(cx))[:, None, None], a.shape)
    iy, ix, a, n_idx = iy[keep], ix[keep], a[keep], n_idx[keep]
    np.maximum.at(alpha, (iy, ix), a)
    index[iy, ix] = n_idx
    return alpha, index


def paint_dots(img, alpha, index, colors):
    """Blend the dots of :func:`draw_dots` into ``img`` (in place), each with its colour."""
    sel = index >= 0
    if sel.any():
        a = alpha[sel][:, None]
        img[sel] = img[sel] * (1 - a) + np.asarray(colors, F32)[index[sel]] * a
    return img


def lambert(nx, ny, nz, lx, ly, shininess):
    """Diffuse and specular terms for the lamp of direction (lx, ly, LIGHT_z)."""
    hx, hy = lx * HALF[0] / LIGHT[0], ly * HALF[1] / LIGHT[1]
    ndl = np.clip(nx * lx + ny * ly + nz * F32(LIGHT[2]), 0, None)
    ndh = np.clip(nx * hx + ny * hy + nz * F32(HALF[2]), 0, None)
    return ndl, ndh ** shininess


def smoothstep(t):
    """The cubic ramp 3t² − 2t³ of t clipped to [0, 1]."""
    t = np.clip(t, 0, 1)
    return t * t * (3 - 2 * t)
