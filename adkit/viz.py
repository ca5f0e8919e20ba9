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
           "show_images", "notebook_style", "map_scale", "png", "png_size", "map_png",
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
