"""Defects (crack, scratch, contamination, missing material, stain) drawn on a scene, and
the semantic defects of the objects (a part shifted, turned or absent), each with its
exact mask.
"""
from __future__ import annotations

import numpy as np

from .categories import ALL_OBJECTS, TEXTURES_SYN
from .draw import F32, pixel_grid, segment_distance, square_window
from .objects import Part, render_object

__all__ = ["blob_alpha", "polyline_alpha", "pick_center", "luma", "local_mean",
           "pick_color", "apply_defect", "draw_part", "draw_transistor_part",
           "apply_part_defect", "PART_THRESHOLD"]

#: a pixel belongs to a semantic defect's mask where the defective rendering differs from
#: the normal one by more than this (max over the channels, on the [0, 1] scale)
PART_THRESHOLD = 0.02


def blob_alpha(size, cx, cy, radius, soft, rng, aspect=True):
    """Alpha of an irregular blob with a soft edge of ``soft`` px (0 outside, full array)."""
    n_h = 4
    amp = rng.uniform(0, 0.22, n_h) / np.arange(2, 2 + n_h) * 2
    ph = rng.uniform(0, 2 * np.pi, n_h)
    asp = rng.uniform(0.65, 1.0) if aspect else 1.0
    ang = rng.uniform(0, np.pi)
    reach = radius * (1 + amp.sum()) + soft + 2
    rows, cols = square_window(cx, cy, reach, size)
    x, y = pixel_grid(size)
    X, Y = x[rows, cols] - F32(cx), y[rows, cols] - F32(cy)
    c, s = np.cos(ang), np.sin(ang)
    Xr, Yr = c * X + s * Y, (-s * X + c * Y) / asp
    d = np.sqrt(Xr * Xr + Yr * Yr)
    phi = np.arctan2(Yr, Xr)
    rr = np.ones_like(d)
    for k in range(n_h):
        rr += amp[k] * np.cos((k + 2) * phi + ph[k])
    rr *= radius
    a = np.zeros((size, size), F32)
    a[rows, cols] = np.clip((rr - d) / soft + 0.5, 0, 1)
    return a


def polyline_alpha(size, pts_list, widths):
    """Alpha of anti-aliased polylines (lists of (k, 2) vertex arrays in px)."""
    a = np.zeros((size, size), F32)
    x, y = pixel_grid(size)
    for pts, w in zip(pts_list, widths):
        pts = np.asarray(pts, float)
        if len(pts) < 2:
            continue
        lo, hi = pts.min(0) - w - 2, pts.max(0) + w + 2
        c = (lo + hi) / 2
        rows, cols = square_window(c[0], c[1], float(np.max(hi - lo) / 2), size)
        if rows.stop <= rows.start or cols.stop <= cols.start:
            continue
        segs = np.concatenate([pts[:-1], pts[1:]], 1)
        d = segment_distance(x[rows, cols], y[rows, cols], segs)
        a[rows, cols] = np.maximum(a[rows, cols], np.clip(w / 2 - d + 0.5, 0, 1))
    return a


def pick_center(R, category, size, rng, where="inside"):
    """A defect centre (x, y) in pixels: on the object (``where="inside"``), near its
    outline (``"edge"``), or anywhere away from the border of a texture."""
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


def luma(c):
    """Luminance of RGB values (..., 3)."""
    c = np.asarray(c)
    return 0.3 * c[..., 0] + 0.59 * c[..., 1] + 0.11 * c[..., 2]


def local_mean(scene, alpha):
    """Mean colour of ``scene`` weighted by ``alpha`` (the whole image where alpha is 0)."""
    w = alpha.sum()
    if w <= 0:
        return scene.reshape(-1, 3).mean(0)
    return (scene * alpha[..., None]).sum((0, 1)) / w


def pick_color(rng, palette, ref, min_dist=0.35):
    """A random colour of ``palette`` at least ``min_dist`` (L1) from ``ref`` (else the
    farthest one)."""
    order = rng.permutation(len(palette))
    dists = [np.abs(np.asarray(palette[i]) - ref).sum() for i in order]
    for i, dd in zip(order, dists):
        if dd >= min_dist:
            return np.asarray(palette[i], F32)
    return np.asarray(palette[order[int(np.argmax(dists))]], F32)


def apply_defect(kind, R, category, size, rng, contrast=1.0):
    """Draw one defect on R['scene'] (in place). Returns the exact mask.

    ``contrast`` in (0, 1] scales the defect's opacity: the drawn pixels become
    ``clean + contrast * (defect - clean)``; the mask does not depend on it.
    """
    scene, cov = R["scene"], R["cov"]
    min_w = 1.3
    if kind == "crack":
        c = pick_center(R, category, size, rng)
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
        a = polyline_alpha(size, lines, widths) * cov
        ref = luma(local_mean(scene, a))
        if ref < 0.35:
            target = np.array([0.85, 0.84, 0.80], F32) * np.ones_like(scene)
        else:
            target = scene * F32(0.18)
        a = a * F32(0.92)
    elif kind == "scratch":
        c = pick_center(R, category, size, rng)
        L = rng.uniform(0.28, 0.42) * size
        ang = rng.uniform(0, np.pi)
        dvec = np.array([np.cos(ang), np.sin(ang)])
        p0, p2 = c - dvec * L / 2, c + dvec * L / 2
        p1 = c + np.array([-dvec[1], dvec[0]]) * rng.uniform(-0.2, 0.2) * L
        t = np.linspace(0, 1, 24)[:, None]
        pts = (1 - t) ** 2 * p0 + 2 * t * (1 - t) * p1 + t ** 2 * p2
        w = max(rng.uniform(0.010, 0.015) * size, min_w)
        a = polyline_alpha(size, [pts], [w]) * cov
        ref = luma(local_mean(scene, a))
        # dark on tiles (their grout is light), else whichever contrasts
        bright = category != "tile" and (ref < 0.3 or (ref < 0.6 and rng.uniform() < 0.5))
        if bright:
            target = np.array([0.95, 0.95, 0.93], F32) * np.ones_like(scene)
        else:
            target = scene * F32(0.2)
        a = a * F32(0.9)
    elif kind == "contamination":
        c = pick_center(R, category, size, rng)
        a = blob_alpha(size, c[0], c[1], rng.uniform(0.05, 0.08) * size,
                        max(1.0, 0.004 * size), rng) * cov
        ref = local_mean(scene, a)
        palette = [[0.25, 0.15, 0.08], [0.20, 0.45, 0.18], [0.15, 0.20, 0.55],
                   [0.85, 0.55, 0.10], [0.06, 0.06, 0.06], [0.85, 0.85, 0.80]]
        col = pick_color(rng, palette, ref, 0.5)
        from scipy import ndimage
        tex = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(F32),
                                      max(0.7, size / 200))
        tex = 1 + 0.9 * tex / (tex.std() + 1e-6) * 0.25
        target = np.clip(col * tex[..., None], 0, 1)
        a = a * F32(0.95)
    elif kind == "stain":
        c = pick_center(R, category, size, rng)
        rad = rng.uniform(0.055, 0.085) * size
        a = blob_alpha(size, c[0], c[1], rad, 0.28 * rad, rng) * cov
        ref = local_mean(scene, a)
        palette = [[0.70, 0.38, 0.10], [0.55, 0.48, 0.12], [0.25, 0.30, 0.62],
                   [0.35, 0.22, 0.12], [0.75, 0.70, 0.35], [0.60, 0.20, 0.35]]
        col = pick_color(rng, palette, ref, 0.6)
        target = scene * F32(0.3) + col * F32(0.7)
        a = a * F32(0.9)
    elif kind == "missing":
        if category in ALL_OBJECTS:
            c = pick_center(R, category, size, rng, where="edge")
            a = blob_alpha(size, c[0], c[1], rng.uniform(0.06, 0.085) * size,
                            1.0, rng) * cov
            target = R["bg"]
        else:
            c = pick_center(R, category, size, rng)
            rad = rng.uniform(0.045, 0.065) * size
            a = blob_alpha(size, c[0], c[1], rad, 1.0, rng)
            x, y = pixel_grid(size)
            # a dark hole, its far (bottom-right) wall catching a little light
            wall = np.clip(((x - c[0]) + (y - c[1])) / (2 * rad), 0, 1)
            target = (np.array([0.04, 0.035, 0.03], F32) * (1 + 2 * wall)[..., None])
    else:  # pragma: no cover - checked before
        raise ValueError(kind)
    a = np.where(a >= 0.04, a, 0).astype(F32)
    mask = a > 0
    if mask.any():
        am = a[mask][:, None]
        if contrast != 1.0:  # the default keeps the exact arithmetic of contrast 1
            am = am * F32(contrast)
        scene[mask] = scene[mask] * (1 - am) + np.asarray(target, F32)[mask] * am
    return mask


def draw_part(kind, category, rng):
    """The :class:`~adkit.data.synthetic.objects.Part` of a semantic defect.

    ``"shifted"``: the part moved (pill mark by 0.06-0.10 along the capsule or
    0.03-0.05 across it; nut hole by 0.035-0.055; bottle lip and mouth by 0.05-0.08,
    object units, a random direction); ``"turned"``: the pill mark turned by 35-180
    degrees, the nut's hexagon by 30 ± 8 degrees about its hole (corners where flats
    should be), the bottle mouth tilted into an ellipse of axes 1 and 0.55-0.7;
    ``"absent"``: no mark, no hole, a closed mouth.

    The transistor (half of the ``"turned"`` and ``"absent"`` defects move the whole
    transistor, half one lead, as MVTec AD's misplaced, bent and cut leads):
    ``"shifted"``: the whole transistor moved by 0.05-0.09 sideways and up to 0.04 up
    or 0.02 down; ``"turned"``: turned by 12-30 degrees about its body's centre, or one
    lead bent by 20-40 degrees at v = 0.10-0.25 (object units, ``dv`` of
    :class:`Part`; the body ends at v = 0.01); ``"absent"``: no transistor at all, or one
    lead cut at 0.08-0.25.
    """
    if category == "transistor":
        return draw_transistor_part(kind, rng)
    if kind == "absent":
        return Part(present=False)
    sign = rng.choice([-1.0, 1.0])
    if kind == "turned":
        if category == "pill":
            return Part(turn=float(sign * np.deg2rad(rng.uniform(35, 180))))
        if category == "nut":
            return Part(turn=float(np.deg2rad(30 + rng.uniform(-8, 8))))
        return Part(turn=float(rng.uniform(0, np.pi)), squash=float(rng.uniform(0.55, 0.7)))
    if category == "pill":
        if rng.uniform() < 0.5:
            return Part(du=float(sign * rng.uniform(0.06, 0.10)))
        return Part(dv=float(sign * rng.uniform(0.03, 0.05)))
    lo, hi = (0.035, 0.055) if category == "nut" else (0.05, 0.08)
    a, d = rng.uniform(0, 2 * np.pi), rng.uniform(lo, hi)
    return Part(du=float(d * np.cos(a)), dv=float(d * np.sin(a)))


def draw_transistor_part(kind, rng):
    """The :class:`~adkit.data.synthetic.objects.Part` of a semantic defect of the
    transistor (see :func:`draw_part`)."""
    sign = float(rng.choice([-1.0, 1.0]))
    if kind == "shifted":
        return Part(du=sign * float(rng.uniform(0.05, 0.09)), dv=float(rng.uniform(-0.04, 0.02)))
    whole = rng.uniform() < 0.5
    lead = int(rng.integers(0, 3))
    if kind == "turned":
        if whole:
            return Part(turn=sign * float(np.deg2rad(rng.uniform(12, 30))))
        return Part(lead=lead, dv=float(rng.uniform(0.10, 0.25)),
                    turn=sign * float(np.deg2rad(rng.uniform(20, 40))))
    if whole:
        return Part(present=False)
    return Part(lead=lead, dv=float(rng.uniform(0.08, 0.25)), present=False)


def apply_part_defect(kind, R, category, size, pose, grain, vignette, rng, contrast=1.0):
    """A semantic defect on R['scene'] (in place): the object rendered again with its
    part shifted, turned or absent (:func:`draw_part`) replaces the scene where the two
    renderings differ by more than :data:`PART_THRESHOLD`. Returns that mask, which
    covers both where the part should be and where it is; outside it the scene is
    untouched (speckles and dust included).
    """
    part = draw_part(kind, category, rng)
    normal = render_object(category, size, pose, grain, vignette)["scene"]
    moved = render_object(category, size, pose, grain, vignette, part)["scene"]
    mask = np.abs(moved - normal).max(-1) > PART_THRESHOLD
    if mask.any():
        scene = R["scene"]
        new = moved[mask]
        if contrast != 1.0:
            new = scene[mask] + F32(contrast) * (new - scene[mask])
        scene[mask] = new
    return mask
