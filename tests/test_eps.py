"""ε means ε for every method (issue 14): at ε = 1, about one false region per good image.

The acceptance test of the promise that ``result.segment(eps)`` keeps regions that appear
about ε times per *normal* image, whatever the method: over every method and every
embedded synthetic category, the measured number of false regions (8-connected
components, :func:`adkit.metrics.false_alarms_per_image`) per good test image at ε = 1
lies within a factor 3 of 1, on good images the method did not see (neither fitted nor
calibrated on). Self-similarity and U-Flow are judged on their own NFA (their background
model); the reference, the Gaussian, kNN and AESc on the NFA that
:class:`adkit.models.Calibrated` measures on held-out training images.

Measured (64 px, data seed 0, ε = 1; 57 s of CPU for the 30 fits): reference 0.42-1.33,
self-similarity 1.29-2.04, Gaussian 0.75-1.33, kNN 0.46-1.04, AESc 0.71-1.46 false regions
per good image over the five categories.

U-Flow (its default ``nfa="measured"``): 1.0-1.62 false regions per good image at
ε = 1 over the five categories (0-0.29 at ε = 0.1, 5.5-7.4 at ε = 10). Its region
test alone is a union bound over every polyomino of every size (``nfa="held-out"``:
0-0.04 false regions at ε = 1, 0-0.21 at ε = 10, at most ε rather than about ε); the
default measures the number of tests on its held-out training images (leave one
image out: the shift δ = 1.8-2.0 of log10 N_tests for which they have one false
region each at ε = 1), divides each latent map by its own 0.9 quantile, and draws
regions at the pixel level, which keeps the bottle's defective-only mIoU at ε = 1
above the oracle's (tests/test_uflow.py). A slider that moves is asserted too (some
false regions at an ε ≤ 1e3).

The settings are small (64 px, 45 training images, 12 for self-similarity, and 24 good
test images, few epochs) so that the whole file stays affordable in CI: the promise is
about the threshold, not about the quality of the maps, and it must hold for any map a
user's settings give.
"""
import warnings

import numpy as np
import pytest
import torch

from adkit import metrics, models
from adkit.data import load
from adkit.data.synthetic import CATEGORIES

SIZE, N_TRAIN, N_GOOD = 64, 45, 24
#: self-similarity's fit runs the method once per training image (its leave-one-out
#: background, n_loo of them): 12 training images keep it to a few seconds
N_TRAIN_SELFSIM = 12
BAND = (1 / 3, 3.0)
#: held out by Calibrated: 15 of the 45 training images, so 1/n < ε = 1 is measured
HOLDOUT = 1 / 3


def _detector(method: str):
    """The detector of ``method`` as the test judges it: own NFA or calibrated."""
    if method == "selfsim":
        return models.SelfSimilarity(progress=False)
    if method == "uflow":
        return models.UFlow(size=SIZE, epochs=4, progress=False, seed=0)
    inner = {
        "reference": lambda: models.ReferenceGaussian(),
        "gaussian": lambda: models.Gaussian(progress=False),
        "knn": lambda: models.KNN(progress=False),
        # explicit small parameters (AESc's own defaults train for much longer). With 3
        # epochs its residual maps give a few held-out images 5-9 false regions and the
        # others none: the mean over 15 held-out images then rests on 2 of them (measured on
        # fabric: 0.08 false region per good test image at ε = 1); 10 epochs: 0.71
        # width 0.5 of the paper's base 16 (8 to 256 channels); no images held out for
        # early stopping: Calibrated holds out its own
        "aesc": lambda: models.AESc(width=0.5, epochs=10, batch_size=8, n_samples=2,
                                    validation_fraction=0.0, lr_patience=10, seed=0,
                                    progress=False),
    }[method]()
    return models.Calibrated(inner, holdout=HOLDOUT)


METHODS = ("reference", "selfsim", "gaussian", "knn", "uflow", "aesc")


@pytest.fixture(scope="module")
def datasets():
    """Training images and good test images of every synthetic category, all nuisances
    on (exposure, pose, speckles, dust, noise): the normal variability is the point."""
    out = {}
    for cat in CATEGORIES:
        train, test = load(f"synthetic/{cat}", n_train=N_TRAIN, n_test=N_GOOD, size=SIZE,
                           seed=0, anomaly_ratio=0.0)
        assert (test.labels == 0).all()
        out[cat] = train, test
    return out


@pytest.fixture(scope="module")
def counts(datasets):
    """False regions per good test image at ε = 0.1, 1, 10 for every (method, category):
    one fit each, shared by the assertions below."""
    out = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)       # small networks: as fast, and steady on a busy machine
    try:
        _fit_all(datasets, out)
    finally:
        torch.set_num_threads(threads)
    return out


def _fit_all(datasets, out):
    for method in METHODS:
        for cat, (train, test) in datasets.items():
            det = _detector(method)
            if method == "selfsim":
                train = train[:N_TRAIN_SELFSIM]
            with warnings.catch_warnings():
                # small data: the backbones' and the flow's notices are not the point here
                warnings.simplefilter("ignore", UserWarning)
                det.fit(train)
                res = det.predict(test)
            fa = metrics.false_alarms_vs_eps(res.log_nfa, [0.1, 1.0, 10.0])
            out[method, cat] = fa, res


@pytest.mark.parametrize("method", METHODS)
def test_eps_one_gives_about_one_false_region_per_good_image(counts, method):
    """For each category: false regions per unseen good image at ε = 1 within [1/3, 3].
    Calibrated results say how many images measured their curve (1/n ≤ 0.1: ε = 1 is
    measured, not extrapolated); own-NFA results are not calibrated."""
    report = {cat: counts[method, cat][0] for cat in CATEGORIES}
    missed = {cat: f"{fa[1]:.2f}" for cat, fa in report.items()
              if not BAND[0] <= fa[1] <= BAND[1]}
    assert not missed, (f"{method}: false regions per good image at ε = 1 outside "
                        f"{BAND} on {missed}; all (ε = 0.1, 1, 10): "
                        f"{ {c: np.round(v, 2).tolist() for c, v in report.items()} }")
    for cat in CATEGORIES:
        res = counts[method, cat][1]
        if method in ("selfsim", "uflow"):
            assert "n_calibration_images" not in res.extras       # its own NFA
        else:
            assert res.extras["n_calibration_images"] == 15 and not res.extrapolated(1.0)


@pytest.mark.parametrize("method", METHODS)
def test_eps_moves_the_count(counts, method):
    """ε is a dial: fewer false regions at ε = 0.1 than at 10, on the pooled categories
    (a threshold that does not move with ε would pass the band by luck only)."""
    lo = np.mean([counts[method, c][0][0] for c in CATEGORIES])
    hi = np.mean([counts[method, c][0][2] for c in CATEGORIES])
    assert lo < hi, (method, lo, hi)


def test_uflow_slider_reaches_false_regions_below_eps_1e3(counts):
    """U-Flow's own NFA is not silent for every ε (the paper's test gave no false region
    up to ε = 1e40): on the pooled categories some good image has a false region at an
    ε ≤ 1e3."""
    hits = []
    for cat in CATEGORIES:
        res = counts["uflow", cat][1]
        fa = metrics.false_alarms_vs_eps(res.log_nfa, [10.0, 100.0, 1000.0])
        hits.append(fa[-1])
    assert max(hits) > 0, hits
