"""Evaluation metrics of industrial anomaly detection.

Detection (is the image anomalous?) and segmentation (where?) are measured
separately, as in the MVTec AD benchmark (Bergmann et al., "The MVTec anomaly
detection dataset", IJCV 2021):

- :func:`image_auroc`: area under the ROC curve of the image scores.
- :func:`pixel_auroc`: area under the ROC curve of all pixels of all maps.
- :func:`aupro`: area under the per-region-overlap curve up to a false positive
  rate of 0.3, normalized to [0, 1]. Unlike the pixel AUROC it weighs every defect
  equally, whatever its size.

Threshold-dependent segmentation quality, for binary masks such as
``AnomalyResult.segment(eps)``:

- :func:`miou`: mean intersection over union of the anomaly class.
- :func:`f1`: pixel F1 score over the whole set.
- :func:`false_alarms_per_image`: connected components detected on good images.
- :func:`false_alarms_vs_eps`: that count for every ε of a log NFA map (does ε mean ε?).
- :func:`optimal_threshold`: the oracle threshold of a map (uses the ground truth:
  an upper bound to compare automatic thresholds with, never a method).

:func:`evaluate` computes them all for an ``AnomalyResult`` and a test ``Split``.

Conventions: ``masks`` are the ground truth, bool (N, H, W); ``maps`` are float
(N, H, W), higher = more anomalous; ``pred`` are bool (N, H, W) detections.
A single (H, W) map or mask counts as a batch of one.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from .checks import check_masks

__all__ = [
    "count_regions",
    "image_auroc",
    "pixel_auroc",
    "roc_curve",
    "aupro",
    "pro_curve",
    "miou",
    "f1",
    "optimal_threshold",
    "false_alarms_per_image",
    "false_alarms_vs_eps",
    "evaluate",
    "miou_curve",
    "nfa_threshold_study",
]

#: 8-connectivity inside each image, no connection between images of a batch
_STRUCTURE_3D = np.zeros((3, 3, 3), bool)
_STRUCTURE_3D[1] = True


# -- validation ------------------------------------------------------------------------

def _check_labels_scores(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    from .checks import check_array
    y = check_array(labels, "labels", allow_bool=True, allow_empty=True, finite=False,
                    dtype=None)
    s = np.asarray(scores)
    if s.dtype.kind not in "fiu":
        raise TypeError(f"scores must be numbers, got dtype {s.dtype}.")
    if y.ndim != 1 or s.ndim != 1:
        raise ValueError(
            f"labels and scores must be 1-D, one entry per image; got shapes {y.shape} "
            f"and {s.shape}.")
    if y.shape[0] != s.shape[0]:
        raise ValueError(
            f"labels has {y.shape[0]} entries but scores has {s.shape[0]}: give one score "
            "per image, in the same order as the labels.")
    if y.size and not np.isin(np.unique(y), [0, 1]).all():
        raise ValueError(
            f"labels must be 0 (normal) or 1 (anomalous), got values {np.unique(y)[:5]}.")
    if not np.issubdtype(s.dtype, np.number) or s.dtype == bool:
        raise TypeError(f"scores must be numbers, got dtype {s.dtype}.")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values.")
    return y.astype(np.int8), s.astype(np.float64)


def _need_both(y: np.ndarray, what: str, normal: str, anomalous: str) -> None:
    n_pos = int(np.count_nonzero(y))
    if n_pos == 0 or n_pos == y.size:
        present = anomalous if n_pos else normal
        raise ValueError(
            f"{what} needs both {normal} and {anomalous}, but only {present} were given "
            f"({y.size} in all). Evaluate on a test set that holds both.")


def _check_masks_maps(masks: Any, maps: Any, map_name: str = "maps"
                      ) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(maps)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise ValueError(f"{map_name} has shape {m.shape}; expected (N, H, W) anomaly maps.")
    if m.dtype == bool or not np.issubdtype(m.dtype, np.number):
        raise TypeError(f"{map_name} must be real-valued anomaly maps, got dtype {m.dtype}.")
    g = np.asarray(masks)
    if g.ndim == 2:
        g = g[None]
    if g.shape != m.shape:
        raise ValueError(
            f"masks have shape {g.shape} but {map_name} have shape {m.shape}: give one map "
            "per ground-truth mask, at the same resolution.")
    g = check_masks(g, m.shape, "masks")
    if m.size == 0:
        raise ValueError(f"masks and {map_name} are empty (shape {m.shape}): give at least "
                         "one map of at least one pixel.")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{map_name} contain NaN or infinite values.")
    return g, m


def _check_masks_pred(masks: Any, pred: Any) -> tuple[np.ndarray, np.ndarray]:
    g = np.asarray(masks)
    p = np.asarray(pred)
    if g.ndim == 2:
        g = g[None]
    if p.ndim == 2:
        p = p[None]
    if p.dtype != bool and np.issubdtype(p.dtype, np.floating) and \
            not np.isin(np.unique(p), [0, 1]).all():
        raise TypeError(
            "pred must be binary masks (bool), got real values: threshold the maps first, "
            "e.g. result.segment(eps) or maps > optimal_threshold(masks, maps).")
    if g.shape != p.shape:
        raise ValueError(
            f"masks have shape {g.shape} but pred has shape {p.shape}: give one predicted "
            "mask per ground-truth mask, at the same resolution.")
    if g.size == 0:
        raise ValueError(f"masks and pred are empty (shape {g.shape}): give at least one "
                         "mask of at least one pixel.")
    return check_masks(g, None, "masks"), check_masks(p, g.shape, "pred")


# -- AUROC -----------------------------------------------------------------------------

def image_auroc(labels: Any, scores: Any) -> float:
    """Image-level area under the ROC curve.

    Parameters
    ----------
    labels : (N,) 0/1 or bool
        1 for an anomalous image, 0 for a good one (``Split.labels``).
    scores : (N,) float
        Image anomaly scores, higher = more anomalous (``AnomalyResult.scores``).

    Returns
    -------
    float
        The probability that a random anomalous image scores higher than a random
        good one (ties count one half). 1 is perfect, 0.5 is chance.
    """
    from sklearn.metrics import roc_auc_score
    y, s = _check_labels_scores(labels, scores)
    _need_both(y, "AUROC", "normal images", "anomalous images")
    return float(roc_auc_score(y, s))


def pixel_auroc(masks: Any, maps: Any) -> float:
    """Pixel-level area under the ROC curve, all pixels of all images pooled.

    Parameters
    ----------
    masks : bool (N, H, W)
        Ground truth, True on anomalous pixels.
    maps : float (N, H, W)
        Anomaly maps, higher = more anomalous.
    """
    from sklearn.metrics import roc_auc_score
    g, m = _check_masks_maps(masks, maps)
    y = g.ravel()
    _need_both(y, "pixel AUROC", "normal pixels", "anomalous pixels")
    return float(roc_auc_score(y, m.ravel().astype(np.float32, copy=False)))


def roc_curve(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve ``(fpr, tpr, thresholds)`` of image scores (scikit-learn's, validated).

    Pass ``masks.ravel()`` and ``maps.ravel()`` for the pixel-level curve.
    """
    from sklearn.metrics import roc_curve as _roc
    y, s = _check_labels_scores(np.asarray(labels).ravel(), np.asarray(scores).ravel())
    _need_both(y, "a ROC curve", "normal samples", "anomalous samples")
    fpr, tpr, thr = _roc(y, s)
    return fpr, tpr, thr


# -- PRO -------------------------------------------------------------------------------

def _regions(g: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """Connected components (8-connected, per image) of the ground truth."""
    lab, n = ndimage.label(g, structure=_STRUCTURE_3D)
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    return lab, n, sizes


def _prepare_pro(masks, maps):
    g, m = _check_masks_maps(masks, maps)
    n_normal = int(g.size - np.count_nonzero(g))
    if n_normal == 0:
        raise ValueError("the PRO curve needs normal pixels (its x axis is their false "
                         "positive rate), but every pixel of masks is anomalous.")
    lab, n_reg, sizes = _regions(g)
    if n_reg == 0:
        raise ValueError("the PRO curve needs anomalous regions, but masks are all empty: "
                         "evaluate on a test set holding defective images.")
    return g, m, lab, n_reg, sizes, n_normal


def _exact_pro(m, lab, n_reg, sizes, n_normal, floor=None):
    """Exact PRO curve over every distinct threshold (``map >= t``).

    Each normal pixel above the threshold adds 1/n_normal to the FPR; each pixel of
    region k adds 1/(n_regions * |k|) to the mean overlap. Cumulative sums over the
    pixels sorted by decreasing score give both, and only the last pixel of a run of
    equal scores is a valid threshold. With ``floor``, pixels below it are dropped
    (the curve then stops at the FPR of ``floor``).
    """
    v = m.ravel()
    r = lab.ravel()
    if floor is not None:
        keep = v >= floor
        v, r = v[keep], r[keep]
    order = np.argsort(-v, kind="stable")
    v = v[order]
    r = r[order]
    weight = np.where(r > 0, 1.0 / (n_reg * sizes[r].astype(np.float64)), 0.0)
    pro = np.cumsum(weight)
    fpr = np.cumsum(r == 0) / float(n_normal)
    last = np.flatnonzero(np.append(v[1:] != v[:-1], True))
    fpr = np.concatenate([[0.0], fpr[last]])
    pro = np.concatenate([[0.0], np.minimum(pro[last], 1.0)])
    thr = np.concatenate([[np.inf], v[last].astype(np.float64)])
    return fpr, pro, thr


def _grid_pro(m, g, lab, n_reg, sizes, n_normal, max_fpr, n_thresholds):
    """PRO curve at ``n_thresholds`` thresholds: quantiles of the normal pixels' scores
    at false positive rates evenly spread over [0, max_fpr] (plus the extremes)."""
    v = m.ravel().astype(np.float64)
    normal = v[~g.ravel()]
    levels = np.linspace(0.0, max_fpr, n_thresholds)
    q = np.quantile(normal, 1.0 - levels)
    top = np.nextafter(normal.max(), np.inf)
    thr = np.unique(np.concatenate([[top, normal.min()], q]))  # ascending
    # pixel counted at threshold t_j when v >= t_j: k = #thresholds <= v
    k = np.searchsorted(thr, v, side="right")
    nt = thr.size
    r = lab.ravel()
    fp_hist = np.bincount(k[r == 0], minlength=nt + 1)
    anom = r > 0
    w = 1.0 / (n_reg * sizes[r[anom]].astype(np.float64))
    pro_hist = np.bincount(k[anom], weights=w, minlength=nt + 1)
    # count at threshold j (0-based ascending) = sum over k > j
    fp = np.cumsum(fp_hist[::-1])[::-1][1:]
    pr = np.cumsum(pro_hist[::-1])[::-1][1:]
    fpr = np.concatenate([[0.0], (fp / n_normal)[::-1]])
    pro = np.concatenate([[0.0], np.minimum(pr, 1.0)[::-1]])
    return fpr, pro, np.concatenate([[np.inf], thr[::-1]])


def _area(fpr: np.ndarray, pro: np.ndarray, max_fpr: float) -> float:
    """Trapezoidal area under (fpr, pro) for fpr in [0, max_fpr], interpolating at max_fpr."""
    i = int(np.searchsorted(fpr, max_fpr, side="right"))
    area = float(np.trapezoid(pro[:i], fpr[:i])) if hasattr(np, "trapezoid") else \
        float(np.trapz(pro[:i], fpr[:i]))
    if i < fpr.size and fpr[i - 1] < max_fpr:
        x0, x1, y0, y1 = fpr[i - 1], fpr[i], pro[i - 1], pro[i]
        y = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0)
        area += 0.5 * float(y0 + y) * float(max_fpr - x0)
    return float(area)


def pro_curve(masks: Any, maps: Any, n_thresholds: int | None = None,
              max_points: int | None = 5000) -> tuple[np.ndarray, np.ndarray]:
    r"""The per-region-overlap curve ``(fpr, pro)``, for plotting.

    For a threshold t, a pixel is detected when ``map >= t``. The x axis is the
    false positive rate over all normal pixels of all images; the y axis is the
    per-region overlap

    .. math:: \mathrm{PRO}(t) = \frac{1}{K} \sum_{k=1}^{K}
              \frac{|C_k \cap \{x : \mathrm{map}(x) \geq t\}|}{|C_k|}

    over the K connected components C_k (8-connected) of the ground-truth masks of
    all images (Bergmann et al., IJCV 2021).

    Parameters
    ----------
    masks : bool (N, H, W)
    maps : float (N, H, W)
    n_thresholds : int or None
        None (default): the exact curve at every distinct map value. An int: that
        many thresholds, quantiles of the normal pixels' scores spread evenly in FPR.
    max_points : int or None
        Thin the exact curve to about this many points (keeps every FPR and PRO step
        larger than 1/max_points; enough for a plot). None keeps all points.

    Returns
    -------
    fpr, pro : float64 arrays, increasing, from (0, 0) to (1, 1)
    """
    g, m, lab, n_reg, sizes, n_normal = _prepare_pro(masks, maps)
    if n_thresholds is None:
        fpr, pro, _ = _exact_pro(m, lab, n_reg, sizes, n_normal)
    else:
        from .checks import check_positive_int
        n = check_positive_int(n_thresholds, "n_thresholds", 2)
        fpr, pro, _ = _grid_pro(m, g, lab, n_reg, sizes, n_normal, 1.0, n)
    if max_points is not None and fpr.size > max_points:
        grid = np.linspace(0, 1, max_points)
        keep = np.unique(np.concatenate([
            np.searchsorted(fpr, grid), np.searchsorted(pro, grid), [0, fpr.size - 1]]))
        keep = keep[keep < fpr.size]
        fpr, pro = fpr[keep], pro[keep]
    return fpr, pro


def aupro(masks: Any, maps: Any, max_fpr: float = 0.3, n_thresholds: int | None = None
          ) -> float:
    r"""Normalized area under the PRO curve up to a false positive rate ``max_fpr``.

    .. math:: \mathrm{AUPRO} = \frac{1}{f_{max}} \int_0^{f_{max}}
              \mathrm{PRO}(\mathrm{FPR}^{-1}(f))\, df

    with the per-region overlap of :func:`pro_curve` and FPR the false positive
    rate on normal pixels; the integral is the trapezoidal rule on the curve,
    interpolated at ``max_fpr``. This is the MVTec AD definition (Bergmann et al.,
    "The MVTec anomaly detection dataset", IJCV 2021, Section 4.2); the paper's
    default integration limit is ``max_fpr = 0.3``. 1 is perfect.

    Parameters
    ----------
    masks : bool (N, H, W)
        Ground truth of all test images (good images included: their pixels count as
        normal pixels in the FPR).
    maps : float (N, H, W)
    max_fpr : float in (0, 1], default 0.3
    n_thresholds : int or None
        None (default): exact, every distinct score is a threshold (sort-based, a
        second or two for 100 maps of 256x256). An int: that many thresholds, the
        quantiles of the normal pixels' scores at FPRs evenly spread in [0, max_fpr]
        (faster on huge sets, accurate to about ``max_fpr / n_thresholds``).
    """
    from .checks import check_in_range
    max_fpr = check_in_range(max_fpr, "max_fpr", 0, 1, low_inclusive=False)
    g, m, lab, n_reg, sizes, n_normal = _prepare_pro(masks, maps)
    if n_thresholds is None:
        # only pixels scoring at least the score of the FPR=max_fpr threshold matter
        normal = m[~g]
        kth = int(np.ceil(max_fpr * n_normal))  # that many normal pixels above the floor
        floor = np.partition(normal, n_normal - kth)[n_normal - kth] if kth < n_normal \
            else None
        fpr, pro, _ = _exact_pro(m, lab, n_reg, sizes, n_normal, floor=floor)
    else:
        from .checks import check_positive_int
        n = check_positive_int(n_thresholds, "n_thresholds", 2)
        fpr, pro, _ = _grid_pro(m, g, lab, n_reg, sizes, n_normal, max_fpr, n)
    return float(_area(fpr, pro, max_fpr) / max_fpr)


# -- binary segmentation ---------------------------------------------------------------

_MIOU_AVERAGES = ("image", "dataset", "classes")


def miou(masks: Any, pred: Any, average: str = "image", empty: float | None = 1.0) -> float:
    r"""Mean intersection over union of binary anomaly masks.

    Parameters
    ----------
    masks : bool (N, H, W)
        Ground truth.
    pred : bool (N, H, W)
        Detections, e.g. ``result.segment(eps)`` or ``maps > threshold``.
    average : {"image", "dataset", "classes"}
        ``"image"`` (default): the IoU of the anomaly class,
        :math:`|G_i \cap P_i| / |G_i \cup P_i|`, computed per image and averaged over
        images. An image with an empty ground truth and an empty prediction (a good
        image left alone) scores ``empty``; a good image with any detection scores 0,
        so false alarms on good images are penalized.
        ``"dataset"``: the IoU of the anomaly class over all pixels pooled (large
        defects weigh more).
        ``"classes"``: the semantic-segmentation convention, the mean of the pooled IoU
        of the anomaly class and of the normal class. The normal class is nearly
        always close to 1, so this is higher than the others; given for comparison
        with papers that use it.
    empty : float or None, default 1.0
        Score of an image whose ground truth and prediction are both empty (only for
        ``average="image"``). ``None`` leaves such images out of the mean.

    Returns
    -------
    float in [0, 1]
    """
    from .checks import check_choice
    check_choice(average, "average", _MIOU_AVERAGES)
    g, p = _check_masks_pred(masks, pred)
    n = g.shape[0]
    inter = np.count_nonzero((g & p).reshape(n, -1), axis=1)
    union = np.count_nonzero((g | p).reshape(n, -1), axis=1)
    if average == "image":
        both_empty = union == 0
        iou = inter / np.maximum(union, 1)
        if empty is None:
            if both_empty.all():
                raise ValueError("every image has an empty ground truth and an empty "
                                 "prediction: with empty=None there is nothing to average.")
            return float(iou[~both_empty].mean())
        iou[both_empty] = float(empty)
        return float(iou.mean())
    i, u = int(inter.sum()), int(union.sum())
    iou_anom = i / u if u else 1.0
    if average == "dataset":
        return float(iou_anom)
    gn, pn = ~g, ~p
    i0 = int(np.count_nonzero(gn & pn))
    u0 = int(np.count_nonzero(gn | pn))
    iou_norm = i0 / u0 if u0 else 1.0
    return float(0.5 * (iou_anom + iou_norm))


def f1(masks: Any, pred: Any) -> float:
    """Pixel F1 score over the whole set: :math:`2TP / (2TP + FP + FN)`.

    All pixels of all images are pooled. When there is nothing to find and nothing
    was detected (TP + FP + FN = 0) the score is 1.
    """
    g, p = _check_masks_pred(masks, pred)
    tp = int(np.count_nonzero(g & p))
    fp = int(np.count_nonzero(p & ~g))
    fn = int(np.count_nonzero(g & ~p))
    den = 2 * tp + fp + fn
    return float(2 * tp / den) if den else 1.0


def _threshold_grid(g: np.ndarray, m: np.ndarray, n: int) -> np.ndarray:
    """Candidate thresholds (ascending) for ``map > t``: the scores of the anomalous
    pixels at evenly spaced quantiles (where the true positives change), the scores
    at log-spaced quantiles of the top tail of all pixels (where the false positives
    of a good detector live), and for each the next lower score present in the maps
    (so that a candidate's own pixels are detected too)."""
    v = np.sort(m.ravel())
    pos = np.sort(m[g])
    half = max(n // 2, 2)
    cands = [v[np.round((v.size - 1) * (1.0 - np.geomspace(1e-6, 1.0, half))).astype(int)]]
    if pos.size:
        cands.append(pos[np.round((pos.size - 1) * np.linspace(0, 1, half)).astype(int)])
    c = np.unique(np.concatenate(cands))
    below = v[np.maximum(np.searchsorted(v, c, side="left") - 1, 0)]
    t = np.unique(np.concatenate([c, below]).astype(np.float64))
    # also just below the minimum (everything detected)
    return np.concatenate([[np.nextafter(t[0], -np.inf)], t])


def _sweep(g: np.ndarray, m: np.ndarray, thr: np.ndarray, per_image: bool):
    """Counts of predicted and true-positive pixels of ``map > t`` for every t in ``thr``
    (ascending), per image (N, T) or pooled (T,)."""
    n = g.shape[0]
    nt = thr.size
    k = np.searchsorted(thr, m.reshape(n, -1).astype(np.float64), side="left")  # #t < v
    if per_image:
        k = k + (nt + 1) * np.arange(n)[:, None]
        size = n * (nt + 1)
    else:
        size = nt + 1
    hp = np.bincount(k.ravel(), minlength=size)
    ht = np.bincount(k.ravel(), weights=g.reshape(n, -1).ravel(), minlength=size)
    if per_image:
        hp, ht = hp.reshape(n, nt + 1), ht.reshape(n, nt + 1)
    # predicted at threshold j: pixels with k > j
    pp = np.cumsum(hp[..., ::-1], axis=-1)[..., ::-1][..., 1:]
    tp = np.cumsum(ht[..., ::-1], axis=-1)[..., ::-1][..., 1:]
    return pp, tp


def optimal_threshold(masks: Any, maps: Any, metric: str = "iou", n_thresholds: int = 512,
                      return_score: bool = False):
    """The oracle threshold: the t for which ``maps > t`` maximizes mIoU or F1.

    It looks at the ground truth, so it is not a method but an upper bound, to
    compare an automatic threshold (a contrario ε, a calibrated quantile) with.

    Parameters
    ----------
    masks : bool (N, H, W)
    maps : float (N, H, W)
    metric : {"iou", "f1"}
        ``"iou"``: :func:`miou` with its defaults (per image, empty/empty = 1);
        ``"f1"``: :func:`f1`.
    n_thresholds : int, default 512
        Number of candidate thresholds (quantiles of the anomalous pixels' scores and
        of the upper tail of all scores), evaluated at once.
    return_score : bool
        Also return the metric at that threshold.

    Returns
    -------
    float, or (float, float) with ``return_score``
    """
    from .checks import check_choice, check_positive_int
    check_choice(metric, "metric", ("iou", "f1"))
    n_thresholds = check_positive_int(n_thresholds, "n_thresholds", 2)
    g, m = _check_masks_maps(masks, maps)
    thr = _threshold_grid(g, m, n_thresholds)
    n = g.shape[0]
    if metric == "f1":
        pp, tp = _sweep(g, m, thr, per_image=False)
        pos = np.count_nonzero(g)
        den = pp + pos  # 2TP + FP + FN
        score = np.where(den > 0, 2 * tp / np.maximum(den, 1), 1.0)
    else:
        pp, tp = _sweep(g, m, thr, per_image=True)
        pos = np.count_nonzero(g.reshape(n, -1), axis=1)[:, None]
        union = pos + pp - tp
        iou = np.where(union > 0, tp / np.maximum(union, 1), 1.0)
        score = iou.mean(axis=0)
    j = int(np.argmax(score))  # first best: the lowest threshold among ties
    t = float(thr[j])
    return (t, float(score[j])) if return_score else t


def miou_curve(masks: Any, maps: Any, thresholds: Any, empty: float = 1.0) -> np.ndarray:
    r"""mIoU (per image, as :func:`miou` with ``average="image"``) of ``maps > t`` for
    every threshold t of ``thresholds``.

    The curve whose maximum :func:`optimal_threshold` looks for; drawn against the
    threshold it shows how far an automatic threshold is from the best one (U-Flow's
    Fig. 7). For a log NFA map, whose detections are ``log_nfa < log10 ε``, pass
    ``-log_nfa`` and ``-log10 ε``.

    Returns
    -------
    float64 (T,), in the order of ``thresholds``.
    """
    g, m = _check_masks_maps(masks, maps)
    thr = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    if thr.size == 0 or not np.all(np.isfinite(thr)):
        raise ValueError("thresholds must be a non-empty sequence of finite numbers.")
    order = np.argsort(thr, kind="stable")
    n = g.shape[0]
    pp, tp = _sweep(g, m, thr[order], per_image=True)
    pos = np.count_nonzero(g.reshape(n, -1), axis=1)[:, None]
    union = pos + pp - tp
    iou = np.where(union > 0, tp / np.maximum(union, 1), float(empty))
    out = np.empty(thr.size)
    out[order] = iou.mean(axis=0)
    return out


def count_regions(mask: Any) -> int:
    """Number of connected regions (8-connected) of one boolean mask (H, W)."""
    m = np.asarray(mask, bool)
    if m.ndim != 2:
        raise ValueError(f"count_regions takes one (H, W) mask, got shape {m.shape}.")
    return int(ndimage.label(m, structure=np.ones((3, 3), bool))[1])


def false_alarms_per_image(pred_masks: Any, good: Any = None) -> float:
    """Mean number of detected connected components (8-connected) per good image.

    Parameters
    ----------
    pred_masks : bool (N, H, W)
        Detections.
    good : bool (N,) or None
        True for the good (defect-free) images, e.g. ``test.labels == 0``; every
        detection on them is a false alarm. None: all images are good.
    """
    p = check_masks(pred_masks, None, "pred_masks")
    if good is None:
        sel = np.ones(p.shape[0], bool)
    else:
        sel = np.asarray(good).reshape(-1)
        if sel.shape[0] != p.shape[0]:
            raise ValueError(f"good has {sel.shape[0]} entries for {p.shape[0]} masks: "
                             "give one flag per image (e.g. test.labels == 0).")
        if sel.dtype != bool:
            if not np.isin(np.unique(sel), [0, 1]).all():
                raise ValueError("good must be booleans (True for a good image).")
            sel = sel.astype(bool)
    if not sel.any():
        raise ValueError("there are no good images to count false alarms on.")
    _, n = ndimage.label(p[sel], structure=_STRUCTURE_3D)
    return float(n / np.count_nonzero(sel))


def false_alarms_vs_eps(log_nfa: Any, eps: Any, good: Any = None) -> np.ndarray:
    """False regions per good image at each ε: the check that "ε means ε".

    For each ε the detection is ``log_nfa < log10 ε`` (what ``AnomalyResult.segment``
    does) and the count is :func:`false_alarms_per_image` of it on the good images:

    .. math:: \\mathrm{FA}(\\varepsilon) = \\frac{1}{|G|}\\sum_{i \\in G}
              \\#\\mathrm{CC}\\{x : \\log_{10}\\mathrm{NFA}_i(x) < \\log_{10}\\varepsilon\\}

    A method whose ε is honest gives FA(ε) ≈ ε on normal images it did not see (within
    the sampling error of a count: about 1/√(ε·n) relative for n good images).

    Parameters
    ----------
    log_nfa : float (N, H, W)
        log10 NFA maps, e.g. ``result.log_nfa`` (a method's own NFA, or the measured one
        of :class:`adkit.models.Calibrated`; its ``extras["model_log_nfa"]`` holds the
        inner method's own).
    eps : float or sequence of float > 0
        The levels ε.
    good : bool (N,) or None
        True for the good images (e.g. ``test.labels == 0``); None: all are good.

    Returns
    -------
    float64 array of the shape of ``eps``: false regions per good image.
    """
    from .checks import check_array
    lg = check_array(log_nfa, "log_nfa", finite=False, owner="false_alarms_vs_eps")
    if lg.ndim == 2:
        lg = lg[None]
    if lg.ndim != 3:
        raise ValueError(f"log_nfa must be (N, H, W) log10 NFA maps, got shape {lg.shape}.")
    if np.isnan(lg).any():
        raise ValueError("log_nfa contains NaN: a detection at ε is undefined there.")
    e = np.asarray(eps, np.float64)
    if e.size == 0 or not np.all(np.isfinite(e)) or np.any(e <= 0):
        raise ValueError(f"eps must be positive finite numbers (false alarms per image), "
                         f"got {eps!r}.")
    out = [false_alarms_per_image(lg < np.log10(v), good) for v in e.ravel()]
    return np.asarray(out, np.float64).reshape(e.shape)


# -- everything at once ----------------------------------------------------------------

def evaluate(result: Any, test: Any, eps: float = 1.0) -> dict:
    """All metrics of an ``AnomalyResult`` on a test ``Split``.

    Returns a dict with ``image_auroc``, ``pixel_auroc``, ``aupro`` (threshold-free),
    and, when ``result.segment(eps)`` is defined (the method has a ``log_nfa`` or a
    calibrated threshold), ``miou``, ``f1`` and ``false_alarms_per_good_image`` of
    those detections (good images have no false alarm entry when the test set has
    no good image).

    When some anomalous test images have no ground-truth mask (``test.has_mask``
    False, see :mod:`adkit.data.split`), the pixel metrics (``pixel_auroc``,
    ``aupro``, ``miou``, ``f1``) are NaN and ``"note"`` says why: an unknown mask is
    never counted as "no defect". Image metrics and false alarms on good images are
    computed as usual; ``evaluate(result[test.has_mask], test[test.has_mask])`` gives
    the pixel metrics of the images whose masks are known.
    """
    from .checks import check_in_range
    check_in_range(eps, "eps", 0, None, low_inclusive=False)
    maps = getattr(result, "maps", None)
    scores = getattr(result, "scores", None)
    if maps is None or scores is None:
        raise TypeError(f"result must be an AnomalyResult (from detector.predict), got "
                        f"{type(result).__name__}.")
    masks = getattr(test, "masks", None)
    labels = getattr(test, "labels", None)
    if masks is None or labels is None:
        raise TypeError(f"test must be a Split with masks and labels, got "
                        f"{type(test).__name__}.")
    if len(scores) != len(labels):
        raise ValueError(f"the result holds {len(scores)} images but the test split "
                         f"{len(labels)}: predict on the same test split.")
    has = getattr(test, "has_mask", None)
    unknown = np.zeros(len(labels), bool) if has is None else ~np.asarray(has, bool)
    out = {"image_auroc": image_auroc(labels, scores)}
    if unknown.any():
        names = getattr(test, "names", None) or []
        first = names[int(np.flatnonzero(unknown)[0])] if names else \
            int(np.flatnonzero(unknown)[0])
        out.update(pixel_auroc=float("nan"), aupro=float("nan"))
        out["note"] = (f"pixel metrics missing: {int(unknown.sum())} of {len(labels)} test "
                       f"images have no ground-truth mask (e.g. {first!r}); evaluate "
                       "test[test.has_mask] for the pixel metrics of the others.")
    else:
        out.update(pixel_auroc=pixel_auroc(masks, maps), aupro=aupro(masks, maps))
    try:
        pred = result.segment(eps)
    except ValueError:
        return out
    if unknown.any():
        out.update(miou=float("nan"), f1=float("nan"))
    else:
        out["miou"] = miou(masks, pred)
        out["f1"] = f1(masks, pred)
    good = np.asarray(labels) == 0
    if good.any():
        out["false_alarms_per_good_image"] = false_alarms_per_image(pred, good)
    if "note" in out:                       # keep the note the last column of a table
        out["note"] = out.pop("note")
    return out


def nfa_threshold_study(result: Any, test: Any, log_eps: Any = np.arange(-10, 41, 2),
                        report_eps: Any = ()) -> dict:
    r"""How an a contrario threshold compares with the oracle, and whether ε keeps its
    promise, on one test split.

    The mIoU (:func:`miou`, per image) of the automatic detections
    ``result.log_nfa < log10 ε`` at ε = 1 and of the oracle (:func:`optimal_threshold`
    of ``result.maps``, which looks at the ground truth), each on every image (the
    U-Flow paper's definition: a good image left alone counts IoU 1) and on the
    defective images only; the mIoU against log10 ε on both sets (the paper's Fig. 7);
    the false regions per good image (:func:`false_alarms_per_image`) against log10 ε.
    ``report_eps`` names values of ε (each on the grid ``log_eps``) whose all-image mIoU
    is also reported on its own, as ``miou_auto_eps<ε>`` (``miou_auto_eps0.1`` for 0.1,
    where U-Flow's Fig. 7 compares with the oracle).

    Returns
    -------
    dict
        ``miou_auto``, ``miou_oracle`` (every image), ``miou_auto_defective``,
        ``miou_oracle_defective``, ``defects_hit`` (fraction of defective images with
        a detection touching the defect at ε = 1), ``false_alarms_eps1``; the curves
        ``log_eps``, ``miou_curve``, ``miou_curve_defective``, ``false_alarms``
        (arrays, one value per log10 ε); ``n_good`` and ``n_defective``.
    """
    lnfa = getattr(result, "log_nfa", None)
    if lnfa is None or getattr(result, "maps", None) is None:
        raise TypeError("result must be an AnomalyResult with a log_nfa (an a contrario "
                        "method: SelfSimilarity, UFlow, or a Calibrated detector).")
    masks, labels = getattr(test, "masks", None), getattr(test, "labels", None)
    if masks is None or labels is None:
        raise TypeError(f"test must be a Split with masks and labels, got "
                        f"{type(test).__name__}.")
    masks = np.asarray(masks, bool)
    lnfa = np.asarray(lnfa, dtype=np.float64)
    if lnfa.shape != masks.shape:
        raise ValueError(f"the result's log_nfa is {lnfa.shape} but the test masks are "
                         f"{masks.shape}: predict on the same test split.")
    le = np.asarray(log_eps, dtype=np.float64).reshape(-1)
    good = np.asarray(labels) == 0
    bad = ~good
    if not good.any() or not bad.any():
        raise ValueError("the test split needs both good and defective images.")
    report = {}
    for e in np.atleast_1d(np.asarray(report_eps, dtype=np.float64)):
        where = np.flatnonzero(np.isclose(le, np.log10(e)))
        if e <= 0 or not where.size:
            raise ValueError(f"report_eps={e:g} is not on the grid log_eps (log10 ε = "
                             f"{np.log10(e) if e > 0 else float('nan'):g}); add it to log_eps.")
        report[f"miou_auto_eps{e:g}"] = int(where[0])
    maps = np.asarray(result.maps)
    seg = lnfa < 0.0
    curve = miou_curve(masks, -lnfa, -le)
    return {
        "miou_auto": miou(masks, seg),
        "miou_oracle": optimal_threshold(masks, maps, return_score=True)[1],
        "miou_auto_defective": miou(masks[bad], seg[bad]),
        "miou_oracle_defective": optimal_threshold(masks[bad], maps[bad],
                                                   return_score=True)[1],
        "defects_hit": float(np.mean([(seg[k] & masks[k]).any() for k in np.flatnonzero(bad)])),
        "false_alarms_eps1": false_alarms_per_image(seg, good),
        "log_eps": le,
        **{k: float(curve[i]) for k, i in report.items()},
        "miou_curve": curve,
        "miou_curve_defective": miou_curve(masks[bad], -lnfa[bad], -le),
        "false_alarms": np.array([false_alarms_per_image(lnfa[good] < v) for v in le]),
        "n_good": int(good.sum()), "n_defective": int(bad.sum()),
    }
