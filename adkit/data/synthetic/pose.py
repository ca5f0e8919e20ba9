"""The rigid pose of an object (translation, rotation, scale) and the frames it defines."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .draw import F32, LIGHT, pixel_grid

__all__ = ["Pose", "draw_pose", "object_frame", "to_image", "light_in_object"]


class Pose(NamedTuple):
    """Translation (fractions of the size), rotation (radians) and scale of an object."""
    tx: float  # fraction of size
    ty: float
    theta: float  # radians
    scale: float


def draw_pose(rng, strength, texture):
    """A random pose of strength ``strength`` (see the ``pose`` knob)."""
    u = rng.uniform(-1, 1, 4)
    if texture:
        return Pose(float(u[0] * strength), float(u[1] * strength),
                     float(np.deg2rad(10) * u[2] * strength), 1.0)
    return Pose(float(0.06 * u[0] * strength), float(0.06 * u[1] * strength),
                 float(np.deg2rad(10) * u[2] * strength), float(1 + 0.05 * u[3] * min(strength, 1.0)))


def object_frame(size, pose):
    """Object coordinates (u, v) of each pixel, in units of the image size."""
    x, y = pixel_grid(size)
    c, s = np.cos(pose.theta), np.sin(pose.theta)
    X = x / F32(size) - F32(0.5 + pose.tx)
    Y = y / F32(size) - F32(0.5 + pose.ty)
    k = F32(1.0 / pose.scale)
    u = (F32(c) * X + F32(s) * Y) * k
    v = (-F32(s) * X + F32(c) * Y) * k
    return u, v


def to_image(size, pose, u, v):
    """Pixel coordinates of object points (u, v)."""
    c, s = np.cos(pose.theta), np.sin(pose.theta)
    u, v = np.asarray(u) * pose.scale, np.asarray(v) * pose.scale
    X = c * u - s * v
    Y = s * u + c * v
    return (X + 0.5 + pose.tx) * size, (Y + 0.5 + pose.ty) * size


def light_in_object(pose):
    """The lamp's (x, y) direction in the object's frame."""
    c, s = np.cos(pose.theta), np.sin(pose.theta)
    return F32(c * LIGHT[0] + s * LIGHT[1]), F32(-s * LIGHT[0] + c * LIGHT[1])
