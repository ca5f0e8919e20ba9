"""The two textures (a plain weave of fabric, a grid of ceramic tiles), filling the image."""
from __future__ import annotations

import numpy as np

from .draw import F32, hash01, pixel_grid

__all__ = ["texture_frame", "render_texture"]


def texture_frame(size, pose, period):
    """Pattern coordinates of each pixel, in periods, moved by ``pose``."""
    x, y = pixel_grid(size)
    c, s = np.cos(pose.theta), np.sin(pose.theta)
    X = x - F32(size * (0.5 + pose.tx))
    Y = y - F32(size * (0.5 + pose.ty))
    return ((F32(c) * X + F32(s) * Y) / F32(period)).astype(F32), \
        ((-F32(s) * X + F32(c) * Y) / F32(period)).astype(F32)


def render_texture(category, size, pose, grain, tables):
    """The scene of a texture (``fabric`` or ``tile``) for one pose."""
    if category == "fabric":
        U, V = texture_frame(size, pose, size / 16)
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
        warp_col = np.array([0.60, 0.53, 0.42], F32)
        weft_col = np.array([0.52, 0.48, 0.40], F32)
        gap = np.array([0.10, 0.09, 0.08], F32)
        thread = np.where(top_is_w[..., None], warp_col, weft_col)
        img = gap + (thread - gap) * val[..., None]
    else:  # tile
        P = size / 3.6
        U, V = texture_frame(size, pose, P)
        fl_u, fl_v = np.floor(U), np.floor(V)
        fu, fv = U - fl_u, V - fl_v
        i, j = fl_u.astype(np.int32), fl_v.astype(np.int32)
        g = 0.035  # half grout width, tile units
        e = np.minimum(np.minimum(fu, 1 - fu), np.minimum(fv, 1 - fv))
        a = np.clip((e - g) * F32(P) + 0.5, 0, 1)
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
        tile_col = (np.array([0.52, 0.50, 0.47], F32) + hue) * val[..., None]
        gr = hash01(np.floor(U * P / 1.5), np.floor(V * P / 1.5), 7)
        grout = np.array([0.80, 0.78, 0.73], F32) * (0.92 + 0.12 * gr)[..., None]
        img = grout + (tile_col - grout) * a[..., None]
    img = img * (1 + 0.6 * grain[..., None])
    ones = np.ones((size, size), F32)
    return {"scene": img.astype(F32), "cov": ones, "sdf_px": -1e6 * ones, "bg": None,
            "U": U, "V": V}
