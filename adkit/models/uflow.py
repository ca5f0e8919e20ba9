r"""U-Flow: a U-shaped normalizing flow with an unsupervised a contrario threshold.

Tailanian, Pardo & Musé, "U-Flow: A U-shaped Normalizing Flow for Anomaly Detection
with Unsupervised Threshold", J. Math. Imaging Vis. 2024 (arXiv:2211.12353).

1. **Features.** A frozen pretrained network gives feature maps at several scales
   (the paper: a multi-scale CaiT; here by default the offline EfficientNet-Lite0 at
   strides 8, 16, 32, any timm backbone by name through
   :class:`adkit.features.FeatureExtractor`).
2. **U-shaped flow** (:class:`adkit.nets.flow.UFlowNet`). One flow stage per scale,
   from the coarsest to the finest, each a sequence of Glow steps (ActNorm, channel
   permutation, affine coupling with a conv-ReLU-conv subnet whose kernels alternate
   3×3 and 1×1, soft-clamped log-scale). Half of each stage's output channels leave as
   that scale's latent :math:`z_s`; the other half is invertibly upsampled (pixel
   shuffle: C/4 channels, twice the size) and concatenated to the next scale's
   features. Trained on normal images by maximum likelihood,
   :math:`\mathcal L = \mathrm{mean}(\tfrac12\|z\|^2 - \log|\det J|)`, so that the
   latents of normal images are white Gaussian noise.
3. **Likelihood map.** :math:`A(x) = 1 - \frac1L\sum_s \uparrow
   \exp(-\tfrac12 \mathrm{mean}_c z_{s,c}(x)^2)` (bilinear upsampling to the image).
4. **A contrario segmentation** (:func:`adkit.contrario.tree.tree_log_nfa`): the tree
   of connected components of the upper level sets of the statistic
   :math:`\|z_s(x)\|^2 = \sum_c z_{s,c}(x)^2`; the log NFA of each region, the tree
   simplified (PFA prune + merge). A pixel is anomalous when its log NFA < log10 ε
   (ε = 1 by default: about one false detection per image on normal data). Three
   tests (``nfa=``):

   - ``"paper"``: :math:`\|z_s\|^2 \sim \chi^2_{C_s}` with independent cells (the
     white latent of a perfect flow), the Chernoff bound of its tail, one count of
     all polyominoes of every scale, :math:`\log_{10}\mathrm{NFA}(R) =
     \log_{10} N_{tests} + |R|\log_{10}\mathrm{Chernoff}(\lambda_R)`, every scale,
     merged by the pixelwise minimum;
   - ``"held-out"``: the law of :math:`\|z\|^2` estimated on normal
     images the flow did not see (:class:`adkit.contrario.null.CellBackground`: a
     leave-one-out per-position scale, the empirical law with a generalized Pareto
     tail, κ cells per independent cell from the lag-1 correlation), the number of
     tests counted per region size (:class:`adkit.contrario.tree.PerSizeTest`),
     :math:`\log_{10}\mathrm{NFA}(R) = \log_{10}(N^2 A(|R|))
     + (1 + \frac{|R|-1}{\kappa})\log_{10} S(\lambda_R)`, on the finest latent
     only (``nfa_scales="finest"``), each region drawn as its latent cells;
   - ``"measured"`` (default): ``"held-out"`` with three changes, so that ε counts
     false regions (about ε per normal image) instead of bounding them:

     a. *a per-image scale*: each map of the per-position-normalized statistic is
        also divided by its own q quantile (``image_quantile``, q = 0.9),
        :math:`u(x) = (\|z(x)\|^2 / \bar m(x)) / Q_q(\|z\|^2/\bar m)`, on the
        held-out maps as on new ones. On a defective image the flow's latents are
        larger everywhere, not only on the defect (the U conditions the finest
        latent on the coarse scales, which see the defect): the median of u was
        1.10–1.83 on defective test images against 0.97–1.05 on good ones; without
        the scale those images got 4–8 false regions away from the defect for one
        on a good image;
     b. *the measured number of tests*: the union bound counts every polyomino as
        an independent test, so its ε is an upper bound (0–0.08 false regions per
        good image at ε = 1, measured) rather than a rate. Each held-out image is
        tested against the law of the other held-out images (leave one image
        out), and δ is the shift for which they have on average one false region
        at ε = 1 (:func:`adkit.contrario.tree.measured_shift`):

        .. math::

            \log_{10}\mathrm{NFA}(R) = \log_{10}(N^2 A(|R|)) - \delta
                + \Big(1 + \frac{|R|-1}{\kappa}\Big)\log_{10} S(\lambda_R),

        i.e. :math:`N_{\mathrm{eff}} = 10^{-\delta} N^2 A(|R|)` effective tests
        (δ = 1.8–2.5 on the embedded data: the union bound over-counts about
        70–350 times). δ is measured at ε = 1 only; other ε follow from the model
        (0–0.29 false regions per good image at ε = 0.1, 5.5–9.6 at ε = 10, at 64
        and 128 px);
     c. *regions drawn at the pixel level* (``upsample="level"`` of
        :func:`adkit.contrario.tree.tree_log_nfa`): the statistic is upsampled
        bilinearly and each selected region R drawn as its upper level set at
        the middle level between λ_R and the level of its parent in the tree
        (:func:`adkit.contrario.tree.level_refined_map`), not as its 8×8-px
        cells: an isolated cell becomes a blob about its centre, a defect's
        outline follows the map between cell centres.

Training follows the paper: Adam (lr 1e-3) with the learning rate decreasing linearly
to 0.4× (the paper: over 25 000 iterations; here over the whole training run). The
paper trains for thousands of iterations on a GPU; the default here (128-px images,
2 Glow steps per stage, weight decay 1e-3, 10 epochs, features cached since the
backbone is frozen) trains on 77 of 96 images (the other 19 estimate the background
law) in about 10 s of CPU time (2 cores).

Deviations from the paper's defaults, both against over-fitting a few hundred
feature vectors per scale (the latents of *unseen* normal images must stay white
noise, or the a contrario threshold fires on them and the coarse-scale map gets
noisy): 2 Glow steps per stage instead of 4, weight decay 1e-3 instead of 1e-5.
On the embedded data, 4 steps / 1e-5 lowered the pixel AUROC of the pill from 0.97
to 0.87, and 30 epochs made most good images fire at ε = 1. A third addition,
``pad=32``: the images are mirror-padded before the backbone and the padded cells
cropped from the features (at 128 px all 16 cells of the stride-32 map touch the
border). On the five synthetic categories it lifted the pixel AUROC from
0.94–0.985 to 0.963–0.991 (textures gain most: tile 0.942 → 0.965), with the same
latent grids, hence the same number of tests.

Why the default test departs from the paper (measured on the eight embedded
datasets, 96 training / 24 test images at 128 px, data seeds 0–2):

- *The background law.* On unseen normal images the latents are not white: per
  scale, :math:`\|z\|^2/C` has a mean of 1.04–1.77 instead of 1 and a spread 1.5–6×
  that of :math:`\chi^2_C/C` (the channels of a cell are correlated: 9–45 effective
  degrees of freedom instead of 59–160), and neighbouring cells correlate (lag 1:
  0.13–0.68). At the 10⁻³ quantile of the good test cells of the finest latent the
  :math:`\chi^2_{59}` tail says 10^-5.3…10^-14.5 (at the coarsest, down to 10⁻⁸⁴); with
  it and a count of tests per size, good images get regions at log NFA −8 to −22.
  So the law is estimated on ``holdout`` (20 %) of the training images, which the
  flow does not train on; at the same quantile it says 10^-2.4…10^-3.8 (10⁻² quantile:
  10^-1.7…10^-2.4).
- *The number of tests.* The paper's single count is dominated by regions as
  large as the whole map (:math:`\ln N_{tests} \approx 1.4 N`, N = 256 cells of
  the finest map at 128 px): every region must gather about 360 nats. On 18 of the
  24 runs no good image had a false region for any ε up to 1e40 (the ε slider did
  nothing), and the defective-only mIoU at ε = 1 was 0.01–0.12. The per-size count
  keeps the same guarantee (union bound) and asks about
  :math:`\ln\beta \approx 1.4` nats per cell.
- *The finest scale only.* At 128 px the stride-16 and stride-32 latents have 8×8
  and 4×4 cells of 16 and 32 px, whose detections cover much more than the defects:
  testing every scale (``nfa_scales="all"``, the pixelwise minimum of the three)
  halves the defective-only mIoU at ε = 1 and meets the target on 12 of 24 runs
  instead of 22, for about the same defects touched (0.50–1.00 of them). The finest
  latent is the U's full-resolution output, conditioned on the coarser scales
  through the U (a defect that the stride-32 features see shows in it as a 64-px
  square, e.g. on the synthetic fabric).

With ``"held-out"``: 0–0.42 false regions per good image at ε = 1 (0–0.08 on the
five synthetic categories), the first ones between ε = 10⁻² and 10³; the
defective-only mIoU at ε = 1 within 0.1 of the oracle's (the best single threshold of
the maps on the defective images) on 22 of 24 runs (the paper's test: 5 of 24; oracle
0.13–0.28), missing it by 0.14 and 0.16 on fabric (seeds 0, 2), where a defect's
footprint in the latent is that 64-px square. Measuring the number of tests alone
(b, one δ) put the false regions in [1/3, 3] but cost the defective-only mIoU 0.03–0.13
(bottle 0.281 → 0.154 vs oracle 0.268; fabric 0.079 → 0.046 vs 0.215): the false
regions of defective images (a) and the cells' squares around small defects (c).
With ``"measured"`` (a + b + c; 128 px, 96 training / 24 test images, data seed 0):
0.67–1.5 false regions per good image at ε = 1 on the five synthetic categories and
the gravel texture (0.08–0.25 at ε = 0.1, 5.7–9.6 at ε = 10; at 64 px with 45
training images: 0.92–1.62), and the defective-only mIoU at ε = 1 within 0.05 of the
oracle's or above it on all six (pill 0.143 vs 0.186, bottle 0.323 vs 0.268, fabric
0.200 vs 0.215, gravel 0.294 vs 0.197). The paper's mIoU, which scores 0 a good image
with any detection, then falls at ε = 1 (bottle 0.599 → 0.245; oracle 0.634): about
one false region per good image is what ε = 1 asks for. At ε = 0.1 it is back within
0.1 of its oracle on every one of the six (bottle 0.596, 0.25 false region per good
image).
The flow trains on 77 of the 96 images: the pixel AUROC changes by −0.008…+0.018
(mean +0.0005) from training on all 96.
"""
from __future__ import annotations

import numpy as np

from ..backbone import BACKBONE, Strides, check_pad, get_extractor, run_extractor
from ..params import (Boolean, Device, Integral, Interval, Options, ParameterValueError, Real,
                      Seed)
from ..training import train_epochs
from .base import AnomalyResult, Detector

__all__ = ["UFlow"]


class UFlow(Detector):
    r"""U-shaped normalizing flow over frozen multi-scale features (Tailanian et al. 2024).

    Parameters
    ----------
    backbone : str, default "efficientnet_lite0"
        timm name of the frozen feature extractor (the paper: MS-CaiT, reachable only
        with a model hub; EfficientNet-Lite0 loads offline).
    strides : tuple of int, default (8, 16, 32)
        Feature scales, finest first; each must be twice the previous (the U shape
        upsamples by 2).
    n_steps : int, default 2
        Glow steps per flow stage (paper: 4; with a hundred training images 4 steps
        overfit: latents of unseen normal images then stop looking like white noise
        and the a contrario threshold fires).
    clamp : float, default 2.0
        Soft clamp of the coupling log-scale, :math:`s = \frac{2c}{\pi}\arctan(\frac{\pi s'}{2c})`
        (paper / FrEIA: 2.0).
    permutation : {"fixed", "conv"}, default "fixed"
        Channel mixing in each step: a fixed random permutation (the paper's code) or a
        learned invertible 1×1 convolution (Glow).
    hidden_ratio : float, default 1.0
        Hidden channels of the coupling subnets relative to their input (paper: 1.0).
    size : int or None, default 128
        Images are resized to ``size × size`` before feature extraction (maps come back
        at the input size); None keeps the input size (it must then be divisible by
        the largest stride). The paper: 448 (CaiT) / 512.
    pad : int, default 32
        Pixels mirrored around each (resized) image before the backbone; the feature
        cells that come from them are cropped away, so the latent maps keep their size
        (and the number of tests its value). Border cells then describe the image
        instead of the network's zero padding, which at 128 px is every cell of the
        stride-32 map. A multiple of the largest stride; 0 disables it (the paper
        does not pad). Same idea as ``KNN(pad=...)``.
    epochs : int, default 10
        Passes over the training images (features are computed once and cached: the
        backbone is frozen). The paper trains for about 25 000 iterations on a GPU.
    batch_size : int, default 8
        Training batch size.
    lr : float, default 1e-3
        Adam learning rate (paper: 1e-3).
    weight_decay : float, default 1e-3
        Adam weight decay (paper: 1e-5; 1e-3 regularizes the small-data default).
    lr_end_factor : float, default 0.4
        The learning rate decreases linearly from ``lr`` to ``lr_end_factor · lr`` over
        training (paper: 0.4, over 25 000 iterations).
    nfa : {"measured", "held-out", "paper"}, default "measured"
        The a contrario test (module docstring, step 4). ``"held-out"``: the law of
        the finest latent's ‖z‖² estimated on ``holdout`` of the training images,
        which the flow does not see, and the number of tests counted per region size
        (a union bound: at most about ε false regions per normal image).
        ``"measured"``: the same with a per-image scale (``image_quantile``), the
        number of tests measured on the held-out images (about ε false regions per
        normal image, ``log_shift_``) and regions drawn at the pixel level.
        ``"paper"``: the paper's χ²_C law (Chernoff bound, independent cells) with one
        count of all polyominoes of every scale; the flow then trains on every image.
    image_quantile : float, default 0.9
        With ``nfa="measured"``: each map of the statistic is divided by this
        quantile of its own cells (a per-image scale, which a defect covering less
        than 10 % of the cells does not move much). Against 0.9, 0.75 gave a
        defective-only mIoU at ε = 1 0.07 and 0.02 lower on fabric and tile and 0.06
        higher on the pill; the median (measured without the pixel-level drawing)
        0.06–0.07 lower on fabric and tile (128 px, seed 0).
    holdout : float, default 0.2
        With ``nfa="held-out"`` or ``"measured"``: fraction of the training images
        kept out of the flow's training to estimate the background law (at least 2
        images, 3 with ``"measured"``, and at least 2 left to train on). 0.2 and
        0.25 gave the same false alarms (``"held-out"``); 0.2 kept the pixel AUROC of
        training on every image (mean change +0.0005 vs −0.002 on 24 runs) and met
        the mIoU target on 22 runs instead of 21.
    nfa_scales : {"finest", "all"}, default "finest"
        Latent scales whose trees are tested (``nfa="held-out"`` or ``"measured"``).
        ``"finest"``: the flow's full-resolution output, which the U conditions on
        the coarser scales; ``"all"``: every scale, merged by the pixelwise minimum
        as in the paper, whose coarse cells (32 px at stride 32 and 128 px) make
        coarse detections (half the defective-only mIoU of ``"finest"`` on the
        embedded data). The paper's test always uses every scale.
    seed : int, default 0
        Seeds weights, permutations, batch order and the held-out split.
    device : str or None
        None: CUDA when present, else the CPU.
    progress : bool, default True
        Show a progress bar while training.

    Attributes
    ----------
    history_ : list of float
        Mean training loss (negative log-likelihood per dimension) of every epoch.
    net_ : adkit.nets.flow.UFlowNet
    z_channels_ : list of int
        Latent channels of each scale (finest first).
    backgrounds_ : list of adkit.contrario.null.CellBackground or None
        With ``nfa="held-out"``: the law of ‖z_s‖² estimated on the held-out images,
        one per scale (finest first); None with ``nfa="paper"``.
    n_holdout_ : int
        Number of training images held out of the flow's training (0 with "paper").
    log_shift_ : float
        With ``nfa="measured"``: δ, log10 of how many times the union bound
        over-counts the tests, measured on the held-out images (0 otherwise).

    Notes
    -----
    ``predict`` fills ``maps`` (the likelihood map), ``scores`` (the maximum of the
    map), ``log_nfa`` (the a contrario log10 NFA) and ``extras``: ``z_<stride>``
    (latents, (N, C_s, h, w)), ``chi2_<stride>`` (Σ_c z², (N, h, w)),
    ``tests`` (the region test of each tested scale, finest first) and, with
    ``nfa="paper"``, ``log_n_tests``.
    """

    name = "uflow"
    _parameter_constraints = {
        "backbone": BACKBONE,
        "strides": Strides(doubling=True),
        "n_steps": Interval(Integral, 1, 32),
        "clamp": Interval(Real, 0, 100, closed="right"),
        "permutation": Options("fixed", "conv"),
        "hidden_ratio": Interval(Real, 0, 8, closed="right"),
        "size": [None, Interval(Integral, 1, 4096)],
        "epochs": Interval(Integral, 1, 100000),
        "batch_size": Interval(Integral, 1, 4096),
        "lr": Interval(Real, 0, 1, closed="right"),
        "weight_decay": Interval(Real, 0, 1),
        "lr_end_factor": Interval(Real, 0, 1, closed="right"),
        "pad": Interval(Integral, 0, 256),
        "nfa": Options("measured", "held-out", "paper"),
        "image_quantile": Interval(Real, 0, 1, closed="right"),
        "holdout": Interval(Real, 0, 1, closed="neither"),
        "nfa_scales": Options("finest", "all"),
        "seed": Seed(),
        "device": [None, Device()],
        "progress": Boolean(),
    }

    def __init__(self, *, backbone: str = "efficientnet_lite0", strides=(8, 16, 32),
                 n_steps: int = 2, clamp: float = 2.0, permutation: str = "fixed",
                 hidden_ratio: float = 1.0, size: int | None = 128, epochs: int = 10,
                 batch_size: int = 8, lr: float = 1e-3, weight_decay: float = 1e-3,
                 lr_end_factor: float = 0.4, pad: int = 32, nfa: str = "measured",
                 image_quantile: float = 0.9, holdout: float = 0.2,
                 nfa_scales: str = "finest", seed: int = 0, device=None,
                 progress: bool = True):
        self._set_params(locals())

    def _check_params(self, p):
        m = max(p["strides"])
        if p["size"] is not None and (p["size"] < m or p["size"] % m):
            raise ParameterValueError(
                f"size must be a multiple of the largest stride {m}, got {p['size']}; "
                "e.g. 256.")
        check_pad(p["pad"], p["strides"])

    # -- internals ------------------------------------------------------------------
    def _work_size(self, shape) -> tuple[int, int]:
        if self.size is not None:
            return (self.size, self.size)
        m = max(self.strides)
        if shape[0] % m or shape[1] % m:
            raise ValueError(
                f"images are {shape[0]}x{shape[1]} but with size=None their sides must be "
                f"multiples of the largest stride {m}: pass size=256 (or resize them).")
        return (int(shape[0]), int(shape[1]))

    def _features(self, images: np.ndarray, progress: bool = False):
        """Frozen features of numpy images, on the CPU, batch by batch."""
        ex = get_extractor(self.backbone, self.strides, self.device)
        return run_extractor(ex, images, batch_size=max(self.batch_size, 16),
                             size=self._work_size(images.shape[1:3]), pad=self.pad,
                             progress=progress, desc="U-Flow features")

    def _build(self, channels):
        from ..nets.flow import UFlowNet
        from ..torch_utils import default_device
        return UFlowNet(channels, n_steps=self.n_steps, clamp=self.clamp,
                        permutation=self.permutation, hidden_ratio=self.hidden_ratio,
                        seed=self.seed).to(default_device(self.device))

    def _fit(self, images: np.ndarray) -> None:
        import torch

        from ..nets.flow import flow_nll
        from ..torch_utils import default_device, seed_everything
        dev = default_device(self.device)
        hold = self._holdout_split(len(images))
        feats = self._features(images, progress=self.progress)
        held = None
        if hold is not None:
            keep = np.setdiff1d(np.arange(len(images)), hold)
            held = [f[torch.from_numpy(hold)] for f in feats]
            feats = [f[torch.from_numpy(keep)] for f in feats]
        self.n_holdout_ = 0 if hold is None else int(hold.size)
        channels = [int(f.shape[1]) for f in feats]
        # seeded after the features: building the backbone (first call only) draws from
        # torch's generator, which would otherwise make the weights depend on the cache
        gen = seed_everything(self.seed)
        self.net_ = self._build(channels)
        self.z_channels_ = list(self.net_.z_channels)
        n = int(feats[0].shape[0])
        n_batches = -(-n // self.batch_size)
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr,
                               weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.LinearLR(
            opt, start_factor=1.0, end_factor=self.lr_end_factor,
            total_iters=max(1, self.epochs * n_batches))

        def epoch() -> float:
            perm = torch.randperm(n, generator=gen)
            total, count = 0.0, 0
            for b in range(n_batches):
                idx = perm[b * self.batch_size:(b + 1) * self.batch_size]
                batch = [f[idx].to(dev) for f in feats]
                z, log_det = self.net_(batch)
                loss = flow_nll(z, log_det)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        "the U-Flow loss became NaN/infinite: lower lr (e.g. lr=3e-4) "
                        "or clamp.")
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()  # the linear decay, per batch
                total += loss.item() * len(idx)
                count += len(idx)
            return total / count

        self.history_ = []
        train_epochs(epoch, self.epochs, net=self.net_, name="U-Flow",
                     progress=self.progress, history=self.history_)
        self.backgrounds_ = None
        self.log_shift_ = 0.0
        if held is not None:
            from ..contrario.null import CellBackground
            chi2 = [np.sum(z.astype(np.float64) ** 2, axis=1) for z in self._flow_latents(held)]
            q = self.image_quantile if self.nfa == "measured" else None
            self.backgrounds_ = [CellBackground.fit(c, image_quantile=q) for c in chi2]
            if self.nfa == "measured":
                self.log_shift_ = self._measure_shift(chi2, q, images.shape[1:3])

    def _measure_shift(self, chi2, q, shape) -> float:
        """δ of the measured number of tests: each held-out image tested against the
        law of the other held-out images (leave one image out), δ such that they have
        on average one false region at ε = 1 (:func:`adkit.contrario.tree.measured_shift`)."""
        from ..contrario.null import CellBackground
        from ..contrario.tree import measured_shift, tree_log_nfa
        k = self._n_tested()
        maps = []
        for j in range(chi2[0].shape[0]):
            bgs = [CellBackground.fit(np.delete(c, j, axis=0), image_quantile=q)
                   for c in chi2[:k]]
            stats = [bg.normalize(c[j]) for bg, c in zip(bgs, chi2[:k])]
            maps.append(tree_log_nfa(stats, self._tests(bgs, [c[j] for c in chi2[:k]]),
                                     shape=tuple(shape), upsample="level"))
        return measured_shift(np.stack(maps), eps=1.0)

    def _n_tested(self) -> int:
        return 1 if self.nfa_scales == "finest" else len(self.strides)

    def _tests(self, bgs, chi2, shift: float = 0.0):
        from ..contrario.tree import PerSizeTest
        k = len(bgs)
        return [PerSizeTest(bg.log10_sf, int(np.prod(c.shape[-2:])), kappa=bg.kappa,
                            n_scales=k, shift=shift) for bg, c in zip(bgs, chi2)]

    def _holdout_split(self, n: int):
        """Indices of the training images kept out of the flow's training (None with
        ``nfa="paper"``): a seeded random ``holdout`` fraction, at least 2 (3 with
        ``"measured"``)."""
        if self.nfa == "paper":
            return None
        # "measured" leaves one held-out image out of the law: at least 3 held out
        least = 3 if self.nfa == "measured" else 2
        n_hold = max(least, int(round(self.holdout * n)))
        if n - n_hold < 2:
            raise ValueError(
                f"U-Flow with nfa={self.nfa!r} keeps {n_hold} of the {n} training images "
                "out of the flow's training to estimate the background law, and needs at "
                f"least 2 more to train on: give at least {least + 2} normal images (a few "
                "dozen for a reliable law), or use nfa='paper'.")
        return np.sort(np.random.default_rng(self.seed).permutation(n)[:n_hold])

    def latents(self, images) -> list[np.ndarray]:
        """The latent variables of ``images``: one float32 array (N, C_s, h, w) per scale,
        finest first. On normal images they should look like white N(0, 1) noise."""
        from ..checks import check_images
        self._check_fitted("latents")
        x = check_images(images, "images")
        return self._latents(x)

    def features(self, images) -> list[np.ndarray]:
        """The frozen backbone features the flow models: one float32 array
        (N, C_s, h, w) per scale, finest first (images resized to ``size``, mirror-padded
        by ``pad`` before the backbone, padded cells cropped). ``latents`` is the flow
        applied to them, :meth:`inverse` the way back."""
        from ..checks import check_images
        self._check_fitted("features")
        x = check_images(images, "images")
        return [f.float().cpu().numpy() for f in self._features(x)]

    def inverse(self, latents) -> list[np.ndarray]:
        """The features whose latents are ``latents`` (a list of (N, C_s, h, w) arrays,
        finest first, as :meth:`latents` returns): the flow run backwards, so
        ``inverse(latents(x))`` equals ``features(x)`` up to float32 rounding."""
        import torch
        self._check_fitted("inverse")
        if not isinstance(latents, (list, tuple)) or len(latents) != len(self.z_channels_):
            raise ValueError(f"latents must be a list of {len(self.z_channels_)} arrays "
                             "(N, C_s, h, w), one per scale, finest first, as latents() "
                             f"returns; got {type(latents).__name__}"
                             f"{' of length ' + str(len(latents)) if isinstance(latents, (list, tuple)) else ''}.")
        zs = [np.asarray(z, dtype=np.float32) for z in latents]
        for k, (z, c) in enumerate(zip(zs, self.z_channels_)):
            if z.ndim != 4 or z.shape[1] != c or z.shape[0] != zs[0].shape[0]:
                raise ValueError(f"latents[{k}] must be (N, {c}, h, w) with the same N as "
                                 f"latents[0], got shape {z.shape}.")
        dev = next(self.net_.parameters()).device
        self.net_.eval()
        outs: list[list] = [[] for _ in zs]
        with torch.no_grad():
            for i in range(0, zs[0].shape[0], self.batch_size):
                rec = self.net_.inverse([torch.from_numpy(z[i:i + self.batch_size]).to(dev)
                                         for z in zs])
                for k, r in enumerate(rec):
                    outs[k].append(r.float().cpu().numpy())
        return [np.concatenate(o) for o in outs]

    def _latents(self, images: np.ndarray) -> list[np.ndarray]:
        return self._flow_latents(self._features(images))

    def _flow_latents(self, feats) -> list[np.ndarray]:
        """Latents (numpy, finest first) of cached feature maps, batch by batch."""
        import torch
        dev = next(self.net_.parameters()).device
        self.net_.eval()
        outs: list[list] = [[] for _ in feats]
        with torch.no_grad():
            for i in range(0, int(feats[0].shape[0]), self.batch_size):
                z, _ = self.net_([f[i:i + self.batch_size].to(dev) for f in feats])
                for k, zi in enumerate(z):
                    outs[k].append(zi.float().cpu().numpy())
        return [np.concatenate(o) for o in outs]

    def _predict(self, images: np.ndarray) -> AnomalyResult:
        import torch
        from torch.nn import functional as F

        from ..contrario.tree import polyomino_tests, tree_log_nfa
        z = self._latents(images)
        n, h, w = images.shape[:3]
        lik = []
        for zi in z:
            m = torch.from_numpy(np.exp(-0.5 * np.mean(zi ** 2, axis=1)))[:, None]
            lik.append(F.interpolate(m, size=(h, w), mode="bilinear",
                                     align_corners=False)[:, 0].numpy())
        maps = (1.0 - np.mean(lik, axis=0)).astype(np.float32)
        chi2 = [np.sum(zi.astype(np.float64) ** 2, axis=1) for zi in z]
        extras = {}
        if self.nfa == "paper":
            log_n = polyomino_tests([c.shape[1:] for c in chi2])
            stats, tests = chi2, list(self.z_channels_)
            extras["log_n_tests"] = log_n
        else:
            if self.backgrounds_ is None:
                raise RuntimeError("this U-Flow has no background law (fitted with "
                                   "nfa='paper'?): refit it with nfa='held-out'.")
            k = self._n_tested()
            bgs = self.backgrounds_[:k]
            stats = [bg.normalize(c) for bg, c in zip(bgs, chi2[:k])]
            tests = self._tests(bgs, chi2[:k], shift=self.log_shift_)
            log_n = None
        up = "level" if self.nfa == "measured" else "nearest"
        log_nfa = np.stack([
            tree_log_nfa([c[i] for c in stats], tests, shape=(h, w), log_n_tests=log_n,
                         upsample=up)
            for i in range(n)])
        scores = maps.reshape(n, -1).max(axis=1)
        extras["tests"] = tests
        for s, zi, c in zip(self.strides, z, chi2):
            extras[f"z_{s}"] = zi
            extras[f"chi2_{s}"] = c.astype(np.float32)
        return AnomalyResult(maps, scores, log_nfa=log_nfa, extras=extras)

    # -- persistence ----------------------------------------------------------------
    def _get_state(self) -> dict:
        bgs = None if self.backgrounds_ is None else {
            str(k): bg.to_dict() for k, bg in enumerate(self.backgrounds_)}
        return {"flow": {k: v.detach().cpu() for k, v in self.net_.state_dict().items()},
                "channels": [int(c) for c in self.net_.in_channels],
                "history": [float(v) for v in self.history_],
                "backgrounds": bgs, "n_holdout": int(self.n_holdout_),
                "log_shift": float(self.log_shift_)}

    def _set_state(self, state: dict) -> None:
        from ..estimator import load_module_state, state_floats, state_ints
        # backbone stages have at most a few thousand channels: a bound keeps a
        # tampered file from building a network that fills the memory
        channels = state_ints(state, "channels", length=len(self.strides), minimum=1,
                              maximum=8192)
        history = state_floats(state, "history", default=[])
        self.net_ = self._build(channels)
        load_module_state(self.net_, state, "flow")
        self.net_.eval()
        self.z_channels_ = list(self.net_.z_channels)
        self.history_ = history
        from ..contrario.null import CellBackground
        from ..estimator import state_dict, state_int
        # files saved before the held-out background law have neither entry
        self.backgrounds_ = None
        if state.get("backgrounds") is not None:
            bgs = state_dict(state, "backgrounds",
                             keys=[str(k) for k in range(len(self.strides))])
            self.backgrounds_ = [CellBackground.from_dict(state_dict(bgs, str(k)))
                                 for k in range(len(self.strides))]
        self.n_holdout_ = state_int(state, "n_holdout", minimum=0) if "n_holdout" in state else 0
        from ..estimator import state_float
        self.log_shift_ = (state_float(state, "log_shift", minimum=-20.0, maximum=20.0)
                           if "log_shift" in state else 0.0)
