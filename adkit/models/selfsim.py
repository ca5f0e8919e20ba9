"""Patch self-similarity with an a contrario threshold (Artola, Kolodziej, Morel & Ehret,
"Unsupervised variability normalization for anomaly detection", ICIP 2021, Sec. 4,
after Davy, Ehret, Morel & Delbracio, "Reducing anomaly detection in images to
detection in noise", ICIP 2018).

The idea: an anomaly is what cannot be explained by the normal images. Explain every
patch of the query by the most similar patches of the training set, subtract that
*self-similar background*, and what is left (the residual) should be noise, except
where something new is. The residual is noise-like, so a threshold with a controlled
number of false alarms follows from the Gaussian tail (:mod:`adkit.contrario.gaussian`).

Background (scale ``s``, image ``u^s``, patches ``p`` of ``P×P`` pixels with half overlap):

1. the ``K_s = n_images·(s+1)`` training images closest to ``u^s`` (L2) are selected;
2. for each patch ``p`` its ``n_neighbors`` nearest patches ``Q`` are searched in a local
   ``window × window`` neighbourhood of the same place in those images; when nothing
   there is close (the best distance is above ``fallback·h``), the whole training set
   is searched as well, with a partition tree (``scipy.spatial.cKDTree`` on a PCA
   projection of the patches, re-ranked with exact distances);
3. ``p̂ = (1/Z) Σ_{q∈Q} q · exp(−‖p − q‖² / (2h²))`` (non-local means weights, ``Z`` their sum;
   ``‖·‖²`` is the *mean* squared difference over the patch's pixels and channels, so
   ``h`` is in intensity units);
4. overlapping ``p̂`` are averaged into ``û^s`` and ``r^s = u^s − û^s``.

Detection:

- scales ``s ∈ S`` with ``u^s`` the image resized by ``eta^s`` (``eta = 0.5``);
- normalized residual per scale and channel ``f^s_c = |(r^s_c − E r^s_c) / σ(r^s_c)|`` (mean
  and std over the image);
- ``N = 3 · Σ_s H_s·W_s`` tests (every pixel of every scale and channel), threshold
  ``γ_ε = √2·erfc⁻¹(ε/N)``; ``b^s(ε) = [max_c f^s_c ≥ γ_ε]``;
- votes ``b^MS = [Σ_s b^s ≥ N_v]`` (per-scale maps upsampled to full size);
- multi-scale residual ``r^MS = Π_s ‖r^s‖`` (channel L2 norm, upsampled) — the ``maps``;
- image score ``s_ra = Σ_x b^MS(x)·r^MS(x)``.

``log_nfa`` of the result: at each scale ``log10 NFA^s(x) = log10 N + log10 P(|Z| ≥ max_c
f^s_c(x))`` (upsampled bilinearly to full size); the pixel's ``log_nfa`` is the
``N_v``-th smallest of them over the scales. Hence ``result.segment(eps)`` (``log_nfa <
log10 ε``) is exactly the vote map ``b^MS(ε)`` for any ε: ``N_v`` scales at least detect it.

:func:`rethreshold` recomputes maps, ``log_nfa`` and scores for another ``eps``,
``n_votes`` or subset of scales from the normalized residuals stored in
``result.extras`` (no patch search): this is what the notebook's ε slider calls.
"""
from __future__ import annotations

import numpy as np

from ..checks import check_in_range, check_positive_int
from ..params import (EPS, Boolean, Device, Integral, Interval, ParameterValueError, Real,
                      Tuple, check_param)
from ..contrario.gaussian import count_tests, log_nfa_gaussian, vote_log_nfa
from .base import AnomalyResult, Detector

__all__ = ["SelfSimilarity", "rethreshold", "scale_log_nfa"]


#: at most this many scales: each one halves the image (eta = 0.5), 8 take 256 px to 2 px
MAX_SCALES = 8
_SCALES = [Interval(Integral, 1, MAX_SCALES),
           Tuple(Interval(Integral, 0, MAX_SCALES - 1), max_length=MAX_SCALES, unique=True,
                 sort=True)]


def _check_scales(scales, owner=None):
    """``scales`` as a sorted tuple of distinct scale indices (an int n is range(n))."""
    out = check_param(scales, _SCALES, "scales", owner)
    return tuple(range(out)) if isinstance(out, int) else out


def _resize(t, size):
    import torch.nn.functional as F
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    return F.interpolate(t, size=size, mode="bilinear", antialias=True, align_corners=False)


def _upsample(a: np.ndarray, size) -> np.ndarray:
    """(N, h, w) numpy → (N, H, W) bilinear (align_corners=False)."""
    import torch
    import torch.nn.functional as F
    if a.shape[-2:] == tuple(size):
        return a
    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[:, None]
    return F.interpolate(t, size=tuple(size), mode="bilinear", align_corners=False)[:, 0].numpy()


def _grid(n: int, p: int, step: int) -> np.ndarray:
    """Patch top-left coordinates: every ``step`` pixels, plus the last one so the border is covered."""
    return np.unique(np.r_[np.arange(0, n - p + 1, step), n - p])


def _box(d, dim: int, p: int, step: int):
    """Sums of ``p`` consecutive entries along ``dim`` at the positions of :func:`_grid`."""
    import torch
    n = d.shape[dim]
    out = d.unfold(dim, p, step).sum(-1)
    if (n - p) % step:
        out = torch.cat([out, d.narrow(dim, n - p, p).sum(dim, keepdim=True)], dim)
    return out


class SelfSimilarity(Detector):
    """Self-similar background + a contrario detection (Artola et al. 2021, Sec. 4).

    Parameters
    ----------
    patch_size : int, default 8
        Side ``P`` of the square patches (paper: 8×8).
    stride : int or None, default None
        Step between patches, at most ``patch_size``; ``None`` is ``patch_size // 2``
        (half overlap, as in the paper).
    window : int, default 20
        Side of the local search window around the patch's place (paper: 20×20),
        i.e. the patch may move by ±(window − patch_size)/2 pixels. At least
        ``patch_size``, at most the side of the training images (checked at ``fit``).
    scales : int or sequence of int, default (0, 1, 2)
        Scales ``s ∈ S``; scale ``s`` resizes the images by ``eta**s``. An int ``n``
        means ``range(n)``; at most 8 scales, indices 0 to 7. Paper: 3 scales.
    eta : float, default 0.5
        Resize factor between scales (paper: η = 0.5).
    n_images : int, default 5
        ``K_s = n_images·(s+1)`` most similar training images searched at scale ``s``
        (paper: ``K_s = 5(s+1)``).
    n_neighbors : int, default 16
        Number of nearest patches averaged into ``p̂``; at most the candidates that a
        corner patch finds in its window of the nearest images (checked at ``fit``).
    h : float or None, default None
        NL-means bandwidth (intensity units, per pixel and channel). ``None`` sets it
        per scale at ``fit`` from the training images themselves: ``h_s² =`` the median,
        over patches of a few training images, of the mean squared distance to the
        nearest patch of the *other* training images, i.e. the typical distance
        between two normal patches (noise and normal variability included).
    fallback : float, default 3.0
        A patch whose nearest local candidate is farther than ``fallback·h`` (RMS) is
        also searched in the whole training set with a partition tree. 0 disables it.
    eps : float, default 1.0
        NFA threshold ε used for the binary maps and the score (ε = 1: on average
        one false detection per normal image).
    n_votes : int, default 2
        ``N_v``: a pixel is detected when at least ``N_v`` scales detect it.
    device : str or None
        ``None`` uses a GPU when present.
    progress : bool, default True
        Progress bar over the test images.
    """

    name = "selfsim"
    _min_train = 2
    _min_train_why = "h and the nearest patches are estimated between training images"
    _parameter_constraints = {
        "patch_size": Interval(Integral, 2, 64),
        "stride": [None, Interval(Integral, 1, 64)],
        "window": Interval(Integral, 2, 256),
        "scales": _SCALES,
        "eta": Interval(Real, 0, 1, closed="neither"),
        "n_images": Interval(Integral, 1, 1000),
        "n_neighbors": Interval(Integral, 1, 1024),
        "h": [None, Interval(Real, 0, 10, closed="right")],
        "fallback": Interval(Real, 0, 100),
        "eps": EPS,
        "n_votes": Interval(Integral, 1, MAX_SCALES),
        "device": [None, Device()],
        "progress": Boolean(),
    }

    def __init__(self, *, patch_size: int = 8, stride: int | None = None, window: int = 20,
                 scales=(0, 1, 2), eta: float = 0.5, n_images: int = 5, n_neighbors: int = 16,
                 h: float | None = None, fallback: float = 3.0, eps: float = 1.0,
                 n_votes: int = 2, device: str | None = None, progress: bool = True):
        self._set_params(locals())

    def _check_params(self, p):
        if isinstance(p["scales"], int):
            p["scales"] = tuple(range(p["scales"]))
        if p["window"] < p["patch_size"]:
            raise ParameterValueError(
                f"window={p['window']} is smaller than patch_size={p['patch_size']}: the "
                f"search window must hold the patch (window >= {p['patch_size']}; paper: 20).")
        if p["stride"] is not None and p["stride"] > p["patch_size"]:
            raise ParameterValueError(
                f"stride={p['stride']} is larger than patch_size={p['patch_size']}: the "
                "patches would leave gaps in the background. Use stride <= patch_size "
                "(None: half the patch, as in the paper).")
        if p["n_votes"] > len(p["scales"]):
            raise ParameterValueError(
                f"n_votes={p['n_votes']} is more than the {len(p['scales'])} scale(s) "
                f"{p['scales']}: a pixel can get at most one vote per scale.")

    # -- geometry -------------------------------------------------------------------
    @property
    def _step(self) -> int:
        return self.stride if self.stride is not None else max(1, self.patch_size // 2)

    @property
    def _radius(self) -> int:
        return (self.window - self.patch_size) // 2

    def _scale_size(self, s: int, size=None):
        h, w = size if size is not None else self.image_size_
        f = self.eta ** s
        return max(1, int(round(h * f))), max(1, int(round(w * f)))

    def _k_images(self, s: int) -> int:
        return self.n_images * (s + 1)

    # -- fitted pyramid ---------------------------------------------------------------
    def _prepare(self) -> None:
        """Training pyramid on the compute device (rebuilt after load)."""
        import torch

        from ..torch_utils import default_device, to_tensor
        self._dev = default_device(self.device)
        x = to_tensor(self.train_, self._dev)
        self._pyr = {s: _resize(x, self._scale_size(s)).contiguous() for s in self.scales}
        self._trees = {}
        self._torch = torch
        if self.fallback > 0:   # the partition trees are part of the fitted model
            for s in self.scales:
                self._tree(s)

    def _fit(self, images):
        for s in self.scales:
            hs, ws = self._scale_size(s, images.shape[1:3])
            if min(hs, ws) < self.patch_size:
                raise ValueError(
                    f"at scale {s} the {images.shape[1]}x{images.shape[2]} images become "
                    f"{hs}x{ws}, smaller than patch_size={self.patch_size}: use fewer scales "
                    f"(scales={tuple(range(max(1, s)))}), a smaller patch_size or larger images.")
        self._check_train_size(images.shape)
        self.train_ = np.ascontiguousarray(images, dtype=np.float32)
        self._prepare()
        if self.h is not None:
            self.h_ = np.full(len(self.scales), self.h, np.float32)
            return
        n = len(images)
        queries = np.unique(np.linspace(0, n - 1, min(n, 4)).round().astype(int))
        h = []
        for s in self.scales:
            d = []
            for i in queries:
                others = np.delete(np.arange(n), i)
                u = self._pyr[s][i]
                ids = self._nearest_images(u, s, others)
                d.append(self._search(u, s, ids)[0][:, 0])
            med = float(self._torch.cat(d).median())
            h.append(np.sqrt(max(med, 1e-8)))
        self.h_ = np.asarray(h, np.float32)

    def _check_train_size(self, shape) -> None:
        """The parameters that depend on the training images: the window must fit in
        the images, and every patch (a corner one has the fewest) must have at least
        ``n_neighbors`` candidates in its window of the nearest images."""
        n, h, w = shape[:3]
        if self.window > min(h, w):
            raise ValueError(
                f"window={self.window} is larger than the {h}x{w} training images: the "
                f"search would cost {(self.window - self.patch_size + 1) ** 2} shifts of "
                f"the whole image per scale and find nothing more. Use window <= "
                f"{min(h, w)} (paper: 20).")
        # images searched: K_0 = n_images (fewer when there are fewer training images;
        # one fewer while h is estimated, each training image against the others)
        k = min(self.n_images, n - 1 if self.h is None else n)
        fewest, where = None, None
        for s in self.scales:
            hs, ws = self._scale_size(s, (h, w))
            p, r = self.patch_size, self._radius
            cand = k * (min(r, hs - p) + 1) * (min(r, ws - p) + 1)
            if fewest is None or cand < fewest:
                fewest, where = cand, s
        if self.n_neighbors > fewest:
            raise ValueError(
                f"n_neighbors={self.n_neighbors} is more than the {fewest} candidate "
                f"patches that a corner patch finds at scale {where} ({k} nearest "
                f"image(s) x the window's positions): use n_neighbors <= {fewest} "
                f"(default 16), a larger window or n_images, or more training images.")

    def _nearest_images(self, u, s, candidates=None):
        """Indices of the K_s training images closest (L2) to ``u`` at scale ``s``."""
        torch = self._torch
        pyr = self._pyr[s]
        cand = torch.arange(len(pyr), device=pyr.device) if candidates is None else \
            torch.as_tensor(np.asarray(candidates), device=pyr.device)
        d = ((pyr[cand] - u[None]) ** 2).flatten(1).sum(1)
        k = min(self._k_images(s), len(cand))
        return cand[d.topk(k, largest=False).indices]

    # -- patch search -----------------------------------------------------------------
    def _search(self, u, s, ids):
        """Local search: for each patch of ``u`` (C, H, W) its ``n_neighbors`` nearest
        patches in the local window of the images ``ids`` at scale ``s``.

        Returns (dist (M, n) mean squared distances ascending, base (M, n) flat index
        of the candidates' top-left pixel in the pyramid, ys, xs)."""
        torch = self._torch
        F = torch.nn.functional
        pyr = self._pyr[s]
        c, h, w = u.shape
        p, r = self.patch_size, self._radius
        ys, xs = _grid(h, p, self._step), _grid(w, p, self._step)
        ys_t = torch.as_tensor(ys, device=u.device)
        xs_t = torch.as_tensor(xs, device=u.device)
        v = F.pad(pyr[ids], (r, r, r, r))
        k = len(ids)
        offs = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
        dist = torch.empty((len(offs), k, len(ys), len(xs)), device=u.device)
        for o, (dy, dx) in enumerate(offs):
            e = v[:, :, r + dy:r + dy + h, r + dx:r + dx + w] - u[None]
            d = (e * e).sum(1)                                         # (k, H, W)
            dist[o] = _box(_box(d, 1, p, self._step), 2, p, self._step)
            bad_y = (ys + dy < 0) | (ys + dy > h - p)
            bad_x = (xs + dx < 0) | (xs + dx > w - p)
            if bad_y.any():
                dist[o, :, torch.as_tensor(bad_y, device=u.device)] = float("inf")
            if bad_x.any():
                dist[o, :, :, torch.as_tensor(bad_x, device=u.device)] = float("inf")
        m = len(ys) * len(xs)
        dist = dist.permute(2, 3, 1, 0).reshape(m, k * len(offs)) / (c * p * p)
        n = min(self.n_neighbors, dist.shape[1])
        val, idx = dist.topk(n, dim=1, largest=False)               # sorted ascending
        offs_t = torch.as_tensor(offs, device=u.device)
        o = offs_t[idx % len(offs)]                                  # (M, n, 2)
        img = ids[idx // len(offs)]
        yy = ys_t.repeat_interleave(len(xs))[:, None] + o[..., 0]
        xx = xs_t.repeat(len(ys))[:, None] + o[..., 1]
        base = img * (h * w) + yy * w + xx
        return val, base, ys, xs

    def _tree(self, s):
        """Partition tree over the training patches of scale ``s`` (every other pixel),
        built on a 16-dimensional PCA projection of the patches."""
        if s in self._trees:
            return self._trees[s]
        from scipy.spatial import cKDTree
        torch = self._torch
        pyr = self._pyr[s]
        n, c, h, w = pyr.shape
        p = self.patch_size
        ys, xs = _grid(h, p, 2), _grid(w, p, 2)
        pos = (ys[:, None] * w + xs[None, :]).reshape(-1)
        base = (np.arange(n)[:, None] * h * w + pos[None]).reshape(-1)
        base_t = torch.as_tensor(base, device=pyr.device)
        g = torch.Generator().manual_seed(0)
        pick = torch.randperm(len(base), generator=g)[:20000].to(pyr.device)
        sub = self._gather(pyr, base_t[pick][:, None])[:, 0]
        mean = sub.mean(0)
        dim = min(16, sub.shape[1], len(sub))
        cen = (sub - mean).double().cpu().numpy()
        _, vecs = np.linalg.eigh(cen.T @ cen)                          # ascending eigenvalues
        proj = torch.as_tensor(np.ascontiguousarray(vecs[:, ::-1][:, :dim]),
                               dtype=sub.dtype, device=sub.device)
        low = torch.cat([(self._gather(pyr, base_t[a:a + 65536][:, None])[:, 0] - mean) @ proj
                         for a in range(0, len(base), 65536)])
        tree = cKDTree(low.cpu().numpy())
        self._trees[s] = (tree, mean, proj, base_t)
        return self._trees[s]

    def _tree_candidates(self, s, qv):
        """Global candidates of the query patches ``qv`` (F, c·p²): the tree's nearest
        grid patches, each refined by ±1 pixel (the tree's grid has step 2).
        Returns (mean squared distances, flat top-left indices), both (F, 9·k)."""
        torch = self._torch
        tree, mean, proj, db_base = self._tree(s)
        pyr = self._pyr[s]
        n, c, h, w = pyr.shape
        p = self.patch_size
        k = min(self.n_neighbors, len(db_base))
        _, j = tree.query(((qv - mean) @ proj).cpu().numpy(), k=k, workers=1)
        j = torch.as_tensor(np.asarray(j).reshape(len(qv), k), device=qv.device)
        b = db_base[j]                                                 # (F, k)
        img, pix = b // (h * w), b % (h * w)
        y, x = pix // w, pix % w
        d = torch.tensor([-1, 0, 1], device=qv.device)
        y = (y[..., None, None] + d[:, None]).clamp(0, h - p)
        x = (x[..., None, None] + d[None, :]).clamp(0, w - p)
        b = (img[..., None, None] * (h * w) + y * w + x).reshape(len(qv), -1)
        dist = ((self._gather(pyr, b) - qv[:, None]) ** 2).mean(-1)
        return dist, b

    def _gather(self, pyr, base):
        """Patches at flat top-left indices ``base`` (any shape) → (*base.shape, c·p²)."""
        torch = self._torch
        n, c, h, w = pyr.shape
        p = self.patch_size
        dy, dx = torch.meshgrid(torch.arange(p, device=pyr.device),
                                torch.arange(p, device=pyr.device), indexing="ij")
        grid = (dy * w + dx).reshape(-1)
        flat = base[..., None] + grid                                 # (*, p²)
        img = flat // (h * w)
        pix = flat % (h * w)
        src = pyr.reshape(n, c, h * w)
        out = src[img[..., None, :].expand(*img.shape[:-1], c, p * p),
                  torch.arange(c, device=pyr.device)[:, None].expand(c, p * p),
                  pix[..., None, :].expand(*pix.shape[:-1], c, p * p)]
        return out.reshape(*base.shape, c * p * p)

    def _background(self, u, s, ids, hs):
        """Self-similar background ``û`` of ``u`` (C, H, W) at scale ``s``; returns
        (û, number of patches that used the tree fallback)."""
        torch = self._torch
        pyr = self._pyr[s]
        c, h, w = u.shape
        p = self.patch_size
        val, base, ys, xs = self._search(u, s, ids)
        m = val.shape[0]
        q_base = torch.as_tensor((ys[:, None] * w + xs[None, :]).reshape(-1), device=u.device)
        n_fb = 0
        if self.fallback > 0:
            fb = val[:, 0] > (self.fallback * hs) ** 2
            n_fb = int(fb.sum())
            if n_fb:
                qv = self._gather(u[None], q_base[fb][:, None])[:, 0]   # (F, c·p²)
                gd, gb = self._tree_candidates(s, qv)
                allb, order = torch.cat([base[fb], gb], 1).sort(1)
                allv = torch.gather(torch.cat([val[fb], gd], 1), 1, order)
                dup = torch.zeros_like(allb, dtype=torch.bool)       # a patch counts once
                dup[:, 1:] = allb[:, 1:] == allb[:, :-1]
                allv = allv.masked_fill(dup, float("inf"))
                v2, i2 = allv.topk(val.shape[1], dim=1, largest=False)
                val[fb] = v2
                base[fb] = torch.gather(allb, 1, i2)
        wts = torch.exp(-(val - val[:, :1]) / (2.0 * hs * hs))
        wts = wts / wts.sum(1, keepdim=True)
        dy, dx = torch.meshgrid(torch.arange(p, device=u.device),
                                torch.arange(p, device=u.device), indexing="ij")
        grid = (dy * w + dx).reshape(-1)
        acc = torch.zeros((c, h * w), device=u.device)
        cnt = torch.zeros(h * w, device=u.device)
        chunk = 2048
        for a in range(0, m, chunk):
            g = self._gather(pyr, base[a:a + chunk])                     # (m', n, c·p²)
            ph = (g * wts[a:a + chunk, :, None]).sum(1).reshape(-1, c, p * p)
            pix = (q_base[a:a + chunk, None] + grid).reshape(-1)
            acc.index_add_(1, pix, ph.permute(1, 0, 2).reshape(c, -1))
            cnt.index_add_(0, pix, torch.ones_like(pix, dtype=acc.dtype))
        return (acc / cnt.clamp_min(1)).reshape(c, h, w), n_fb

    # -- prediction ---------------------------------------------------------------------
    def residuals(self, image):
        """Per-scale residuals of one image: dict ``s -> (r^s, û^s)``, each (H_s, W_s, 3)."""
        self._check_fitted("residuals")
        from ..checks import check_image
        x = check_image(image)
        out = {}
        for (s, r, bg, _) in self._residuals_one(x):
            out[s] = (r, bg)
        return out

    def _residuals_one(self, x):
        torch = self._torch
        if not hasattr(self, "_pyr"):
            self._prepare()
        t = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 0)))[None].to(self._dev)
        res = []
        with torch.no_grad():
            for i, s in enumerate(self.scales):
                u = _resize(t, self._scale_size(s, x.shape[:2]))[0].contiguous()
                ids = self._nearest_images(u, s)
                bg, n_fb = self._background(u, s, ids, float(self.h_[i]))
                r = u - bg
                res.append((s, np.moveaxis(r.cpu().numpy(), 0, -1),
                            np.moveaxis(bg.cpu().numpy(), 0, -1), n_fb))
        return res

    def _predict(self, images):
        from tqdm.auto import tqdm

        from ..contrario.gaussian import normalize_residual
        n = len(images)
        extras = {}
        n_fb = np.zeros((n, len(self.scales)), np.int64)
        for i in tqdm(range(n), desc="self-similarity", disable=not self.progress):
            for j, (s, r, _, nf) in enumerate(self._residuals_one(images[i])):
                if i == 0:
                    extras[f"residual_s{s}"] = np.empty((n, *r.shape), np.float32)
                    extras[f"normalized_s{s}"] = np.empty((n, *r.shape), np.float32)
                extras[f"residual_s{s}"][i] = r
                # f = |(r − E r)/σ_r| per channel, mean and std over the image
                extras[f"normalized_s{s}"][i] = np.abs(normalize_residual(r, axis=(0, 1)))
                n_fb[i, j] = nf
        extras["scales"] = tuple(self.scales)
        extras["n_fallback"] = n_fb
        extras["h"] = tuple(float(v) for v in self.h_)
        tmp = AnomalyResult(np.zeros(images.shape[:3], np.float32), np.zeros(n), None,
                            extras=extras)
        return rethreshold(tmp, eps=self.eps, n_votes=self.n_votes)

    def rethreshold(self, result: AnomalyResult, eps: float | None = None,
                    n_votes: int | None = None, scales=None) -> AnomalyResult:
        """Same as :func:`rethreshold`, with this detector's ``eps``/``n_votes`` as defaults."""
        return rethreshold(result, self.eps if eps is None else eps,
                           self.n_votes if n_votes is None else n_votes, scales)

    # -- save / load ----------------------------------------------------------------------
    def _get_state(self):
        return {"train": self.train_, "h": np.asarray(self.h_, np.float32)}

    def _set_state(self, state):
        from ..estimator import ModelFileError, state_array
        self.train_ = state_array(state, "train", shape=(None, *self.image_size_, 3),
                                  min_value=0.0, max_value=1.0)
        if len(self.train_) < self._min_train:
            raise ModelFileError(f"the saved 'train' holds {len(self.train_)} image(s), "
                                 f"expected at least {self._min_train}")
        self.h_ = state_array(state, "h", shape=(len(self.scales),), positive=True)
        self._prepare()


def rethreshold(result: AnomalyResult, eps: float = 1.0, n_votes: int = 2,
                scales=None) -> AnomalyResult:
    """Binary maps, log NFA, multi-scale residual and scores of a :class:`SelfSimilarity`
    result for another ``eps``, ``n_votes`` or subset of ``scales``, from the residuals
    stored in ``result.extras`` (no patch search: milliseconds per image).

    Parameters
    ----------
    result : AnomalyResult
        Returned by ``SelfSimilarity.predict`` (or a Pipeline ending with one).
    eps : float
        NFA threshold ε (> 0).
    n_votes : int
        ``N_v``, 1 ≤ N_v ≤ number of scales used.
    scales : sequence of int or None
        Subset of the scales stored in the result; ``None`` uses them all. The number of
        tests ``N = 3·Σ_s H_s·W_s`` counts the scales used.

    Returns
    -------
    AnomalyResult
        ``maps = r^MS``, ``log_nfa`` (the ``N_v``-th smallest per-scale log NFA, so that
        ``segment(eps)`` is the vote map), ``scores = s_ra = Σ b^MS·r^MS``, and the same
        extras plus ``eps``, ``n_votes``, ``n_tests``, ``used_scales``.
    """
    ex = result.extras
    scales = _check_result_scales(result, scales)
    eps = check_in_range(eps, "eps", 0, None, low_inclusive=False)
    n_votes = check_positive_int(n_votes, "n_votes")
    if n_votes > len(scales):
        raise ValueError(f"n_votes={n_votes} is more than the {len(scales)} scale(s) {scales}.")
    size = result.maps.shape[1:]
    logs, n_tests = _scale_log_nfa(ex, scales, size)
    rms = None
    for s in scales:   # r^MS = Π_s ‖r^s‖ (channel L2 norm), upsampled
        r = _upsample(np.sqrt((ex[f"residual_s{s}"] ** 2).sum(-1)), size)
        rms = r if rms is None else rms * r
    log_nfa = vote_log_nfa(np.stack(logs), n_votes)
    b = log_nfa < np.log10(eps)                       # b^MS(ε)
    scores = (b * rms).reshape(len(rms), -1).sum(1)   # s_ra = Σ b^MS · r^MS
    extras = dict(ex, eps=float(eps), n_votes=int(n_votes), n_tests=int(n_tests),
                  used_scales=tuple(scales))
    return AnomalyResult(rms, scores, log_nfa, None, extras)


def _check_result_scales(result, scales):
    ex = result.extras
    if "scales" not in ex or not any(k.startswith("normalized_s") for k in ex):
        raise ValueError("this result holds no per-scale residuals: it must come from "
                         "SelfSimilarity.predict (or a Pipeline ending with a SelfSimilarity).")
    stored = tuple(ex["scales"])
    scales = stored if scales is None else _check_scales(scales, "rethreshold")
    missing = [s for s in scales if s not in stored]
    if missing:
        raise ValueError(f"scales {missing} were not computed; this result has scales {stored}.")
    return scales


def _scale_log_nfa(ex, scales, size):
    # every pixel of every scale and channel is one test: N = 3·Σ_s H_s·W_s
    n_tests = count_tests([ex[f"normalized_s{s}"].shape[1:3] for s in scales],
                          channels=ex[f"normalized_s{scales[0]}"].shape[-1])
    logs = [_upsample(log_nfa_gaussian(ex[f"normalized_s{s}"].max(-1), n_tests), size)
            for s in scales]
    return logs, n_tests


def scale_log_nfa(result: AnomalyResult, scales=None) -> dict:
    """Per-scale log10 NFA maps ``{s: (N, H, W)}`` at full size (bilinear), with
    ``N = 3·Σ_s H_s·W_s`` counted over ``scales``: ``b^s(ε) = log_nfa[s] < log10 ε``."""
    scales = _check_result_scales(result, scales)
    logs, _ = _scale_log_nfa(result.extras, scales, result.maps.shape[1:])
    return dict(zip(scales, logs))
