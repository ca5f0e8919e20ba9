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

__all__ = ["explore", "render_result", "dataset_explorer", "render_dataset", "dashboard"]


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
    if test is not None:   # an unknown mask (has_mask False) is not shown as "no defect"
        known = getattr(test, "has_mask", None)
        panels.append(("ground truth" if known is None or known[index] else
                       "ground truth: no mask", test.masks[index]))
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


def _status(result, test, index: int, eps: float) -> tuple[np.ndarray, str]:
    from . import metrics
    mask = result[index].segment(eps=eps)[0]
    text = (f"detected area: {100 * mask.mean():.3f}% of pixels · "
            f"{metrics.count_regions(mask)} region(s)")
    if test is not None:
        good = np.asarray(test.labels) == 0
        if good.any():
            fa = metrics.false_alarms_per_image(result.segment(eps)[good])
            text += f" · false alarms per good image at this ε: {fa:.2f}"
    return mask, text


def dashboard(results: dict, test=None, eps: float = 1.0, title: str = "adkit · compare methods"):
    """A panel dashboard over precomputed results: method, preprocessing, ε and image.

    Parameters
    ----------
    results : dict
        ``{method: AnomalyResult}`` or ``{method: {preprocessing: AnomalyResult}}``
        (e.g. ``{"knn": {"none": r1, "midway+align": r2}}``). Every result needs a
        ``log_nfa`` (a contrario methods, or detectors wrapped in
        :class:`adkit.models.Calibrated`), so that ε means the same for all.
    test : Split, optional
        Images, ground truth, names and labels of the predicted test images.

    Returns a ``panel`` layout; in a notebook end the cell with it (or call
    ``.servable()`` so ``panel serve notebook.ipynb`` serves it); from a shell,
    ``python -m adkit dashboard`` serves one.
    """
    import matplotlib.pyplot as plt
    import panel as pn

    nested = {m: (r if isinstance(r, dict) else {"none": r}) for m, r in results.items()}
    if not nested:
        raise ValueError("dashboard needs at least one result.")
    for m, variants in nested.items():
        for v, r in variants.items():
            if r.log_nfa is None and r.threshold is None:
                raise ValueError(f"the result of {m!r} ({v}) has no log NFA: wrap its detector "
                                 "in adkit.models.Calibrated so that ε has a meaning.")
    methods = list(nested)
    variants = list(dict.fromkeys(v for d in nested.values() for v in d))
    n = len(next(iter(nested[methods[0]].values())))
    w_method = pn.widgets.Select(name="method", options=methods, value=methods[0])
    w_prep = pn.widgets.RadioButtonGroup(name="preprocessing", options=variants,
                                         value=variants[0])
    w_eps = pn.widgets.FloatSlider(name="log10 ε", start=-6.0, end=1.0, step=0.25,
                                   value=float(np.log10(eps)))
    labels = {(_label(test, i) if test is not None else str(i)): i for i in range(n)}
    first = 0                        # open on the first defective image, if any
    if test is not None and np.any(np.asarray(test.labels) == 1):
        first = int(np.flatnonzero(np.asarray(test.labels) == 1)[0])
    w_image = pn.widgets.Select(name="image", options=labels, value=first)
    figure = pn.pane.Matplotlib(None, dpi=72, tight=True, sizing_mode="fixed")
    status = pn.pane.Markdown("", css_classes=["adkit-status"])

    def update(*_):
        res = nested[w_method.value].get(w_prep.value)
        if res is None:
            status.object = f"**{w_method.value}** was not run with '{w_prep.value}'."
            return
        e = 10.0 ** w_eps.value
        _, text = _status(res, test, w_image.value, e)
        fig = render_result(res, test, w_image.value, eps=e)
        figure.object = fig
        plt.close(fig)
        status.object = f"**{w_method.value}** ({w_prep.value}) · ε = {e:.3g} · {text}"

    for w in (w_method, w_prep, w_eps, w_image):
        w.param.watch(update, "value")
    update()
    controls = pn.Column(f"## {title}", w_method, w_prep, w_eps, w_image, width=320)
    return pn.Row(controls, pn.Column(status, figure))
