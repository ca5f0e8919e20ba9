"""The transistor: a dark plastic body with three metal leads that run down out of the
frame, on a textured board -- the object of the synthetic set that touches the image
border (after MVTec AD's transistor).

Object units as for the other objects (fractions of the image side, v pointing down,
the origin at the image centre in the rest pose): the body is a rounded rectangle
centred at ``(0, BODY_V)``; the leads are segments of half-width ``LEAD_HW`` from under
the body (``LEAD_TOP``) to ``LEAD_END``, far below the bottom border, so that every pose
of the (light) jitter keeps them cut by the border.
"""
from __future__ import annotations

import numpy as np

from .draw import F32, lambert, pixel_grid, segment_distance, smoothstep

__all__ = ["BODY_V", "BODY_HALF", "BODY_R", "LEAD_U", "LEAD_TOP", "LEAD_END", "LEAD_HW",
           "POSE_FACTOR", "TRANSISTOR_MARK", "transistor_sdf", "transistor_colour",
           "board_pattern"]

BODY_V, BODY_HALF, BODY_R = -0.10, (0.16, 0.11), 0.02
LEAD_U, LEAD_TOP, LEAD_END, LEAD_HW = (-0.09, 0.0, 0.09), -0.02, 0.95, 0.017
#: the ``pose`` knob's strength is scaled by this for the transistor: translation up to
#: 3% of the size, rotation up to 5 degrees, scale 0.975-1.025 (a part held in a fixture)
POSE_FACTOR = 0.5
TRANSISTOR_MARK = np.array([  # "T7" printed on the body, body-centred object units
    [-0.085, -0.035, -0.025, -0.035], [-0.055, -0.035, -0.055, 0.035],
    [0.015, -0.035, 0.075, -0.035], [0.075, -0.035, 0.035, 0.035],
])


def _turn(u, v, angle):
    """(u, v) turned by ``-angle`` (the frame of a part turned by ``angle``)."""
    c, s = F32(np.cos(angle)), F32(np.sin(angle))
    return c * u + s * v, -s * u + c * v


def _box(bu, bv):
    """Signed distance to the rounded rectangle of the body (body-centred coordinates)."""
    qx = np.abs(bu) - F32(BODY_HALF[0] - BODY_R)
    qy = np.abs(bv) - F32(BODY_HALF[1] - BODY_R)
    out = np.sqrt(np.maximum(qx, 0) ** 2 + np.maximum(qy, 0) ** 2)
    return out + np.minimum(np.maximum(qx, qy), 0) - F32(BODY_R)


def _lead_segments(part):
    """The leads as segments (n, 4) u0 v0 u1 v1: straight, or one bent (``part.turn``)
    or cut (``part.present`` False) at ``v = part.dv`` when ``part.lead`` names it."""
    segs = []
    for i, lu in enumerate(LEAD_U):
        if part is None or part.lead != i:
            segs.append((lu, LEAD_TOP, lu, LEAD_END))
            continue
        vb = part.dv
        segs.append((lu, LEAD_TOP, lu, vb))
        if part.present:
            length = LEAD_END - vb
            segs.append((lu, vb, lu + length * np.sin(part.turn),
                         vb + length * np.cos(part.turn)))
    return np.array(segs, F32)


def _nearest_offset(u, v, segs):
    """Offset (du, dv) from the nearest point of the nearest segment to each point."""
    best = None
    for u0, v0, u1, v1 in segs:
        du, dv = F32(u1 - u0), F32(v1 - v0)
        t = np.clip(((u - u0) * du + (v - v0) * dv) / max(du * du + dv * dv, F32(1e-12)), 0, 1)
        ou, ov = u - (u0 + t * du), v - (v0 + t * dv)
        d2 = ou * ou + ov * ov
        if best is None:
            best = [d2, ou, ov]
        else:
            closer = d2 < best[0]
            best = [np.where(closer, d2, best[0]), np.where(closer, ou, best[1]),
                    np.where(closer, ov, best[2])]
    return best[1], best[2]


def _frame(u, v, part):
    """Object coordinates in the frame of the transistor, moved or turned as a whole
    (about the body's centre) when ``part`` names no lead."""
    if part is None or part.lead >= 0 or (part.du == 0 and part.dv == 0 and part.turn == 0):
        return u, v
    bu, bv = _turn(u - F32(part.du), v - F32(part.dv) - F32(BODY_V), part.turn)
    return bu, bv + F32(BODY_V)


def _gone(part):
    return part is not None and part.lead < 0 and not part.present


def transistor_sdf(u, v, part=None):
    """Signed distance (object units) to the transistor: body and leads (its part drawn
    as ``part``; a part with ``present=False`` and no lead: no transistor at all)."""
    if _gone(part):
        return np.ones_like(u)
    u, v = _frame(u, v, part)
    leads = segment_distance(u, v, _lead_segments(part)) - F32(LEAD_HW)
    return np.minimum(_box(u, v - F32(BODY_V)), leads)


def board_pattern(size):
    """The board's fixed texture (image frame, about 1 ± 0.1): a fibre weave of period
    size/21 and finer threads."""
    x, y = pixel_grid(size)
    w = F32(2 * np.pi * 21 / size)
    weave = np.sin(x * w) * np.sin(y * w)
    threads = np.sin((x + y) * F32(2.3) * w) * F32(0.5)
    return (1 + F32(0.07) * weave + F32(0.03) * threads).astype(F32)


def transistor_colour(u, v, px, lx, ly, part=None):
    """Colour and signed distance (object units) of the transistor at object
    coordinates (u, v); ``px``: object units per pixel, (lx, ly): the lamp in the object
    frame."""
    if _gone(part):
        return np.zeros(u.shape + (3,), F32), np.ones_like(u)
    if part is not None and part.lead < 0 and part.turn != 0:
        lx, ly = _turn(lx, ly, part.turn)
    u, v = _frame(u, v, part)
    # leads: metal cylinders, the normal across the nearest segment
    ou, ov = _nearest_offset(u, v, _lead_segments(part))
    dl = np.sqrt(ou * ou + ov * ov)
    lead = dl - F32(LEAD_HW)
    k = F32(0.95 / LEAD_HW)
    nx, ny = np.clip(ou * k, -0.95, 0.95), np.clip(ov * k, -0.95, 0.95)
    nz = np.sqrt(np.clip(1 - nx * nx - ny * ny, 0.0025, 1))
    diff, spec = lambert(nx, ny, nz, lx, ly, 20)
    metal = np.array([0.80, 0.79, 0.74], F32) * (0.25 + 0.7 * diff)[..., None]
    metal = metal + (0.55 * spec)[..., None]
    # body: dark plastic, a flat top and a bevel along its outline, lit from the lamp
    bu, bv = u, v - F32(BODY_V)
    body = _box(bu, bv)
    h = F32(1e-3)
    gx, gy = _box(bu + h, bv) - _box(bu - h, bv), _box(bu, bv + h) - _box(bu, bv - h)
    g = np.sqrt(gx * gx + gy * gy) + F32(1e-9)
    tilt = 0.7 * smoothstep((body + F32(0.03)) / F32(0.03))
    bx, by = tilt * gx / g, tilt * gy / g
    d_b, s_b = lambert(bx, by, np.sqrt(1 - tilt * tilt), lx, ly, 12)
    plastic = np.array([0.10, 0.10, 0.115], F32) * (0.5 + 0.9 * d_b)[..., None]
    plastic = plastic + (0.25 * s_b)[..., None]
    dm = segment_distance(bu, bv, TRANSISTOR_MARK)
    w = max(0.005, 0.7 * float(px))
    am = (np.clip((w - dm) / px + 0.5, 0, 1) * 0.8)[..., None]
    plastic = plastic * (1 - am) + np.array([0.62, 0.62, 0.60], F32) * am
    on_body = np.clip(F32(0.5) - body / px, 0, 1)[..., None]
    col = metal + (plastic - metal) * on_body
    return col.astype(F32), np.minimum(body, lead)
