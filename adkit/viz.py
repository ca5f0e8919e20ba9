"""Plots: overlays, grids of (image, map, mask, ground truth), ROC and PRO curves.

Nothing here computes a method: functions take images, maps and masks (numpy) and
draw them with matplotlib, returning the figure so a notebook can show or save it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["overlay", "show_grid", "plot_roc", "plot_pro", "plot_history", "show_images",
           "notebook_style"]


def _plt():
    import matplotlib.pyplot as plt
    return plt


def notebook_style(dpi: int = 72, fmt: str = "jpeg", quality: int = 85) -> None:
    """Figure settings for the lessons: modest resolution and JPEG figures, so that
    notebooks kept with their outputs stay small (a grid of photos is ~10× smaller
    as JPEG than as PNG). Call once at the top of a notebook."""
    plt = _plt()
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
            color: Sequence[float] = (1.0, 0.1, 0.1)) -> np.ndarray:
    """Blend an anomaly map or a mask onto an RGB image; returns float32 (H, W, 3).

    A float ``layer`` is normalized to [vmin, vmax] (default: its own range) and
    coloured with ``cmap``; a boolean layer tints its pixels with ``color`` and
    leaves the rest untouched.
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


def show_images(images: np.ndarray, titles: Sequence[str] | None = None, ncols: int = 6,
                size: float = 2.2, suptitle: str | None = None):
    """A grid of images (N, H, W, 3) or maps (N, H, W); returns the figure."""
    plt = _plt()
    images = np.asarray(images)
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < n:
            im = images[i]
            ax.imshow(np.clip(im, 0, 1) if im.ndim == 3 else im,
                      cmap=None if im.ndim == 3 else "magma")
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def show_grid(images: np.ndarray, maps: np.ndarray | None = None, masks: np.ndarray | None = None,
              gt: np.ndarray | None = None, titles: Sequence[str] | None = None,
              max_images: int = 6, size: float = 2.2, vmax: float | None = None):
    """One column per image; rows: image, anomaly map, predicted mask, ground truth.

    Rows whose argument is ``None`` are left out. Maps share one colour scale
    (``vmax`` defaults to the 99.5th percentile of all maps shown), so a brighter
    map means a more anomalous image.
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
    fig, axes = plt.subplots(len(rows), n, figsize=(size * n, size * len(rows)), squeeze=False)
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
                ax.imshow(data[i], cmap="inferno", vmin=vmin, vmax=vmax)
            else:
                ax.imshow(overlay(images[i], data[i], alpha=0.6,
                                  color=(1, 0.1, 0.1) if label == "detection" else (0.1, 1, 0.2)))
            if i == 0:
                ax.set_ylabel(label)
    fig.tight_layout()
    return fig


def plot_roc(labels: np.ndarray, scores: np.ndarray, ax=None, label: str | None = None):
    """Image-level ROC curve with its AUROC in the legend; returns the axes."""
    from sklearn.metrics import roc_auc_score, roc_curve
    plt = _plt()
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
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
        _, ax = plt.subplots(figsize=(4, 4))
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
        _, ax = plt.subplots(figsize=(5, 3))
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
