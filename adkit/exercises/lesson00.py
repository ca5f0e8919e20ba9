"""Exercises of lesson 00 (data and metrics): the image AUROC by counting pairs, false
alarms as connected regions on good images, the IoU of one image."""
from __future__ import annotations

import numpy as np

from .base import Case, Exercise, Mistake, register

# -- 00.image_auroc ---------------------------------------------------------------------------


def _auroc_reference(labels, scores):
    from ..metrics import image_auroc
    return image_auroc(labels, scores)


def _auroc_cases(rng):
    labels = rng.permutation(np.r_[np.zeros(12, np.int64), np.ones(8, np.int64)])
    scores = rng.normal(size=20) + 1.2 * labels
    yield Case("20 images (8 defective) whose scores overlap", (labels, scores))
    yield Case("scores with ties (whole numbers)", (labels, np.round(2 * scores)),
               hint="a tie between a defective and a good image counts one half.")
    yield Case("every defective image scores above every good one",
               (labels, labels + 0.5 * rng.random(20)))
    yield Case("every defective image scores below every good one",
               (labels, -labels - 0.5 * rng.random(20)))
    yield Case("labels given as booleans", (labels.astype(bool), scores),
               hint="labels may be booleans: select with labels == 1 and labels == 0, "
                    "which works for both.")
    few = np.zeros(15, np.int64)
    few[rng.integers(15)] = 1
    yield Case("one defective image among 15", (few, rng.normal(size=15) + few))


def _auroc_hints(case, got, expected):
    from ..metrics import image_auroc
    labels, scores = case.args
    g = float(np.asarray(got).reshape(()))
    if abs(expected - 0.5) > 1e-9 and abs(g - (1 - expected)) < 1e-9:
        return ("your value is 1 − AUROC: you counted the pairs where the good image scores "
                "higher. Count the (defective, good) pairs where the defective one is higher.")
    y = np.asarray(labels)
    n_pos, n_neg = int(np.sum(y == 1)), int(np.sum(y == 0))
    if y.dtype != bool and len(y) > 2:
        # scores[labels] with 0/1 integers picks images 0 and 1, not the defective ones
        s = np.asarray(scores)
        fake = np.r_[s[y], s[~y]]
        fake_labels = np.r_[np.ones(len(y), int), np.zeros(len(y), int)]
        if abs(g - image_auroc(fake_labels, fake)) < 1e-9:
            return ("labels are 0/1 integers: scores[labels] picks the scores of images 0 "
                    "and 1, and ~labels is -1/-2 (bitwise not). Select with "
                    "scores[labels == 1] and scores[labels == 0].")
    if not 0 <= g <= 1:
        return (f"an AUROC is a fraction of pairs, between 0 and 1: divide the count by the "
                f"number of (defective, good) pairs, here {n_pos} × {n_neg}.")
    n = len(y)
    for wrong, what in ((n * n, "N²"), (n * (n - 1) / 2, "N(N−1)/2"), (n * (n - 1), "N(N−1)")):
        if expected > 0 and abs(g - expected * n_pos * n_neg / wrong) < 1e-9:
            return (f"you divided by {what}: divide by the number of (defective, good) pairs, "
                    f"n_defective × n_good = {n_pos} × {n_neg}.")
    return None


def _auroc_solution(labels, scores):
    labels, scores = np.asarray(labels), np.asarray(scores, float)
    pos, neg = scores[labels == 1], scores[labels == 0]
    higher = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return (higher + 0.5 * ties) / (len(pos) * len(neg))


def _auroc_reversed(labels, scores):
    labels, scores = np.asarray(labels), np.asarray(scores, float)
    pos, neg = scores[labels == 1], scores[labels == 0]
    return ((pos[:, None] < neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) \
        / (len(pos) * len(neg))


def _auroc_no_ties(labels, scores):
    labels, scores = np.asarray(labels), np.asarray(scores, float)
    pos, neg = scores[labels == 1], scores[labels == 0]
    return (pos[:, None] > neg[None, :]).sum() / (len(pos) * len(neg))


def _auroc_fancy_index(labels, scores):
    scores = np.asarray(scores, float)
    pos, neg = scores[labels], scores[~labels]
    return ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) \
        / (len(pos) * len(neg))


register(Exercise(
    "00.image_auroc",
    title="Image AUROC by counting pairs",
    statement="""The image AUROC is the probability that a defective image scores higher
    than a good one. Write a function that takes the labels (1 for a defective image, 0 for
    a good one; integers or booleans) and the image scores, and returns the AUROC by
    counting: over every (defective, good) pair, count 1 when the defective image has the
    higher score and ½ when the scores are equal, then divide by the number of pairs.""",
    signature="my_auroc(labels, scores) -> float",
    reference=_auroc_reference, cases=_auroc_cases, hints=[_auroc_hints],
    solution=_auroc_solution, atol=1e-9, rtol=0.0,
    mistakes=[
        Mistake("counts the pairs where the good image is higher", _auroc_reversed,
                "1 − AUROC"),
        Mistake("a tie counts 0", _auroc_no_ties, "counts one half"),
        Mistake("selects with scores[labels]", _auroc_fancy_index, "scores[labels == 1]"),
    ]))


# -- 00.false_alarms ----------------------------------------------------------------------------

def _blobs(rng, n, size, density):
    """Random blobs: thresholded smoothed noise."""
    from scipy import ndimage
    noise = ndimage.gaussian_filter(rng.random((n, size, size)), (0, 1.2, 1.2))
    return noise > np.quantile(noise, 1 - density)


def _fa_reference(detections, labels):
    from ..metrics import false_alarms_per_image
    return false_alarms_per_image(detections, good=np.asarray(labels) == 0)


def _fa_cases(rng):
    det = _blobs(rng, 6, 24, 0.06)
    labels = np.array([0, 1, 0, 0, 1, 0], np.int64)
    yield Case("6 images (4 good) with scattered detections", (det, labels))
    diag = np.zeros((3, 12, 12), bool)
    for k in range(5):
        diag[0, 2 + k, 2 + k] = True                  # a diagonal line: one region
    diag[2, 8:10, 1:4] = True
    yield Case("pixels that touch only by a corner", (diag, np.array([0, 1, 0], np.int64)),
               hint="pixels that touch by a side or by a corner form one region "
                    "(8-connectivity): scipy.ndimage.label(mask, structure=np.ones((3, 3))) "
                    "or skimage.measure.label(mask, connectivity=2).")
    yield Case("nothing detected", (np.zeros((4, 10, 10), bool), np.array([0, 0, 1, 0])))
    only_bad = np.zeros((4, 10, 10), bool)
    only_bad[1, 2:5, 2:5] = only_bad[3, 6:8, 1:9] = True
    yield Case("detections on the defective images only",
               (only_bad, np.array([0, 1, 0, 1], np.int64)),
               hint="a detection on a defective image is not a false alarm: count on the "
                    "good images (labels == 0) only.")
    big = np.zeros((3, 16, 16), bool)
    big[0, 3:13, 2:8] = True                          # one region of 60 pixels
    yield Case("one large region on one of 3 good images", (big, np.zeros(3, np.int64)))


def _fa_hints(case, got, expected):
    from ..metrics import false_alarms_per_image
    det, labels = case.args
    g = float(np.asarray(got).reshape(()))
    labels = np.asarray(labels)
    good = labels == 0
    n_good = int(good.sum())
    if abs(g - det[good].sum() / n_good) < 1e-9 and abs(g - expected) > 1e-9:
        return ("you counted pixels: a false alarm is a connected region, however many "
                "pixels it has (scipy.ndimage.label or skimage.measure.label count them).")
    found = []          # the same number may come from two mistakes: name both
    if abs(g - false_alarms_per_image(det)) < 1e-9:
        found.append("count on the good images only (labels == 0), and divide by their "
                     "number.")
    if labels.dtype != bool and abs(g - false_alarms_per_image(det[~labels])) < 1e-9:
        found.append("~labels on 0/1 integers is -1/-2 (bitwise not), which picks the last "
                     "images, not the good ones: select the good images with labels == 0.")
    if found:
        return " Or: ".join(found)
    if n_good > 1 and abs(g - expected * n_good) < 1e-9:
        return f"that is the total: divide by the number of good images ({n_good})."
    return None


def _fa_solution(detections, labels):
    from scipy import ndimage
    good = np.asarray(labels) == 0
    counts = [ndimage.label(d, structure=np.ones((3, 3)))[1] for d in detections[good]]
    return float(np.mean(counts))


def _fa_pixels(detections, labels):
    good = np.asarray(labels) == 0
    return float(detections[good].sum() / good.sum())


def _fa_four(detections, labels):
    from scipy import ndimage
    good = np.asarray(labels) == 0
    return float(np.mean([ndimage.label(d)[1] for d in detections[good]]))


def _fa_all_images(detections, labels):
    from scipy import ndimage
    return float(np.mean([ndimage.label(d, structure=np.ones((3, 3)))[1] for d in detections]))


def _fa_bitwise_not(detections, labels):
    from scipy import ndimage
    return float(np.mean([ndimage.label(d, structure=np.ones((3, 3)))[1]
                          for d in detections[~labels]]))


register(Exercise(
    "00.false_alarms",
    title="False alarms: connected regions on good images",
    statement="""A false alarm is a connected region detected on a good image: pixels
    that touch by a side or by a corner (8-connectivity) belong to the same region, however
    many pixels it has. Write a function that takes the detections (bool, N × H × W) and
    the labels (N,: 0 for a good image, 1 for a defective one) and returns the mean number
    of false alarms per good image. scipy.ndimage.label or skimage.measure.label may label
    the regions.""",
    signature="my_false_alarms(detections, labels) -> float",
    reference=_fa_reference, cases=_fa_cases, hints=[_fa_hints], solution=_fa_solution,
    atol=1e-9, rtol=0.0,
    mistakes=[
        Mistake("counts pixels", _fa_pixels, "you counted pixels"),
        Mistake("4-connectivity", _fa_four, "8-connectivity"),
        Mistake("counts on every image", _fa_all_images, "good images only"),
        Mistake("selects the good images with ~labels", _fa_bitwise_not, "bitwise not"),
    ]))


# -- 00.iou ---------------------------------------------------------------------------------

def _iou_reference(truth, detection):
    from ..metrics import miou
    return miou(truth[None], detection[None])


def _square(size, y, x, side):
    m = np.zeros((size, size), bool)
    m[y:y + side, x:x + side] = True
    return m


def _iou_cases(rng):
    y, x = rng.integers(2, 8, 2)
    truth = _square(24, y, x, 8)
    yield Case("two overlapping squares", (truth, _square(24, y + 3, x + 2, 8)))
    yield Case("a detection inside the defect", (truth, _square(24, y + 2, x + 2, 4)))
    yield Case("the detection is the defect", (truth, truth.copy()))
    yield Case("a detection beside the defect", (truth, _square(24, y + 12, x + 12, 5)))
    blob = _blobs(rng, 1, 24, 0.2)[0]
    yield Case("a defect and a detection of any shape", (blob, _blobs(rng, 1, 24, 0.2)[0]))
    empty = np.zeros((24, 24), bool)
    yield Case("a good image and no detection", (empty, empty.copy()),
               hint="when there is nothing to find and nothing was detected, the IoU is 1 "
                    "(adkit's convention, metrics.miou(empty=1.0)): 0/0 needs its own rule.")


def _iou_hints(case, got, expected):
    truth, det = case.args
    g = float(np.asarray(got).reshape(()))
    inter = np.sum(truth & det)
    sizes = truth.sum() + det.sum()
    if sizes and abs(g - 2 * inter / sizes) < 1e-9 and abs(g - expected) > 1e-9:
        return ("that is the Dice coefficient 2|A∩B| / (|A| + |B|): the IoU divides the "
                "intersection by the union, |A∩B| / |A∪B|.")
    if truth.sum() and abs(g - inter / truth.sum()) < 1e-9:
        return "you divided by the area of the defect: divide by the union |A∪B|."
    return None


def _iou_solution(truth, detection):
    union = np.sum(truth | detection)
    return 1.0 if union == 0 else float(np.sum(truth & detection) / union)


def _iou_dice(truth, detection):
    total = truth.sum() + detection.sum()
    return 1.0 if total == 0 else float(2 * np.sum(truth & detection) / total)


def _iou_no_empty_rule(truth, detection):
    return float(np.sum(truth & detection) / np.sum(truth | detection))


register(Exercise(
    "00.iou",
    title="Intersection over union of one image",
    statement="""The IoU of a detection B and a ground truth A (two bool H × W masks) is
    |A∩B| / |A∪B|: 1 when they coincide, 0 when they do not touch. On a good image with
    nothing detected both are empty; adkit counts that as a perfect 1 (a good image left
    alone). Write a function that returns the IoU of one image.""",
    signature="my_iou(truth, detection) -> float",
    reference=_iou_reference, cases=_iou_cases, hints=[_iou_hints], solution=_iou_solution,
    atol=1e-9, rtol=0.0,
    mistakes=[
        Mistake("Dice instead of IoU", _iou_dice, "Dice coefficient"),
        Mistake("0/0 on a good image", _iou_no_empty_rule, "got NaN"),
    ]))
