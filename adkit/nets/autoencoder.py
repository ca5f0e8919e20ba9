"""The AE / AESc convolutional autoencoder (Collin & De Vleeschouwer, ICPR 2020).

Architecture (``C_i = round(base · width · 2^i)`` channels at level i, 5×5 kernels,
BatchNorm + LeakyReLU(0.3) after every hidden convolution; ``base=16, width=1`` is the
paper's network, 16 to 512 channels, a 4×4×512 latent at 256 px)::

    encoder   level i = 0..5:   e_i = LReLU(BN(conv5x5, stride 2))(e_{i-1})   H/2^(i+1), C_i
                                (e_5 is the latent: 4x4 at 256 px)
    decoder   d = upsample(e_5)
              level j = 4..0:   d = LReLU(BN(conv5x5(d)))  -> C_j channels, H/2^(j+1)
                                d = d + e_j                (skip connection, AESc only)
                                d = upsample(d)
              out = sigmoid(conv5x5(d))  -> 3 channels, H x W

Six stride-2 convolutions down, six (nearest-neighbour 2×) upsamplings each
followed by a 5×5 convolution up (five hidden ones and the output layer), and
additive skip connections between the encoder and decoder feature maps of the same
resolution (five of them; the latent level has none). ``skips=False`` gives the plain
AE of the paper with the same layers.

Monte-Carlo dropout (paper, Sec. III-C): a dropout layer follows each encoder level
and each decoder level (before the skip addition), with rates (0, 0, 0.1, 0.2,
0.3, 0.4) from the finest level (H/2) to the coarsest (the latent). These layers are
**inactive** in training and in ordinary inference, as in the authors' setting (the
network is trained without dropout); they are switched on by :meth:`Autoencoder.mc`
to draw the stochastic reconstructions whose variance is the uncertainty map.
BatchNorm stays in inference mode while sampling.

Inputs whose sides are not multiples of 64 are reflect-padded and the output cropped.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Autoencoder", "MCDropout", "PAPER_DROPOUT"]

#: dropout rates from the finest level (stride 2) to the coarsest (the latent)
PAPER_DROPOUT = (0.0, 0.0, 0.1, 0.2, 0.3, 0.4)


class MCDropout(nn.Module):
    """Dropout that is only active when ``self.active`` is True (MC sampling),
    independent of ``train()`` / ``eval()``."""

    def __init__(self, p: float):
        super().__init__()
        if not 0 <= p < 1:
            raise ValueError(f"dropout rate must be in [0, 1), got {p}.")
        self.p = float(p)
        self.active = False

    def forward(self, x):
        if self.active and self.p > 0:
            return F.dropout(x, self.p, training=True)
        return x

    def extra_repr(self):
        return f"p={self.p}"


def _block(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 5, stride=stride, padding=2),
                         nn.BatchNorm2d(cout), nn.LeakyReLU(0.3))


class Autoencoder(nn.Module):
    """AE (``skips=False``) or AESc (``skips=True``).

    Parameters
    ----------
    width : float, default 1.0
        Multiplier of the channel counts ``base · 2^i``. 1.0 with ``base=16`` is the
        authors' configuration (16, 32, …, 512 channels: the paper's 4×4×512 latent at
        256 px, 8.7 M parameters); 0.5 has a quarter of the parameters and multiply-adds.
    skips : bool, default True
        Additive skip connections (AESc). False: the plain AE.
    base : int, default 16
        Channels of the first level before ``width`` (the authors' 16).
    dropout : sequence of 6 floats, default :data:`PAPER_DROPOUT`
        MC-dropout rates from fine to coarse.
    depth : int, default 6
        Number of stride-2 levels (the paper: 6, a 4×4 latent at 256 px).
    """

    def __init__(self, width: float = 1.0, skips: bool = True, base: int = 16,
                 dropout=PAPER_DROPOUT, depth: int = 6):
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}.")
        if len(dropout) != depth:
            raise ValueError(f"dropout needs one rate per level ({depth}), got {list(dropout)}.")
        self.depth = int(depth)
        self.skips = bool(skips)
        ch = [max(2, int(round(base * width * 2 ** i))) for i in range(depth)]
        self.channels = ch
        self.enc = nn.ModuleList([_block(3 if i == 0 else ch[i - 1], ch[i], 2) for i in range(depth)])
        self.enc_drop = nn.ModuleList([MCDropout(p) for p in dropout])
        # decoder level j (depth-2 .. 0) maps C_{j+1} -> C_j
        self.dec = nn.ModuleList([_block(ch[j + 1], ch[j], 1) for j in range(depth - 1)])
        self.dec_drop = nn.ModuleList([MCDropout(dropout[j]) for j in range(depth - 1)])
        self.out = nn.Conv2d(ch[0], 3, 5, padding=2)

    @property
    def multiple(self) -> int:
        return 2 ** self.depth

    def set_mc(self, active: bool) -> None:
        for m in self.modules():
            if isinstance(m, MCDropout):
                m.active = bool(active)

    @contextmanager
    def mc(self):
        """Context in which the MC-dropout layers are active (BatchNorm in eval mode)."""
        was_training = self.training
        self.eval()
        self.set_mc(True)
        try:
            yield self
        finally:
            self.set_mc(False)
            self.train(was_training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        feats = []
        for conv, drop in zip(self.enc, self.enc_drop):
            x = drop(conv(x))
            feats.append(x)
        d = F.interpolate(feats[-1], scale_factor=2, mode="nearest")
        for j in range(self.depth - 2, -1, -1):
            d = self.dec_drop[j](self.dec[j](d))
            if self.skips:
                d = d + feats[j]
            d = F.interpolate(d, scale_factor=2, mode="nearest")
        y = torch.sigmoid(self.out(d))
        return y[..., :h, :w]
