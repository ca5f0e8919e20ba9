"""The Noise2Noise U-Net (Lehtinen et al., "Noise2Noise: Learning image restoration
without clean data", ICML 2018, appendix A.1), with a width multiplier for the CPU.

Architecture (``w = round(48·width)`` channels, 3×3 convolutions, LeakyReLU(0.1))::

    enc_conv0, enc_conv1            w   → pool1 (2×2 max)
    enc_conv2                       w   → pool2
    enc_conv3                       w   → pool3
    enc_conv4                       w   → pool4
    enc_conv5                       w   → pool5
    enc_conv6                       w
    upsample5 ⊕ pool4 → dec_conv5a, dec_conv5b   2w
    upsample4 ⊕ pool3 → dec_conv4a, dec_conv4b   2w
    upsample3 ⊕ pool2 → dec_conv3a, dec_conv3b   2w
    upsample2 ⊕ pool1 → dec_conv2a, dec_conv2b   2w
    upsample1 ⊕ input → dec_conv1a (64·width), dec_conv1b (32·width), dec_conv1c (linear)

Five 2× poolings: inputs whose sides are not multiples of 32 are edge-padded and
the output cropped back. ``residual=True`` adds the input to the output
(``f(x) = x + g(x)``): the network starts at the identity, which makes short CPU
trainings converge much faster; the function it can represent is the same.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["UNet"]


def _conv(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.1))


class UNet(nn.Module):
    """Noise2Noise U-Net.

    Parameters
    ----------
    in_channels, out_channels : int, default 3
    width : float, default 1.0
        Multiplier of the paper's channel counts (48 / 96 / 64 / 32). 1.0 is the
        paper's network (about 1 M parameters); 0.25–0.5 train in minutes on a CPU.
    residual : bool, default True
        Output ``x + g(x)`` instead of ``g(x)``.
    """

    depth = 5

    def __init__(self, in_channels: int = 3, out_channels: int = 3, width: float = 1.0,
                 residual: bool = True):
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}.")
        w = max(4, int(round(48 * width)))
        w2 = 2 * w
        self.residual = bool(residual) and in_channels == out_channels
        self.enc0 = nn.Sequential(_conv(in_channels, w), _conv(w, w))
        self.enc = nn.ModuleList([_conv(w, w) for _ in range(4)])  # enc_conv2..5
        self.enc6 = _conv(w, w)
        dec = []
        for i in range(4):  # dec5, dec4, dec3, dec2
            cin = (w if i == 0 else w2) + w
            dec.append(nn.Sequential(_conv(cin, w2), _conv(w2, w2)))
        self.dec = nn.ModuleList(dec)
        c1a, c1b = max(4, int(round(64 * width))), max(4, int(round(32 * width)))
        self.dec1 = nn.Sequential(_conv(w2 + in_channels, c1a), _conv(c1a, c1b))
        self.out = nn.Conv2d(c1b, out_channels, 3, padding=1)
        for m in self.modules():  # He initialisation, as in the paper
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.1)
                nn.init.zeros_(m.bias)
        if self.residual:  # start exactly at the identity
            nn.init.zeros_(self.out.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = 2 ** self.depth
        ph, pw = (-h) % m, (-w) % m
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x
        skips = [xp]
        y = F.max_pool2d(self.enc0(xp), 2)
        skips.append(y)
        for i, conv in enumerate(self.enc):
            y = F.max_pool2d(conv(y), 2)
            if i < 3:
                skips.append(y)
        y = self.enc6(y)
        for conv in self.dec:
            y = F.interpolate(y, scale_factor=2, mode="nearest")
            y = conv(torch.cat([y, skips.pop()], 1))
        y = F.interpolate(y, scale_factor=2, mode="nearest")
        y = self.out(self.dec1(torch.cat([y, skips.pop()], 1)))
        if self.residual:
            y = y + xp
        return y[..., :h, :w]
