r"""Noise2Noise variability normalization (Artola, Kolodziej, Morel & Ehret,
"Unsupervised variability normalization for anomaly detection", ICIP 2021).

Normal parts vary in ways that are not defects (random speckles on a pill, texture
grain, sensor noise). A patch detector that compares a query with training images
finds no match for that variability and raises false alarms, or needs a threshold
so high that real defects hide below it. The paper removes the variability with a
network ``f`` trained as in Noise2Noise (Lehtinen et al., 2018): pairs ``(x¹, x²)`` of
*different normal images* play the role of two noisy observations of the same
object, and ``f`` is trained with the L1 loss

.. math::  L(f) = \sum_{(x^1, x^2)} \lVert f(x^1) - x^2 \rVert_1 .

What one normal image cannot predict about another (where the speckles fall, the
noise) is averaged out: ``f`` converges to the (median) of the target given the
input, i.e. the part common to normal images, while structure seen in the input is
kept. Three ways of choosing the pairs are compared in the paper and here
(``pairing``):

``"images"``
    any two training images (the same crop of both);
``"nearest_images"``
    each image with one of its ``n_nearest`` nearest training images (L2 distance);
``"nearest_patches"``
    a patch of one image with its nearest patch (L2) found by a nearest-neighbour
    search in a local window (± ``search`` pixels) of the ``n_nearest`` nearest
    training images: the pairs match even when parts move between images.

``N2N`` is a :class:`~adkit.normalize.base.Transform`: ``fit`` trains ``f`` on the
training images, ``transform`` applies it, so it composes in front of a detector::

    Pipeline(steps=[N2N()], detector=SelfSimilarity())
"""
from __future__ import annotations

import numpy as np

from ..params import Boolean, Device, Integral, Interval, Options, Real, Seed
from ..training import train_epochs
from .base import Transform

__all__ = ["N2N"]

PAIRINGS = ("images", "nearest_images", "nearest_patches")


class N2N(Transform):
    """Noise2Noise network trained on pairs of normal images (Artola et al. 2021).

    Parameters
    ----------
    pairing : {"images", "nearest_images", "nearest_patches"}, default "images"
        How training pairs ``(x¹, x²)`` are chosen (see the module documentation).
        The paper compares the three; on the embedded speckled pills "images"
        removes the most variability for a short CPU training (notebook 02).
    epochs : int, default 40
        Training epochs; one epoch draws ``crops_per_image`` pairs per training image.
    batch_size : int, default 8
    crop : int, default 64
        Side of the square training crops (pairings "images" and "nearest_images").
        Crops keep training fast on a CPU; the network is fully convolutional and is
        applied to whole images.
    patch_size : int, default 32
        Side of the patches matched by the pairing "nearest_patches".
    n_nearest : int, default 3
        Number of nearest training images used by the nearest pairings.
    search : int, default 6
        Half-size of the local search window of "nearest_patches" (pixels).
    crops_per_image : int, default 4
    width : float, default 0.25
        Width multiplier of the Noise2Noise U-Net (1.0 = the paper's 48/96 channels;
        see :class:`adkit.nets.unet.UNet`).
    lr : float, default 2e-3
        Adam learning rate (β = (0.9, 0.99) as in Noise2Noise).
    seed : int, default 0
        Seeds the pairs, crops and weights: same seed, same network.
    device : str or None
        ``None`` uses a GPU when present, else the CPU.
    progress : bool, default True
        Show a progress bar while training.

    Attributes
    ----------
    history_ : list of float
        Mean L1 loss of each epoch (per pixel and channel).
    net_ : adkit.nets.unet.UNet
    """

    _parameter_constraints = {
        "pairing": Options(*PAIRINGS),
        "epochs": Interval(Integral, 1, 100000),
        "batch_size": Interval(Integral, 1, 4096),
        "crop": Interval(Integral, 8, 4096),
        "patch_size": Interval(Integral, 8, 1024),
        "n_nearest": Interval(Integral, 1, 1000),
        "search": Interval(Integral, 0, 64),
        "crops_per_image": Interval(Integral, 1, 10000),
        "width": Interval(Real, 0, 4, closed="right"),
        "lr": Interval(Real, 0, 1, closed="right"),
        "seed": Seed(),
        "device": [None, Device()],
        "progress": Boolean(),
    }
    _min_train = 2
    _min_train_why = "its training pairs are two different normal images"

    def __init__(self, *, pairing: str = "images", epochs: int = 40, batch_size: int = 8,
                 crop: int = 64, patch_size: int = 32, n_nearest: int = 3, search: int = 6,
                 crops_per_image: int = 4, width: float = 0.25, lr: float = 2e-3,
                 seed: int = 0, device: str | None = None, progress: bool = True):
        self._set_params(locals())

    # -- network ----------------------------------------------------------------------
    def _make_net(self):
        from ..nets.unet import UNet
        return UNet(3, 3, width=self.width, residual=True)

    # -- pairs ------------------------------------------------------------------------
    def _nearest_images(self, x: np.ndarray) -> np.ndarray:
        """(N, n_nearest) indices of the nearest other training images (L2 on 32-px thumbnails)."""
        import torch
        import torch.nn.functional as F
        t = torch.from_numpy(np.moveaxis(x, -1, 1).copy())
        small = F.interpolate(t, size=(min(32, x.shape[1]), min(32, x.shape[2])),
                              mode="bilinear", antialias=True, align_corners=False)
        v = small.reshape(len(x), -1).double()
        d = torch.cdist(v, v)
        d.fill_diagonal_(float("inf"))
        k = min(self.n_nearest, len(x) - 1)
        return d.argsort(1)[:, :k].numpy()

    def _patch_pairs(self, x: np.ndarray, nn_idx: np.ndarray):
        """For a grid of patches of each image, the nearest patch (L2) in a local window
        of its nearest images. Returns (ys, xs, match) with match (N, ny, nx, 3) holding
        (image, y, x) of the matched patch."""
        import torch
        n, h, w, _ = x.shape
        p = min(self.patch_size, h, w)
        r = self.search
        step = max(1, p // 2)
        ys = np.unique(np.r_[np.arange(0, h - p + 1, step), h - p])
        xs = np.unique(np.r_[np.arange(0, w - p + 1, step), w - p])
        t = torch.from_numpy(np.moveaxis(x, -1, 1).copy())          # (N, C, H, W)
        cand = t[torch.from_numpy(nn_idx)]                            # (N, k, C, H, W)
        k = cand.shape[1]
        cand = torch.nn.functional.pad(cand.reshape(n * k, 3, h, w), (r, r, r, r))
        cand = cand.reshape(n, k, 3, h + 2 * r, w + 2 * r)
        q = t[:, None]
        best = torch.full((n, k, len(ys), len(xs)), float("inf"))
        best_off = torch.zeros((n, k, len(ys), len(xs), 2), dtype=torch.long)
        ys_t, xs_t = torch.from_numpy(ys), torch.from_numpy(xs)
        for dy in range(-r, r + 1):
            vy = ((ys + dy >= 0) & (ys + dy <= h - p))
            for dx in range(-r, r + 1):
                vx = ((xs + dx >= 0) & (xs + dx <= w - p))
                sh = cand[..., r + dy:r + dy + h, r + dx:r + dx + w]
                d = ((q - sh) ** 2).sum(2)                            # (N, k, H, W)
                d = d.unfold(2, p, 1)[:, :, ys_t].sum(-1)             # (N, k, ny, W-p+1)
                d = d.unfold(3, p, 1)[:, :, :, xs_t].sum(-1)          # (N, k, ny, nx)
                valid = torch.from_numpy(vy[:, None] & vx[None, :])
                d = torch.where(valid, d, torch.full_like(d, float("inf")))
                better = d < best
                best = torch.where(better, d, best)
                best_off[..., 0] = torch.where(better, dy, best_off[..., 0])
                best_off[..., 1] = torch.where(better, dx, best_off[..., 1])
        j = best.argmin(1)                                            # (N, ny, nx)
        off = torch.gather(best_off, 1, j[:, None, :, :, None].expand(-1, 1, -1, -1, 2))[:, 0]
        img = torch.from_numpy(nn_idx)[torch.arange(n)[:, None, None], j]
        match = np.stack([img.numpy(), ys[None, :, None] + off[..., 0].numpy(),
                          xs[None, None, :] + off[..., 1].numpy()], -1)
        return ys, xs, match, p

    def _sampler(self, x: np.ndarray, rng: np.random.Generator):
        """A function drawing a batch of (input, target) pairs as numpy (B, C, s, s)."""
        n, h, w, _ = x.shape
        xc = np.ascontiguousarray(np.moveaxis(x, -1, 1))
        if self.pairing == "nearest_patches":
            nn_idx = self._nearest_images(x)
            ys, xs, match, p = self._patch_pairs(x, nn_idx)

            def draw(b):
                i = rng.integers(0, n, b)
                gy = rng.integers(0, len(ys), b)
                gx = rng.integers(0, len(xs), b)
                src = np.stack([xc[a, :, ys[u]:ys[u] + p, xs[v]:xs[v] + p]
                                for a, u, v in zip(i, gy, gx)])
                m = match[i, gy, gx]
                tgt = np.stack([xc[j, :, yy:yy + p, xx:xx + p] for j, yy, xx in m])
                return src, tgt
            return draw

        c = min(self.crop, h, w)
        nn_idx = self._nearest_images(x) if self.pairing == "nearest_images" else None

        def draw(b):
            i = rng.integers(0, n, b)
            if nn_idx is None:  # any other image
                j = (i + rng.integers(1, n, b)) % n
            else:
                j = nn_idx[i, rng.integers(0, nn_idx.shape[1], b)]
            y0 = rng.integers(0, h - c + 1, b)
            x0 = rng.integers(0, w - c + 1, b)
            src = np.stack([xc[a, :, u:u + c, v:v + c] for a, u, v in zip(i, y0, x0)])
            tgt = np.stack([xc[a, :, u:u + c, v:v + c] for a, u, v in zip(j, y0, x0)])
            return src, tgt
        return draw

    # -- Transform --------------------------------------------------------------------
    def fit(self, images) -> "N2N":
        """Train the network on pairs of the (normal) training ``images``; returns self.

        Interrupting (Ctrl-C / the notebook's stop button) ends training cleanly and
        keeps the weights reached so far.
        """
        return super().fit(images)

    def _fit(self, x: np.ndarray) -> None:
        import torch

        from ..torch_utils import default_device, seed_everything
        seed_everything(self.seed)
        rng = np.random.default_rng(self.seed)
        dev = default_device(self.device)
        draw = self._sampler(x, rng)
        net = self._make_net().to(dev)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr, betas=(0.9, 0.99))
        n_steps = max(1, int(np.ceil(len(x) * self.crops_per_image / self.batch_size)))

        def epoch() -> float:
            total = 0.0
            for _ in range(n_steps):
                src, tgt = draw(self.batch_size)
                src = torch.from_numpy(src).to(dev)
                tgt = torch.from_numpy(tgt).to(dev)
                loss = (net(src) - tgt).abs().mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach())
            return total / n_steps

        self.history_ = []
        self.net_ = net
        train_epochs(epoch, self.epochs, net=net, name="N2N", desc=f"N2N ({self.pairing})",
                     progress=self.progress, history=self.history_,
                     stacklevel=5)  # warn at the user's call: N2N.fit -> Transform.fit -> _fit

    def _transform(self, images: np.ndarray) -> np.ndarray:
        import torch

        from ..torch_utils import default_device, to_numpy_images, to_tensor
        dev = default_device(self.device)
        net = self.net_.to(dev).eval()
        out = []
        with torch.no_grad():
            for i in range(0, len(images), 4):
                y = net(to_tensor(images[i:i + 4], dev)).clamp_(0, 1)
                out.append(to_numpy_images(y))
        return np.concatenate(out)

    def _get_state(self) -> dict:
        return {"net": {k: v.detach().cpu() for k, v in self.net_.state_dict().items()},
                "history": [float(v) for v in self.history_]}

    def _set_state(self, state: dict) -> None:
        from ..estimator import load_module_state, state_floats
        history = state_floats(state, "history", default=[])
        net = self._make_net()
        load_module_state(net, state, "net")
        self.net_ = net.eval()
        self.history_ = history
