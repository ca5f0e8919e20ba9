"""Plots: overlays, grids of (image, map, mask, ground truth), ROC and PRO curves.

Nothing here computes a method: functions take images, maps and masks (numpy) and
draw them with matplotlib, returning the figure so a notebook can show or save it.

**One style for every lesson** (call :func:`notebook_style` once at the top):

- anomaly maps in :data:`MAP_CMAP` (``inferno``), always with a colorbar, and maps of
  one result on one shared scale (:func:`map_scale`);
- a detection is drawn as a cyan outline (:data:`DETECTION_COLOR`) around the detected
  region, the ground truth as a green one (:data:`TRUTH_COLOR`), over the image
  (:func:`outline`): cyan stands out on the red speckles of the pills, and the pixels
  inside stay visible;
- figures at least :data:`MIN_FIGURE_WIDTH` pixels wide, fonts of one size.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["overlay", "outline", "show_grid", "plot_roc", "plot_pro", "plot_history",
           "show_images", "show_normalization", "show_detections", "notebook_style",
           "show_corruption", "plot_latent_check", "plot_threshold_curve",
           "plot_threshold_study", "plot_false_alarms", "plot_false_alarm_panels",
           "plot_level_set_tree", "show_scale_votes", "plot_against_eps", "show_change",
           "show_rows", "map_scale", "png", "png_size", "map_png",
           "MAP_CMAP", "DETECTION_COLOR", "TRUTH_COLOR", "MIN_FIGURE_WIDTH", "STYLE"]

MAP_CMAP = "inferno"                 # anomaly maps, everywhere
DETECTION_COLOR = (0.0, 1.0, 1.0)    # outline of detected regions (cyan)
TRUTH_COLOR = (0.1, 1.0, 0.2)        # outline of ground-truth defects (green)
#: the narrowest figure the helpers draw, in pixels (at the style's resolution)
MIN_FIGURE_WIDTH = 320
_DPI = 72                            # the resolution of notebook_style


def _plt():
    import matplotlib.pyplot as plt
    return plt


def _width(inches: float) -> float:
    """``inches``, or more so that the figure is at least MIN_FIGURE_WIDTH pixels wide."""
    plt = _plt()
    dpi = float(plt.rcParams["figure.dpi"]) or _DPI
    return max(float(inches), MIN_FIGURE_WIDTH / dpi)


#: the matplotlib settings of :func:`notebook_style`
STYLE = {
    "font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10, "xtick.labelsize": 9,
    "ytick.labelsize": 9, "legend.fontsize": 9, "figure.titlesize": 11,
    "figure.figsize": (6.4, 4.0), "image.cmap": MAP_CMAP, "axes.grid": False,
}


def notebook_style(dpi: int = _DPI, fmt: str = "jpeg", quality: int = 85) -> None:
    """The figure style of the lessons; call once at the top of a notebook.

    Sets :data:`STYLE` (font sizes, a default figure 6.4 inches wide, ``inferno`` as
    the default colormap) and a modest resolution with JPEG figures, so that notebooks
    kept with their outputs stay small (a grid of photos is ~10× smaller as JPEG than
    as PNG). The drawing helpers of this module keep every figure at least
    :data:`MIN_FIGURE_WIDTH` pixels wide.
    """
    plt = _plt()
    plt.rcParams.update(STYLE)
    plt.rcParams["figure.dpi"] = dpi
    plt.rcParams["savefig.dpi"] = dpi
    try:
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:        # outside IPython: nothing to configure
        return
    if fmt in ("jpeg", "jpg"):
        set_matplotlib_formats(fmt, pil_kwargs={"quality": quality})
    else:
        set_matplotlib_formats(fmt)


def overlay(image: np.ndarray, layer: np.ndarray, alpha: float = 0.5, cmap: str = "jet",
            vmin: float | None = None, vmax: float | None = None,
            color: Sequence[float] = DETECTION_COLOR) -> np.ndarray:
    """Blend an anomaly map or a mask onto an RGB image; returns float32 (H, W, 3).

    A float ``layer`` is normalized to [vmin, vmax] (default: its own range) and
    coloured with ``cmap``; a boolean layer tints its pixels with ``color`` and
    leaves the rest untouched. To show a detection or a ground truth, prefer
    :func:`outline`, the lessons' style.
    """
    image = np.asarray(image, np.float32)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, -1)
    layer = np.asarray(layer)
    if layer.shape != image.shape[:2]:
        raise ValueError(f"layer shape {layer.shape} does not match image {image.shape[:2]}.")
    if layer.dtype == bool:
        out = image.copy()
        out[layer] = (1 - alpha) * out[layer] + alpha * np.asarray(color, np.float32)
        return out
    import matplotlib
    lo = float(np.min(layer)) if vmin is None else vmin
    hi = float(np.max(layer)) if vmax is None else vmax
    norm = np.clip((layer - lo) / (hi - lo + 1e-12), 0, 1)
    colored = matplotlib.colormaps[cmap](norm)[..., :3].astype(np.float32)
    return ((1 - alpha) * image + alpha * colored).astype(np.float32)


def outline(image: np.ndarray, mask: np.ndarray, color: Sequence[float] = DETECTION_COLOR,
            width: int | None = None, fill: float = 0.15) -> np.ndarray:
    """Draw the outline of the regions of a boolean ``mask`` on an RGB image.

    The pixels just outside each region (``skimage.segmentation.find_boundaries``,
    mode ``"outer"``, 8-connected: a closed ring, thickened to ``width`` pixels) take ``color``; the region itself
    is tinted by ``fill`` (0: left untouched), so even a one-pixel detection shows as a
    ring around a visible pixel. ``width`` defaults to one pixel per 128 of the image's
    larger side (at least 1), so the line keeps its thickness on screen at every size.
    Returns float32 (H, W, 3); a grey (H, W) image is repeated over three channels.
    """
    from scipy import ndimage
    from skimage.segmentation import find_boundaries
    image = np.asarray(image, np.float32)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, -1)
    mask = np.asarray(mask)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image {image.shape[:2]}.")
    mask = mask.astype(bool, copy=False)
    out = np.clip(image, 0, 1).astype(np.float32, copy=True)
    if not mask.any():
        return out
    col = np.asarray(color, np.float32)
    if fill > 0:
        out[mask] = (1 - fill) * out[mask] + fill * col
    if width is None:
        width = max(1, int(round(max(mask.shape) / 128)))
    ring = find_boundaries(mask, connectivity=2, mode="outer")
    if width > 1:
        ring = ndimage.binary_dilation(ring, iterations=width - 1) & ~mask
    out[ring] = col
    return out


def _colorbar(fig, im, ax, label: str | None = "anomaly score"):
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    cb.ax.tick_params(labelsize=8)
    if label:
        cb.set_label(label, fontsize=8)
    return cb


def map_scale(maps: np.ndarray) -> tuple[float, float]:
    """The colour scale (vmin, vmax) of a set of anomaly maps: their minimum and their
    99.5th percentile, so a few extreme pixels do not wash every map out. Maps of one
    result share it: a brighter map means a more anomalous image."""
    maps = np.asarray(maps)
    return float(np.min(maps)), float(np.percentile(maps, 99.5))


def png(image: np.ndarray) -> bytes:
    """PNG bytes of an RGB image (H, W, 3) float in [0, 1] (or uint8), at its own resolution.

    What the live viewers send to the browser: a few kilobytes, encoded in about a
    millisecond, so a slider can redraw one picture per move.
    """
    import io

    from PIL import Image
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) in pixels of PNG bytes, read from the header."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not PNG data")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def map_png(amap: np.ndarray, vmin: float, vmax: float, height: int = 200,
            label: str = "anomaly score") -> bytes:
    """PNG bytes of one anomaly map with its colorbar, ``height`` pixels tall.

    Drawn with matplotlib's object API (no pyplot state), so it is safe in a server
    callback; about 50 ms, done when the image changes, not when ε moves.
    """
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    dpi = 72
    h, w = np.asarray(amap).shape
    side = height * (w / h) / dpi            # inches of the map; the colorbar gets 0.95 more
    width = side + 0.95
    fig = Figure(figsize=(width, height / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes([0.0, 0.0, side / width, 1.0])
    im = ax.imshow(amap, cmap=MAP_CMAP, vmin=vmin, vmax=vmax)
    ax.set_axis_off()
    cax = fig.add_axes([(side + 0.08) / width, 0.04, 0.13 / width, 0.92])
    cb = fig.colorbar(im, cax=cax)
    cb.ax.tick_params(labelsize=8)
    cb.set_label(label, fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def show_images(images: np.ndarray, titles: Sequence[str] | None = None, ncols: int = 6,
                size: float = 2.2, suptitle: str | None = None, label: str = "anomaly score"):
    """A grid of images (N, H, W, 3) or maps (N, H, W); returns the figure.

    Maps are drawn in :data:`MAP_CMAP` on one shared scale (:func:`map_scale`) with one
    colorbar named ``label``.
    """
    plt = _plt()
    images = np.asarray(images)
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    maps = images.ndim == 3
    if maps and images.dtype == bool:
        images = images.astype(np.float32)
    width = _width(size * ncols + (0.6 if maps else 0.0))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, size * nrows), squeeze=False,
                             layout="constrained")
    vmin, vmax = map_scale(images) if maps and n else (None, None)
    shown = None
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < n:
            im = images[i]
            if maps:
                shown = ax.imshow(im, cmap=MAP_CMAP, vmin=vmin, vmax=vmax)
            else:
                ax.imshow(np.clip(im, 0, 1))
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
    if shown is not None:
        _colorbar(fig, shown, axes.ravel().tolist(), label)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def show_grid(images: np.ndarray, maps: np.ndarray | None = None, masks: np.ndarray | None = None,
              gt: np.ndarray | None = None, titles: Sequence[str] | None = None,
              max_images: int = 6, size: float = 2.2, vmax: float | None = None,
              map_label: str = "anomaly score"):
    """One column per image; rows: image, anomaly map, predicted mask, ground truth.

    Rows whose argument is ``None`` are left out. Maps share one colour scale
    (``vmax`` defaults to the 99.5th percentile of all maps shown), so a brighter
    map means a more anomalous image, shown by a colorbar named ``map_label`` at the end
    of their row.
    Detections are outlined in cyan and ground truths in green on the image
    (:func:`outline`).
    """
    plt = _plt()
    images = np.asarray(images)[:max_images]
    n = len(images)
    rows = [("image", images)]
    if maps is not None:
        rows.append(("map", np.asarray(maps)[:n]))
    if masks is not None:
        rows.append(("detection", np.asarray(masks, bool)[:n]))
    if gt is not None:
        rows.append(("ground truth", np.asarray(gt, bool)[:n]))
    extra = 0.7 if maps is not None else 0.0          # room for the colorbar
    fig, axes = plt.subplots(len(rows), n, figsize=(_width(size * n + extra), size * len(rows)),
                             squeeze=False, layout="constrained")
    if maps is not None:
        m = np.asarray(maps)[:n]
        vmax = float(np.percentile(m, 99.5)) if vmax is None else vmax
        vmin = float(np.min(m))
    for r, (label, data) in enumerate(rows):
        for i in range(n):
            ax = axes[r, i]
            ax.set_xticks([])
            ax.set_yticks([])
            if label == "image":
                ax.imshow(np.clip(data[i], 0, 1))
                if titles is not None:
                    ax.set_title(str(titles[i]), fontsize=8)
            elif label == "map":
                shown = ax.imshow(data[i], cmap=MAP_CMAP, vmin=vmin, vmax=vmax)
            else:
                ax.imshow(outline(images[i], data[i],
                                  DETECTION_COLOR if label == "detection" else TRUTH_COLOR))
            if i == 0:
                ax.set_ylabel(label)
        if label == "map":
            _colorbar(fig, shown, axes[r, :].tolist(), map_label)
    return fig


def show_normalization(image: np.ndarray, normalized: np.ndarray, reference: np.ndarray,
                       vmax: float = 0.3, suptitle: str | None = None, size: float = 2.8):
    """Four panels: an image, the image after normalization, the reference it was
    normalized onto, and their difference; returns the figure.

    The difference ``d(x) = (1/3) Σ_c |u'_c(x) − r_c(x)|`` of the normalized
    image u' and the reference r (all (H, W, 3) in [0, 1]) is drawn in :data:`MAP_CMAP`
    on the fixed scale [0, ``vmax``] with a colorbar, so that figures of two settings
    compare by eye: the darker, the better the normalization.
    """
    plt = _plt()
    image, normalized, reference = (np.asarray(a, np.float32) for a in
                                    (image, normalized, reference))
    if not image.shape == normalized.shape == reference.shape or image.ndim != 3:
        raise ValueError(f"image, normalized and reference must be three RGB images of one "
                         f"shape (H, W, 3); got {image.shape}, {normalized.shape} and "
                         f"{reference.shape}.")
    if not vmax > 0:
        raise ValueError(f"vmax={vmax}: the top of the difference scale must be > 0.")
    diff = np.abs(normalized - reference).mean(-1)
    fig, axes = plt.subplots(1, 4, figsize=(_width(4 * size + 0.7), size + 0.4),
                             layout="constrained")
    for ax, im, title in zip(axes[:3], (image, normalized, reference),
                             ("image", "normalized", "reference")):
        ax.imshow(np.clip(im, 0, 1))
        ax.set_title(title)
        ax.axis("off")
    shown = axes[3].imshow(diff, cmap=MAP_CMAP, vmin=0.0, vmax=vmax)
    axes[3].set_title("|normalized − reference|")
    axes[3].axis("off")
    _colorbar(fig, shown, axes[3], "mean |difference|")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def show_detections(images: np.ndarray, detections: dict, gt: np.ndarray | None = None,
                    titles: Sequence[str] | None = None, size: float = 1.5):
    """Several methods' detections on the same images: one row per method.

    ``detections`` is ``{row label: bool (N, H, W)}`` (e.g. ``result.segment(1.0)`` of
    each method). The first row shows the images with the ground truth ``gt`` outlined
    in green (when given); every other row the image with that method's detection
    outlined in cyan (:func:`outline`). Returns the figure.
    """
    plt = _plt()
    images = np.asarray(images)
    n = len(images)
    if not detections:
        raise ValueError("detections is empty: give {method: masks (N, H, W)}.")
    for k, m in detections.items():
        if np.shape(m)[:1] != (n,) or np.shape(m)[1:] != images.shape[1:3]:
            raise ValueError(f"the detections of {k!r} have shape {np.shape(m)}, expected "
                             f"{(n,) + images.shape[1:3]} (one mask per image).")
    rows = [("ground truth" if gt is not None else "image", gt, TRUTH_COLOR)]
    rows += [(k, np.asarray(m, bool), DETECTION_COLOR) for k, m in detections.items()]
    fig, axes = plt.subplots(len(rows), n, figsize=(_width(size * n + 0.8), size * len(rows)),
                             squeeze=False, layout="constrained")
    for r, (label, masks, color) in enumerate(rows):
        for i in range(n):
            ax = axes[r, i]
            ax.set_xticks([])
            ax.set_yticks([])
            shown = np.clip(images[i], 0, 1) if masks is None else outline(images[i], masks[i],
                                                                          color)
            ax.imshow(shown)
            if r == 0 and titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
            if i == 0:
                ax.set_ylabel(label, fontsize=8)
    return fig


def plot_roc(labels: np.ndarray, scores: np.ndarray, ax=None, label: str | None = None):
    """Image-level ROC curve with its AUROC in the legend; returns the axes."""
    from sklearn.metrics import roc_auc_score, roc_curve
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(_width(4.4), 4.4))
    fpr, tpr, _ = roc_curve(labels, scores)
    auc = roc_auc_score(labels, scores)
    ax.plot(fpr, tpr, label=f"{label or 'ROC'} (AUROC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="gray")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_pro(masks: np.ndarray, maps: np.ndarray, ax=None, label: str | None = None,
             max_fpr: float = 0.3):
    """Per-region overlap (PRO) against the false positive rate, up to ``max_fpr``."""
    from . import metrics
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(_width(4.4), 4.4))
    fpr, pro = metrics.pro_curve(masks, maps)
    keep = fpr <= max_fpr
    score = metrics.aupro(masks, maps, max_fpr=max_fpr)
    ax.plot(fpr[keep], pro[keep], label=f"{label or 'PRO'} (AUPRO {score:.3f})")
    ax.set_xlim(0, max_fpr)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("per-region overlap")
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_history(history, ax=None, label: str | None = None, log: bool = True, *,
                 val_history=None, best_epoch: int | None = None):
    """A training loss curve (list of floats, one per step or epoch), and optionally
    the validation loss of the same epochs (``val_history``, e.g. a model's
    ``val_history_``: drawn dashed in the same colour) with the kept ``best_epoch``
    (1-based, e.g. ``best_epoch_``) marked on it."""
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(_width(5), 3))
    val = [] if val_history is None else list(val_history)
    tag = (lambda what: f"{label} ({what})" if label else what) if val else (lambda _: label)
    line, = ax.plot(np.arange(1, len(history) + 1), history, label=tag("training"))
    if val:
        ax.plot(np.arange(1, len(val) + 1), val, "--", color=line.get_color(),
                label=tag("validation"))
        if best_epoch is not None and 1 <= best_epoch <= len(val):
            ax.plot([best_epoch], [val[best_epoch - 1]], "o", color=line.get_color(),
                    label=tag(f"best epoch {best_epoch}"))
    values = np.concatenate([np.asarray(history, float), np.asarray(val, float)])
    if log and np.all(values > 0):
        ax.set_yscale("log")
    ax.set_xlabel("epoch" if val else "step")
    ax.set_ylabel("loss")
    if label or val:
        ax.legend()
    return ax


def show_corruption(image: np.ndarray, kind: str = "stain", seed: int = 0, **params):
    """One draw of a corruption model (:func:`adkit.corruptions.corrupt`) on ``image``:
    the clean image, the corrupted one and the mask of the changed pixels, with the
    share of the image it covers. ``params`` go to the corruption. Returns the figure."""
    from .corruptions import corrupt
    out, mask = corrupt(image, kind, seed=seed, **params)
    shown = ", ".join(f"{k}={v}" for k, v in params.items())
    return show_images(np.stack([np.asarray(image, np.float32), out,
                                 np.repeat(mask[..., None], 3, -1).astype(np.float32)]),
                       titles=["clean", f"{kind}" + (f" ({shown})" if shown else ""),
                               f"mask ({mask.mean():.1%} of the pixels)"], ncols=3, size=2.6)


def plot_latent_check(latents, channels):
    r"""Are a normalizing flow's latents standard normal on normal images?

    Left, the histogram of every latent value of every scale against the density of
    N(0, 1); right, the finest scale's statistic of one cell, :math:`\lVert z\rVert^2 / C`
    over its :math:`C` channels, against the law it has under the model,
    :math:`\chi^2_C / C`. ``latents`` is a list of arrays (N, C_s, h_s, w_s), finest
    first (``UFlow.latents``), ``channels`` their ``C_s``. Returns the figure.
    """
    from scipy import stats
    plt = _plt()
    z = [np.asarray(zi, dtype=np.float64) for zi in latents]
    c0 = int(channels[0])
    fig, axes = plt.subplots(1, 2, figsize=(_width(9.5), 3.4), layout="constrained")
    t = np.linspace(-5, 5, 200)
    axes[0].hist(np.concatenate([zi.ravel() for zi in z]), bins=120, range=(-5, 5),
                 density=True, alpha=0.6, label="latent values")
    axes[0].plot(t, stats.norm.pdf(t), "k", label="N(0, 1)")
    axes[0].legend()
    axes[0].set_title("z on normal images (every scale)")
    u = np.linspace(0, 4, 300)
    axes[1].hist(((z[0] ** 2).sum(axis=1) / c0).ravel(), bins=80, range=(0, 4), density=True,
                 alpha=0.6, label="‖z‖²/C, finest scale")
    axes[1].plot(u, c0 * stats.chi2.pdf(u * c0, c0), "k", label=f"χ²_C / C, C = {c0}")
    axes[1].legend()
    axes[1].set_title("one cell's statistic")
    axes[1].set_xlabel("‖z‖²/C")
    return fig


def plot_threshold_curve(log_eps, curves: dict, oracle: dict | None = None, ax=None,
                         spread: dict | None = None, ylabel: str = "mIoU"):
    """A segmentation score against the a contrario threshold log10 ε (U-Flow's Fig. 7).

    ``curves``: ``{label: values}`` (one value per log10 ε); ``spread``: the same keys,
    a ± band (e.g. the std over seeds); ``oracle``: ``{label: value}`` drawn as dashed
    horizontal lines of the same colour (the best threshold, which looks at the ground
    truth). The automatic threshold ε = 1 (log10 ε = 0) is marked by a vertical line.
    Returns the axes.
    """
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(_width(5.2), 3.4))
    x = np.asarray(log_eps, dtype=float)
    for label, y in curves.items():
        y = np.asarray(y, dtype=float)
        line, = ax.plot(x, y, "o-", ms=3, label=label)
        if spread is not None and label in spread:
            d = np.asarray(spread[label], dtype=float)
            ax.fill_between(x, y - d, y + d, color=line.get_color(), alpha=0.2, lw=0)
        if oracle is not None and label in oracle:
            ax.axhline(float(oracle[label]), color=line.get_color(), ls="--", lw=1)
    ax.axvline(0.0, color="k", lw=1, ls=":")
    ax.annotate("ε = 1", (0.0, 0.5), xycoords=("data", "axes fraction"),
                xytext=(3, 0), textcoords="offset points", fontsize=8)
    ax.set_xlabel("threshold log10 ε (detected: log NFA < log10 ε)")
    ax.set_ylabel(ylabel)
    if oracle:
        ax.plot([], [], "k--", lw=1, label="oracle (dashed)")
    ax.legend(fontsize=8)
    return ax


def plot_threshold_study(studies: dict, panels=(("", "every image (the paper's mIoU)"),
                                                 ("_defective", "defective images only"))):
    """U-Flow's Fig. 7 over several draws of the data: for each variant, the mIoU against
    log10 ε, mean ± std over the seeds, and the oracle's mean dashed; one panel per set
    of images.

    ``studies`` is ``{(variant, seed): study}`` of
    :func:`adkit.metrics.nfa_threshold_study` (all on one ``log_eps`` grid), as
    :func:`adkit.bench.study.threshold_study` returns them; ``panels`` pairs a key
    suffix (``""``: every image, ``"_defective"``) with its title. Returns the figure.
    """
    plt = _plt()
    if not studies:
        raise ValueError("studies is empty: give {(variant, seed): nfa_threshold_study(...)}.")
    variants = list(dict.fromkeys(v for v, _ in studies))
    log_eps = next(iter(studies.values()))["log_eps"]
    fig, axes = plt.subplots(1, len(panels), figsize=(_width(5.5 * len(panels)), 3.6),
                             layout="constrained", squeeze=False)
    for ax, (suffix, title) in zip(axes[0], panels):
        curves, spread, oracle = {}, {}, {}
        for v in variants:
            runs = [st for (name, _), st in studies.items() if name == v]
            c = np.stack([st["miou_curve" + suffix] for st in runs])
            curves[v], spread[v] = c.mean(0), c.std(0)
            oracle[v] = float(np.mean([st["miou_oracle" + suffix] for st in runs]))
        plot_threshold_curve(log_eps, curves, oracle=oracle, spread=spread, ax=ax)
        ax.set_title(title)
    return fig


def plot_false_alarms(log_eps, curves: dict, n_good: int | None = None, ax=None,
                      band: float | None = None, colors: dict | None = None):
    """False regions per good image against ε, log–log, with the promise ε (diagonal).

    ``curves``: ``{label: values}`` (one value per log10 ε). A log scale cannot show 0:
    a measured 0 is drawn as an open marker on the bottom edge, which is
    ``0.5 / n_good`` (half the smallest nonzero value that ``n_good`` images can give;
    default 1e-3). ``band``: shade ``[ε/band, band·ε]`` around the diagonal (e.g. 3, the
    factor within which a method keeps its promise). ``colors``: ``{label: colour}``, to
    keep a method's colour from one axes to the next. Returns the axes.
    """
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(_width(4.8), 3.8))
    x = 10.0 ** np.asarray(log_eps, dtype=float)
    floor = 0.5 / n_good if n_good else 1e-3
    top = max([1.0] + [float(np.max(v)) for v in curves.values()]) * 3
    if band is not None:
        if not band > 1:
            raise ValueError(f"band must be a factor > 1, got {band!r}.")
        ax.fill_between(x, x / band, x * band, color="0.85", lw=0,
                        label=f"within a factor {band:g} of ε")
    ax.plot(x, x, "k--", lw=1, label="promise: ε false regions per image")
    for label, y in curves.items():
        y = np.asarray(y, dtype=float)
        if y.shape != x.shape:
            raise ValueError(f"{label!r}: {y.size} values for {x.size} levels log10 ε.")
        pos = y > 0
        color = (colors or {}).get(label)
        line, = ax.plot(x[pos], y[pos], "o-", ms=4, label=label, color=color)
        ax.plot(x[~pos], np.full((~pos).sum(), floor), "o", ms=4, mfc="none",
                color=line.get_color())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x.min() / 3, x.max() * 3)
    ax.set_ylim(floor / 1.5, top)
    ax.set_xlabel("ε")
    ax.set_ylabel("false regions per good image")
    ax.plot([], [], "o", color="gray", mfc="none", label="0 measured (drawn at the floor)")
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_false_alarm_panels(log_eps, panels: dict, n_good: int | None = None,
                            band: float = 3.0, size: float = 3.6):
    """:func:`plot_false_alarms` side by side, one axes per group of curves (e.g. each
    method's own NFA, and the NFA that :class:`adkit.models.Calibrated` measured), with
    the factor-``band`` band shaded, one colour per label in every axes, one legend.

    ``panels``: ``{title: {label: values}}`` (one value per log10 ε, e.g. from
    :func:`adkit.metrics.false_alarms_vs_eps`). Returns the figure.
    """
    plt = _plt()
    if not panels:
        raise ValueError("panels is empty: give {title: {label: false alarms}}.")
    labels = list(dict.fromkeys(k for curves in panels.values() for k in curves))
    colors = {k: f"C{i % 10}" for i, k in enumerate(labels)}
    fig, axes = plt.subplots(1, len(panels), figsize=(_width(size * len(panels) + 2.2), size),
                             sharex=True, sharey=True, squeeze=False, layout="constrained")
    top = max([1.0] + [float(np.max(v)) for c in panels.values() for v in c.values()])
    handles = {}
    for ax, (title, curves) in zip(axes[0], panels.items()):
        plot_false_alarms(log_eps, curves, n_good=n_good, ax=ax, band=band, colors=colors)
        ax.set_ylim(top=3 * top)
        ax.set_title(title, fontsize=10)
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
        ax.get_legend().remove()
    for ax in axes[0, 1:]:
        ax.set_ylabel("")
    fig.legend(handles.values(), handles.keys(), fontsize=7, loc="outside right upper")
    return fig


def plot_level_set_tree(tree, ax=None, log_eps: float = 0.0, clip: float = 10.0,
                        level_label: str = "level (log10)"):
    """The nodes of a tree of upper level sets (:func:`adkit.contrario.tree.level_set_tree`)
    at (area, log10 level), each linked to its parent and coloured by its log10 NFA
    (clipped at ``clip``: the interesting values are the low ones; with a colorbar).
    The selected regions (leaves of the simplified tree) are circled: in cyan those
    detected at ε (log NFA < ``log_eps``), in grey the others. Returns the axes."""
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(_width(5), 3.6))
    pos = {int(n): k for k, n in enumerate(np.asarray(tree.nodes))}
    par = np.array([pos[int(p)] for p in tree.node_parent])
    area = np.asarray(tree.area, dtype=float)
    lev = np.log10(np.maximum(np.asarray(tree.level, dtype=float), 1e-12))
    lnfa = np.asarray(tree.log_nfa, dtype=float)
    for k in range(len(area)):
        ax.plot([area[k], area[par[k]]], [lev[k], lev[par[k]]], color="0.75", lw=0.5,
                zorder=1)
    sc = ax.scatter(area, lev, s=10, c=np.minimum(lnfa, clip), cmap=MAP_CMAP + "_r",
                    zorder=2)
    _colorbar(ax.figure, sc, ax, f"log10 NFA (clipped at {clip:g})")
    sel = np.array([pos[int(n)] for n in tree.selected], dtype=int)
    hit = sel[lnfa[sel] < log_eps]
    miss = sel[lnfa[sel] >= log_eps]
    if miss.size:
        ax.scatter(area[miss], lev[miss], s=70, facecolors="none", edgecolors="0.5",
                   linewidths=1.0, label="selected, NFA ≥ ε", zorder=3)
    if hit.size:
        ax.scatter(area[hit], lev[hit], s=80, facecolors="none", edgecolors=DETECTION_COLOR,
                   linewidths=1.8, label="detected, NFA < ε", zorder=4)
    if sel.size:
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("region area (cells)")
    ax.set_ylabel(level_label)
    return ax


def show_scale_votes(view: dict, image: np.ndarray | None = None, title: str | None = None,
                     size: float = 1.5):
    r"""Self-similarity's multi-scale decision on one image, for one ε.

    ``view`` is what ``SelfSimilarity.vote_view(result, index, eps, n_votes, scales)``
    returns. Panels: the image (when ``image`` is given); for each scale s the detection
    :math:`b^s(ε) = [\log_{10} \mathrm{NFA}^s < \log_{10} ε]` outlined on the detector's
    input (``view["image"]``, else ``image``); the anomaly map
    :math:`r^{MS} = \prod_s |r^s|` with its colorbar; and the vote
    :math:`b^{MS} = [\sum_s b^s \ge N_v]` with the image score :math:`s_{ra}`.
    Returns the figure.
    """
    plt = _plt()
    shown = view.get("image")
    shown = np.asarray(image if shown is None else shown)
    if shown.ndim != 3:
        raise ValueError("give image= (the test image): this view has no normalized "
                         "image to draw the detections on.")
    per_scale = view["per_scale"]
    panels = len(per_scale) + 2 + (image is not None)
    fig, ax = plt.subplots(1, panels, figsize=(_width(size * panels + 0.6), size + 0.5),
                           layout="constrained")
    k = 0
    if image is not None:
        ax[0].imshow(np.clip(image, 0, 1))
        ax[0].set_title(title or "image", fontsize=8)
        k = 1
    for j, (s, mask) in enumerate(per_scale.items()):
        ax[k + j].imshow(outline(shown, mask))
        ax[k + j].set_title(f"$b^s$, s = {s}", fontsize=8)
    im = ax[-2].imshow(view["map"], cmap=MAP_CMAP)
    ax[-2].set_title("$r^{MS}$", fontsize=8)
    _colorbar(fig, im, ax[-2], None)
    ax[-1].imshow(outline(shown, view["vote"]))
    ax[-1].set_title(f"$b^{{MS}}$, $s_{{ra}}$ = {view['score']:.2g}", fontsize=8)
    for a in ax:
        a.set_xticks([])
        a.set_yticks([])
    fig.suptitle(f"ε = {view['eps']:.1e}, $N_v$ = {view['n_votes']}", fontsize=9)
    return fig


def plot_against_eps(table, column: str = "image_auroc", by: str = "variant", ax=None,
                     mark: float | None = None, mark_label: str | None = None):
    """Mean ± std over seeds of ``column`` against ε, one curve per ``by`` value.

    ``table`` has columns ``by``, ``seed``, ``eps`` and ``column`` (e.g.
    :func:`adkit.bench.study.auroc_against_eps`). ``mark`` draws a dotted vertical line
    at that ε (e.g. a paper's choice). Returns the axes.
    """
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(_width(4.8), 3.0), layout="constrained")
    for name in dict.fromkeys(table[by]):
        g = table[table[by] == name].groupby("eps")[column]
        mean, std = g.mean(), g.std(ddof=1).fillna(0)
        ax.semilogx(mean.index, mean.values, "o-", ms=3, label=name)
        ax.fill_between(mean.index, mean - std, mean + std, alpha=0.2)
    if mark is not None:
        ax.axvline(mark, color="0.4", ls=":", label=mark_label)
    ax.set_xlabel("ε")
    ax.set_ylabel(column.replace("_", " "))
    ax.legend(fontsize=7)
    return ax


def show_change(image: np.ndarray, output: np.ndarray, title: str | None = None,
                vmax: float = 0.15, output_title: str = "output"):
    """An image, what a transform made of it, and the change
    :math:`d(x) = \\frac13 \\sum_c |o_c(x) - u_c(x)|` on the fixed scale [0, ``vmax``]
    with a colorbar (so that two settings compare by eye). Returns the figure."""
    plt = _plt()
    x, y = np.asarray(image, np.float32), np.asarray(output, np.float32)
    if x.shape != y.shape or x.ndim != 3:
        raise ValueError(f"image and output must be two (H, W, 3) images of one shape, got "
                         f"{x.shape} and {y.shape}.")
    fig, ax = plt.subplots(1, 3, figsize=(_width(5.4), 2.1), layout="constrained")
    ax[0].imshow(np.clip(x, 0, 1))
    ax[0].set_title(title or "input", fontsize=8)
    ax[1].imshow(np.clip(y, 0, 1))
    ax[1].set_title(output_title, fontsize=8)
    im = ax[2].imshow(np.abs(y - x).mean(-1), cmap=MAP_CMAP, vmin=0, vmax=vmax)
    ax[2].set_title("change |output − input|", fontsize=8)
    _colorbar(fig, im, ax[2], None)
    for a in ax:
        a.set_xticks([])
        a.set_yticks([])
    return fig


def show_rows(rows: dict, titles: Sequence[str] | None = None, gt: np.ndarray | None = None,
              size: float = 1.7, vmax: float | None = None, map_label: str = "anomaly score",
              share_scale: bool = True):
    """Several versions of the same images, one row each: ``rows`` is ``{label: array}``
    with images (N, H, W, 3) or maps (N, H, W).

    With ``share_scale`` every map row shares one colour scale (``vmax`` defaults to the
    99.5th percentile of all maps shown), so rows compare by brightness (e.g. a detector
    with and without a normalization); without it each map row has its own [min,
    99.5th percentile] (two scores with different offsets compare by their shapes). One
    colorbar at the end of each map row. ``gt`` outlines the ground truth in green on the first row. Returns the figure.
    """
    plt = _plt()
    if not rows:
        raise ValueError("rows is empty: give {label: images (N, H, W, 3) or maps (N, H, W)}.")
    arrays = {k: np.asarray(v) for k, v in rows.items()}
    n = len(next(iter(arrays.values())))
    for k, a in arrays.items():
        if len(a) != n or a.ndim not in (3, 4):
            raise ValueError(f"row {k!r} has shape {a.shape}: every row needs the same number "
                             f"of images ({n}), as (N, H, W, 3) images or (N, H, W) maps.")
    maps = [a for a in arrays.values() if a.ndim == 3]
    if maps and vmax is None:
        vmax = float(np.percentile(np.concatenate([m.ravel() for m in maps]), 99.5))
    vmin = float(min(m.min() for m in maps)) if maps else 0.0
    extra = 0.8 if maps else 0.0
    fig, axes = plt.subplots(len(arrays), n, figsize=(_width(size * n + extra), size * len(arrays)),
                             squeeze=False, layout="constrained")
    for r, (label, a) in enumerate(arrays.items()):
        shown = None
        lo, hi = vmin, vmax
        if a.ndim == 3 and not share_scale:
            lo, hi = float(a.min()), float(np.percentile(a, 99.5))
        for i in range(n):
            ax = axes[r, i]
            ax.set_xticks([])
            ax.set_yticks([])
            if a.ndim == 4:
                img = np.clip(a[i], 0, 1)
                ax.imshow(outline(img, gt[i], TRUTH_COLOR) if (r == 0 and gt is not None) else img)
            else:
                shown = ax.imshow(a[i], cmap=MAP_CMAP, vmin=lo, vmax=hi)
            if r == 0 and titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
            if i == 0:
                ax.set_ylabel(label, fontsize=8)
        if shown is not None:
            _colorbar(fig, shown, axes[r, :].tolist(), map_label)
    return fig
