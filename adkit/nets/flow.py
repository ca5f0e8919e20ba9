r"""U-Flow's invertible blocks and the U-shaped normalizing flow (torch modules).

A normalizing flow is an invertible map :math:`f` from features :math:`x` to a latent
:math:`z = f(x)` trained so that :math:`z \sim \mathcal N(0, I)` on normal data. By the
change of variables,

.. math::

    \log p_X(x) = \log p_Z(f(x)) + \log |\det J_f(x)|
                = -\tfrac12 \|z\|^2 - \tfrac D2 \log 2\pi + \log |\det J_f(x)|,

so training minimizes :math:`\tfrac12\|z\|^2 - \log|\det J_f(x)|` (:func:`flow_nll`).

Every block here is an :class:`InvertibleModule`: ``forward(x) -> (y, log_det)``
with ``log_det`` of shape (B,) (:math:`\\log |\\det J|` of the block for each sample) and
``inverse(y) -> x``. Blocks compose with :class:`InvertibleSequential`.

- :class:`ActNorm`: per-channel affine map, initialized from the first batch
  (zero mean, unit variance per channel); Kingma & Dhariwal, "Glow", NeurIPS 2018.
- :class:`InvConv1x1`: invertible 1×1 convolution, LU-parametrized (Glow).
- :class:`Permutation`: fixed random channel permutation (FrEIA's AllInOneBlock
  with ``permute_soft=False``, the choice of the U-Flow code).
- :class:`AffineCoupling`: half of the channels pass unchanged and predict, through a
  conv-ReLU-conv subnet, a scale and a shift for the other half; the log-scale is
  soft-clamped, :math:`s = \frac{2 c}{\pi} \arctan(\frac{\pi s'}{2 c})` (clamp
  c = 2), the arctan soft clamp of FrEIA's AllInOneBlock / GLOWCouplingBlock.
- :class:`GlowStep`: ActNorm → permutation (or 1×1 conv) → coupling.
- :class:`PixelShuffleUp`: invertible upsampling, C channels at (H, W) → C/4 at
  (2H, 2W) (pixel shuffle; log det = 0).
- :class:`UFlowNet`: the U shape of Tailanian, Pardo & Musé (U-Flow, JMIV 2024): one
  flow stage per scale from the coarsest to the finest; at each scale but the finest,
  half of the stage's output channels leave as that scale's latent, the other half is
  upsampled and concatenated to the next (finer) scale's features.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["InvertibleModule", "InvertibleSequential", "ActNorm", "InvConv1x1",
           "Permutation", "AffineCoupling", "GlowStep", "PixelShuffleUp", "UFlowNet",
           "flow_nll"]


class InvertibleModule(nn.Module):
    """Base class: ``forward(x) -> (y, log_det (B,))`` and ``inverse(y) -> x``."""

    def inverse(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class InvertibleSequential(InvertibleModule):
    """Invertible blocks applied in order; log dets add up."""

    def __init__(self, *blocks: InvertibleModule):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x):
        log_det = x.new_zeros(x.shape[0])
        for b in self.blocks:
            x, ld = b(x)
            log_det = log_det + ld
        return x, log_det

    def inverse(self, y):
        for b in reversed(self.blocks):
            y = b.inverse(y)
        return y


class ActNorm(InvertibleModule):
    """Per-channel affine map :math:`y = (x + b) e^{s}`; log det = H·W·Σ_c s_c.

    On the first forward pass in training mode, ``b`` and ``s`` are set from the batch
    so that each output channel has zero mean and unit variance (data-dependent init).
    """

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(0, dtype=torch.uint8))

    @torch.no_grad()
    def _init(self, x):
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True) if x.numel() > x.shape[1] else \
            torch.ones_like(mean)
        self.bias.copy_(-mean)
        self.log_scale.copy_(-torch.log(std.clamp_min(1e-6)))
        self.initialized.fill_(1)

    def forward(self, x):
        if self.training and not bool(self.initialized):
            self._init(x)
        y = (x + self.bias) * torch.exp(self.log_scale)
        log_det = self.log_scale.sum() * (x.shape[2] * x.shape[3])
        return y, log_det.expand(x.shape[0])

    def inverse(self, y):
        return y * torch.exp(-self.log_scale) - self.bias


class Permutation(InvertibleModule):
    """Fixed random permutation of the channels (log det 0), drawn from ``seed``."""

    def __init__(self, channels: int, seed: int = 0):
        super().__init__()
        perm = np.random.default_rng(seed).permutation(channels)
        self.register_buffer("perm", torch.from_numpy(perm).long())
        self.register_buffer("inv_perm", torch.from_numpy(np.argsort(perm)).long())

    def forward(self, x):
        return x[:, self.perm], x.new_zeros(x.shape[0])

    def inverse(self, y):
        return y[:, self.inv_perm]


class InvConv1x1(InvertibleModule):
    r"""Invertible 1×1 convolution, :math:`W = P L (U + \mathrm{diag}(\sigma e^{s}))`.

    P is a fixed permutation, L unit lower triangular, U strictly upper triangular,
    σ fixed signs: :math:`\\log |\\det W| = \\sum s`, so log det = H·W·Σ s (Glow, Section 3.2).
    Initialized from a random rotation drawn from ``seed``.
    """

    def __init__(self, channels: int, seed: int = 0):
        super().__init__()
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.standard_normal((channels, channels)))
        import scipy.linalg
        p, lower, upper = scipy.linalg.lu(q)
        d = np.diag(upper)
        self.register_buffer("p", torch.from_numpy(p.astype(np.float32)))
        self.register_buffer("sign", torch.from_numpy(np.sign(d).astype(np.float32)))
        self.register_buffer("l_mask", torch.tril(torch.ones(channels, channels), -1))
        self.lower = nn.Parameter(torch.from_numpy(lower.astype(np.float32)))
        self.upper = nn.Parameter(torch.from_numpy(np.triu(upper, 1).astype(np.float32)))
        self.log_s = nn.Parameter(torch.from_numpy(np.log(np.abs(d)).astype(np.float32)))

    def weight(self):
        c = self.lower.shape[0]
        eye = torch.eye(c, device=self.lower.device, dtype=self.lower.dtype)
        lower = self.lower * self.l_mask + eye
        upper = self.upper * self.l_mask.T + torch.diag(self.sign * torch.exp(self.log_s))
        return self.p @ lower @ upper

    def forward(self, x):
        w = self.weight()
        y = F.conv2d(x, w[:, :, None, None])
        log_det = self.log_s.sum() * (x.shape[2] * x.shape[3])
        return y, log_det.expand(x.shape[0])

    def inverse(self, y):
        w_inv = torch.linalg.inv(self.weight().double()).to(y.dtype)
        return F.conv2d(y, w_inv[:, :, None, None])


def soft_clamp(s: torch.Tensor, clamp: float) -> torch.Tensor:
    r""":math:`\frac{2c}{\pi}\arctan(\frac{\pi s}{2c})`: ≈ s near 0, smoothly bounded by ±c."""
    return clamp * (2.0 / math.pi) * torch.atan(s * (math.pi / 2.0) / clamp)


class AffineCoupling(InvertibleModule):
    """Affine coupling: ``x = [x1, x2]``; ``y = [x1, x2·exp(s(x1)) + t(x1)]``.

    The subnet is conv(k) → ReLU → conv(k) with ``hidden = round(hidden_ratio · C1)``
    channels; its last layer starts at zero, so the block starts as the identity.
    The log-scale is soft-clamped (:func:`soft_clamp`); log det = Σ s.
    """

    def __init__(self, channels: int, kernel_size: int = 3, clamp: float = 2.0,
                 hidden_ratio: float = 1.0):
        super().__init__()
        if channels < 2:
            raise ValueError(f"an affine coupling needs at least 2 channels, got {channels}.")
        self.c1 = channels // 2
        self.c2 = channels - self.c1
        self.clamp = float(clamp)
        hidden = max(1, int(round(hidden_ratio * self.c1)))
        pad = kernel_size // 2
        self.subnet = nn.Sequential(
            nn.Conv2d(self.c1, hidden, kernel_size, padding=pad),
            nn.ReLU(),
            nn.Conv2d(hidden, 2 * self.c2, kernel_size, padding=pad),
        )
        nn.init.zeros_(self.subnet[-1].weight)
        nn.init.zeros_(self.subnet[-1].bias)

    def _scale_shift(self, x1):
        h = self.subnet(x1)
        s, t = h[:, :self.c2], h[:, self.c2:]
        return soft_clamp(s, self.clamp), t

    def forward(self, x):
        x1, x2 = x[:, :self.c1], x[:, self.c1:]
        s, t = self._scale_shift(x1)
        y2 = x2 * torch.exp(s) + t
        return torch.cat([x1, y2], dim=1), s.flatten(1).sum(1)

    def inverse(self, y):
        y1, y2 = y[:, :self.c1], y[:, self.c1:]
        s, t = self._scale_shift(y1)
        return torch.cat([y1, (y2 - t) * torch.exp(-s)], dim=1)


class GlowStep(InvertibleSequential):
    """One Glow step: ActNorm → channel mixing → affine coupling.

    ``permutation="fixed"`` mixes channels with a fixed random permutation (the U-Flow
    code, FrEIA's AllInOneBlock); ``"conv"`` with a learned invertible 1×1 convolution
    (Glow).
    """

    def __init__(self, channels: int, kernel_size: int = 3, clamp: float = 2.0,
                 permutation: str = "fixed", hidden_ratio: float = 1.0, seed: int = 0):
        if permutation not in ("fixed", "conv"):
            raise ValueError(f"permutation must be 'fixed' or 'conv', got {permutation!r}.")
        mix = Permutation(channels, seed) if permutation == "fixed" else InvConv1x1(channels, seed)
        super().__init__(ActNorm(channels), mix,
                         AffineCoupling(channels, kernel_size, clamp, hidden_ratio))


class PixelShuffleUp(InvertibleModule):
    """Invertible 2× upsampling: (B, 4C, H, W) → (B, C, 2H, 2W) (pixel shuffle), log det 0."""

    def forward(self, x):
        if x.shape[1] % 4:
            raise ValueError(f"pixel-shuffle upsampling needs channels divisible by 4, "
                             f"got {x.shape[1]}.")
        return F.pixel_shuffle(x, 2), x.new_zeros(x.shape[0])

    def inverse(self, y):
        return F.pixel_unshuffle(y, 2)


class UFlowNet(nn.Module):
    """The U-shaped flow over multi-scale features.

    Parameters
    ----------
    channels : sequence of int
        Feature channels of each scale, finest first (e.g. (40, 112, 320) for
        EfficientNet-Lite0 at strides 8, 16, 32). Each scale must be twice as large
        as the next one.
    n_steps : int
        Glow steps per flow stage (U-Flow: 4). Subnet kernels alternate 3×3 and 1×1.
    clamp : float
        Soft clamp of the coupling log-scale (U-Flow / FrEIA: 2.0).
    permutation : {"fixed", "conv"}
        Channel mixing between couplings.
    hidden_ratio : float
        Subnet hidden channels / input channels (U-Flow: 1.0).
    seed : int
        Seeds the permutations / 1×1 convolutions (weights use torch's generator).

    Notes
    -----
    From the coarsest scale L to the finest: the stage input is the features of the
    scale, concatenated (after the finest) with what came up from the coarser scale.
    The stage output is split: its first channels are the latent ``z_s``; the last
    ``n_up`` (half, rounded down to a multiple of 4) are pixel-shuffled to (n_up/4, 2H,
    2W) and sent to the next scale. At the finest scale the whole output is ``z_1``.
    ``forward(features) -> (z, log_det)`` with ``z`` a list, finest first;
    ``inverse(z) -> features``.
    """

    def __init__(self, channels: Sequence[int], n_steps: int = 4, clamp: float = 2.0,
                 permutation: str = "fixed", hidden_ratio: float = 1.0, seed: int = 0):
        super().__init__()
        channels = [int(c) for c in channels]
        if not channels:
            raise ValueError("UFlowNet needs the channels of at least one scale.")
        self.in_channels = channels
        self.stages = nn.ModuleList()
        self.up = PixelShuffleUp()
        n_up: list[int] = []
        z_channels: list[int] = []
        carried = 0
        stages = []
        for s in reversed(range(len(channels))):  # coarsest first
            c = channels[s] + carried
            steps = [GlowStep(c, 3 if i % 2 == 0 else 1, clamp, permutation, hidden_ratio,
                              seed=seed * 1000 + s * 100 + i) for i in range(n_steps)]
            stages.append(InvertibleSequential(*steps))
            if s > 0:
                up = (c // 2) // 4 * 4
                if up == 0:
                    raise ValueError(f"scale {s} has {c} channels: too few to send 4 up.")
                n_up.append(up)
                z_channels.append(c - up)
                carried = up // 4
            else:
                n_up.append(0)
                z_channels.append(c)
        # stored finest first
        self.stages = nn.ModuleList(stages[::-1])
        self.n_up = n_up[::-1]
        self.z_channels = z_channels[::-1]

    def forward(self, features: Sequence[torch.Tensor]):
        if len(features) != len(self.in_channels):
            raise ValueError(f"UFlowNet expects {len(self.in_channels)} feature maps, got "
                             f"{len(features)}.")
        n = len(features)
        z: list[torch.Tensor] = [None] * n  # type: ignore[list-item]
        log_det = features[0].new_zeros(features[0].shape[0])
        carry = None
        for s in reversed(range(n)):
            x = features[s]
            if carry is not None:
                if carry.shape[2:] != x.shape[2:]:
                    raise ValueError(
                        f"scale {s} features are {tuple(x.shape[2:])} but the upsampled "
                        f"coarser scale is {tuple(carry.shape[2:])}: each scale must be "
                        "exactly twice the next (use an image size divisible by the "
                        "largest stride).")
                x = torch.cat([x, carry], dim=1)
            y, ld = self.stages[s](x)
            log_det = log_det + ld
            up = self.n_up[s]
            if up:
                z[s] = y[:, :y.shape[1] - up]
                carry, ld = self.up(y[:, y.shape[1] - up:])
                log_det = log_det + ld
            else:
                z[s] = y
        return z, log_det

    def inverse(self, z: Sequence[torch.Tensor]):
        n = len(z)
        feats: list[torch.Tensor] = [None] * n  # type: ignore[list-item]
        carry_up = None  # what scale s received from scale s+1, recovered at scale s
        out_carry = [None] * n
        for s in range(n):  # finest first: invert stage s, recover what came from s+1
            y = z[s] if out_carry[s] is None else torch.cat([z[s], out_carry[s]], dim=1)
            x = self.stages[s].inverse(y)
            c = self.in_channels[s]
            feats[s] = x[:, :c]
            if s + 1 < n:
                carry_up = x[:, c:]
                out_carry[s + 1] = self.up.inverse(carry_up)
        return feats


def flow_nll(z: Sequence[torch.Tensor], log_det: torch.Tensor) -> torch.Tensor:
    r"""Negative log-likelihood per dimension, :math:`\mathrm{mean}_b(\tfrac12\|z_b\|^2 -
    \log|\det J_b|) / D` (the constant :math:`\tfrac D2\log 2\pi` dropped; dividing by
    the number of dimensions D only rescales the loss)."""
    sq = sum(0.5 * (zi ** 2).flatten(1).sum(1) for zi in z)
    dims = sum(zi[0].numel() for zi in z)
    return ((sq - log_det) / dims).mean()
