import numpy as np
import pytest

from adkit import metrics as M
from adkit.data.split import Split
from adkit.models.base import AnomalyResult

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy 1.x has only trapz


# -- AUROC ---------------------------------------------------------------------------

def test_image_auroc_by_hand():
    # pairs (anomalous, normal): (.35,.1) win, (.35,.4) lose, (.8,.1) win, (.8,.4) win
    assert M.image_auroc([0, 0, 1, 1], [.1, .4, .35, .8]) == pytest.approx(0.75)
    # a tie counts one half
    assert M.image_auroc([0, 1], [.5, .5]) == pytest.approx(0.5)
    assert M.image_auroc(np.array([True, False]), [2.0, 1.0]) == pytest.approx(1.0)


def test_pixel_auroc_by_hand():
    masks = np.array([[[1, 0], [0, 0]]], bool)
    maps = np.array([[[.5, .6], [.1, .2]]])
    # the anomalous pixel beats 2 of the 3 normal ones
    assert M.pixel_auroc(masks, maps) == pytest.approx(2 / 3)
    assert M.pixel_auroc(masks[0], maps[0]) == pytest.approx(2 / 3)  # one (H, W) map


def test_roc_curve_passthrough():
    fpr, tpr, thr = M.roc_curve([0, 0, 1, 1], [.1, .4, .35, .8])
    assert fpr[0] == 0 and tpr[-1] == 1 and fpr[-1] == 1
    assert _trapezoid(tpr, fpr) == pytest.approx(0.75)


def test_auroc_errors_are_clear():
    with pytest.raises(ValueError, match="both normal images and anomalous images"):
        M.image_auroc([1, 1, 1], [.1, .2, .3])
    with pytest.raises(ValueError, match="only normal images"):
        M.image_auroc([0, 0], [.1, .2])
    with pytest.raises(ValueError, match="3 entries but scores has 2"):
        M.image_auroc([0, 1, 1], [.1, .2])
    with pytest.raises(ValueError, match="0 \\(normal\\) or 1"):
        M.image_auroc([0, 2], [.1, .2])
    with pytest.raises(ValueError, match="NaN"):
        M.image_auroc([0, 1], [.1, np.nan])
    with pytest.raises(ValueError, match="anomalous pixels"):
        M.pixel_auroc(np.zeros((2, 4, 4), bool), np.random.rand(2, 4, 4))
    with pytest.raises(ValueError, match="same resolution"):
        M.pixel_auroc(np.zeros((2, 4, 4), bool), np.random.rand(2, 4, 5))
    with pytest.raises(TypeError, match="boolean"):
        M.pixel_auroc(np.full((1, 4, 4), 0.5), np.random.rand(1, 4, 4))


# -- PRO -----------------------------------------------------------------------------

def _two_regions(b_value):
    """Two 5-pixel regions (rows 0 and 10) and 100 normal pixels with distinct scores
    0.00 .. 0.99; region A scores above every normal pixel."""
    g = np.zeros((1, 11, 10), bool)
    g[0, 0, :5] = True
    g[0, 10, :5] = True
    m = np.zeros(g.shape)
    m[~g] = np.random.default_rng(0).permutation(np.arange(100) / 100)
    m[0, 0, :5] = 2.0
    m[0, 10, :5] = b_value
    return g, m


def test_aupro_perfect_map_is_one():
    rng = np.random.default_rng(0)
    g = np.zeros((3, 16, 16), bool)
    g[0, 2:5, 2:6] = True
    g[1, 10:14, 9:15] = True
    m = rng.random(g.shape) * 0.5 + g
    assert M.aupro(g, m) == pytest.approx(1.0)
    assert M.aupro(g, m, n_thresholds=20) == pytest.approx(1.0)


def test_aupro_one_region_ranked_first_by_hand():
    # B scores 0.795: detected once the 20 normal pixels 0.80..0.99 are (FPR 0.2).
    # PRO = 1/2 for FPR < 0.2, then 1: area to 0.3 = 0.5*0.2 + 1*0.1 = 0.2 -> 0.2/0.3
    g, m = _two_regions(0.795)
    assert M.aupro(g, m) == pytest.approx(2 / 3)
    assert M.aupro(g, m, max_fpr=0.2) == pytest.approx(0.5)
    assert M.aupro(g, m, max_fpr=1.0) == pytest.approx(0.5 * 0.2 + 1.0 * 0.8)
    # B below every normal pixel: PRO = 1/2 on [0, 1)
    g, m = _two_regions(-1.0)
    assert M.aupro(g, m) == pytest.approx(0.5)
    # the quantile-threshold approximation agrees here
    g, m = _two_regions(0.795)
    assert M.aupro(g, m, n_thresholds=301) == pytest.approx(2 / 3, abs=1e-6)


def test_aupro_partial_overlap_and_region_weighting():
    g, m = _two_regions(-1.0)
    m[0, 10, :2] = 3.0  # 2 of the 5 pixels of B found first: PRO = (1 + 2/5)/2 everywhere
    assert M.aupro(g, m) == pytest.approx(0.7)
    # a big region and a small one weigh the same: finding only the small one gives 1/2
    g = np.zeros((1, 20, 20), bool)
    g[0, :10, :10] = True       # 100 pixels
    g[0, 15, 15] = True         # 1 pixel
    m = np.where(g, -1.0, np.linspace(0, 1, 400).reshape(1, 20, 20))
    m[0, 15, 15] = 5.0
    assert M.aupro(g, m) == pytest.approx(0.5)


def test_pro_regions_are_8_connected_and_per_image():
    g = np.zeros((2, 6, 6), bool)
    g[0, 1, 1] = g[0, 2, 2] = True   # diagonal neighbours: one region of 2 pixels
    g[1, 1, 1] = True                # same place in another image: another region
    m = np.zeros(g.shape)
    m[~g] = np.linspace(0, 1, (~g).sum())
    m[0, 1, 1] = 2.0                 # half of region 1 first ...
    m[1, 1, 1] = 2.0                 # ... and all of region 2
    m[0, 2, 2] = -1.0
    assert M.aupro(g, m) == pytest.approx((0.5 + 1.0) / 2)


def test_pro_curve_shape_and_limits():
    g, m = _two_regions(0.795)
    fpr, pro = M.pro_curve(g, m)
    assert fpr[0] == 0 and pro[0] == 0 and fpr[-1] == pytest.approx(1)
    assert pro[-1] == pytest.approx(1)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(pro) >= 0)
    # at FPR 0.1 the PRO is one half
    assert pro[np.searchsorted(fpr, 0.1)] == pytest.approx(0.5)
    # thinning keeps the area
    rng = np.random.default_rng(0)
    g = rng.random((4, 64, 64)) > 0.97
    m = rng.random(g.shape) + g
    f1_, p1 = M.pro_curve(g, m, max_points=None)
    f2, p2 = M.pro_curve(g, m, max_points=200)
    assert len(f2) < len(f1_) / 10
    assert _trapezoid(p2, f2) == pytest.approx(_trapezoid(p1, f1_), abs=0.01)


def test_aupro_errors_are_clear():
    with pytest.raises(ValueError, match="anomalous regions"):
        M.aupro(np.zeros((2, 4, 4), bool), np.random.rand(2, 4, 4))
    with pytest.raises(ValueError, match="normal pixels"):
        M.aupro(np.ones((1, 4, 4), bool), np.random.rand(1, 4, 4))
    with pytest.raises(ValueError, match="max_fpr"):
        M.aupro(np.eye(4, dtype=bool), np.random.rand(4, 4), max_fpr=0)
    with pytest.raises(ValueError, match="NaN"):
        M.aupro(np.eye(4, dtype=bool), np.full((4, 4), np.nan))


# -- binary segmentation ---------------------------------------------------------------

def _seg_case():
    g = np.zeros((3, 4, 4), bool)
    p = np.zeros_like(g)
    g[0, :2, :2] = True            # 4 pixels
    p[0, 0, :2] = True             # 2 of them ...
    p[0, 3, 2:] = True             # ... and 2 false ones: IoU 2/6
    # image 1: good, nothing detected (IoU counted 1 by default)
    p[2, 1, 1] = True              # image 2: good, one false pixel (IoU 0)
    return g, p


def test_miou_by_hand():
    g, p = _seg_case()
    assert M.miou(g, p) == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert M.miou(g, p, empty=None) == pytest.approx((1 / 3 + 0) / 2)
    assert M.miou(g, p, empty=0.0) == pytest.approx(1 / 9)
    # pooled: intersection 2, union 4 + 2 + 1 = 7
    assert M.miou(g, p, average="dataset") == pytest.approx(2 / 7)
    # normal class: 48 pixels, 7 in either mask -> 41 in both normal; union 48 - 2
    assert M.miou(g, p, average="classes") == pytest.approx((2 / 7 + 41 / 46) / 2)
    assert M.miou(g, g) == 1.0


def test_f1_by_hand():
    g, p = _seg_case()
    # TP 2, FP 3, FN 2
    assert M.f1(g, p) == pytest.approx(2 * 2 / (2 * 2 + 3 + 2))
    assert M.f1(np.zeros((1, 3, 3), bool), np.zeros((1, 3, 3), bool)) == 1.0
    assert M.f1(g, ~g) == 0.0


def test_segmentation_errors_are_clear():
    g, p = _seg_case()
    with pytest.raises(ValueError, match="same resolution"):
        M.miou(g, p[:2])
    with pytest.raises(TypeError, match="threshold the maps first"):
        M.f1(g, np.random.rand(*g.shape))
    with pytest.raises(ValueError, match="average must be one of"):
        M.miou(g, p, average="mean")


def test_optimal_threshold_matches_brute_force():
    rng = np.random.default_rng(3)
    g = np.zeros((4, 12, 12), bool)
    g[0, 2:6, 3:8] = True
    g[1, 7:11, 1:4] = True
    m = rng.random(g.shape) * 0.6 + g * rng.random(g.shape) * 0.8
    for metric, fn in (("iou", M.miou), ("f1", M.f1)):
        t, s = M.optimal_threshold(g, m, metric=metric, n_thresholds=4096,
                                   return_score=True)
        assert fn(g, m > t) == pytest.approx(s)
        cands = np.concatenate([[m.min() - 1], np.unique(m)])
        best = max(fn(g, m > c) for c in cands)
        assert s == pytest.approx(best)
    # a separable map: the oracle threshold separates exactly
    m = np.where(g, 0.8, 0.3 * rng.random(g.shape))
    t = M.optimal_threshold(g, m)
    assert np.array_equal(m > t, g)
    assert isinstance(t, float)


def test_false_alarms_per_good_image():
    p = np.zeros((3, 8, 8), bool)
    p[0, 0, 0] = p[0, 5, 5] = True         # good image, 2 blobs
    p[0, 1, 1] = True                       # diagonal to (0, 0): same blob
    p[2, :, :] = True                       # anomalous image: not counted
    assert M.false_alarms_per_image(p, good=[True, True, False]) == pytest.approx(1.0)
    assert M.false_alarms_per_image(p[:2]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="one flag per image"):
        M.false_alarms_per_image(p, good=[True, False])
    with pytest.raises(ValueError, match="no good images"):
        M.false_alarms_per_image(p, good=[False, False, False])


# -- evaluate ------------------------------------------------------------------------

def _split_and_maps():
    rng = np.random.default_rng(0)
    masks = np.zeros((4, 16, 16), bool)
    masks[2, 3:7, 3:7] = True
    masks[3, 10:13, 8:14] = True
    test = Split(rng.random((4, 16, 16, 3)).astype(np.float32), masks)
    maps = (rng.random(masks.shape) * 0.5 + masks).astype(np.float32)
    return test, maps


def test_evaluate_with_and_without_segmentation():
    test, maps = _split_and_maps()
    res = AnomalyResult(maps, maps.reshape(4, -1).max(1))
    out = M.evaluate(res, test)
    assert set(out) == {"image_auroc", "pixel_auroc", "aupro"}
    assert out["image_auroc"] == 1.0 and out["aupro"] == pytest.approx(1.0)
    # a result that can segment: a threshold catching the defects and nothing else
    res = AnomalyResult(maps, maps.reshape(4, -1).max(1), threshold=0.75)
    out = M.evaluate(res, test)
    assert out["miou"] == 1.0 and out["f1"] == 1.0
    assert out["false_alarms_per_good_image"] == 0.0
    # a log NFA: -2 inside the defects, and one false pixel on a good image
    log_nfa = np.where(test.masks, -2.0, 1.0).astype(np.float32)
    log_nfa[0, 0, 0] = -3
    res = AnomalyResult(maps, maps.reshape(4, -1).max(1), log_nfa=log_nfa)
    out = M.evaluate(res, test, eps=0.1)
    assert out["false_alarms_per_good_image"] == pytest.approx(0.5)
    assert out["miou"] == pytest.approx((0 + 1 + 1 + 1) / 4)


def test_evaluate_errors_are_clear():
    test, maps = _split_and_maps()
    res = AnomalyResult(maps[:3], np.zeros(3))
    with pytest.raises(ValueError, match="same test split"):
        M.evaluate(res, test)
    with pytest.raises(TypeError, match="AnomalyResult"):
        M.evaluate(maps, test)
    with pytest.raises(ValueError, match="both normal images and anomalous images"):
        M.evaluate(AnomalyResult(maps[2:], np.ones(2)), test[2:])


def _brute_force_aupro(g, m, max_fpr):
    """AUPRO from its definition: one threshold at a time, regions by scipy."""
    from scipy import ndimage
    regions = []
    for i in range(g.shape[0]):
        lab, n = ndimage.label(g[i], structure=np.ones((3, 3)))
        regions += [(i, lab == k) for k in range(1, n + 1)]
    fprs, pros = [0.0], [0.0]
    for t in np.unique(m)[::-1]:
        det = m >= t
        fprs.append((det & ~g).sum() / (~g).sum())
        pros.append(np.mean([det[i][r].mean() for i, r in regions]))
    area = 0.0
    for x0, y0, x1, y1 in zip(fprs[:-1], pros[:-1], fprs[1:], pros[1:]):
        if x1 <= x0 or x0 >= max_fpr:      # vertical step, or beyond the limit
            continue
        xe = min(x1, max_fpr)              # the segment, cut at max_fpr
        ye = y0 + (y1 - y0) * (xe - x0) / (x1 - x0)
        area += (xe - x0) * (y0 + ye) / 2
    return area / max_fpr


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aupro_matches_its_definition_on_random_maps_with_ties(seed):
    rng = np.random.default_rng(seed)
    g = np.zeros((3, 20, 20), bool)
    g[0, 2:7, 3:9] = True
    g[0, 12:14, 12:18] = True
    g[1, 5:15, 5:8] = True
    m = np.round(rng.random(g.shape) + 0.7 * g * rng.random(g.shape), 1)  # many ties
    m[1, 5:7, 5:8] = 0.05                    # a tie group of anomalous pixels only
    for max_fpr in (0.3, 0.05, 1.0):
        assert M.aupro(g, m, max_fpr=max_fpr) == pytest.approx(
            _brute_force_aupro(g, m, max_fpr), abs=1e-9)
    # the fixed-threshold approximation is close on continuous maps
    m = rng.random(g.shape) + 0.5 * g * rng.random(g.shape)
    assert M.aupro(g, m, n_thresholds=300) == pytest.approx(M.aupro(g, m), abs=0.01)


def test_evaluate_reports_pixel_metrics_missing_without_masks():
    """Unknown masks (Split.has_mask False) are never scored as 'no defect'."""
    rng = np.random.default_rng(0)
    masks = np.zeros((4, 16, 16), bool)
    masks[2, 4:8, 4:8] = True
    maps = rng.random((4, 16, 16)).astype(np.float32)
    maps[2, 4:8, 4:8] += 2
    maps[3, 4:12, 4:12] += 2                    # the defect of the image without mask
    res = AnomalyResult(maps, maps.reshape(4, -1).max(1), None, threshold=1.5)
    full = Split(rng.random((4, 16, 16, 3)).astype(np.float32), masks, [0, 0, 1, 1])
    part = Split(full.images, masks, [0, 0, 1, 1], has_mask=[True, True, True, False])
    a, b = M.evaluate(res, full), M.evaluate(res, part)
    assert a["image_auroc"] == b["image_auroc"] == 1.0
    assert a["pixel_auroc"] < 0.98 and "note" not in a      # image 3 counted as defect-free
    for key in ("pixel_auroc", "aupro", "miou", "f1"):
        assert np.isnan(b[key]), key
    assert "1 of 4 test images have no ground-truth mask" in b["note"] and "'003'" in b["note"]
    assert b["false_alarms_per_good_image"] == a["false_alarms_per_good_image"]
    c = M.evaluate(res[part.has_mask], part[part.has_mask])
    assert c["pixel_auroc"] == 1.0


def test_miou_curve_is_miou_at_every_threshold():
    rng = np.random.default_rng(3)
    masks = np.zeros((4, 16, 16), bool)
    masks[0, 2:6, 2:6] = True
    masks[1, 8:14, 3:9] = True                  # images 2 and 3 are good
    maps = rng.random((4, 16, 16)) + 0.8 * masks
    thr = np.array([1.5, 0.2, 0.9, 0.95, 2.0])  # unsorted: returned in this order
    curve = M.miou_curve(masks, maps, thr)
    assert curve.shape == (5,)
    for t, v in zip(thr, curve):
        assert v == pytest.approx(M.miou(masks, maps > t))
    # above every value nothing is detected: the two good images score 1, the others 0
    assert curve[-1] == pytest.approx(0.5)
    best_t, best = M.optimal_threshold(masks, maps, return_score=True)
    assert M.miou_curve(masks, maps, [best_t])[0] == pytest.approx(best)
    with pytest.raises(ValueError, match="thresholds"):
        M.miou_curve(masks, maps, [])


def test_nfa_threshold_study_on_a_hand_built_result():
    masks = np.zeros((4, 16, 16), bool)
    masks[0, 2:6, 2:6] = True
    masks[1, 8:12, 8:12] = True
    labels = np.array([1, 1, 0, 0])
    test = Split(np.zeros((4, 16, 16, 3), np.float32), masks, labels)
    log_nfa = np.full((4, 16, 16), 5.0)
    log_nfa[0][masks[0]] = -3.0                 # found at ε = 1
    log_nfa[1][masks[1]] = 1.0                  # found only at ε > 10
    log_nfa[2, 0, 0] = 3.0                      # a false region at ε > 1000
    maps = (-log_nfa).astype(np.float32)
    res = AnomalyResult(maps, maps.reshape(4, -1).max(1), log_nfa=log_nfa)
    st = M.nfa_threshold_study(res, test, log_eps=[-4, 0, 2, 4, 6])
    assert st["miou_auto_defective"] == pytest.approx(0.5)       # 1 and 0
    assert st["miou_auto"] == pytest.approx(0.75)                # and the good ones 1
    assert st["miou_oracle_defective"] == pytest.approx(1.0)
    assert st["defects_hit"] == pytest.approx(0.5)
    assert st["false_alarms_eps1"] == 0
    np.testing.assert_allclose(st["false_alarms"], [0, 0, 0, 0.5, 1.0])   # then whole images
    np.testing.assert_allclose(st["miou_curve_defective"], [0, 0.5, 1.0, 1.0, 16 / 256])
    np.testing.assert_allclose(st["miou_curve"], [0.5, 0.75, 1.0, 0.75, 16 / 512])
    assert (st["n_good"], st["n_defective"]) == (2, 2)
    st = M.nfa_threshold_study(res, test, log_eps=[-4, 0, 2, 4, 6], report_eps=(100, 1e-4))
    assert st["miou_auto_eps100"] == pytest.approx(1.0) and st["miou_auto_eps0.0001"] == 0.5
    with pytest.raises(ValueError, match="not on the grid"):
        M.nfa_threshold_study(res, test, log_eps=[-4, 0, 2], report_eps=(0.1,))
    with pytest.raises(TypeError, match="log_nfa"):
        M.nfa_threshold_study(AnomalyResult(maps, maps.reshape(4, -1).max(1)), test)
