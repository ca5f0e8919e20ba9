"""Interactive explorers (ipywidgets) over results and datasets.

Widgets never compute a method: they re-threshold or re-draw what a detector
already returned (``AnomalyResult.segment`` is cheap), or regenerate embedded data.
Each function returns the widget, and each also has a ``render_*`` function that
draws one state as a static matplotlib figure, so a notebook run headless (CI,
nbconvert, a PDF export) still shows a picture.
"""
from __future__ import annotations

import numpy as np

from . import viz

__all__ = ["explore", "render_result", "dataset_explorer", "render_dataset"]


def _label(test, i):
    if test is None:
        return f"{i}"
    return f"{i}: {test.names[i]} ({test.defect_types[i]})"


def render_result(result, test=None, index: int = 0, eps: float = 1.0,
                  threshold: float | None = None, images: np.ndarray | None = None):
    """Draw image, map, detection and ground truth of one image of a result."""
    plt = viz._plt()
    imgs = images if images is not None else (test.images if test is not None else None)
    if threshold is None and result.log_nfa is None and result.threshold is None:
        threshold = float(np.percentile(result.maps, 99))
    mask = result[index].segment(eps=eps, threshold=threshold)[0]
    panels = [("map", result.maps[index])]
    if imgs is not None:
        panels.insert(0, ("image", imgs[index]))
    panels.append(("detection", mask))
    if test is not None:
        panels.append(("ground truth", test.masks[index]))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9))
    vmax = float(np.percentile(result.maps, 99.5))
    for ax, (name, data) in zip(axes, panels):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(name, fontsize=9)
        if name == "image":
            ax.imshow(np.clip(data, 0, 1))
        elif name == "map":
            ax.imshow(data, cmap="inferno", vmin=float(result.maps.min()), vmax=vmax)
        else:
            base = imgs[index] if imgs is not None else np.zeros((*data.shape, 3), np.float32)
            ax.imshow(viz.overlay(base, data, alpha=0.6,
                                  color=(1, .1, .1) if name == "detection" else (.1, 1, .2)))
    how = f"threshold {threshold:.3g}" if threshold is not None else f"ε = {eps:.2g}"
    fig.suptitle(f"{_label(test, index)} · score {result.scores[index]:.3g} · {how} · "
                 f"detected {100 * mask.mean():.2f}% of pixels", fontsize=9)
    fig.tight_layout()
    return fig


def explore(result, test=None, images: np.ndarray | None = None, eps: float = 1.0):
    """Image selector + ε slider (log scale) over an AnomalyResult.

    When the result has a ``log_nfa`` (a contrario methods, or calibrated ones) the
    slider moves ε: the detection is ``log_nfa < log10(ε)``. Otherwise it moves a
    threshold on the map. Returns an ``ipywidgets.VBox``.
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display

    n = len(result)
    options = [(_label(test, i), i) for i in range(n)]
    image = W.Dropdown(options=options, value=0, description="image")
    if result.log_nfa is not None or result.threshold is not None:
        level = W.FloatLogSlider(value=eps, base=10, min=-8, max=2, step=0.1,
                                 description="ε", readout_format=".1e")
        use_eps = True
    else:
        lo, hi = float(result.maps.min()), float(result.maps.max())
        level = W.FloatSlider(value=float(np.percentile(result.maps, 99)), min=lo, max=hi,
                              step=(hi - lo) / 200 or 1e-3, description="threshold")
        use_eps = False
    out = W.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            kw = {"eps": level.value} if use_eps else {"threshold": level.value}
            fig = render_result(result, test, image.value, images=images, **kw)
            display(fig)
            plt.close(fig)

    image.observe(draw, "value")
    level.observe(draw, "value")
    draw()
    return W.VBox([W.HBox([image, level]), out])


def render_dataset(name: str = "synthetic/pill", n: int = 6, seed: int = 0, **knobs):
    """Draw ``n`` test images of an embedded dataset with their defect masks outlined."""
    from . import data
    knobs.setdefault("n_train", 2)
    _, test = data.load(name, n_test=n, seed=seed, **knobs)
    titles = [f"{t}" for t in test.defect_types]
    shown = np.stack([viz.overlay(im, m, alpha=0.35, color=(0.1, 1, 0.2)) if m.any() else im
                      for im, m in zip(test.images, test.masks)])
    return viz.show_images(shown, titles=titles, ncols=n, suptitle=name)


def dataset_explorer(name: str = "synthetic/pill", n: int = 6, seed: int = 0, size: int = 128):
    """Checkboxes for the variability knobs of an embedded synthetic dataset.

    Turning a knob off regenerates the images without that variability, so a
    student can see what each normalization step of the course will have to undo.
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display

    from .data import synthetic
    category = name.split("/", 1)[1]
    names = ["exposure", "pose", "speckles", "dust", "noise"]
    boxes = {k: W.Checkbox(value=True, description=k, indent=False) for k in names}
    cat = W.Dropdown(options=list(synthetic.CATEGORIES), value=category, description="category")
    seed_w = W.IntText(value=seed, description="seed")
    out = W.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            fig = render_dataset(f"synthetic/{cat.value}", n=n, seed=seed_w.value, size=size,
                                 **{k: b.value for k, b in boxes.items()})
            display(fig)
            plt.close(fig)

    for w in [cat, seed_w, *boxes.values()]:
        w.observe(draw, "value")
    draw()
    return W.VBox([W.HBox([cat, seed_w]), W.HBox(list(boxes.values())), out])
