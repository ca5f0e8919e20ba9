"""Backbone plumbing shared by the feature methods (Gaussian, KNN / PatchCore, U-Flow).

A feature method runs a frozen pretrained network (:mod:`adkit.features`) over many
images and models the feature maps it returns. The steps around the network are the
same for every method, so they live here, once:

- :func:`get_extractor` (from :mod:`adkit.features`): the frozen extractor of a backbone
  at some strides, built once per process and shared;
- :func:`check_strides` (from :mod:`adkit.features`) and :func:`check_pad`: the checks of
  a method's ``strides`` and ``pad`` parameters; :class:`Strides`, the parameter
  constraint (:mod:`adkit.params`) of ``strides``;
- :func:`reflect_pad`: mirror ``pad`` pixels around each image, so that the border cells
  of the feature maps see a continuation of the image instead of the network's zero
  padding; :func:`crop_features` then removes the cells that come from the padding
  (``pad / stride`` cells on each side), so the maps keep the size of the unpadded
  image's;
- :func:`run_extractor`: the feature maps of numpy images, batch by batch (optionally
  resized and mirror-padded), as CPU tensors;
- :func:`blur_maps`: the Gaussian smoothing of the upsampled anomaly maps (PaDiM and
  PatchCore: σ = 4 pixels).
"""
from __future__ import annotations

import numpy as np

from numbers import Integral

from .checks import check_positive_int
from .features import check_strides, get_extractor
from .params import Constraint, Instance, ParameterTypeError, ParameterValueError

__all__ = ["get_extractor", "check_strides", "check_pad", "Strides", "MAX_STRIDE",
           "MAX_SIGMA", "BACKBONE",
           "reflect_pad", "crop_features", "run_extractor", "blur_maps"]

#: the largest stride a parameter may name (backbone stages have strides 2 to 32)
MAX_STRIDE = 64
#: the largest std (pixels) of the smoothing of the maps (PaDiM and PatchCore: 4)
MAX_SIGMA = 64.0
#: the constraint of a ``backbone`` parameter: a timm name (checked when it is loaded)
BACKBONE = Instance(str, "a backbone name (str) such as 'efficientnet_lite0'")


class Strides(Constraint):
    """The parameter constraint of backbone stages named by their stride: distinct
    powers of two up to :data:`MAX_STRIDE`, e.g. ``(8, 16)`` (one int is one stage),
    checked by :func:`check_strides` and returned as a tuple of ints.

    ``doubling``: each stride twice the previous (U-Flow); ``allow_empty``: ``()`` is
    accepted (a part of the model switched off)."""

    def __init__(self, *, doubling: bool = False, allow_empty: bool = False,
                 hint: str | None = None):
        self.doubling, self.allow_empty, self.hint = doubling, allow_empty, hint

    def matches(self, value) -> bool:
        return ((isinstance(value, Integral) and not isinstance(value, (bool, np.bool_)))
                or isinstance(value, (list, tuple))
                or (isinstance(value, np.ndarray) and value.ndim == 1))

    def convert(self, value, name):
        try:
            out = check_strides(value, name, allow_empty=self.allow_empty,
                                doubling=self.doubling)
        except (TypeError, ValueError) as e:
            msg = str(e)
            if msg.startswith(name + " "):
                msg = msg[len(name) + 1:]
            err = ParameterTypeError if isinstance(e, TypeError) else ParameterValueError
            raise err(msg.rstrip(".")) from None
        if any(s > MAX_STRIDE for s in out):
            raise ParameterValueError(f"must be strides of at most {MAX_STRIDE} (backbone "
                                      f"stages have strides 2 to 32), got {out}")
        return out

    def __str__(self) -> str:
        d = ", each twice the previous," if self.doubling else ""
        return f"a tuple of distinct powers of two up to {MAX_STRIDE}{d} such as (8, 16)"


def check_pad(pad, strides, name: str = "pad") -> int:
    """The mirror padding of a feature method: an int >= 0, a multiple of the largest
    of ``strides`` (so that the padding is a whole number of cells at every stage)."""
    pad = check_positive_int(pad, name, minimum=0)
    m = max(strides)
    if pad % m:
        raise ParameterValueError(f"{name} must be a multiple of the largest stride {m} "
                         f"(e.g. 0, {m} or {2 * m}), got {pad}.")
    return pad


def reflect_pad(x, pad: int):
    """Mirror ``pad`` pixels around each image of a tensor (N, C, H, W).

    The edge pixel is not repeated (numpy's and torch's ``"reflect"``); a ``pad`` larger
    than the image reflects again (as :func:`numpy.pad`). ``pad = 0`` returns ``x``.
    """
    if not pad:
        return x
    import torch

    def index(n):
        i = torch.arange(-pad, n + pad, device=x.device).abs()
        if n == 1:
            return torch.zeros_like(i)
        period = 2 * (n - 1)
        i = i % period
        return torch.where(i >= n, period - i, i)

    return x.index_select(2, index(x.shape[2])).index_select(3, index(x.shape[3]))


def crop_features(f, pad: int, stride: int):
    """Remove from a feature map (N, C, h, w) of stride ``stride`` the ``pad // stride``
    cells on each side that come from a mirror padding of ``pad`` pixels."""
    c = pad // stride
    if c == 0:
        return f
    return f[:, :, c:f.shape[2] - c, c:f.shape[3] - c]


def run_extractor(extractor, images: np.ndarray, *, batch_size: int = 16, size=None,
                  pad: int = 0, progress: bool = False, desc: str = "features") -> list:
    """Feature maps of ``images`` (numpy (N, H, W, 3) in [0, 1]), batch by batch.

    Each batch goes to the extractor's device, is resized to ``size`` (H, W) when given
    and different (bilinear, antialiased), mirror-padded by ``pad`` pixels
    (:func:`reflect_pad`), and its feature maps are cropped back (:func:`crop_features`).

    Returns one CPU float32 tensor (N, C_s, h_s, w_s) per stride of the extractor, in
    the order of ``extractor.strides`` (with ``pad``, a view of the uncropped maps).
    """
    import torch
    from torch.nn import functional as F
    from tqdm.auto import tqdm

    from .torch_utils import to_tensor
    outs = None
    with torch.no_grad():
        for i in tqdm(range(0, len(images), batch_size), desc=desc, disable=not progress,
                      leave=False):
            x = to_tensor(images[i:i + batch_size], extractor.device)
            if size is not None and tuple(x.shape[2:]) != tuple(size):
                x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False,
                                  antialias=True)
            feats = [f.float().cpu() for f in extractor(reflect_pad(x, pad))]
            if outs is None:
                outs = [[] for _ in feats]
            for o, f in zip(outs, feats):
                o.append(f)
    return [crop_features(torch.cat(o), pad, s) for o, s in zip(outs, extractor.strides)]


def blur_maps(maps, sigma: float):
    """Gaussian smoothing of each map of a tensor (N, H, W), std ``sigma`` pixels.

    The kernel is truncated at 4σ and applied separably; the borders are mirrored
    without repeating the edge pixel (torch's ``"reflect"``, scipy's ``"mirror"``) when
    the map is larger than the kernel's radius, else replicated. ``sigma = 0`` returns
    ``maps``.
    """
    import torch
    import torch.nn.functional as F
    if sigma <= 0:
        return maps
    r = int(np.ceil(4 * sigma))
    t = torch.arange(-r, r + 1, dtype=maps.dtype, device=maps.device)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    g = g / g.sum()
    x = maps[:, None]
    mode = "reflect" if min(x.shape[-2:]) > r else "replicate"
    x = F.pad(x, (r, r, r, r), mode=mode)
    x = F.conv2d(x, g.view(1, 1, 1, -1))
    x = F.conv2d(x, g.view(1, 1, -1, 1))
    return x[:, 0]
