"""Gaussian model of deep features: OPCA, Ledoit-Wolf, Mahalanobis, AUROC floors.

Data sizes of the AUROC floors: every synthetic category at 128x128 px, 30 train
and 20 test images (10 good, 10 defective), seed 0. Measured there (image / pixel
AUROC): pill 1.00/0.997, nut 0.99/0.994, bottle 1.00/0.995, fabric 1.00/0.995,
tile 1.00/0.995 (the PaDiM map of issue 13; the former per-stage Ledoit-Wolf map:
0.994, 0.990, 0.995, 0.993, 0.994).
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
    xs = train[8][:, :, 1, 2].astype(np.float32).astype(np.float64)
    d = test[8][0, :, 1, 2].astype(np.float32) - xs.mean(0)
    for pixel_cov, cov in (("ledoit_wolf", LedoitWolf().fit(xs).covariance_),
                           ("regularized", np.cov(xs.T) + 0.01 * np.eye(6))):
        det0 = Gaussian(strides=(8,), map_strides=(8,), sigma=0, pixel_cov=pixel_cov)
        det0.fit_features_({8: torch.from_numpy(train[8]).float()})
        r0 = det0.predict_features_({8: torch.from_numpy(test[8]).float()}, (4, 4))
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


# -- the map against a plain PaDiM on the same features (issue 13) -------------------
def padim_maps(train_feats, test_feats, size, strides=(4, 8, 16), reg=0.01, sigma=4.0):
    """Plain PaDiM (Defard et al. 2021), written out: the stages upsampled (nearest) to
    the finest grid and concatenated, one Gaussian per position with covariance
    np.cov + 0.01 I, Mahalanobis map, bilinear upsampling to the image, blur std 4."""
    import torch.nn.functional as F
    from adkit.backbone import blur_maps

    def embed(feats):
        h, w = feats[strides[0]].shape[2:]
        return torch.cat([F.interpolate(feats[s].float(), size=(h, w), mode="nearest")
                          for s in strides], 1).double()
    x, y = embed(train_feats), embed(test_feats)
    n, c, h, w = x.shape
    x = x.permute(2, 3, 0, 1).reshape(h * w, n, c)
    mean = x.mean(1)
    xc = x - mean[:, None]
    cov = xc.transpose(1, 2) @ xc / (n - 1) + reg * torch.eye(c, dtype=torch.float64)
    prec = torch.from_numpy(np.linalg.inv(cov.numpy()))   # numpy: torch's batched inv
                                                          # fails on MKL here
    d = y.permute(2, 3, 0, 1).reshape(h * w, len(y), c) - mean[:, None]
    q = torch.einsum("pnc,pcd,pnd->np", d, prec, d).clamp_min(0).sqrt()
    up = F.interpolate(q.reshape(len(y), 1, h, w).float(), size=(size, size),
                       mode="bilinear", align_corners=False)[:, 0]
    return blur_maps(up, sigma).numpy()


SMALL = dict(n_train=30, n_test=20, size=64, seed=0)


@pytest.fixture(scope="module")
def small_features():
    """Features of every embedded category at 64 px, 30 train / 20 test."""
    out = {}
    for cat in CATEGORIES:
        train, test = adkit.data.load(f"synthetic/{cat}", **SMALL)
        g = Gaussian(progress=False)
        out[cat] = (g.features(train.images), g.features(test.images), test)
    return out


def test_padim_of_the_test_is_padim():
    # on random features the PaDiM written above and Gaussian's default map agree
    rng = np.random.default_rng(0)
    shapes = {4: (5, 8, 8), 8: (7, 4, 4), 16: (9, 2, 2)}
    tr = {s: torch.from_numpy(rng.standard_normal((12,) + v)).float() for s, v in shapes.items()}
    te = {s: torch.from_numpy(rng.standard_normal((3,) + v)).float() for s, v in shapes.items()}
    det = Gaussian(strides=(16,), pca=None)
    det.fit_features_(tr)
    got = det.predict_features_(te, (32, 32)).maps
    assert np.allclose(got, padim_maps(tr, te, 32), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("category", CATEGORIES)
def test_default_map_reaches_padim(small_features, category):
    # measured at 64 px, 30/20, pixel AUROC (Gaussian default / PaDiM / former default
    # map_concat=False, pixel_cov="ledoit_wolf" / map_pca="opposite"):
    # pill .9906/.9907/.9839/.9907, nut .9846/.9846/.9757/.9846,
    # bottle .9761/.9761/.9727/.9761, fabric .9752/.9752/.9637/.9752,
    # tile .9807/.9807/.9803/.9807 (the default computes PaDiM; the 1e-4 is the
    # float32 storage of its precision matrices)
    from adkit.metrics import pixel_auroc
    ftr, fte, test = small_features[category]
    det = Gaussian(progress=False)
    det.fit_features_(ftr)
    ours = pixel_auroc(test.masks, det.predict_features_(fte, (64, 64)).maps)
    ref = pixel_auroc(test.masks, padim_maps(ftr, fte, 64))
    assert ours >= ref - 1e-4, (ours, ref)
    # per-position opposite PCA is a working map variant
    opca = Gaussian(progress=False, map_pca="opposite")
    opca.fit_features_(ftr)
    assert pixel_auroc(test.masks, opca.predict_features_(fte, (64, 64)).maps) >= 0.95


def _few_images_stand_in(seed=0, n=30, size=64):
    """Features that reproduce the real images' failure of the former map: n = 30
    training images, C = 24 / 40 / 112 channels, normal features varying along a few
    large nuisance directions (std 3) plus a small noise (std 0.05); the defect (a
    square of 16 px) moves the features by 0.5 off those directions. Ledoit-Wolf
    (ρ ≈ 1 here) models the off-span directions with about the mean variance and
    misses the defect; S + 0.01 I sees it."""
    rng = np.random.default_rng(seed)
    chans = {4: 24, 8: 40, 16: 112}
    basis = {s: rng.standard_normal((4, c)) for s, c in chans.items()}

    def draw(k, defect):
        feats = {}
        for s, c in chans.items():
            g = size // s
            nuis = rng.standard_normal((k, g, g, 4)) * 3 @ basis[s]
            f = nuis + 0.05 * rng.standard_normal((k, g, g, c))
            if defect:
                a, b = 24 // s, max(1, 40 // s)
                f[:, a:b, a:b] += 0.5 * rng.standard_normal((k, 1, 1, c)) / np.sqrt(c) * 3
            feats[s] = torch.from_numpy(f.transpose(0, 3, 1, 2).copy()).float()
        return feats
    masks = np.zeros((10, size, size), bool)
    masks[5:, 24:40, 24:40] = True
    good, bad = draw(5, False), draw(5, True)
    test = {s: torch.cat([good[s], bad[s]]) for s in chans}
    return draw(n, False), test, masks


def test_default_map_sees_what_ledoit_wolf_shrinks_away():
    from adkit.metrics import pixel_auroc
    train, test, masks = _few_images_stand_in()
    auc = {}
    for name, kw in {"default": {}, "former": dict(map_concat=False, pixel_cov="ledoit_wolf"),
                     "opca": dict(map_pca="opposite")}.items():
        det = Gaussian(strides=(16,), pca=None, **kw)
        det.fit_features_(train)
        auc[name] = pixel_auroc(masks, det.predict_features_(test, (64, 64)).maps)
    # measured: default 0.993, opca 0.993, former 0.600 (concatenated with Ledoit-Wolf:
    # 0.541, per-stage averaged with S + 0.01 I: 0.997: the shrinkage is the cause)
    assert auc["default"] >= 0.95, auc
    assert auc["opca"] >= 0.95, auc
    assert auc["former"] <= auc["default"] - 0.2, auc


def test_opposite_pca_per_position_is_the_distance_to_the_training_span():
    # n = 6 < C = 10: the per-position OPCA score is |x - its projection on the
    # affine span of the training vectors| / sqrt(reg) (plus the barely varying
    # directions OPCA keeps, none here: 5% of the variance holds no nonzero one)
    rng = np.random.default_rng(1)
    tr = rng.standard_normal((6, 10, 1, 1)) * 3
    te = rng.standard_normal((2, 10, 1, 1))
    det = Gaussian(strides=(4,), map_strides=(4,), sigma=0, pca=None, map_pca="opposite",
                   variance=1e-6)
    det.fit_features_({4: torch.from_numpy(tr).float()})
    got = det.predict_features_({4: torch.from_numpy(te).float()}, (1, 1)).maps[:, 0, 0]
    x = tr[:, :, 0, 0].astype(np.float32).astype(np.float64)
    mu = x.mean(0)
    u = np.linalg.svd(x - mu, full_matrices=False)[2][:5]         # span of the 6 vectors
    y = te[:, :, 0, 0].astype(np.float32) - mu
    off = y - (y @ u.T) @ u
    assert np.allclose(got, np.linalg.norm(off, axis=1) / np.sqrt(0.01), rtol=1e-3)
