"""Gaussian model of deep features: OPCA, Ledoit-Wolf, Mahalanobis, AUROC floors.

Data sizes of the AUROC floors: every synthetic category at 128x128 px, 30 train
and 20 test images (10 good, 10 defective), seed 0. Measured there (image / pixel
AUROC): pill 1.00/0.99, nut 0.99/0.99, bottle 1.00/1.00, fabric 1.00/0.99,
tile 1.00/0.99.
"""
import numpy as np
import pytest
import torch
from sklearn.covariance import LedoitWolf

import adkit
from adkit.data.synthetic import CATEGORIES
from adkit.models import Gaussian
from adkit.models.gaussian import ledoit_wolf, mahalanobis, pca_components

torch.set_num_threads(2)


def test_ledoit_wolf_matches_scikit_learn_batched():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 15, 6)) * np.array([3, 1, 1, 0.2, 0.1, 2])
    x[1] *= 0.01
    cov, shrink = ledoit_wolf(x)
    for i in range(4):
        lw = LedoitWolf().fit(x[i])
        assert np.allclose(cov[i], lw.covariance_, atol=1e-12)
        assert abs(shrink[i] - lw.shrinkage_) < 1e-10
    # torch in, torch out
    ct, _ = ledoit_wolf(torch.from_numpy(x))
    assert isinstance(ct, torch.Tensor) and np.allclose(ct.numpy(), cov)


def test_mahalanobis_by_hand():
    mean = np.array([1.0, -2.0])
    cov = np.array([[4.0, 1.0], [1.0, 2.0]])
    x = np.array([[3.0, 0.0], [1.0, -2.0]])
    d = x[0] - mean
    expected = np.sqrt(d @ np.linalg.inv(cov) @ d)
    got = mahalanobis(x, mean, np.linalg.inv(cov))
    assert abs(got[0] - expected) < 1e-12 and got[1] == 0


def test_opposite_and_plain_pca_split_the_variance():
    rng = np.random.default_rng(0)
    std = np.array([10.0, 5.0, 3.0, 1.0, 0.5, 0.2])       # variances 100 25 9 1 .25 .04
    x = rng.standard_normal((20000, 6)) * std
    _, comp, lam = pca_components(x, 0.05, "opposite")
    # 0.04 + 0.25 + 1 = 1.29 <= 5% of 135.3 = 6.8 < 1.29 + 9
    assert comp.shape == (6, 3)
    assert np.allclose(np.abs(comp[3:, :]).max(0), 1, atol=0.02)   # axes 3, 4, 5
    assert np.all(np.diff(lam) > 0)
    _, comp_p, lam_p = pca_components(x, 0.05, "plain")
    assert comp_p.shape == (6, 3) and np.all(np.diff(lam_p) < 0)   # axes 0, 1, 2
    assert np.allclose(np.abs(comp_p[:3, :]).max(0), 1, atol=0.02)
    assert pca_components(x, 0.05, None)[1].shape == (6, 6)


def test_image_score_is_the_sum_of_stage_mahalanobis_distances():
    rng = np.random.default_rng(0)
    train = {8: rng.standard_normal((40, 6, 4, 4)), 16: rng.standard_normal((40, 10, 2, 2))}
    test = {8: rng.standard_normal((3, 6, 4, 4)), 16: rng.standard_normal((3, 10, 2, 2))}
    det = Gaussian(strides=(8, 16), map_strides=(8,), variance=0.2)
    det.fit_features_({s: torch.from_numpy(v).float() for s, v in train.items()})
    res = det.predict_features_({s: torch.from_numpy(v).float() for s, v in test.items()},
                                (32, 32))
    total = np.zeros(3)
    for s in (8, 16):
        tr = train[s].astype(np.float32).astype(np.float64).mean((2, 3))
        te = test[s].astype(np.float32).astype(np.float64).mean((2, 3))
        mu = tr.mean(0)
        lam, vec = np.linalg.eigh(np.cov(tr.T, bias=True))
        k = np.searchsorted(np.cumsum(lam), 0.2 * lam.sum(), side="right")
        v = vec[:, :k]
        prec = LedoitWolf(assume_centered=True).fit((tr - mu) @ v).precision_
        z = (te - mu) @ v
        total += np.sqrt(np.einsum("ni,ij,nj->n", z, prec, z))
    assert np.allclose(res.scores, total, rtol=1e-4)
    assert res.maps.shape == (3, 32, 32)
    # the map at a position is the Mahalanobis distance to that position's Gaussian
    det0 = Gaussian(strides=(8,), map_strides=(8,), sigma=0)
    det0.fit_features_({8: torch.from_numpy(train[8]).float()})
    r0 = det0.predict_features_({8: torch.from_numpy(test[8]).float()}, (4, 4))
    xs = train[8][:, :, 1, 2].astype(np.float32).astype(np.float64)
    cov = LedoitWolf().fit(xs).covariance_
    d = test[8][0, :, 1, 2].astype(np.float32) - xs.mean(0)
    assert abs(r0.maps[0, 1, 2] - np.sqrt(d @ np.linalg.inv(cov) @ d)) < 1e-3


def test_constructor_errors():
    with pytest.raises(ValueError, match="variance"):
        Gaussian(variance=0)
    with pytest.raises(ValueError, match="pca"):
        Gaussian(pca="reverse")
    with pytest.raises(ValueError, match="powers of two"):
        Gaussian(strides=(6,))
    with pytest.raises(ValueError, match="at least one"):
        Gaussian(strides=())


@pytest.mark.parametrize("category", CATEGORIES)
def test_gaussian_auroc_floor(category):
    train, test = adkit.data.load(f"synthetic/{category}", n_train=30, n_test=20, size=128,
                                  seed=0)
    res = Gaussian(progress=False).fit(train).predict(test)
    m = adkit.metrics.evaluate(res, test)
    assert m["image_auroc"] >= 0.9, m
    assert m["pixel_auroc"] >= 0.9, m


def test_save_load_round_trip(tmp_path):
    train, test = adkit.data.load("synthetic/nut", n_train=8, n_test=4, size=64, seed=0)
    det = Gaussian(progress=False, pca="plain").fit(train)
    res = det.predict(test)
    det2 = Gaussian.load(det.save(tmp_path / "g.npz"))
    res2 = det2.predict(test)
    assert det2.pca == "plain"
    assert np.array_equal(res.maps, res2.maps) and np.array_equal(res.scores, res2.scores)
