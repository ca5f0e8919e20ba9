"""Normal variability drawn on a rendered scene: speckles, dust on the background, exposure."""
from __future__ import annotations

import numpy as np

from .categories import ALL_OBJECTS
from .draw import F32, draw_dots, paint_dots
from .objects import PILL_A, PILL_R, pill_sdf
from .pose import to_image

__all__ = ["add_speckles", "add_dust", "apply_exposure"]


def add_speckles(category, R, size, pose, rng, strength):
    """Speckles on the part, in place (pill: red/brown dots; others: faint pits, specks
    or pores)."""
    if strength <= 0:
        return
    scene = R["scene"]
    if category == "pill":
        n = int(round(rng.integers(25, 41) * min(strength, 3.0)))
        # uniform on the capsule, a little inside its rim
        pts = rng.uniform([-PILL_A - PILL_R, -PILL_R], [PILL_A + PILL_R, PILL_R], (4 * n, 2))
        inside = pill_sdf(pts[:, 0], pts[:, 1])[0] < -0.012
        pts = pts[inside][:n]
        cx, cy = to_image(size, pose, pts[:, 0], pts[:, 1])
        radius = np.maximum(rng.uniform(0.0025, 0.006, len(pts)) * size * pose.scale, 0.6)
        opac = rng.uniform(0.5, 0.85, len(pts)) * min(strength, 1.0)
        palette = np.array([[0.62, 0.22, 0.16], [0.55, 0.30, 0.18], [0.70, 0.33, 0.25]])
        colors = palette[rng.integers(0, 3, len(pts))]
    else:
        n = int(round(rng.integers(4, 16) * min(strength, 3.0)))
        if category in ALL_OBJECTS:
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
    alpha, index = draw_dots(scene.shape[:2], np.asarray(cx, float), np.asarray(cy, float),
                         np.asarray(radius, float), np.asarray(opac, float))
    if category in ALL_OBJECTS:
        alpha *= R["cov"]
    paint_dots(scene, alpha, index, colors)


def add_dust(R, size, rng, strength):
    """Dark or bright particles on the background of an object (never on it), in place."""
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
    alpha, index = draw_dots(R["scene"].shape[:2], cand[:, 0], cand[:, 1], radius[:k], opac)
    alpha *= 1 - R["cov"]
    paint_dots(R["scene"], alpha, index, colors)


def apply_exposure(img, rng, strength):
    """Gain, gamma and colour cast of one image (the five draws are made even when off)."""
    u = rng.uniform(-1, 1, 5)
    if strength <= 0:
        return img
    gain = np.exp(0.18 * strength * u[0])
    gamma = np.exp(0.15 * strength * u[1])
    cast = np.exp(0.05 * strength * u[2:5])
    return (np.power(np.clip(img, 0, None), F32(gamma)) * (gain * cast).astype(F32)).astype(F32)
