r"""Global affine alignment by the inverse compositional algorithm (Baker & Matthews).

Lucas-Kanade alignment finds the warp :math:`W(x; p)` that makes an image :math:`I`
look like a template (the reference) :math:`T`. With an affine warp

.. math::

    W(x; p) = \begin{pmatrix} 1 + p_1 & p_3 & p_5 \\ p_2 & 1 + p_4 & p_6 \end{pmatrix}
              \begin{pmatrix} x \\ y \\ 1 \end{pmatrix},

the *inverse compositional* algorithm minimises, at each iteration, over an
increment :math:`\Delta p` applied to the **template**,

.. math::

    \sum_x \rho\big( T(W(x; \Delta p)) - I(W(x; p)) \big),

and updates :math:`W(x; p) \leftarrow W(x; p) \circ W(x; \Delta p)^{-1}`. Linearising
around :math:`\Delta p = 0` gives the Gauss-Newton step

.. math::

    \Delta p = H^{-1} \sum_x w(x)\, \mathrm{SD}(x)^\top \big[I(W(x;p)) - T(x)\big],
    \qquad \mathrm{SD}(x) = \nabla T(x)\, \frac{\partial W}{\partial p}(x; 0),
    \qquad H = \sum_x w(x)\, \mathrm{SD}(x)^\top \mathrm{SD}(x),

where the *steepest-descent images* SD depend only on the template. That is the
point of the algorithm: the template gradient (Sobel), the Jacobian and, for the
quadratic loss, the inverse Hessian are computed **once** per pyramid level on the
reference, and each iteration costs one warp of the image and one 6-vector product.
Here :math:`\partial W / \partial p = \begin{pmatrix} x & 0 & y & 0 & 1 & 0 \\
0 & x & 0 & y & 0 & 1\end{pmatrix}`.

Robust losses (``loss="huber"`` or ``"lorentzian"``) use iteratively reweighted
least squares: the weight of each pixel, :math:`w = \psi(e)/e`, is recomputed from the
residual :math:`e` at each iteration with a robust scale
:math:`\hat\sigma = 1.4826\,\mathrm{MAD}(e)`, so occlusions, defects and dust no longer
pull the estimate (Baker & Matthews, "Lucas-Kanade 20 years on", part 2: the Hessian
is then re-weighted, a 6x6 sum, while the SD images stay precomputed).

- Huber (k = 1.345): :math:`w = \min(1, k\hat\sigma/|e|)`.
- Lorentzian (c = 2.385): :math:`w = 1 / (1 + (e / c\hat\sigma)^2)`.

The estimate runs coarse to fine on a Gaussian pyramid (each level halves the
size; the warp found on a level initialises the next one), on the grey level
(luminance) of the images, with a gain and an offset between image and template
estimated along (weighted least squares at each iteration, the "linear appearance
variation" of Baker & Matthews reduced to its simplest case) so that an exposure change
does not bias the geometry. All colour channels are then warped with the final warp. Internally
coordinates are centred and scaled to [-1, 1] per level so the normal equations are well
conditioned; the returned parameters are in pixels.

Implementation: a batch of images is aligned at once with torch (CPU, or the GPU when
there is one): per iteration, one ``grid_sample`` warps every image still moving, the
right-hand sides :math:`\sum_x w\,\mathrm{SD}^\top e` of all images are one matrix
product with the precomputed SD images, and their (re)weighted Hessians another one with
the precomputed products :math:`\mathrm{SD}(x)^\top\mathrm{SD}(x)` (so the pixels that
the warp moved out of the field of view, and robust weights, cost nothing extra). An image
stops iterating as soon as it has converged. Only the tiny 8x8 solves and the warp
compositions run in float64 numpy.

References
----------
S. Baker and I. Matthews, "Equivalence and efficiency of image alignment
algorithms", CVPR 2001. S. Baker and I. Matthews, "Lucas-Kanade 20 years on: a
unifying framework", IJCV 56(3), 2004 (part 1) and CMU-RI-TR-03-01 (part 2, robust
error functions).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import ndimage

from ..checks import check_choice, check_images, check_in_range, check_positive_int
from ..params import Boolean, Device, Integral, Interval, Options, Real
from .base import Transform

__all__ = ["Align", "align_affine", "warp_affine", "invert_affine", "params_to_matrix",
           "medoid_index"]

_LOSSES = ("l2", "huber", "lorentzian")
_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luma, as OpenCV's grey
_HUBER_K = 1.345       # 95% efficiency at the Gaussian
_LORENTZ_C = 2.385     # 95% efficiency at the Gaussian (Cauchy / Lorentzian)
_MIN_LEVEL_SIZE = 24   # the coarsest pyramid level keeps at least this many pixels a side
# floor of the robust scale, in standardised grey levels (the template has unit std): on
# clean images most residuals are ~0 (flat areas) and the MAD alone would down-weight the
# edges, which carry all the information about the warp
_SIGMA_FLOOR = 0.1
# std (pixels) of the Gaussian applied to both grey images before the pyramid
_PRESMOOTH = 1.0
_CORNERS = np.array([[-1, -1, 1], [1, -1, 1], [-1, 1, 1], [1, 1, 1.0]]).T
# pixels processed together (images per batch = this / pixels per image)
_BATCH_PIXELS = 2 ** 22


# -- parameters and warps -------------------------------------------------------------

def params_to_matrix(params: Any) -> np.ndarray:
    r"""A (2, 3) affine matrix from a (2, 3) matrix or the 6-vector p of Baker & Matthews.

    The 6-vector is :math:`(p_1, \dots, p_6)` with
    :math:`A = [[1 + p_1, p_3, p_5], [p_2, 1 + p_4, p_6]]`, so p = 0 is the identity.
    Works on batches ((N, 2, 3) or (N, 6)).
    """
    p = np.asarray(params, dtype=np.float64)
    if p.shape[-2:] == (2, 3):
        return p.copy()
    if p.shape[-1] == 6:
        m = np.empty(p.shape[:-1] + (2, 3))
        m[..., 0, 0] = 1 + p[..., 0]
        m[..., 1, 0] = p[..., 1]
        m[..., 0, 1] = p[..., 2]
        m[..., 1, 1] = 1 + p[..., 3]
        m[..., 0, 2] = p[..., 4]
        m[..., 1, 2] = p[..., 5]
        return m
    raise ValueError(
        f"affine parameters have shape {p.shape}; expected a (2, 3) matrix or the "
        "6-vector (p1..p6) of Baker & Matthews (or batches of them).")


def _h(m: np.ndarray) -> np.ndarray:
    """(..., 2, 3) -> homogeneous (..., 3, 3)."""
    out = np.zeros(m.shape[:-2] + (3, 3))
    out[..., :2, :] = m
    out[..., 2, 2] = 1.0
    return out


def invert_affine(params: Any) -> np.ndarray:
    """The inverse warp, as a (2, 3) matrix (or (N, 2, 3) for a batch)."""
    m = params_to_matrix(params)
    return np.linalg.inv(_h(m))[..., :2, :]


def _grid_frame(h: int, w: int) -> np.ndarray:
    """Pixel (x, y) -> the [-1, 1] coordinates of ``grid_sample`` (align_corners=True)."""
    return np.array([[2.0 / (w - 1), 0, -1], [0, 2.0 / (h - 1), -1], [0, 0, 1.0]])


def _torch_warp(x: np.ndarray, m: np.ndarray, shape, order: int, mode: str, cval: float,
                device=None) -> np.ndarray:
    """Batched warp of (N, H, W, C) float32 with (N, 3, 3) pixel warps, by grid_sample."""
    import torch
    import torch.nn.functional as F
    from ..torch_utils import default_device
    dev = default_device(device)
    n, h, w, c = x.shape
    ho, wo = shape
    theta = _grid_frame(h, w) @ m @ np.linalg.inv(_grid_frame(ho, wo))
    out = np.empty((n, ho, wo, c), np.float32)
    step = max(1, _BATCH_PIXELS // (ho * wo * max(c, 1)))
    for i in range(0, n, step):
        xt = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x[i:i + step], -1, 1))).to(dev)
        if mode == "constant" and cval:
            xt = xt - cval
        th = torch.as_tensor(theta[i:i + step, :2], dtype=torch.float32, device=dev)
        grid = F.affine_grid(th, (len(xt), c, ho, wo), align_corners=True)
        y = F.grid_sample(xt, grid, mode="nearest" if order == 0 else "bilinear",
                          padding_mode="border" if mode == "nearest" else "zeros",
                          align_corners=True)
        if mode == "constant" and cval:
            y = y + cval
        out[i:i + step] = np.moveaxis(y.cpu().numpy(), 1, -1)
    return out


def _warp_plane(plane: np.ndarray, m: np.ndarray, shape, order: int, mode: str,
                cval: float) -> np.ndarray:
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    cx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2]
    cy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2]
    return ndimage.map_coordinates(plane, [cy, cx], order=order, mode=mode, cval=cval,
                                   prefilter=order > 1)


def warp_affine(image: Any, params: Any, order: int = 1, mode: str = "nearest",
                cval: float = 0.0, output_shape=None, device=None) -> np.ndarray:
    """Resample ``image`` through an affine warp: ``out(x) = image(W(x; p))``.

    ``params`` maps a pixel ``(x, y) = (column, row)`` of the output to the point of
    ``image`` it shows (the convention of :func:`align_affine`: the warp that takes the
    reference frame to the image). To bring a map back, pass :func:`invert_affine`.

    Parameters
    ----------
    image : array (H, W), (H, W, C) or a batch (N, H, W[, C])
        Values are interpolated; dtype float32 out.
    params : (2, 3) matrix or 6-vector, or (N, 2, 3) / (N, 6) for a batch
    order : int, default 1
        Interpolation order (0 nearest, 1 bilinear, 3 cubic spline). Orders 0 and 1 run
        batched in torch (``grid_sample``), higher orders with ``scipy.ndimage``.
    mode : str, default "nearest"
        What is shown outside the image's field of view: ``"nearest"`` replicates the
        edge, ``"constant"`` fills with ``cval`` (other ``scipy.ndimage`` modes are
        accepted with the scipy path).
    output_shape : (H, W), optional
        Defaults to the image's.
    device : torch device, optional
        Where the torch path runs (default: the GPU when present).
    """
    m = params_to_matrix(params)
    x = np.asarray(image)
    batch = m.ndim == 3
    if batch and (x.ndim < 3 or x.shape[0] != m.shape[0]):
        raise ValueError(f"{m.shape[0]} warps for images of shape {x.shape}: give one "
                         "(2, 3) warp per image.")
    if not batch:
        if x.ndim not in (2, 3):
            raise ValueError(f"image has shape {x.shape}; expected (H, W) or (H, W, C).")
        x, m = x[None], m[None]
    elif x.ndim not in (3, 4):
        raise ValueError(f"images have shape {x.shape}; expected (N, H, W) or (N, H, W, C).")
    plane = x.ndim == 3
    xf = (x[..., None] if plane else x).astype(np.float32, copy=False)
    shape = tuple(int(v) for v in output_shape) if output_shape is not None else x.shape[1:3]
    if order in (0, 1) and mode in ("nearest", "constant") and min(xf.shape[1:3]) >= 2 \
            and min(shape) >= 2:
        out = _torch_warp(xf, _h(m), shape, order, mode, float(cval), device)
    else:
        out = np.stack([np.stack([_warp_plane(xi[..., c], mi, shape, order, mode, cval)
                                  for c in range(xi.shape[-1])], -1)
                        for xi, mi in zip(xf, m)]).astype(np.float32)
    if plane:
        out = out[..., 0]
    return out if batch else out[0]


# -- inverse compositional machinery --------------------------------------------------

def _gray(x: np.ndarray) -> np.ndarray:
    """Luminance of (..., H, W, 3) images; (..., H, W) grey images pass through. float32."""
    x = np.asarray(x, dtype=np.float32)
    return x @ _LUMA.astype(np.float32) if x.shape[-1] == 3 and x.ndim >= 3 else x


def _standardize(g: np.ndarray) -> np.ndarray:
    return (g - g.mean()) / max(float(g.std()), 1e-6)


def _reduce(g: np.ndarray) -> np.ndarray:
    """Blur then average 2x2 blocks: pixel k of the result sits at 2k + 1/2 of ``g``."""
    g = ndimage.gaussian_filter(g, 0.7, mode="nearest")
    h2, w2 = g.shape[0] // 2, g.shape[1] // 2
    return g[:2 * h2, :2 * w2].reshape(h2, 2, w2, 2).mean((1, 3))


def _pyramid(gray: np.ndarray, n: int) -> list[np.ndarray]:
    """Grey images (N, H, W) -> list of standardised, pre-smoothed (N, h, w) float32
    levels, finest first; each level is a blur (std 0.7) and a 2x2 average of the last
    (pixel k of a level sits at 2k + 1/2 of the level below)."""
    g = np.asarray(gray, np.float32)
    mean = g.mean((1, 2), keepdims=True)
    std = np.maximum(g.std((1, 2), keepdims=True), 1e-6)
    out = [ndimage.gaussian_filter((g - mean) / std, (0, _PRESMOOTH, _PRESMOOTH),
                                   mode="nearest")]
    for _ in range(n - 1):
        if min(out[-1].shape[1:]) < 8:
            break
        b = ndimage.gaussian_filter(out[-1], (0, 0.7, 0.7), mode="nearest")
        k, h2, w2 = b.shape[0], b.shape[1] // 2, b.shape[2] // 2
        out.append(b[:, :2 * h2, :2 * w2].reshape(k, h2, 2, w2, 2).mean((2, 4)))
    return out


def _n_levels(shape, levels) -> int:
    if levels is not None:
        return levels
    n, side = 1, min(shape)
    while side // 2 >= _MIN_LEVEL_SIZE and n < 6:
        side //= 2
        n += 1
    return n


def _level_frame(level: int) -> np.ndarray:
    """S_l: level-l pixel coordinates -> level-0 pixel coordinates (homogeneous)."""
    f = 2.0 ** level
    o = (f - 1) / 2
    return np.array([[f, 0, o], [0, f, o], [0, 0, 1.0]])


class _Level:
    """What the inverse compositional algorithm precomputes on one template level.

    ``jac`` (P, 8) holds, per pixel, the 6 steepest-descent images SD = grad T . dW/dp
    followed by the two appearance images (T and 1, for a gain and an offset); ``jj``
    (P, 64) their products SD^T SD per pixel, so that any weighted Hessian
    sum_x w(x) SD^T SD of a batch is one matrix product ``w @ jj``.
    """

    def __init__(self, t: np.ndarray, level: int, device):
        import torch
        h, w = t.shape
        self.shape = (h, w)
        s = max(max(h, w) - 1, 1) / 2.0
        self.s = s
        # normalised coordinates x' in [-1, 1]: pixel = norm @ x'
        norm = np.array([[s, 0, (w - 1) / 2], [0, s, (h - 1) / 2], [0, 0, 1.0]])
        self.frame = _level_frame(level) @ norm  # x' -> level-0 pixels
        self.grid = _grid_frame(h, w) @ norm     # x' -> grid_sample coordinates
        self.pix_inv = np.linalg.inv(norm)       # level pixels -> x'
        ys, xs = np.mgrid[0:h, 0:w]
        xn = (xs - (w - 1) / 2) / s
        yn = (ys - (h - 1) / 2) / s
        # template gradient per normalised unit (Sobel / 8 = derivative per pixel)
        tx = ndimage.sobel(t, axis=1, mode="nearest") / 8.0 * s
        ty = ndimage.sobel(t, axis=0, mode="nearest") / 8.0 * s
        jac = np.stack([tx * xn, ty * xn, tx * yn, ty * yn, tx, ty, t, np.ones_like(t)],
                       -1).reshape(-1, 8)
        jj = (jac[:, :, None] * jac[:, None, :]).reshape(-1, 64)
        self.jac = torch.as_tensor(jac, dtype=torch.float32, device=device)
        self.jj = torch.as_tensor(jj, dtype=torch.float32, device=device)
        self.t = torch.as_tensor(t.reshape(-1), dtype=torch.float32, device=device)
        # homogeneous pixel grid (P, 3): grid_sample coordinates of all pixels = base @ theta^T
        base = np.stack([xs.ravel(), ys.ravel(), np.ones(h * w)], -1)
        self.base = torch.as_tensor(base, dtype=torch.float32, device=device)


def _robust_weights(e, valid, loss: str):
    """IRLS weights psi(e)/e of (n, P) residuals, robust scale from the valid pixels."""
    import torch
    masked = torch.where(valid, e, torch.full_like(e, float("nan")))
    med = masked.nanmedian(1, keepdim=True).values
    mad = (masked - med).abs().nanmedian(1, keepdim=True).values
    sigma = (1.4826 * mad).clamp_min(_SIGMA_FLOOR)
    if loss == "huber":
        return torch.clamp(_HUBER_K * sigma / e.abs().clamp_min(1e-12), max=1.0)
    return 1.0 / (1.0 + (e / (_LORENTZ_C * sigma)) ** 2)


class _ICTemplate:
    """A reference prepared once (pyramid, SD images, Hessian terms); aligns batches of
    images onto it."""

    def __init__(self, reference_gray: np.ndarray, levels: int | None = None,
                 photometric: bool = True, device=None):
        import torch
        from ..torch_utils import default_device
        self.device = default_device(device)
        g = np.asarray(reference_gray, np.float32)
        self.photometric = photometric
        self.shape = tuple(g.shape)
        pyr = _pyramid(g[None], _n_levels(self.shape, levels))
        self.levels = [_Level(t[0].astype(np.float64), i, self.device)
                       for i, t in enumerate(pyr)]
        self.n = len(self.levels)

    def align(self, image_gray: np.ndarray, loss: str = "l2", max_iter: int = 50,
              tol: float = 0.05, init=None):
        """Warp (2, 3) from the reference frame to one image, and an info dict."""
        m, infos = self.align_batch(np.asarray(image_gray)[None], loss, max_iter, tol, init)
        return m[0], infos[0]

    def align_batch(self, grays: np.ndarray, loss: str = "l2", max_iter: int = 50,
                    tol: float = 0.05, init=None, progress: bool = False):
        """Warps (N, 2, 3) from the reference frame to each (H, W) grey image, and infos."""
        from tqdm.auto import tqdm
        n = len(grays)
        m = np.empty((n, 2, 3))
        infos = []
        step = max(1, _BATCH_PIXELS // (self.shape[0] * self.shape[1]))
        init = None if init is None else params_to_matrix(init)
        for i in tqdm(range(0, n, step), desc="align", disable=not progress or n <= step,
                      leave=False):
            ini = None
            if init is not None:
                ini = init if init.ndim == 2 else init[i:i + step]
            mi, inf = self._align_chunk(grays[i:i + step], loss, max_iter, tol, ini)
            m[i:i + step] = mi
            infos += inf
        return m, infos

    def _align_chunk(self, grays, loss, max_iter, tol, init):
        import torch
        dev = self.device
        n = len(grays)
        pyr = [torch.as_tensor(p[:, None], device=dev) for p in _pyramid(grays, self.n)]
        m0 = np.broadcast_to(_h(params_to_matrix(init)) if init is not None else np.eye(3),
                             (n, 3, 3)).copy()
        npar = 8 if self.photometric else 6
        gain, offset = np.ones(n), np.zeros(n)
        lost = np.zeros(n, bool)
        converged = np.zeros(n, bool)
        err = np.full(n, np.nan)
        iters = np.zeros((self.n, n), int)
        eye = np.eye(3)
        for li in range(self.n - 1, -1, -1):
            lev, img = self.levels[li], pyr[li]
            h, w = lev.shape
            k = lev.frame
            mn = np.linalg.inv(k) @ m0 @ k  # warps in normalised level coordinates
            converged[:] = False
            active = np.flatnonzero(~lost)
            for _ in range(max_iter):
                if active.size == 0:
                    break
                na = active.size
                theta = lev.grid @ mn[active] @ lev.pix_inv  # level pixels -> grid
                th = torch.as_tensor(theta[:, :2], dtype=torch.float32, device=dev)
                grid = torch.matmul(lev.base, th.transpose(1, 2))  # (na, P, 2)
                valid = grid.abs().amax(-1) <= 1 + 1e-5
                grid = grid.view(na, h, w, 2)
                sel = img if na == n else img[torch.as_tensor(active, device=dev)]
                iw = torch.nn.functional.grid_sample(
                    sel, grid, mode="bilinear", padding_mode="border",
                    align_corners=True).reshape(na, -1)
                if self.photometric:
                    ga = torch.as_tensor(gain[active], dtype=torch.float32, device=dev)
                    of = torch.as_tensor(offset[active], dtype=torch.float32, device=dev)
                    r = iw - (ga[:, None] * lev.t[None] + of[:, None])
                else:
                    r = iw - lev.t[None]
                vf = valid.float()
                n_valid = vf.sum(1)
                wt = vf if loss == "l2" else vf * _robust_weights(r, valid, loss)
                jr = ((r * wt) @ lev.jac).double().cpu().numpy()[:, :npar]
                hess = (wt @ lev.jj).double().cpu().numpy().reshape(na, 8, 8)
                hess = hess[:, :npar, :npar]
                err[active] = np.sqrt(((r * r * vf).sum(1) / n_valid.clamp_min(1))
                                      .double().cpu().numpy())
                nv = n_valid.cpu().numpy()
                bad = nv < 4 * npar
                if bad.any():  # the warp moved the image out of the reference frame
                    lost[active[bad]] = True
                    keep = ~bad
                    active, jr, hess = active[keep], jr[keep], hess[keep]
                    if active.size == 0:
                        break
                if self.photometric:  # Jacobian [gain * SD, T, 1]
                    ds = np.ones((active.size, 8))
                    ds[:, :6] = gain[active, None]
                    hess = hess * ds[:, :, None] * ds[:, None, :]
                    jr = jr * ds
                delta = np.linalg.solve(hess + 1e-9 * np.eye(npar), jr[..., None])[..., 0]
                d = _h(params_to_matrix(delta[:, :6]))
                mn[active] = mn[active] @ np.linalg.inv(d)  # W <- W o W(dp)^-1
                if self.photometric:
                    gain[active] = np.maximum(gain[active] + delta[:, 6], 1e-3)
                    offset[active] += delta[:, 7]
                iters[li, active] += 1
                # largest displacement of the image corners caused by the increment
                stepsz = np.abs((d - eye) @ _CORNERS)[:, :2].max((1, 2)) * lev.s
                done = stepsz < tol
                converged[active[done]] = True
                active = active[~done]
            m0 = k @ mn @ np.linalg.inv(k)
        converged &= ~lost
        infos = [{"converged": bool(converged[i]), "lost": bool(lost[i]),
                  "iterations": int(iters[:, i].sum()),
                  "iterations_per_level": [int(v) for v in iters[:, i]],
                  "error": float(err[i]), "levels": self.n, "gain": float(gain[i]),
                  "offset": float(offset[i])} for i in range(n)]
        return m0[:, :2], infos


def _check_loss(loss):
    return check_choice(loss, "loss", _LOSSES)


def _image_or_gray(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim == 2:
        if min(a.shape) < 8 or not np.all(np.isfinite(a)):
            raise ValueError(f"{name} must be at least 8x8 with finite values, got {a.shape}.")
        return a.astype(np.float32, copy=False)
    if a.ndim == 3 and a.shape[-1] == 3:
        return check_images(a, name)[0]
    raise ValueError(f"{name} has shape {a.shape}; expected one image (H, W, 3) or (H, W).")


def align_affine(image: Any, reference: Any, loss: str = "l2", levels: int | None = None,
                 max_iter: int = 50, tol: float = 0.05, init: Any = None,
                 photometric: bool = True, order: int = 1, device=None):
    """Align ``image`` onto ``reference`` with a global affine warp (inverse compositional).

    Parameters
    ----------
    image, reference : array (H, W, 3) or (H, W)
        The image to move and the template. The warp is estimated on their luminance
        (ITU-R BT.601 weights); every channel of ``image`` is warped.
    loss : {"l2", "huber", "lorentzian"}, default "l2"
        ``"l2"`` is the paper's sum of squared differences; the robust losses (IRLS,
        scale 1.4826 MAD of the residual) ignore occlusions, defects and dust.
    levels : int or None
        Pyramid levels (None: halve until the side would drop below 24 pixels).
    max_iter : int, default 50
        Gauss-Newton iterations per level, at most.
    tol : float, default 0.05
        Stop a level when the increment moves no image corner by more than ``tol``
        pixels (of that level).
    init : (2, 3) or 6-vector, optional
        Starting warp (default identity).
    photometric : bool, default True
        Estimate, with the warp, a gain and an offset between the image and the
        template (alternated with each Gauss-Newton step), so a change of exposure does
        not bias the geometry. False: plain brightness constancy.
    order : int, default 1
        Interpolation order of the final warp of the colour image.
    device : torch device, optional
        Default: the GPU when present, else the CPU.

    Returns
    -------
    params : float64 (2, 3)
        The warp from the reference frame to the image: pixel ``(x, y)`` (column, row)
        of the reference corresponds to ``params @ (x, y, 1)`` in ``image``.
    warped : float32, shaped like ``reference``
        ``image`` resampled into the reference frame (edge replicated outside its field
        of view), i.e. ``warp_affine(image, params)``.
    info : dict
        ``converged`` (bool: the finest level converged within ``max_iter``), ``lost``
        (the warp left the field of view), ``iterations`` (total),
        ``iterations_per_level`` (finest first), ``error`` (RMS residual of the
        standardised grey levels at the finest level), ``levels``, ``gain``, ``offset``.
    """
    _check_loss(loss)
    img = _image_or_gray(image, "image")
    ref = _image_or_gray(reference, "reference")
    if img.shape[:2] != ref.shape[:2]:
        raise ValueError(
            f"image is {img.shape[0]}x{img.shape[1]} but the reference is "
            f"{ref.shape[0]}x{ref.shape[1]}: resize one of them first.")
    if levels is not None:
        levels = check_positive_int(levels, "levels")
    max_iter = check_positive_int(max_iter, "max_iter")
    tol = check_in_range(tol, "tol", 0, None, low_inclusive=False)
    tpl = _ICTemplate(_gray(ref), levels, photometric, device)
    m, info = tpl.align(_gray(img), loss, max_iter, tol, init)
    warped = warp_affine(img, m, order=order, output_shape=ref.shape[:2], device=device)
    return m, warped, info


def _downsampled_gray(images: np.ndarray, side: int = 64) -> np.ndarray:
    out = []
    for im in images:
        g = _gray(im).astype(np.float64)
        while min(g.shape) >= 2 * side:
            g = _reduce(g)
        out.append(_standardize(g).reshape(-1))
    return np.stack(out)


def medoid_index(images: Any) -> int:
    """Index of the medoid: the image minimising the summed Euclidean distance to the
    others, on standardised grey levels downsampled to about 64 pixels a side."""
    x = check_images(images, "images")
    f = _downsampled_gray(x)
    sq = (f * f).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * f @ f.T, 0)
    return int(np.argmin(np.sqrt(d2).sum(1)))


class Align(Transform):
    """Affine alignment of every image onto one reference (Baker & Matthews, CVPR 2001).

    ``fit`` picks the reference among the training images (by default their medoid);
    ``transform`` aligns each image onto it with the inverse compositional algorithm
    (coarse to fine, estimated on luminance with a gain and an offset, all channels
    warped, edges replicated outside the field of view), a whole batch at once. Maps
    computed on the aligned images are brought back to the input frame with the inverse
    warp (``transform_with_inverse``, used by :class:`adkit.models.Pipeline`), zero
    outside the aligned field of view, so they compare with ground-truth masks.

    Parameters
    ----------
    reference : {"medoid", "mean"} or int, default "medoid"
        ``"medoid"``: the training image with the smallest summed distance to the
        others (on downsampled grey levels). ``"mean"``: the mean of the training
        images after aligning them onto the medoid (sharper than the raw mean). An int
        picks that training image.
    loss : {"l2", "huber", "lorentzian"}, default "l2"
        ``"l2"`` is the paper's; the robust ones ignore defects and dust (IRLS).
    levels : int or None, default None
        Pyramid levels (None: automatic, coarsest side >= 24 pixels).
    max_iter : int, default 50
        Iterations per pyramid level, at most.
    tol : float, default 0.05
        Convergence: largest corner displacement of an increment, in pixels.
    order : int, default 1
        Interpolation order of the warps (1 bilinear).
    device : str or None, default None
        Torch device of the computation (None: the GPU when present, else the CPU).
    progress : bool, default True
        Show a progress bar over batches of images.

    Attributes
    ----------
    reference_ : float32 (H, W, 3)
        The template every image is aligned onto.
    reference_index_ : int
        Index of the medoid (or chosen) training image.
    params_ : float64 (N, 2, 3)
        The warps (reference frame -> image) of the last ``transform`` call.
    info_ : list of dict
        The ``info`` of each image of the last ``transform`` call (see
        :func:`align_affine`); ``converged_`` is the fraction that converged. A warning
        names the images that did not.
    """

    _parameter_constraints = {
        "reference": [Options("medoid", "mean"),
                      Interval(Integral, what="the index of a training image (an int)")],
        "loss": Options(*_LOSSES),
        "levels": [None, Interval(Integral, 1, 16)],
        "max_iter": Interval(Integral, 1, 10000),
        "tol": Interval(Real, 0, 100, closed="right"),
        "order": Interval(Integral, 0, 5),
        "device": [None, Device()],
        "progress": Boolean(),
    }

    def __init__(self, *, reference="medoid", loss: str = "l2", levels: int | None = None,
                 max_iter: int = 50, tol: float = 0.05, order: int = 1, device=None,
                 progress: bool = True):
        self._set_params(locals())

    # -- fitting ---------------------------------------------------------------------
    def _fit(self, images: np.ndarray) -> None:
        if isinstance(self.reference, int):
            if not -len(images) <= self.reference < len(images):
                raise ValueError(f"reference={self.reference} but there are only "
                                 f"{len(images)} training images.")
            idx = self.reference % len(images)
        else:
            idx = medoid_index(images)
        self.reference_index_ = int(idx)
        self.reference_ = images[idx].astype(np.float32)
        self._template = None
        if self.reference == "mean":
            warped, _ = self._align_all(images)
            self.reference_ = warped.mean(0).astype(np.float32)
            self._template = None

    def _get_template(self) -> _ICTemplate:
        if getattr(self, "_template", None) is None:
            self._template = _ICTemplate(_gray(self.reference_), self.levels, True,
                                         self.device)
        return self._template

    # -- transforming ----------------------------------------------------------------
    def _align_all(self, images: np.ndarray):
        if images.shape[1:3] != self.reference_.shape[:2]:
            raise ValueError(
                f"images are {images.shape[1]}x{images.shape[2]} but the reference is "
                f"{self.reference_.shape[0]}x{self.reference_.shape[1]}: resize them to the "
                "training size.")
        tpl = self._get_template()
        params, infos = tpl.align_batch(_gray(images), self.loss, self.max_iter, self.tol,
                                        progress=self.progress)
        out = warp_affine(images, params, order=self.order, device=self.device)
        self.params_, self.info_ = params, infos
        bad = [i for i, inf in enumerate(infos) if not inf["converged"]]
        if bad:
            warnings.warn(
                f"Align: {len(bad)} of {len(images)} images did not converge (indices "
                f"{bad[:10]}{'...' if len(bad) > 10 else ''}; see .info_): they may show "
                "another object, or need a larger max_iter or a robust loss.", stacklevel=3)
        return out, params

    @property
    def converged_(self) -> float:
        """Fraction of the images of the last ``transform`` whose alignment converged."""
        self._check_fitted("converged_")
        infos = getattr(self, "info_", [])
        return float(np.mean([i["converged"] for i in infos])) if infos else float("nan")

    def _transform_info(self, images: np.ndarray):
        out, params = self._align_all(images)
        return out, params

    def _inverse_maps(self, maps: np.ndarray, info) -> np.ndarray:
        maps = np.asarray(maps, np.float32)
        return warp_affine(maps, invert_affine(info), order=self.order, mode="constant",
                           cval=0.0, device=self.device)

    def _get_state(self) -> dict:
        return {"reference": self.reference_, "reference_index": self.reference_index_}

    def _set_state(self, state: dict) -> None:
        from ..estimator import state_array, state_int
        self.reference_ = state_array(state, "reference", shape=(None, None, 3),
                                      min_value=0.0, max_value=1.0)
        self.reference_index_ = state_int(state, "reference_index", minimum=0)
        self._template = None
