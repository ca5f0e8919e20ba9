"""The rigid objects (pill, nut, bottle; the transistor of :mod:`.transistor`): signed
distances and their rendering on a background with a soft shadow.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .draw import F32, lambert, segment_distance, smoothstep, square_window
from .pose import light_in_object, object_frame, to_image
from .transistor import board_pattern, transistor_colour, transistor_sdf

__all__ = ["PILL_A", "PILL_R", "PILL_MARK", "NUT_R", "NUT_CORNER", "NUT_HOLE", "BOTTLE_R",
           "BOTTLE_MOUTH", "Part", "pill_sdf", "hex_sdf", "object_sdf", "render_object"]


class Part(NamedTuple):
    """Where one part of an object is drawn, for the semantic defects.

    The part is the pill's printed mark, the nut's hole (``turn`` turns its hexagon
    instead) and the bottle's lip and mouth. ``du, dv``: shift of the part in object
    units; ``turn``: rotation of the part (radians) about its own centre; ``present``:
    False leaves it out; ``squash``: the bottle's mouth seen as an ellipse of axes 1 and
    ``squash`` (a tilted neck). ``Part()`` is the normal object.

    The transistor's part is the whole transistor (``lead=-1``: shifted by ``du, dv``,
    turned about its body's centre, or absent) or its lead number ``lead`` (0-2, left
    to right), bent by ``turn`` or cut (``present=False``) at ``v = dv``.
    """
    du: float = 0.0
    dv: float = 0.0
    turn: float = 0.0
    present: bool = True
    squash: float = 1.0
    lead: int = -1


PILL_A, PILL_R = 0.21, 0.145
PILL_MARK = np.array([  # "AK" in object units
    [-0.085, 0.035, -0.0625, -0.035], [-0.0625, -0.035, -0.04, 0.035],
    [-0.076, 0.008, -0.049, 0.008],
    [0.02, -0.035, 0.02, 0.035], [0.062, -0.035, 0.021, 0.004], [0.033, -0.006, 0.064, 0.035],
])


def pill_sdf(u, v):
    """Signed distance to the capsule (object units), and the terms its shading reuses."""
    dx = u - np.clip(u, -PILL_A, PILL_A)
    d = np.sqrt(dx * dx + v * v)
    return d - F32(PILL_R), dx, d


def hex_sdf(u, v, r):
    """Signed distance to a regular hexagon of apothem r (flat sides left and right)."""
    kx, ky, kz = -0.866025404, 0.5, 0.577350269
    px, py = np.abs(v), np.abs(u)  # swap so that the flat sides face left/right
    dot = np.minimum(kx * px + ky * py, 0)
    px = px - 2 * dot * kx
    py = py - 2 * dot * ky
    px = px - np.clip(px, -kz * r, kz * r)
    py = py - r
    return (np.sqrt(px * px + py * py) * np.sign(py)).astype(F32)


NUT_R, NUT_CORNER, NUT_HOLE = 0.25, 0.272, 0.105
BOTTLE_R, BOTTLE_MOUTH = 0.40, 0.145


def rotate(u, v, angle):
    """Object coordinates (u, v) turned by ``-angle``: the frame of a part turned by
    ``angle``."""
    c, s = F32(np.cos(angle)), F32(np.sin(angle))
    return c * u + s * v, -s * u + c * v


def nut_terms(u, v, r, part):
    """The hexagon's signed distance and the distance to the hole's centre (and the
    unit vector from it) of a nut drawn with ``part``."""
    hu, hv = (u, v) if part.turn == 0 else rotate(u, v, part.turn)
    hexd = hex_sdf(hu, hv, NUT_R)
    if part.du == 0 and part.dv == 0:
        rh, hu, hv = r, u, v
    else:
        hu, hv = u - F32(part.du), v - F32(part.dv)
        rh = np.sqrt(hu * hu + hv * hv)
    return hexd, rh, hu, hv


def object_sdf(category, u, v, part=None):
    """Signed distance (object units) to the outline of ``category``'s object
    (its part drawn as ``part``, :class:`Part`)."""
    if category == "pill":
        return pill_sdf(u, v)[0]
    r = np.sqrt(u * u + v * v)
    if category == "nut":
        if part is None:
            outer = np.maximum(hex_sdf(u, v, NUT_R), r - F32(NUT_CORNER))
            return np.maximum(outer, F32(NUT_HOLE) - r)
        hexd, rh, _, _ = nut_terms(u, v, r, part)
        outer = np.maximum(hexd, r - F32(NUT_CORNER))
        return np.maximum(outer, F32(NUT_HOLE) - rh) if part.present else outer
    if category == "transistor":
        return transistor_sdf(u, v, part)
    return r - F32(BOTTLE_R)


def render_object(category, size, pose, grain, vignette, part=None):
    """Background, object colour, coverage and signed distance (px) for one pose; its
    part (:class:`Part`) moved, turned or left out when ``part`` is given."""
    u, v = object_frame(size, pose)
    px = F32(1.0 / (size * pose.scale))  # object units per pixel
    lx, ly = light_in_object(pose)
    r = np.sqrt(u * u + v * v)
    if category == "pill":
        sdf, dx, d = pill_sdf(u, v)
        k = F32(0.82 / PILL_R)
        nx, ny = dx * k, v * k
        nz = np.sqrt(np.clip(1 - nx * nx - ny * ny, 0, 1))
        diff, spec = lambert(nx, ny, nz, lx, ly, 24)
        shade = 0.30 + 0.62 * diff
        base = np.array([0.88, 0.85, 0.76], F32)
        col = base * shade[..., None] + (0.22 * spec)[..., None]
        # the printed mark, drawn in its window only
        if part is None or part.present:
            mark = PILL_MARK
            if part is not None:
                c, s_ = np.cos(part.turn), np.sin(part.turn)
                xy = mark.reshape(-1, 2) @ np.array([[c, s_], [-s_, c]])
                mark = (xy + [part.du, part.dv]).reshape(-1, 4)
            mu, mv = (0.0, 0.0) if part is None else (part.du, part.dv)
            mx, my = to_image(size, pose, mu, mv)
            rows, cols = square_window(mx, my, 0.13 * size * pose.scale, size)
            dm = segment_distance(u[rows, cols], v[rows, cols], mark)
            w = max(0.0045, 0.7 * float(px))
            am = np.clip((w - dm) / px + 0.5, 0, 1)[..., None] * F32(0.9)
            ink = np.array([0.60, 0.16, 0.13], F32) * (0.55 + 0.45 * shade[rows, cols, None])
            col[rows, cols] = col[rows, cols] * (1 - am) + ink * am
        bg_col = np.array([0.27, 0.26, 0.25], F32)
    elif category == "nut":
        if part is None:
            hexd = hex_sdf(u, v, NUT_R)
            rh, hu, hv = r, u, v
        else:
            hexd, rh, hu, hv = nut_terms(u, v, r, part)
        outer = np.maximum(hexd, r - F32(NUT_CORNER))
        hole = part is None or part.present
        sdf = np.maximum(outer, F32(NUT_HOLE) - rh) if hole else outer
        inv_r = 1 / np.maximum(r, F32(1e-6))
        cx, cy = u * inv_r, v * inv_r
        inv_rh = 1 / np.maximum(rh, F32(1e-6))
        hx, hy = hu * inv_rh, hv * inv_rh
        # flat face with brushed (anisotropic) reflections and faint turning rings
        phi = np.arctan2(v, u)
        face = 0.50 + 0.10 * np.cos(2 * phi + 0.7) + 0.02 * np.sin(r * F32(2 * np.pi / 0.02))
        # outer chamfer: a cone band near the corners, normal tilted outwards
        w_ch = smoothstep((r - F32(0.255)) / F32(0.012))
        d_ch, s_ch = lambert(0.6 * cx, 0.6 * cy, F32(0.8), lx, ly, 16)
        # inner bevel: normal tilted inwards, then the thread
        val = face * (1 - w_ch) + (0.15 + 0.55 * d_ch + 0.4 * s_ch) * w_ch
        if hole:
            w_bev = smoothstep((F32(0.15) - rh) / F32(0.01))
            d_bev, s_bev = lambert(-0.65 * hx, -0.65 * hy, F32(0.76), lx, ly, 16)
            thread = (0.22 + 0.10 * np.cos(rh * F32(2 * np.pi / 0.006))).astype(F32)
            w_th = smoothstep((F32(0.122) - rh) / F32(0.004))
            val = val * (1 - w_bev) + (0.12 + 0.55 * d_bev + 0.4 * s_bev) * w_bev
            val = val * (1 - w_th) + thread * w_th
        # a soft dark line where the hexagon faces meet the chamfer
        val = val * (1 - 0.25 * np.exp(-((hexd + 0.004) / 0.004) ** 2))
        col = np.array([0.93, 0.95, 1.0], F32) * val[..., None]
        bg_col = np.array([0.20, 0.20, 0.22], F32)
    elif category == "transistor":
        col, sdf = transistor_colour(u, v, px, lx, ly, part)
        bg_col = np.array([0.50, 0.51, 0.45], F32) * board_pattern(size)[..., None]
    else:  # bottle
        sdf = r - F32(BOTTLE_R)
        inv_r = 1 / np.maximum(r, F32(1e-6))
        cx, cy = u * inv_r, v * inv_r
        # radial slope of the glass surface: flat top of the body, sloping shoulder,
        # a rounded lip, then the dark mouth
        t_body = np.clip((r - F32(0.30)) / F32(0.10), 0, 1)
        rm = r
        if part is not None:  # the lip and mouth moved, tilted (an ellipse) or left out
            mu, mv = rotate(u - F32(part.du), v - F32(part.dv), part.turn)
            rm = np.sqrt(mu * mu + (mv / F32(part.squash)) ** 2)
            if not part.present:
                rm = np.full_like(r, 0.30)  # no lip, no mouth: the glass top is closed
        t_lip = np.clip((rm - F32(0.18)) / F32(0.035), -1, 1)
        lip = np.exp(-((rm - F32(0.18)) / F32(0.03)) ** 2)
        slope = 0.85 * t_body ** 1.5 + 0.3 * (1 - t_body) * (rm > 0.22) + 0.8 * t_lip * lip
        slope = np.clip(slope, -0.95, 0.95)
        nz = np.sqrt(1 - slope * slope)
        diff, spec = lambert(slope * cx, slope * cy, nz, lx, ly, 30)
        rings = 1 + 0.06 * np.sin(r * F32(2 * np.pi / 0.022))
        glass = np.array([0.42, 0.27, 0.13], F32)
        val = (0.35 + 0.55 * diff) * rings
        col = glass * val[..., None] + (0.45 * spec)[..., None]
        col = col + (0.25 * lip * np.clip(diff, 0, 1))[..., None]
        mouth = smoothstep((F32(BOTTLE_MOUTH) - rm) / px + 0.5)
        inner = (0.03 + 0.10 * np.clip(rm / BOTTLE_MOUTH, 0, 1) ** 3)[..., None] * glass * 2
        col = col * (1 - mouth[..., None]) + inner * mouth[..., None]
        bg_col = np.array([0.58, 0.58, 0.55], F32)
    col = col * (1 + grain[..., None] * 0.8)
    cov = np.clip(F32(0.5) - sdf / px, 0, 1)
    # background with a soft shadow cast towards the bottom right
    su, sv = object_frame(size, pose._replace(tx=pose.tx - 0.018, ty=pose.ty - 0.025))
    ssdf = object_sdf(category, su, sv, part)
    shadow = smoothstep(0.5 - ssdf / F32(0.035))
    bg = bg_col * (vignette * (1 + grain))[..., None]
    shaded_bg = bg * (1 - 0.45 * shadow)[..., None]
    scene = shaded_bg + (col - shaded_bg) * cov[..., None]
    return {"scene": scene.astype(F32), "cov": cov, "sdf_px": sdf / px, "bg": shaded_bg,
            "u": u, "v": v, "r": r, "px": float(px)}
