import numpy as np
import pytest
import torch

from adkit.models import AnomalyResult, Pipeline, ReferenceGaussian
from adkit.models.selfsim import SelfSimilarity, rethreshold, scale_log_nfa




def _texture(n, size=96, seed=0, jitter=3, noise=0.02):
    """Smooth coloured pattern with pose jitter and sensor noise (normal images)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    out = []
    for _ in range(n):
        dy, dx = rng.integers(-jitter, jitter + 1, 2)
        base = np.sin((xx + dx) / 5.0) * np.cos((yy + dy) / 7.0) * 0.2 + 0.5
        im = base[..., None] * np.array([1.0, 0.8, 0.6], np.float32)
        out.append(im + rng.normal(0, noise, im.shape))
    return np.clip(np.stack(out), 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def fitted():
    train = _texture(10, seed=0)
    test = _texture(4, seed=1)
    test[1, 40:52, 30:44] = np.clip(test[1, 40:52, 30:44] + 0.35, 0, 1)    # a bright stain
    test[3, 60:66, 60:80] = [0.1, 0.1, 0.1]                               # a dark scratch
    det = SelfSimilarity(progress=False).fit(train)
    return det, det.predict(test), test


def test_detects_defects_and_nothing_on_normal_images(fitted):
    det, res, test = fitted
    assert res.maps.shape == (4, 96, 96) and res.log_nfa.shape == (4, 96, 96)
    from adkit.metrics import false_alarms_per_image
    seg = res.segment(1.0)
    assert seg[1, 40:52, 30:44].mean() > 0.5
    assert seg[3, 60:66, 60:80].mean() > 0.5
    # ε = 1: about one false region per normal image (a few pixels), none at ε = 1e-2,
    # where both defects are still found
    assert false_alarms_per_image(seg[[0, 2]]) <= 3
    seg = res.segment(1e-2)
    assert seg[0].sum() == 0 and seg[2].sum() == 0
    assert seg[1, 40:52, 30:44].mean() > 0.5 and seg[3, 60:66, 60:80].mean() > 0.5
    # the image score (the paper's s_ra) ranks the defects first
    assert min(res.scores[1], res.scores[3]) > max(res.scores[0], res.scores[2])
    # the residual map is high on the defects
    assert res.maps[1, 40:52, 30:44].mean() > 5 * res.maps[0].mean()


def test_per_scale_residuals_and_multiscale_product(fitted):
    det, res, test = fitted
    assert res.extras["scales"] == (0, 1, 2)
    sizes = {0: 96, 1: 48, 2: 24}
    prod = np.ones((4, 96, 96), np.float32)
    for s, hs in sizes.items():
        r = res.extras[f"residual_s{s}"]
        f = res.extras[f"normalized_s{s}"]
        assert r.shape == f.shape == (4, hs, hs, 3)
        # f = |(r − med r)/(1.4826·MAD r)| per image and channel
        med = np.median(r[0], (0, 1))
        mad = 1.4826 * np.median(np.abs(r[0] - med), (0, 1))
        np.testing.assert_allclose(f[0], np.abs((r[0] - med) / mad), rtol=1e-3, atol=1e-3)
        t = torch.from_numpy(np.sqrt((r ** 2).sum(-1)))[:, None]
        prod *= torch.nn.functional.interpolate(t, size=(96, 96), mode="bilinear",
                                                align_corners=False)[:, 0].numpy()
    np.testing.assert_allclose(res.maps, prod, rtol=1e-4, atol=1e-9)
    # the background explains normal images: small residual at full scale
    assert np.abs(res.extras["residual_s0"][0]).mean() < 0.03


def test_log_nfa_is_the_vote_rule(fitted):
    """Empirical model: detected pixels are those whose vote statistic (the N_v-th
    smallest per-scale log NFA) is below one level, i.e. the vote map b^MS at a
    per-scale level ε' set by the measured law of the vote."""
    from adkit.contrario.gaussian import log_nfa_gaussian
    det, res, _ = fitted
    logs = np.stack([scale_log_nfa(res)[s] for s in (0, 1, 2)])
    # the score's vote map is the paper's: |(r − E r)/σ_r| standard normal, N = 3·Σ H_s·W_s
    n_g = 3 * (96 * 96 + 48 * 48 + 24 * 24)
    paper = []
    for s in (0, 1, 2):
        r = res.extras[f"residual_s{s}"]
        f = np.abs((r - r.mean((1, 2), keepdims=True)) / r.std((1, 2), keepdims=True)).max(-1)
        t = torch.from_numpy(log_nfa_gaussian(f, n_g))[:, None]
        paper.append(torch.nn.functional.interpolate(t, size=(96, 96), mode="bilinear",
                                                     align_corners=False)[:, 0].numpy())
    for eps in [1e-3, 1e-1, 1.0, 10.0]:
        for nv in (1, 2, 3):
            r2 = rethreshold(res, eps, nv)
            v = np.sort(logs, 0)[nv - 1]
            seg = r2.segment(eps)
            if seg.any() and (~seg).any():
                assert v[seg].max() <= v[~seg].min()
            votes = (np.stack(paper) < np.log10(eps)).sum(0) >= nv
            np.testing.assert_allclose(r2.scores, (votes * r2.maps).reshape(4, -1).sum(1),
                                       rtol=1e-4)
            model = res.extras["background"].vote_model((0, 1, 2), nv)
            assert r2.extras["n_tests"] == pytest.approx(model.n_tests)
    # the effective number of tests is below the number of pixels: neighbours are correlated
    assert res.extras["n_tests"] < 96 * 96


def test_gaussian_log_nfa_is_the_vote_rule():
    """The paper's model: N = 3·Σ_s H_s·W_s tests, |f| standard normal per scale."""
    train = _texture(10, seed=0)
    test = _texture(4, seed=1)
    det = SelfSimilarity(progress=False, nfa_model="gaussian", n_loo=4).fit(train)
    res = det.predict(test)
    n_tests = 3 * (96 * 96 + 48 * 48 + 24 * 24)
    assert res.extras["n_tests"] == n_tests
    assert res.log_nfa.max() <= np.log10(n_tests) + 1e-4
    logs = []
    for s in (0, 1, 2):
        f = res.extras[f"normalized_s{s}"].max(-1)
        from adkit.contrario.gaussian import log_nfa_gaussian
        t = torch.from_numpy(log_nfa_gaussian(f, n_tests))[:, None]
        logs.append(torch.nn.functional.interpolate(t, size=(96, 96), mode="bilinear",
                                                    align_corners=False)[:, 0].numpy())
    logs = np.stack(logs)
    for eps in [1e-5, 1e-2, 1.0]:
        for nv in (1, 2, 3):
            r2 = rethreshold(res, eps, nv)
            votes = (logs < np.log10(eps)).sum(0) >= nv
            np.testing.assert_array_equal(r2.segment(eps), votes)
            np.testing.assert_allclose(r2.scores, (votes * r2.maps).reshape(4, -1).sum(1),
                                       rtol=1e-5)


def test_rethreshold_matches_predict_and_is_monotone(fitted):
    det, res, _ = fitted
    same = det.rethreshold(res)
    np.testing.assert_array_equal(same.log_nfa, res.log_nfa)
    np.testing.assert_array_equal(same.scores, res.scores)
    counts = [rethreshold(res, eps, 2).segment(eps).sum() for eps in [1e-5, 1e-2, 1, 100]]
    assert counts == sorted(counts) and counts[-1] > counts[0]
    one = rethreshold(res, 1.0, 1, scales=(0,))
    assert one.extras["used_scales"] == (0,)
    # one scale, one vote: the vote statistic is that scale's own NFA, re-measured
    assert one.extras["n_tests"] == pytest.approx(
        res.extras["background"].vote_model((0,), 1).n_tests)
    with pytest.raises(ValueError, match="n_votes"):
        rethreshold(res, 1.0, 3, scales=(0, 1))
    with pytest.raises(ValueError, match="were not computed"):
        rethreshold(res, 1.0, 1, scales=(3,))
    with pytest.raises(ValueError, match="SelfSimilarity"):
        rethreshold(AnomalyResult(np.zeros((1, 8, 8)), np.zeros(1)), 1.0, 1)
    # results can be indexed and keep what rethreshold needs
    sub = rethreshold(res[1:3], 1.0, 2)
    np.testing.assert_array_equal(sub.segment(1.0), res.segment(1.0)[1:3])


def test_tree_fallback_finds_patches_outside_the_window():
    from scipy import ndimage
    rng = np.random.default_rng(3)
    field = ndimage.gaussian_filter(rng.random((64, 64, 3)), (2, 2, 0))
    field = (field - field.mean()) / field.std() * 0.1 + 0.5
    train = np.clip(field[None] + rng.normal(0, 0.01, (6, 64, 64, 3)), 0, 1).astype(np.float32)
    # the same content moved by 15 px: outside the ±6 px local window at scale 0
    moved = np.roll(field, (15, 15), axis=(0, 1))
    moved = np.clip(moved + rng.normal(0, 0.01, moved.shape), 0, 1).astype(np.float32)
    kw = dict(scales=(0,), n_votes=1, progress=False, h=0.02)
    with_tree = SelfSimilarity(fallback=3.0, **kw).fit(train)
    without = SelfSimilarity(fallback=0.0, **kw).fit(train)
    r_tree = with_tree.residuals(moved)[0][0]
    r_local = without.residuals(moved)[0][0]
    assert np.abs(r_tree).mean() < 0.5 * np.abs(r_local).mean()
    res = with_tree.predict(moved)
    assert res.extras["n_fallback"][0, 0] > 0


def test_save_load_round_trip(fitted, tmp_path):
    det, res, test = fitted
    back = SelfSimilarity.load(det.save(tmp_path / "ss"))
    assert back.get_params() == det.get_params()
    np.testing.assert_array_equal(back.h_, det.h_)
    again = back.predict(test)
    np.testing.assert_allclose(again.maps, res.maps, rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(again.segment(1.0), res.segment(1.0))


def test_reproducible(fitted):
    det, res, test = fitted
    again = SelfSimilarity(progress=False).fit(_texture(10, seed=0)).predict(test)
    np.testing.assert_array_equal(again.maps, res.maps)


def test_errors_speak_to_the_student():
    with pytest.raises(ValueError, match="n_votes"):
        SelfSimilarity(scales=2, n_votes=3)
    with pytest.raises(ValueError, match="scales"):
        SelfSimilarity(scales=(0, -1))
    with pytest.raises(ValueError, match="eta"):
        SelfSimilarity(eta=1.5)
    with pytest.raises(ValueError, match="smaller than patch_size"):
        SelfSimilarity(scales=4).fit(_texture(3, size=32))
    with pytest.raises(ValueError, match="at least 2"):
        SelfSimilarity().fit(_texture(1))


# -- acceptance on the embedded data: N2N normalization helps, both beat the reference --
@pytest.fixture(scope="module")
def pill():
    """Speckled pills with subtle defects, the situation of the paper's pill experiment.

    Exposure and pose are off: they are lesson 01's normalization (midway, alignment),
    which the paper applies before N2N. The speckles (normal variability, strength 2.5)
    are strong and the defects faint (``defect_contrast=0.2``), so the speckles hide
    them from the bare detector; at full contrast every method reaches image AUROC 1.
    Thin and structural defects (crack, scratch, missing chip): stains are smooth
    colour changes that the per-pixel Gaussian of aligned parts models as well as the
    patch detector, and contamination is found by every method (AUROC 1 for all three).
    """
    from adkit.data import load
    return load("synthetic/pill", n_train=12, n_test=30, size=96, seed=2, exposure=False,
                pose=False, speckles=2.5, defect_contrast=0.2,
                defects=["crack", "scratch", "missing"])


def test_n2n_improves_selfsim_on_speckled_pills(pill):
    from adkit.metrics import image_auroc, pixel_auroc
    from adkit.normalize import N2N
    train, test = pill
    good = test.labels == 0
    threads = torch.get_num_threads()
    torch.set_num_threads(1)        # the same arithmetic on every machine
    try:
        bare = SelfSimilarity(progress=False).fit(train.images).predict(test.images)
        n2n = Pipeline(steps=[N2N(pairing="images", epochs=40, crop=64, progress=False,
                                  seed=0)],
                       detector=SelfSimilarity(progress=False))
        norm = n2n.fit(train.images).predict(test.images)
    finally:
        torch.set_num_threads(threads)
    ref = ReferenceGaussian().fit(train.images).predict(test.images)
    a_bare, a_n2n = image_auroc(test.labels, bare.scores), image_auroc(test.labels, norm.scores)
    a_ref = image_auroc(test.labels, ref.scores)
    # the acceptance, the paper's Table 2 on the embedded data. Measured here (1 thread):
    # 0.973 > 0.871 > 0.747; data seeds 0, 1, 3 keep the strict order. The N2N gain
    # depends on the network's training (N2N seeds 1-3 give 0.88-0.98), so its margin
    # leaves room for another CPU's rounding.
    assert a_n2n > a_bare + 0.03, (a_n2n, a_bare)
    assert a_bare > a_ref + 0.05, (a_bare, a_ref)
    assert a_n2n > a_ref + 0.1, (a_n2n, a_ref)
    # fewer false-alarm pixels on normal pills at ε = 1: the speckles are gone
    assert norm.segment(1.0)[good].sum() < bare.segment(1.0)[good].sum()
    # both beat the per-pixel Gaussian reference in pixel AUROC too
    p_ref = pixel_auroc(test.masks, ref.maps)
    assert pixel_auroc(test.masks, bare.maps) > p_ref + 0.05
    assert pixel_auroc(test.masks, norm.maps) > p_ref + 0.05


# -- ε means ε: the measured background model (issue 14) --------------------------------------
@pytest.mark.parametrize("name", ["synthetic/pill", "textures/brick"])
def test_own_nfa_gives_about_eps_false_regions_on_unseen_normal_images(name):
    """At ε = 1, about one false region (8-connected) per normal image the method did not
    see: within a factor 3, with the default (leave-one-out) background model. Measured
    at these settings (seeds 0, 1): pill 1.25, 0.83; brick 1.67, 0.83; at 128 px with 40
    training images the eight embedded datasets give 0.23-1.75 (grass the lowest)."""
    from adkit.data import load
    from adkit.metrics import false_alarms_per_image
    train, test = load(name, n_train=16, n_test=24, size=96, seed=0, anomaly_ratio=0.0)
    det = SelfSimilarity(progress=False).fit(train.images)
    res = det.predict(test.images)
    fa = false_alarms_per_image(res.segment(1.0))
    assert 1 / 3 <= fa <= 3, fa
    # the slider moves the count with ε: fewer at 0.1, more at 10 (rethreshold only)
    lo = false_alarms_per_image(rethreshold(res, 0.1, det.n_votes).segment(0.1))
    hi = false_alarms_per_image(rethreshold(res, 10.0, det.n_votes).segment(10.0))
    assert lo < fa < hi, (lo, fa, hi)
    # correlated neighbouring pixels: far fewer effective tests than pixels
    assert res.extras["n_tests"] < 96 * 96


def test_inverted_file_fallback_and_its_round_trip(monkeypatch, tmp_path):
    """Above FLAT_MAX training patches the global search is an inverted file (faiss
    IVF): it is fitted, used (the fallback rate is reported) and saved with its
    centroids, so that the loaded model gives the same maps."""
    import adkit.models.selfsim as ss
    monkeypatch.setattr(ss, "FLAT_MAX", 2000)
    train = _texture(10, size=64, seed=0)
    test = _texture(2, size=64, seed=1)
    test[0, 20:30, 20:30] = 0.9
    det = SelfSimilarity(progress=False, scales=(0, 1), n_votes=1).fit(train)
    assert det._index[0].centroids is not None                  # 10·29² > 2000 patches
    res = det.predict(test)
    assert res.extras["fallback_rate"].shape == (2, 2)
    assert 0 < res.extras["fallback_rate"][0, 0] <= 1
    back = SelfSimilarity.load(det.save(tmp_path / "ivf"))
    np.testing.assert_array_equal(back._index[0].centroids, det._index[0].centroids)
    np.testing.assert_allclose(back.predict(test).maps, res.maps, rtol=1e-5, atol=1e-9)
