"""Interactive explorers (ipywidgets) and the comparison dashboard (panel) over results.

Widgets never compute a method: they re-threshold or re-draw what a detector
already returned (``AnomalyResult.segment`` is cheap), regenerate embedded data, or
call a function the notebook hands them (:func:`settings_explorer`).
Each function returns the widget, and each also has a ``render_*`` function that
draws one state as a static matplotlib figure, so a notebook run headless (CI,
nbconvert, a PDF export) still shows a picture.

The live viewers share three conventions:

* **one ε slider**: log10 ε (:data:`LOG_EPS`), with ε itself shown beside it;
* **four fixed pictures** (image, map with its colorbar, detection, ground truth):
  choosing an image redraws them, moving ε re-encodes only the detection picture (a
  PNG of a few kB, a few milliseconds), so the picture follows the slider;
* **the lessons' figure style** (:mod:`adkit.viz`): detections outlined in cyan and
  ground truths in green on the image (:func:`adkit.viz.outline`), maps in ``inferno``
  with a colorbar;
* **they open on a defective image on which something is detected** (:func:`opening`).
"""
from __future__ import annotations

import numpy as np

from . import viz

__all__ = ["explore", "render_result", "dataset_explorer", "render_dataset", "dashboard",
           "opening", "render_normalization", "normalization_explorer", "eps_origin",
           "scales_explorer", "render_n2n", "n2n_explorer", "settings_explorer",
           "render_settings", "corruption_explorer", "corruption_params", "LOG_EPS"]

#: The ε slider of every viewer, in log10 ε: range and step.
LOG_EPS = {"start": -6.0, "end": 2.0, "step": 0.25}
_SIDE = 200          # displayed side of each picture, in CSS pixels


def _label(test, i):
    if test is None:
        return f"{i}"
    return f"{i}: {test.names[i]} ({test.defect_types[i]})"


def _mask_known(test, index: int) -> bool:
    known = getattr(test, "has_mask", None)
    return known is None or bool(known[index])


def _eps_text(eps: float) -> str:
    return f"ε = {eps:.2g}"


def eps_origin(result, eps: float | None = None) -> str:
    """Where a result's ε comes from, in words, for a status line.

    - ``"own NFA"``: the method's own background model (self-similarity, U-Flow, the
      reference's leave-one-out law), ``log_nfa = log10(N_tests · P)``;
    - ``"calibrated on n held-out images, measured down to ε = 1/n"``: the false-alarm
      rate counted by :class:`adkit.models.Calibrated` on ``n`` normal images the
      detector did not see (``extras["n_calibration_images"]``); with ``eps`` below
      1/n, ``", extrapolated at this ε"`` is added (:meth:`AnomalyResult.extrapolated`);
    - ``"a fixed threshold on the map"``: a result without a log NFA.
    """
    n = result.extras.get("n_calibration_images")
    if n is not None:
        text = f"calibrated on {int(n)} held-out images, measured down to ε = 1/{int(n)}"
        if eps is not None and result.extrapolated(eps):
            text += ", extrapolated at this ε"
        return text
    if result.log_nfa is not None:
        return "own NFA"
    return "a fixed threshold on the map"


def _has_nfa(result) -> bool:
    return result.log_nfa is not None or result.threshold is not None


def _snap(log_eps: float) -> float:
    """log10 ε rounded to the slider's grid and clipped to its range."""
    lo, hi, step = LOG_EPS["start"], LOG_EPS["end"], LOG_EPS["step"]
    return float(np.clip(lo + step * np.round((log_eps - lo) / step), lo, hi))


def opening(result, test=None, eps: float = 1.0) -> tuple[int, float]:
    """The image and the log10 ε a viewer opens on: a defective image on which something
    is detected.

    The first defective image (``test.labels == 1``; every image without ``test``) with a
    non-empty ``segment(eps)``; when there is none at this ε, the highest-scoring defective
    image at the smallest ε of the slider's grid above ``eps`` that detects something on it.
    Returns ``(index, log10 ε)``. For a result without a log NFA (a threshold slider),
    the log10 ε returned is ``log10(eps)`` unchanged.
    """
    n = len(result)
    labels = np.asarray(test.labels) if test is not None and test.labels is not None else None
    candidates = np.flatnonzero(labels == 1) if labels is not None else np.arange(n)
    if len(candidates) == 0:
        candidates = np.arange(n)
    log_eps = _snap(float(np.log10(eps)))
    if not _has_nfa(result):
        return int(candidates[np.argmax(np.asarray(result.scores)[candidates])]), log_eps
    for i in candidates:
        if result[int(i)].segment(eps=10.0 ** log_eps).any():
            return int(i), log_eps
    best = int(candidates[np.argmax(np.asarray(result.scores)[candidates])])
    one = result[best]
    for level in np.arange(log_eps, LOG_EPS["end"] + 1e-9, LOG_EPS["step"]):
        if one.segment(eps=10.0 ** level).any():
            return best, float(level)
    return best, log_eps


def render_result(result, test=None, index: int = 0, eps: float = 1.0,
                  threshold: float | None = None, images: np.ndarray | None = None):
    """Draw image, map (with its colorbar), detection and ground truth of one image.

    The detection is outlined in cyan and the ground truth in green on the image
    (:func:`adkit.viz.outline`)."""
    import matplotlib.pyplot as plt
    imgs = images if images is not None else (test.images if test is not None else None)
    if threshold is None and not _has_nfa(result):
        threshold = float(np.percentile(result.maps, 99))
    mask = result[index].segment(eps=eps, threshold=threshold)[0]
    panels = [("map", result.maps[index])]
    if imgs is not None:
        panels.insert(0, ("image", imgs[index]))
    panels.append(("detection", mask))
    if test is not None:   # an unknown mask (has_mask False) is not shown as "no defect"
        panels.append(("ground truth" if _mask_known(test, index) else
                       "ground truth: no mask", test.masks[index]))
    widths = [1.25 if name == "map" else 1.0 for name, _ in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(max(2.6 * sum(widths), 4.5), 2.9),
                             gridspec_kw={"width_ratios": widths})
    vmin, vmax = viz.map_scale(result.maps)
    for ax, (name, data) in zip(axes, panels):
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(name, fontsize=9)
        if name == "image":
            ax.imshow(np.clip(data, 0, 1))
        elif name == "map":
            im = ax.imshow(data, cmap=viz.MAP_CMAP, vmin=vmin, vmax=vmax)
            cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
            cb.ax.tick_params(labelsize=7)
        else:
            base = imgs[index] if imgs is not None else np.zeros((*data.shape, 3), np.float32)
            color = viz.DETECTION_COLOR if name == "detection" else viz.TRUTH_COLOR
            ax.imshow(viz.outline(base, data, color))
    how = f"threshold {threshold:.3g}" if threshold is not None else _eps_text(eps)
    fig.suptitle(f"{_label(test, index)} · score {result.scores[index]:.3g} · {how} · "
                 f"detected {100 * mask.mean():.2f}% of pixels", fontsize=9)
    fig.tight_layout()
    return fig


class _Pictures:
    """The PNGs of the four pictures of one image of one result; ``detection(mask)`` is
    the only one redrawn when ε moves."""

    def __init__(self, result, test, images, index: int):
        self.result, self.index = result, index
        imgs = images if images is not None else (test.images if test is not None else None)
        m = result.maps[index]
        self.base = (np.clip(imgs[index], 0, 1).astype(np.float32) if imgs is not None
                     else np.zeros((*m.shape, 3), np.float32))
        vmin, vmax = viz.map_scale(result.maps)
        self.image = viz.png(self.base)
        self.map = viz.map_png(m, vmin, vmax, height=_SIDE)
        width, height = viz.png_size(self.map)
        self.map_width = int(round(_SIDE * width / height))
        # an unknown mask (has_mask False) shows the bare image, not "no defect"
        self.truth_known = test is None or _mask_known(test, index)
        self.truth = (None if test is None or test.masks is None else
                      viz.png(viz.outline(self.base, test.masks[index], viz.TRUTH_COLOR))
                      if self.truth_known else self.image)

    def detection(self, mask: np.ndarray) -> bytes:
        """The detection picture: ``mask`` outlined in cyan on the image (the one picture
        re-encoded when ε moves: a few milliseconds)."""
        return viz.png(viz.outline(self.base, mask, viz.DETECTION_COLOR))


def _detection_text(pics, mask: np.ndarray) -> str:
    from . import metrics
    text = (f"score {pics.result.scores[pics.index]:.3g} · detected area: "
            f"{100 * mask.mean():.3f}% of pixels · {metrics.count_regions(mask)} region(s)")
    return text if pics.truth_known else text + " · ground truth: no mask"


def explore(result, test=None, images: np.ndarray | None = None, eps: float = 1.0):
    """Image selector and ε slider over an AnomalyResult (ipywidgets).

    When the result has a ``log_nfa`` (a contrario methods, or calibrated ones) the
    slider moves log10 ε, ε shown beside it: the detection is ``log_nfa < log10(ε)``.
    Otherwise it moves a threshold on the map. It opens on a defective image on which
    something is detected (:func:`opening`). Moving the slider re-encodes only the
    detection picture. Returns an ``ipywidgets.VBox``: ``children[0]`` holds the
    controls (image, slider, ε readout), ``children[1]`` the status line,
    ``children[2]`` the pictures.
    """
    import ipywidgets as W

    n = len(result)
    index, log_eps = opening(result, test, eps)
    image = W.Dropdown(options=[(_label(test, i), i) for i in range(n)], value=index,
                       description="image", layout=W.Layout(width="320px"))
    use_eps = _has_nfa(result)
    if use_eps:
        level = W.FloatSlider(value=log_eps, min=LOG_EPS["start"], max=LOG_EPS["end"],
                              step=LOG_EPS["step"], description="log10 ε",
                              readout_format=".2f")
    else:
        lo, hi = float(result.maps.min()), float(result.maps.max())
        level = W.FloatSlider(value=float(np.percentile(result.maps, 99)), min=lo, max=hi,
                              step=(hi - lo) / 200 or 1e-3, description="threshold",
                              readout_format=".3g")
    readout = W.Label()
    status = W.HTML(layout=W.Layout(width="auto"))
    names = ["image", "map", "detection"] + (["ground truth"] if test is not None else [])
    views = {name: W.Image(format="png", layout=W.Layout(
        height=f"{_SIDE}px", width="auto" if name == "map" else f"{_SIDE}px")) for name in names}
    views["detection"].add_class("adkit-detection")
    pictures = W.HBox([W.VBox([W.HTML(f"<b>{name}</b>"), views[name]]) for name in names])
    shown = {}

    def draw_detection(*_):
        pics = shown["pictures"]
        if use_eps:
            e = 10.0 ** level.value
            readout.value = _eps_text(e)
            mask = result[pics.index].segment(eps=e)[0]
        else:
            readout.value = ""
            mask = result[pics.index].segment(threshold=level.value)[0]
        views["detection"].value = pics.detection(mask)
        status.value = (f"{_eps_text(e)} ({eps_origin(result, e)}) · " if use_eps
                        else "") + _detection_text(pics, mask)

    def draw_image(*_):
        pics = shown["pictures"] = _Pictures(result, test, images, image.value)
        views["image"].value = pics.image
        views["map"].value = pics.map
        if "ground truth" in views:
            views["ground truth"].value = pics.truth
        draw_detection()

    image.observe(draw_image, "value")
    # ipywidgets sends at most one slider change at a time to the kernel and keeps only
    # the latest while one is in flight: a drag cannot queue up stale redraws
    level.observe(draw_detection, "value")
    draw_image()
    return W.VBox([W.HBox([image, level, readout]), status, pictures])


def render_dataset(name: str = "synthetic/pill", n: int = 6, seed: int = 0, **knobs):
    """Draw ``n`` test images of an embedded dataset with their defect masks outlined in
    green."""
    from . import data
    knobs.setdefault("n_train", 2)
    _, test = data.load(name, n_test=n, seed=seed, **knobs)
    titles = [f"{t}" for t in test.defect_types]
    shown = np.stack([viz.outline(im, m, viz.TRUTH_COLOR) for im, m in
                      zip(test.images, test.masks)])
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


def _reference_of(steps):
    """The template of the last fitted step that has one (an alignment's ``reference_``)."""
    steps = list(steps)
    if not steps:
        raise ValueError("steps is empty: give the fitted normalization steps, e.g. "
                         "[Midway().fit(train), Align().fit(...)].")
    with_ref = [s for s in steps if getattr(s, "reference_", None) is not None]
    if not with_ref:
        raise ValueError("none of the steps has a reference_: put a fitted alignment "
                         "(adkit.normalize.Align) among them; the normalized image is "
                         "compared with its reference.")
    return with_ref[-1]


def render_normalization(steps, category: str = "pill", exposure: float = 1.0,
                         pose: float = 1.0, seed: int = 7, vmax: float = 0.3, **knobs):
    """Draw what fitted normalization steps do to a new normal image.

    A good image of the embedded synthetic ``category`` is drawn with the given
    ``exposure`` and ``pose`` strengths (0 to 5, :func:`adkit.data.synthetic.make_one`;
    other knobs such as ``speckles`` pass through ``knobs``), at the size of the
    reference, and passed through ``steps`` in order (each ``transform``, nothing is
    fitted again). Four panels: the new image, the normalized image, the reference of the
    alignment step (the last step with a ``reference_``), and the per-pixel difference
    ``d(x) = (1/3) Σ_c |u'_c(x) − r_c(x)|`` of the normalized image u' and the reference r
    on the fixed scale [0, ``vmax``] (:func:`adkit.viz.show_normalization`), so that two
    settings compare by eye. The title says whether the alignment converged. Returns the
    figure.
    """
    from .data import synthetic
    align = _reference_of(steps)
    ref = np.asarray(align.reference_, np.float32)
    image, _ = synthetic.make_one(category, size=int(ref.shape[0]), seed=seed,
                                  exposure=exposure, pose=pose, **knobs)
    x = image[None]
    for s in steps:
        x = s.transform(x)
    infos = getattr(align, "info_", None) or [{}]
    conv = infos[0].get("converged")
    title = (f"exposure strength {exposure:g}, pose strength {pose:g}"
             + ("" if conv is None else f" · alignment converged: {bool(conv)}"))
    return viz.show_normalization(image, x[0], ref, vmax=vmax, suptitle=title)


def normalization_explorer(steps, category: str = "pill", exposure: float = 1.0,
                           pose: float = 1.0, seed: int = 7, **knobs):
    """Sliders for the exposure and pose strengths (and the seed) of a new image, drawn
    through fitted normalization ``steps`` by :func:`render_normalization`.

    Nothing is fitted: each move draws one new image and applies the steps' ``transform``
    (an alignment of one image, a fraction of a second). Returns the widget.
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display
    _reference_of(steps)                   # fail now, not in a callback
    sliders = {
        "exposure": W.FloatSlider(value=exposure, min=0, max=2.5, step=0.25,
                                  description="exposure"),
        "pose": W.FloatSlider(value=pose, min=0, max=2.0, step=0.25, description="pose"),
        "seed": W.IntSlider(value=seed, min=0, max=50, description="seed"),
    }
    out = W.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            fig = render_normalization(steps, category, **{k: w.value for k, w in
                                                          sliders.items()}, **knobs)
            display(fig)
            plt.close(fig)

    for w in sliders.values():
        w.observe(draw, "value")
    draw()
    return W.VBox([W.HBox(list(sliders.values())), out])


def _false_alarm_text(result, test, eps: float) -> str:
    from . import metrics
    if test is None or test.labels is None:
        return ""
    good = np.asarray(test.labels) == 0
    if not good.any():
        return ""
    fa = metrics.false_alarms_per_image(result.segment(eps)[good])
    return f" · false alarms per good image at this ε: {fa:.2f}"


def _eps_formatter():
    """The slider's readout: log10 ε and ε itself."""
    from bokeh.models import CustomJSTickFormatter
    return CustomJSTickFormatter(code="""
        const e = Math.pow(10, tick);
        const s = e >= 1e-4 ? String(Number(e.toPrecision(2)))
                            : e.toExponential(1).replace('.0e', 'e');
        return tick.toFixed(2) + '  (ε = ' + s + ')';""")


_STEADY = {}


def _steady(pane_type):
    """``pane_type`` whose updates leave its stylesheets alone.

    Panel 1.9 re-sends a pane's stylesheets whenever its object changes, and in a
    notebook those are links to panel's CDN even under ``pn.extension(inline=True)``
    (only the first render is inlined): offline, every redraw of a picture or of the
    status line would then ask the CDN for CSS and lose its styles. The stylesheets of
    these panes never change, so their updates simply do not send them.
    """
    if pane_type not in _STEADY:
        def _update(self, ref, model):
            props = self._get_properties(model.document)
            props.pop("stylesheets", None)
            model.update(**props)
        # priority 0: never picked by pn.panel(obj) in place of panel's own pane
        _STEADY[pane_type] = type(pane_type.__name__, (pane_type,),
                                  {"_update": _update, "priority": 0})
    return _STEADY[pane_type]


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

    Notes
    -----
    The four pictures fit a 1280×800 screen; moving ε redraws only the detection and
    the status line, which also says where the method's ε comes from (:func:`eps_origin`:
    its own NFA, or calibrated on n held-out images and measured down to 1/n); a method not run with the chosen preprocessing shows a notice in
    place of the pictures. Returns a ``panel`` layout; in a notebook end the cell with
    it (or call ``.servable()`` so ``panel serve notebook.ipynb`` serves it); from a
    shell, ``python -m adkit dashboard`` serves one.
    """
    import panel as pn

    nested = {m: (r if isinstance(r, dict) else {"none": r}) for m, r in results.items()}
    if not nested:
        raise ValueError("dashboard needs at least one result.")
    for m, variants in nested.items():
        for v, r in variants.items():
            if not _has_nfa(r):
                raise ValueError(f"the result of {m!r} ({v}) has no log NFA: wrap its detector "
                                 "in adkit.models.Calibrated so that ε has a meaning.")
    methods = list(nested)
    variants = list(dict.fromkeys(v for d in nested.values() for v in d))
    first = next(iter(nested[methods[0]].values()))
    index, log_eps = opening(first, test, eps)
    n = len(first)
    side = {"width": 270}
    w_method = pn.widgets.Select(name="method", options=methods, value=methods[0], **side)
    w_prep = pn.widgets.RadioButtonGroup(name="preprocessing", options=variants,
                                         value=next(iter(nested[methods[0]])), **side)
    w_eps = pn.widgets.FloatSlider(name="log10 ε", value=log_eps, format=_eps_formatter(),
                                   **LOG_EPS, **side)
    labels = {_label(test, i): i for i in range(n)}
    w_image = pn.widgets.Select(name="image", options=labels, value=index, **side)
    status = _steady(pn.pane.Markdown)("", sizing_mode="stretch_width", margin=(0, 10),
                                       css_classes=["adkit-status"],
                                       styles={"overflow-wrap": "anywhere"})
    names = ["image", "map", "detection"] + (["ground truth"] if test is not None else [])
    views = {name: _steady(pn.pane.PNG)(None, alt_text=name, height=_SIDE, width=_SIDE,
                                        margin=(0, 5)) for name in names}
    # the pictures wrap onto a second line where the page is narrow (a notebook beside
    # JupyterLab's file browser); at 1280 px the four stand in one row
    pictures = pn.FlexBox(*[pn.Column(pn.pane.Markdown(f"**{name}**", margin=(0, 5)),
                                      views[name]) for name in names],
                          flex_wrap="wrap", sizing_mode="stretch_width")
    notice = _steady(pn.pane.Alert)("", alert_type="warning", visible=False, margin=(5, 10))
    shown = {}

    def draw_detection(*_):
        pics = shown.get("pictures")
        if pics is None:
            return
        e = 10.0 ** w_eps.value
        mask = pics.result[pics.index].segment(eps=e)[0]
        views["detection"].object = pics.detection(mask)
        status.object = (f"**{w_method.value}** ({w_prep.value}) · {_eps_text(e)} "
                         f"({eps_origin(pics.result, e)}) · {_detection_text(pics, mask)}"
                         f"{_false_alarm_text(pics.result, test, e)}")

    def draw_image(*_):
        res = nested[w_method.value].get(w_prep.value)
        if res is None:
            shown.pop("pictures", None)
            ran = ", ".join(f"'{v}'" for v in nested[w_method.value])
            notice.object = (f"**{w_method.value}** was not run with '{w_prep.value}' "
                             f"preprocessing: choose {ran}, or another method.")
            status.object = ""
            notice.visible, pictures.visible = True, False
            return
        pics = shown["pictures"] = _Pictures(res, test, None, w_image.value)
        views["image"].object = pics.image
        views["map"].param.update(object=pics.map, width=pics.map_width)
        if "ground truth" in views:
            views["ground truth"].object = pics.truth
        notice.visible, pictures.visible = False, True
        draw_detection()

    for w in (w_method, w_prep, w_image):
        w.param.watch(draw_image, "value")
    w_eps.param.watch(draw_detection, "value")
    draw_image()
    controls = pn.Column(f"## {title}", w_method, w_prep, w_eps, w_image, width=300)
    return pn.Row(controls, pn.Column(status, notice, pictures, sizing_mode="stretch_width"),
                  sizing_mode="stretch_width")


def scales_explorer(detector, result, test=None, index: int | None = None,
                    eps: float = 1.0, n_votes: int = 2):
    """Self-similarity's multi-scale vote, live: an image menu, the ε slider, the scales
    and :math:`N_v`, drawn by :func:`adkit.viz.show_scale_votes`.

    ``detector`` is the fitted ``SelfSimilarity`` (``pipeline.detector`` behind a
    normalization) and ``result`` what it (or its Pipeline) predicted; ``test`` (the Split
    it was predicted on) names the images in the menu and shows the raw image. Each move
    re-thresholds the stored residuals (``detector.vote_view``, milliseconds) and
    redraws; nothing is searched again. Returns the widget.
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display
    if not hasattr(detector, "vote_view"):
        raise ValueError("detector must be the fitted SelfSimilarity that made the result "
                         "(pipeline.detector behind a normalization).")
    scales = tuple(result.extras.get("scales", ()))     # stored by SelfSimilarity.predict
    if not scales:
        raise ValueError("this result has no self-similarity residuals (extras "
                         "'residual_s0'...): give what SelfSimilarity.predict returned.")
    n = len(result.scores)
    if index is None:
        index = opening(result, test, eps)[0]
    names = [_label(test, i) for i in range(n)]
    image = W.Dropdown(options=[(t, i) for i, t in enumerate(names)],
                       value=int(index), description="image")
    log_eps = W.FloatSlider(value=float(np.log10(eps)), min=LOG_EPS["start"],
                            max=LOG_EPS["end"], step=LOG_EPS["step"], description="log10 ε")
    chosen = W.SelectMultiple(options=list(scales), value=scales, description="scales")
    votes = W.IntSlider(value=min(n_votes, len(scales)), min=1, max=len(scales),
                        description="N_v")
    out = W.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            sc = tuple(chosen.value) or scales[:1]
            i = image.value
            view = detector.vote_view(result, i, 10 ** log_eps.value, votes.value, sc)
            fig = viz.show_scale_votes(
                view, image=None if test is None else test.images[i],
                title=None if test is None else str(test.defect_types[i]))
            display(fig)
            plt.close(fig)

    for w in (image, log_eps, chosen, votes):
        w.observe(draw, "value")
    draw()
    return W.VBox([W.HBox([image, log_eps]), W.HBox([chosen, votes]), out])


def render_n2n(step, image: np.ndarray, title: str | None = None, vmax: float = 0.15):
    """What a fitted learned normalization (``N2N``) does to one image: the input, its
    output f(x) and the change ``(1/3) Σ_c |f(x)_c − x_c|`` on the fixed scale
    [0, ``vmax``], with a colorbar (what was removed: speckles and grain where the image
    is normal, little where it is defective). Returns the figure."""
    x = np.asarray(image, np.float32)
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"image must be one RGB image (H, W, 3), got shape {x.shape}.")
    return viz.show_change(x, step.transform(x[None])[0], title=title, vmax=vmax,
                           output_title="f(input)")


def n2n_explorer(steps: dict, test, index: int = 0, vmax: float = 0.15):
    """Pick a fitted normalization (e.g. one ``N2N`` per pairing mode) and a test image:
    :func:`render_n2n` draws the input, f(input) and what f changed. ``steps`` is
    ``{name: fitted step}``; ``test`` a Split (its images and labels). Each move applies
    one network to one image (a fraction of a second on a CPU). Returns the widget."""
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display
    if not isinstance(steps, dict) or not steps:
        raise ValueError("steps must be a non-empty dict {name: fitted step}, e.g. "
                         "{'images': N2N(pairing='images').fit(train)}.")
    pairing = W.Dropdown(options=list(steps), description="step")
    image = W.Dropdown(options=[(_label(test, i), i) for i in range(len(test.images))],
                       value=int(index), description="image")
    out = W.Output()

    def draw(*_):
        with out:
            out.clear_output(wait=True)
            i = image.value
            fig = render_n2n(steps[pairing.value], test.images[i],
                             title=f"{pairing.value}: {test.defect_types[i]}", vmax=vmax)
            display(fig)
            plt.close(fig)

    for w in (pairing, image):
        w.observe(draw, "value")
    draw()
    return W.VBox([W.HBox([pairing, image]), out])


#: how :func:`render_settings` names the numbers it prints
_SCORE_LABELS = {"image_auroc": "image AUROC", "pixel_auroc": "pixel AUROC", "aupro": "AUPRO",
                 "bank_size": "bank", "fit_s": "fit", "predict_s": "predict"}


def _value_text(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.3g}"
    return str(tuple(v)) if isinstance(v, (list, tuple)) else str(v)


def render_settings(run, values: dict, fixed: dict | None = None) -> str:
    """One line: the settings ``values`` and what ``run(**fixed, **values)`` returns.

    ``run`` returns a dict of numbers, e.g. :meth:`adkit.bench.study.FeatureRuns.scores`:
    AUROCs print with three decimals, seconds (keys ending in ``_s``) as seconds. A
    ``ValueError`` of ``run`` (the library's own check of a bad setting) is returned as
    its message, so a student who picks an impossible setting reads why.
    """
    settings = ", ".join(f"{k}={_value_text(v)}" for k, v in values.items())
    try:
        out = run(**dict(fixed or {}), **values)
    except ValueError as e:
        return f"{settings} → not possible: {e}"
    parts = []
    for k, v in out.items():
        label = _SCORE_LABELS.get(k, k)
        if k.endswith("_s"):
            parts.append(f"{label} {float(v):.2f} s")
        elif isinstance(v, (int, np.integer)):
            parts.append(f"{label} {int(v)}")
        else:
            parts.append(f"{label} {float(v):.3f}")
    return f"{settings} → " + ", ".join(parts)


def settings_explorer(run, controls: dict, fixed: dict | None = None):
    """A control per keyword of ``run``; every change prints :func:`render_settings`.

    ``controls`` is ``{keyword: ipywidgets control}`` (a dropdown of datasets, a
    slider of a parameter...), ``fixed`` the keywords that do not move (the method,
    the settings held constant). ``run`` does the work, e.g.
    ``adkit.bench.study.FeatureRuns.scores``, which fits a detector on features
    extracted once, in well under a second at the lessons' sizes.
    """
    import ipywidgets as W
    if not isinstance(controls, dict) or not controls:
        raise ValueError("controls must be a non-empty dict {keyword: ipywidgets control}.")
    out = W.Output()

    def update(*_):
        text = render_settings(run, {k: w.value for k, w in controls.items()}, fixed)
        out.clear_output(wait=True)
        with out:
            print(text)

    for w in controls.values():
        w.observe(update, "value")
    update()
    return W.VBox([W.HBox(list(controls.values())), out])


def corruption_params(kind: str, stain_size: float = 0.12, blur: float = 0.15,
                      variance: float = 0.1, shape: str = "random", n_drops: int = 10) -> dict:
    """The keywords of corruption ``kind`` among the explorer's controls: the Stain's
    largest size (as a share of the image side) and blur, the Gaussian's variance, the
    Scratch's shape, the number of Drops; the mixtures take none."""
    return {"stain": {"size": (0.01, stain_size), "blur": blur},
            "gaussian": {"variance": variance}, "scratch": {"shape": shape},
            "drops": {"n_drops": n_drops}}.get(kind, {})


def corruption_explorer(image: np.ndarray, kind: str = "stain", seed: int = 0):
    """Menus and sliders over the corruption models of AESc (:mod:`adkit.corruptions`)
    on one image: the model, the seed of the draw and each model's parameters
    (:func:`corruption_params`); every change redraws :func:`adkit.viz.show_corruption`.
    The same seed always gives the same corruption."""
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display

    from .corruptions import CORRUPTIONS, GAUSSIAN_VARIANCES
    controls = {
        "kind": W.Dropdown(options=list(CORRUPTIONS), value=kind, description="kind"),
        "seed": W.IntSlider(value=seed, min=0, max=50, description="seed"),
        "stain_size": W.FloatSlider(value=0.12, min=0.02, max=0.3, step=0.01, description="stain max"),
        "blur": W.FloatSlider(value=0.15, min=0.0, max=0.5, step=0.05, description="stain blur"),
        "variance": W.Dropdown(options=list(GAUSSIAN_VARIANCES), value=0.1, description="variance"),
        "shape": W.Dropdown(options=["random", "line", "sine", "root"], value="random",
                            description="scratch"),
        "n_drops": W.IntSlider(value=10, min=1, max=30, description="drops")}
    out = W.Output()

    def draw(*_):
        v = {k: w.value for k, w in controls.items()}
        kind, draw_seed = v.pop("kind"), v.pop("seed")
        with out:
            out.clear_output(wait=True)
            fig = viz.show_corruption(image, kind, seed=draw_seed, **corruption_params(kind, **v))
            display(fig)
            plt.close(fig)

    for w in controls.values():
        w.observe(draw, "value")
    draw()
    names = list(controls)
    return W.VBox([W.HBox([controls[k] for k in names[:3]]),
                   W.HBox([controls[k] for k in names[3:]]), out])
