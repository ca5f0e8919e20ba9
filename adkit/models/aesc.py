r"""AESc: an autoencoder with skip connections trained to remove Stain-shaped noise.

Collin & De Vleeschouwer, "Improved anomaly detection by training an autoencoder with
skip connections on images corrupted with Stain-shaped noise", ICPR 2020
(arXiv:2008.12977).

A reconstruction-based detector maps any image :math:`x` to a *clean* image
:math:`\hat x = f(x)` and flags what it had to change. Skip connections make the
reconstruction sharp (fine detail no longer squeezes through a 4×4 latent), but,
trained to reproduce its clean training images, :math:`\min_f \sum \lVert f(x) - x
\rVert^2`, a network with skips simply learns the identity through its finest skip
— and then reproduces defects as faithfully as everything else: the *identity trap*.
The paper trains instead on corrupted inputs :math:`\tilde x = c(x)` with the clean
image as target,

.. math::  \min_f \; \sum_x \lVert f(c(x)) - x \rVert_2^2 ,

so the identity is no longer a solution: :math:`f` must learn what normal images look
like to undo :math:`c`. The Stain corruption (:func:`adkit.corruptions.stain`: random
irregular blobs of a random gray level) is the paper's proposal; Gaussian noise,
Scratch, Drops and the mixtures are the alternatives of its Table III
(``corruption=``).

Training (the authors' configuration: Adam, MSE, batch 16, learning rate reduced on a
plateau of the validation loss, 20 % of the training images held out, the best
validation epoch kept): each epoch draws fresh corruptions of the training images;
after it, the loss on *fixed* corruptions of the held-out images is measured, and
training stops when it has not improved for ``patience`` epochs
(:class:`adkit.training.EarlyStopping`). ``history_`` and ``val_history_`` hold both
curves, so a lesson can show the plateau.

The paper trains on grayscale images (one channel in and out); adkit trains on RGB
(three), with the same layers otherwise.

Anomaly maps (Sec. III-C):

- residual: :math:`r(p) = \sum_c |x_c(p) - \hat x_c(p)|` (the authors sum the
  absolute residual over the colour channels; ``reduce="mean"`` divides by 3);
- uncertainty (Monte-Carlo dropout): the network is run ``n_samples`` = 30 times with
  dropout switched on (rates 0, 0, 10, 20, 30, 40 % from the finest to the coarsest
  of the six levels, after each encoder and decoder level), and
  :math:`u(p) = \sum_c \mathrm{Var}_s[\hat x^{(s)}_c(p)]`.

The image score is the L2 norm of the map, normalised by the number of pixels (the
root mean square, as in the authors' evaluation; a constant factor that does not
change any ranking): :math:`s = \sqrt{\tfrac{1}{HW}\sum_p m(p)^2}`.
"""
from __future__ import annotations

import numpy as np

from ..params import (Boolean, Device, Dict, Integral, Interval, Options,
                      ParameterValueError, Real, Seed, Tuple)
from ..corruptions import CORRUPTIONS, corrupt
from ..estimator import ModelFileError
from ..training import train_epochs
from .base import AnomalyResult, Detector

__all__ = ["AESc"]

MAPS = ("residual", "uncertainty")
#: the paper's MC-dropout rates of its six levels, finest first (the network's
#: ``adkit.nets.autoencoder.PAPER_DROPOUT``, repeated here so that importing the detector
#: does not import torch)
PAPER_DROPOUT = (0.0, 0.0, 0.1, 0.2, 0.3, 0.4)


class AESc(Detector):
    """Autoencoder (with or without skips) trained on corrupted images (Collin et al. 2020).

    The paper works on grayscale images (its networks have one input and one output
    channel); adkit's network reads and reconstructs RGB (three channels in and out,
    the rest unchanged), and its maps sum over the colour channels as the authors'
    colour configuration does.

    Parameters
    ----------
    corruption : {"stain", "gaussian", "scratch", "drops", "mix1", "mix2"} or None, default "stain"
        Corruption applied to each training image (a fresh draw at every step) before
        it goes through the network; the target is always the clean image. ``None``
        trains a plain autoencoder on clean images (with skips: the identity trap).
        Paper default: ``"stain"``.
    skips : bool, default True
        Additive skip connections (AESc). ``False``: the plain AE of the paper.
    width : float, default 0.5
        Channel multiplier of :class:`adkit.nets.autoencoder.Autoencoder`:
        ``16 · width · 2^i`` channels at level i = 0..5. ``width=1.0`` is the paper's
        network (16 to 512 channels, a 4×4×512 latent at 256 px, 8.7 M parameters);
        the default 0.5 (8 to 256 channels, 2.2 M parameters) costs a quarter of its
        multiply-adds (a training step at 256 px: 35 ms per image on one core,
        against 95 ms for the paper's width; ``python -m adkit bench --task aesc_step``).
    epochs : int, default 60
        The epoch budget (paper: 250, on a GPU). With ``validation_fraction`` > 0,
        training usually stops earlier (``patience``) and keeps the best epoch.
    batch_size : int >= 2, default 16
        Paper: 16. With few training images a smaller batch (notebook 06: 4) gives
        more optimisation steps per epoch and trains faster on a CPU. At least 2 (and
        at least 2 training images): the network's BatchNorm normalizes over the batch.
    lr : float, default 1e-3
        Adam learning rate, divided by 10 when the validation loss (without
        validation: the epoch's training loss) has not improved for ``lr_patience``
        epochs (reduce-on-plateau). The authors' configuration uses 0.01 over 250
        epochs, halved on a plateau of the validation PSNR.
    lr_patience : int, default 5
        Epochs without improvement before the learning rate is divided by 10.
    validation_fraction : float, default 0.2
        Fraction of the training images held out (a seeded random draw, at least one
        image, so at least 3 training images are needed) to measure a
        validation loss after every epoch: the MSE between the clean held-out images
        and the network's reconstruction of *fixed* corruptions of them (one draw per
        image, made once), so that two epochs are compared on the same inputs. It
        drives the learning-rate schedule, the early stop and the choice of the
        weights kept (the best epoch's). The authors hold out 20 % (Keras
        ``validation_split=0.2``) and keep the best validation epoch. 0: no
        validation, all images train, the last epoch is kept.
    patience : int or None, default 10
        Early stop: training ends when the validation loss has not improved for
        ``patience`` epochs, and the best epoch's weights are restored
        (:class:`adkit.training.EarlyStopping`). ``None``: run the whole budget (the
        best epoch is still the one kept). Ignored without validation.
    n_samples : int, default 30
        Monte-Carlo dropout passes for the uncertainty map (paper: 30).
    depth : int in [1, 8], default 6
        Number of stride-2 levels of the encoder (and of upsampling levels of the
        decoder): the latent is ``H / 2^depth`` pixels on a side. Paper: 6, a 4×4
        latent at 256 px. At 64 px six levels leave a 1×1 latent; ``depth=4`` keeps the
        paper's 4×4 latent there (notebook 06). Training images need sides of at least
        ``2^depth`` pixels (other sides are reflect-padded to a multiple of it).
    dropout : sequence of ``depth`` floats or None, default None
        MC-dropout rates from the finest to the coarsest level. ``None``: the paper's
        rates (0, 0, 0.1, 0.2, 0.3, 0.4) for its six levels, their first ``depth``
        with fewer levels (``depth=4``: 0, 0, 0.1, 0.2); with more than six levels,
        give them. Dropout is active only while drawing the MC samples.
    map : {"residual", "uncertainty"}, default "residual"
        Which map becomes ``result.maps`` (and the scores); both are always in
        ``result.extras``.
    reduce : {"sum", "mean"}, default "sum"
        How a map combines the three colour channels (the authors sum).
    corruption_params : dict or None
        Extra keywords for the corruption function (e.g. ``{"variance": 0.4}`` for
        ``"gaussian"``, ``{"size": (0.05, 0.2)}`` for ``"stain"``).
    seed : int, default 0
        Seeds weights, the held-out split, batches, corruptions and MC-dropout masks.
    device : str or None
        ``None`` uses a GPU when present, else the CPU.
    progress : bool, default True
        Show a progress bar while training.

    Attributes
    ----------
    history_ : list of float
        Mean training loss (MSE to the clean image, on freshly corrupted inputs) of
        every epoch run.
    val_history_ : list of float
        Validation loss (MSE on the fixed corruptions of the held-out images) after
        every epoch; empty without validation. Plot both with
        :func:`adkit.viz.plot_history` to see the plateau.
    best_epoch_ : int
        The epoch (1-based) whose weights the network has: the best validation epoch,
        or the last one without validation.
    n_validation_ : int
        Number of training images held out for validation.
    net_ : adkit.nets.autoencoder.Autoencoder

    Notes
    -----
    ``result.extras`` holds ``residual`` and ``uncertainty`` (N, H, W),
    ``reconstruction`` (N, H, W, 3, the deterministic output) and ``mc_mean``
    (mean of the MC samples).

    On a CPU the network runs in the channels-last memory layout (the layout in which
    oneDNN's convolutions are fastest: a training step 1.4–1.8× faster than the
    default layout, same results up to float rounding). torch uses one thread per
    core; on a machine shared with other jobs ``torch.set_num_threads(1)`` is often
    faster.
    """

    name = "aesc"
    # the network's BatchNorm normalizes over the batch: a batch of one image has no
    # statistics at a 1x1 coarsest level (depth 6 at 64 px)
    _min_train = 2
    _min_train_why = "its BatchNorm layers normalize over a batch of at least 2 images"
    _parameter_constraints = {
        "corruption": [Options(*CORRUPTIONS), None],
        "skips": Boolean(),
        "width": Interval(Real, 0, 4, closed="right"),
        "epochs": Interval(Integral, 1, 100000),
        "batch_size": Interval(Integral, 2, 4096, hint="BatchNorm needs at least 2 images "
                                                        "per batch."),
        "lr": Interval(Real, 0, 1, closed="right"),
        "lr_patience": Interval(Integral, 1, 10000),
        "validation_fraction": Interval(Real, 0, 1, closed="left", hint=(
            "0 trains on every image without early stopping.")),
        "patience": [None, Interval(Integral, 1, 10000)],
        "n_samples": Interval(Integral, 2, 1000),
        "depth": Interval(Integral, 1, 8),
        "dropout": [None, Tuple(Interval(Real, 0, 1, closed="left"), max_length=8)],
        "map": Options(*MAPS),
        "reduce": Options("sum", "mean"),
        "corruption_params": [None, Dict()],
        "seed": Seed(),
        "device": [None, Device()],
        "progress": Boolean(),
    }

    def __init__(self, *, corruption: str | None = "stain", skips: bool = True,
                 width: float = 0.5, epochs: int = 60, batch_size: int = 16,
                 lr: float = 1e-3, lr_patience: int = 5, validation_fraction: float = 0.2,
                 patience: int | None = 10, n_samples: int = 30,
                 depth: int = 6, dropout=None, map: str = "residual",
                 reduce: str = "sum", corruption_params: dict | None = None,
                 seed: int = 0, device: str | None = None, progress: bool = True):
        self._set_params(locals())

    def _check_params(self, p):
        if p["dropout"] is None and p["depth"] > len(PAPER_DROPOUT):
            raise ParameterValueError(
                f"depth={p['depth']} has more levels than the paper's {len(PAPER_DROPOUT)}: "
                f"give dropout= with {p['depth']} rates (from the finest level to the "
                "coarsest), e.g. dropout=" + str(PAPER_DROPOUT + (0.4,) * (p["depth"] - 6)) + ".")
        if p["dropout"] is not None and len(p["dropout"]) != p["depth"]:
            raise ParameterValueError(
                f"dropout needs one rate per level, depth={p['depth']}, got "
                f"{len(p['dropout'])}: {p['dropout']}; or dropout=None for the paper's "
                "rates of the first depth levels.")

    @property
    def dropout_rates(self) -> tuple:
        """The MC-dropout rate of each level, finest first (``dropout`` or the paper's)."""
        if self.dropout is not None:
            return tuple(self.dropout)
        return tuple(PAPER_DROPOUT[:self.depth])

    # -- network ------------------------------------------------------------------------
    def _build(self):
        import torch

        from ..nets.autoencoder import Autoencoder
        from ..torch_utils import default_device
        net = Autoencoder(width=self.width, skips=self.skips, dropout=self.dropout_rates,
                          depth=self.depth)
        return net.to(default_device(self.device), memory_format=torch.channels_last)

    def _tensor(self, images: np.ndarray):
        from ..torch_utils import default_device, to_tensor
        return to_tensor(images, default_device(self.device), channels_last=True)

    def _corrupt(self, batch: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.corruption is None:
            return batch
        return corrupt(batch, self.corruption, seed=rng, **(self.corruption_params or {}))[0]

    def _split(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(training, held-out) indices: a seeded random ``validation_fraction``."""
        if self.validation_fraction == 0:
            return np.arange(n), np.arange(0)
        n_val = max(1, int(round(self.validation_fraction * n)))   # at least one image
        if n - n_val < 2:
            raise ValueError(
                f"validation_fraction={self.validation_fraction:g} of {n} training images "
                f"holds out {n_val} and leaves {n - n_val} to train; AESc needs at least one "
                "held-out image and two training images: pass at least 3 images, or "
                "validation_fraction=0 to train on all of them without early stopping.")
        order = np.random.default_rng([self.seed, 1]).permutation(n)
        return np.sort(order[n_val:]), np.sort(order[:n_val])

    # -- training -----------------------------------------------------------------------
    def _fit(self, images: np.ndarray) -> None:
        import torch

        from ..torch_utils import seed_everything
        from ..training import EarlyStopping

        m = 2 ** self.depth
        if min(images.shape[1:3]) < m:
            raise ValueError(
                f"train images are {images.shape[1]}x{images.shape[2]}; AESc with "
                f"depth={self.depth} has {self.depth} stride-2 levels and needs images of at "
                f"least {m}x{m} (a multiple of {m}), or a smaller depth.")
        if self.corruption_params:  # fail now, not after the first epoch
            corrupt(images[:1], self.corruption or "stain", seed=0, **self.corruption_params)
        train_idx, val_idx = self._split(len(images))
        train = images[train_idx]
        seed_everything(self.seed)
        rng = np.random.default_rng(self.seed)
        self.net_ = self._build()
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1,
                                                           patience=self.lr_patience)
        n = train.shape[0]
        bs = min(self.batch_size, n)

        def epoch() -> float:
            order = rng.permutation(n)
            total, count = 0.0, 0
            for start in range(0, n - bs + 1, bs):  # full batches only (BatchNorm)
                clean = train[order[start:start + bs]]
                noisy = self._corrupt(clean, rng)
                x, y = self._tensor(noisy), self._tensor(clean)
                loss = torch.mean((self.net_(x) - y) ** 2)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(clean)
                count += len(clean)
            if stop is None:
                sched.step(total / count)  # reduce on plateau of the epoch loss
            return total / count

        stop = None
        self.n_validation_ = int(val_idx.size)
        self.val_history_ = []
        if val_idx.size:
            # one fixed corruption per held-out image, drawn once from its own stream
            val_clean = images[val_idx]
            val_noisy = self._corrupt(val_clean, np.random.default_rng([self.seed, 2]))

            def validate() -> float:
                total = 0.0
                for start in range(0, len(val_clean), bs):
                    y = self.net_(self._tensor(val_noisy[start:start + bs]))
                    d = y - self._tensor(val_clean[start:start + bs])
                    total += float(torch.sum(d.double() ** 2))
                loss = total / val_clean.size
                sched.step(loss)  # reduce on plateau of the validation loss
                return loss

            stop = EarlyStopping(validate, patience=self.patience,
                                 history=self.val_history_)
        self.history_ = []
        label = "AESc" if self.skips else "AE"
        train_epochs(epoch, self.epochs, net=self.net_, name="AESc",
                     desc=f"{label} ({self.corruption})", progress=self.progress,
                     history=self.history_, loss_format=".5f", early_stopping=stop)
        self.best_epoch_ = int(stop.best_epoch) if stop is not None and stop.best_epoch \
            else len(self.history_)

    # -- inference ----------------------------------------------------------------------
    def reconstruct(self, images) -> np.ndarray:
        """The network's (deterministic) reconstructions of ``images``, (N, H, W, 3)."""
        from ..checks import check_images
        self._check_fitted("reconstruct")
        x = check_images(images, "images")
        return self._run(x, mc=False)[0]

    def _run(self, x: np.ndarray, mc: bool):
        """Deterministic reconstruction and, if ``mc``, MC mean and variance.

        The ``n_samples`` stochastic passes of one image run as one batch of copies,
        with the dropout masks drawn from ``seed`` afresh for every image: each image
        sees the same ``n_samples`` sub-networks, so its uncertainty map depends only on
        the image and the seed (not on the batch or the other images predicted with it).
        """
        import torch

        from ..torch_utils import default_device, to_numpy_images

        dev = default_device(self.device)
        self.net_.to(dev).eval()
        bs = max(1, self.batch_size)
        rec, mean, var = [], [], []
        devices = [dev.index or 0] if dev.type == "cuda" else []
        chunk = 32  # copies per forward pass
        with torch.inference_mode(), torch.random.fork_rng(devices=devices):
            for start in range(0, len(x), bs):
                rec.append(to_numpy_images(self.net_(self._tensor(x[start:start + bs]))))
            if mc:
                with self.net_.mc():
                    for i in range(len(x)):
                        torch.manual_seed(self.seed)
                        t = self._tensor(x[i:i + 1])
                        s1 = torch.zeros_like(t[0], dtype=torch.float64)
                        s2 = torch.zeros_like(t[0], dtype=torch.float64)
                        for k in range(0, self.n_samples, chunk):
                            n = min(chunk, self.n_samples - k)
                            y = self.net_(t.expand(n, -1, -1, -1)).double()
                            s1 += y.sum(0)
                            s2 += (y * y).sum(0)
                        m = s1 / self.n_samples
                        v = (s2 / self.n_samples - m * m).clamp_min(0)
                        mean.append(to_numpy_images(m[None]))
                        var.append(to_numpy_images(v[None]))
        rec = np.concatenate(rec)
        if not mc:
            return rec, None, None
        return rec, np.concatenate(mean), np.concatenate(var)

    def _predict(self, images: np.ndarray) -> AnomalyResult:
        rec, mc_mean, mc_var = self._run(images, mc=True)
        agg = np.sum if self.reduce == "sum" else np.mean
        residual = agg(np.abs(images - rec), axis=-1).astype(np.float32)
        uncertainty = agg(mc_var, axis=-1).astype(np.float32)
        maps = residual if self.map == "residual" else uncertainty
        scores = np.sqrt(np.mean(maps.astype(np.float64) ** 2, axis=(1, 2)))
        return AnomalyResult(maps, scores.astype(np.float32), extras={
            "residual": residual, "uncertainty": uncertainty,
            "reconstruction": rec, "mc_mean": mc_mean.astype(np.float32)})

    # -- persistence --------------------------------------------------------------------
    def _get_state(self) -> dict:
        return {"net": {k: v.detach().cpu().contiguous()
                        for k, v in self.net_.state_dict().items()},
                "history": [float(v) for v in self.history_],
                "val_history": [float(v) for v in self.val_history_],
                "best_epoch": int(self.best_epoch_), "n_validation": int(self.n_validation_)}

    def _set_state(self, state: dict) -> None:
        from ..estimator import load_module_state, state_floats, state_int
        history = state_floats(state, "history", default=[])
        val_history = state_floats(state, "val_history", default=[])
        if val_history and len(val_history) != len(history):
            raise ModelFileError(f"the saved 'val_history' holds {len(val_history)} "
                                 f"epoch(s) and 'history' {len(history)}: they must match")
        best = state_int(state, "best_epoch", minimum=0, maximum=len(history)) \
            if "best_epoch" in state else len(history)
        n_val = state_int(state, "n_validation", minimum=0) if "n_validation" in state else 0
        net = self._build()
        load_module_state(net, state, "net")
        net.eval()
        self.net_ = net
        self.history_ = history
        self.val_history_ = val_history
        self.best_epoch_ = best
        self.n_validation_ = n_val
