"""Tests of the embedded synthetic dataset (adkit.data.synthetic)."""
import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from adkit import data
from adkit.data import synthetic as S
from adkit.data.synthetic.draw import fixed_ingredients
from adkit.data.synthetic.objects import render_object
from adkit.data.synthetic.pose import Pose

OFF = dict(exposure=False, pose=False, speckles=False, dust=False, noise=False)


def test_names_and_constants():
    assert S.CATEGORIES == ("pill", "nut", "bottle", "fabric", "tile")
    assert set(S.OBJECTS) | set(S.TEXTURES_SYN) == set(S.CATEGORIES)
    assert S.DEFECTS == ("crack", "scratch", "contamination", "missing", "stain")
    for c in S.CATEGORIES:
        assert f"synthetic/{c}" in data.available()


@pytest.mark.parametrize("category", S.CATEGORIES)
def test_load_conventions_and_labels(category):
    train, test = data.load(f"synthetic/{category}", n_train=4, n_test=10, size=64, seed=1)
    assert train.images.shape == (4, 64, 64, 3) and test.images.shape == (10, 64, 64, 3)
    for s in (train, test):
        assert s.images.dtype == np.float32 and s.masks.dtype == bool
        assert s.images.min() >= 0 and s.images.max() <= 1
    # train: all good
    assert train.labels.sum() == 0 and not train.masks.any()
    assert set(train.defect_types) == {"good"}
    # test: half defective, every defect type, masks non-empty exactly on defective images
    assert test.labels.sum() == 5
    assert set(test.defect_types) == {"good", *S.DEFECTS}
    np.testing.assert_array_equal(test.masks.reshape(10, -1).any(1), test.labels == 1)
    assert test.names[0] == "good_000" and "crack_000" in test.names
    assert len(set(test.names)) == 10
    for name, kind in zip(test.names, test.defect_types):
        assert name.startswith(kind + "_")


def test_defect_types_anomaly_ratio_and_order():
    _, test = S.load("tile", n_train=1, n_test=8, size=64, anomaly_ratio=0.75,
                     defects=["crack", "stain"])
    assert test.defect_types == ["good", "good"] + ["crack"] * 3 + ["stain"] * 3
    assert test.names[2:5] == ["crack_000", "crack_001", "crack_002"]
    _, test = S.load("pill", n_train=1, n_test=3, size=64, anomaly_ratio=0.01)
    assert test.labels.tolist() == [0, 0, 1]  # at least one defective
    _, test = S.load("pill", n_train=1, n_test=3, size=64, anomaly_ratio=0.0)
    assert test.labels.sum() == 0


def test_deterministic_and_seed_streams():
    a_tr, a_te = S.load("pill", n_train=3, n_test=4, size=64, seed=5)
    b_tr, b_te = S.load("pill", n_train=3, n_test=4, size=64, seed=5)
    np.testing.assert_array_equal(a_tr.images, b_tr.images)
    np.testing.assert_array_equal(a_te.images, b_te.images)
    np.testing.assert_array_equal(a_te.masks, b_te.masks)
    c_tr, c_te = S.load("pill", n_train=3, n_test=4, size=64, seed=6)
    assert np.abs(c_tr.images - a_tr.images).mean() > 1e-3
    # changing n_test leaves train alone
    d_tr, _ = S.load("pill", n_train=3, n_test=10, size=64, seed=5)
    np.testing.assert_array_equal(d_tr.images, a_tr.images)
    # train and test are different streams: no test image equals a train image
    assert not any(np.array_equal(t, g) for t in a_te.images for g in a_tr.images)
    # make: image i does not depend on n
    g3 = S.make("nut", 3, size=64, seed=2)
    g5 = S.make("nut", 5, size=64, seed=2)
    np.testing.assert_array_equal(g3.images, g5.images[:3])


@pytest.mark.parametrize("category", S.CATEGORIES)
def test_masks_are_exact_and_defects_visible(category):
    g = S.make(category, 5, size=96, seed=3, defective=True, noise=False, return_clean=True)
    assert g.defect_types == list(S.DEFECTS)
    for img, mask, clean, kind in zip(g.images, g.masks, g.clean, g.defect_types):
        # the defect is a region, not a speck, and not the whole image
        frac = mask.mean()
        assert 0.001 < frac < 0.06, (category, kind, frac)
        # outside the mask: bit-identical to the good rendering of the same image
        np.testing.assert_array_equal(img[~mask], clean[~mask])
        # inside: clearly visible
        change = np.abs(img[mask] - clean[mask]).max(-1).mean()
        assert change > 0.08, (category, kind, change)


def test_masks_exact_with_noise_and_clean_is_good_image():
    g = S.make("pill", 2, size=64, seed=4, defective=["good", "stain"], return_clean=True)
    np.testing.assert_array_equal(g.images[0], g.clean[0])
    m = g.masks[1]
    np.testing.assert_array_equal(g.images[1][~m], g.clean[1][~m])
    # the clean rendering of a defective image is what "good" would have drawn
    good = S.make("pill", 2, size=64, seed=4, defective=["good", "good"])
    np.testing.assert_array_equal(good.images[1], g.clean[1])


@pytest.mark.parametrize("category", S.CATEGORIES)
def test_all_knobs_off_gives_identical_images(category):
    g = S.make(category, 3, size=64, seed=0, **OFF)
    assert np.abs(g.images[0] - g.images[1]).max() < 1e-6
    assert np.abs(g.images[0] - g.images[2]).max() < 1e-6


@pytest.mark.parametrize("knob", ["exposure", "pose", "speckles", "dust", "noise"])
def test_each_knob_adds_variability(knob):
    category = "pill"
    kw = dict(OFF)
    kw[knob] = True
    g = S.make(category, 2, size=96, seed=0, **kw)
    diff = np.abs(g.images[0] - g.images[1])
    assert diff.max() > 0.05, knob
    if knob == "dust":  # on the background only
        R = render_object("pill", 96, Pose(0.0, 0.0, 0.0, 1.0), *fixed_ingredients("pill", 96)[:2])
        assert diff.max(-1)[R["cov"] > 0].max() == 0
    if knob == "noise":
        assert 0.01 < (g.images[0] - g.images[1]).std() / np.sqrt(2) < 0.02
    # a float strength is accepted, and 0 is off
    h = S.make(category, 2, size=96, seed=0, **{**kw, knob: 0.0})
    assert np.abs(h.images[0] - h.images[1]).max() < 1e-6
    s = S.make(category, 2, size=96, seed=0, **{**kw, knob: 0.5})
    assert np.abs(s.images[0] - s.images[1]).max() > 0


def test_knobs_are_independent_streams():
    a = S.make("nut", 2, size=64, seed=1, noise=False)
    b = S.make("nut", 2, size=64, seed=1, noise=False, dust=False)
    # turning dust off does not change the pose/exposure drawn
    R = render_object("nut", 64, Pose(0.0, 0.0, 0.0, 1.0), *fixed_ingredients("nut", 64)[:2])
    centre = R["sdf_px"] < -3
    assert np.abs(a.images[0][centre] - b.images[0][centre]).max() < 1e-6


def test_texture_pose_shifts_pattern():
    g = S.make("fabric", 2, size=64, seed=0, **{**OFF, "pose": True})
    assert np.abs(g.images[0] - g.images[1]).mean() > 0.03


def test_make_one():
    img, mask = S.make_one("bottle", "scratch", size=64, seed=3)
    assert img.shape == (64, 64, 3) and mask.shape == (64, 64) and mask.any()
    g = S.make("bottle", 1, size=64, seed=3, defective=["scratch"])
    np.testing.assert_array_equal(img, g.images[0])
    img, mask, clean = S.make_one("tile", size=64, return_clean=True)
    assert not mask.any() and np.array_equal(img, clean)


def test_bad_arguments():
    with pytest.raises(ValueError, match="pill"):
        S.load("pil")
    with pytest.raises(ValueError, match="unknown defect"):
        S.load("pill", defects=["dent"])
    with pytest.raises(ValueError, match="empty"):
        S.load("pill", defects=[])
    with pytest.raises(ValueError, match="anomaly_ratio"):
        S.load("pill", anomaly_ratio=1.5)
    with pytest.raises(ValueError, match="n_train"):
        S.load("pill", n_train=0)
    with pytest.raises(TypeError, match="n_test"):
        S.load("pill", n_test=2.5)
    with pytest.raises(ValueError, match="size"):
        S.load("pill", size=8)
    with pytest.raises(TypeError, match="exposure"):
        S.make("pill", exposure="yes")
    with pytest.raises(ValueError, match="noise"):
        S.make("pill", noise=-1)
    with pytest.raises(TypeError, match="seed"):
        S.make("pill", seed=1.5)
    with pytest.raises(ValueError, match="2 types"):
        S.make("pill", 3, defective=["good", "crack"])
    with pytest.raises(ValueError, match="unknown defect"):
        S.make_one("pill", "dent")


@pytest.mark.parametrize("category", ["pill", "tile"])
def test_defect_contrast_fades_defects_and_keeps_masks(category):
    kw = dict(size=96, seed=4, defective=True, return_clean=True, noise=False, exposure=False)
    full = S.make(category, 5, **kw)
    assert np.array_equal(S.make(category, 5, defect_contrast=1.0, **kw).images, full.images)
    diffs = {}
    for c in (1.0, 0.6, 0.3):
        g = S.make(category, 5, defect_contrast=c, **kw)
        np.testing.assert_array_equal(g.masks, full.masks)        # same places and shapes
        np.testing.assert_array_equal(g.clean, full.clean)        # same defect-free image
        np.testing.assert_array_equal(g.images[~g.masks], g.clean[~g.masks])
        diffs[c] = [np.abs(i - k)[m].mean() for i, k, m in zip(g.images, g.clean, g.masks)]
    for d_full, d_mid, d_low in zip(diffs[1.0], diffs[0.6], diffs[0.3]):
        assert d_full > d_mid > d_low > 0
        # the blend is linear in the contrast (no exposure, no noise; clipping aside)
        assert d_low == pytest.approx(0.3 * d_full, rel=0.05)
    _, test = S.load(category, n_train=1, n_test=4, size=64, defect_contrast=0.5)
    _, test1 = S.load(category, n_train=1, n_test=4, size=64)
    np.testing.assert_array_equal(test.masks, test1.masks)
    img, mask = S.make_one(category, "stain", size=64, defect_contrast=0.5)
    np.testing.assert_array_equal(mask, S.make_one(category, "stain", size=64)[1])
    for bad in (0, -0.1, 1.5):
        with pytest.raises(ValueError, match="defect_contrast"):
            S.load(category, defect_contrast=bad)
    with pytest.raises(TypeError, match="defect_contrast"):
        S.make(category, defect_contrast="low")


def test_pixel_zscore_baseline_floor_on_pill():
    """Per-pixel Gaussian (mean/std over train), max |z| after blur: image AUROC >= 0.9."""
    train, test = S.load("pill", n_train=30, n_test=20, size=128, seed=0,
                         pose=False, exposure=False)
    mu = train.images.mean(0)
    sd = train.images.std(0) + 0.02
    z = np.sqrt((((test.images - mu) / sd) ** 2).sum(-1))
    scores = [ndimage.gaussian_filter(m, 2).max() for m in z]
    assert roc_auc_score(test.labels, scores) >= 0.9


# -- semantic defects: a part of the object shifted, turned or absent ----------------------
@pytest.mark.parametrize("category", S.OBJECTS)
def test_semantic_defects_load_masks_and_determinism(category):
    assert f"synthetic/{category}/semantic" in data.available()
    _, test = data.load(f"synthetic/{category}/semantic", n_train=1, n_test=8, size=64,
                        seed=2)
    assert set(test.defect_types) == {"good", *S.SEMANTIC}
    assert not set(S.SEMANTIC) & set(S.DEFECTS)      # not in the default defect mix
    np.testing.assert_array_equal(test.masks.reshape(8, -1).any(1), test.labels == 1)
    _, again = S.load(category, n_train=1, n_test=8, size=64, seed=2, defects="semantic")
    np.testing.assert_array_equal(test.images, again.images)
    np.testing.assert_array_equal(test.masks, again.masks)
    _, other = S.load(category, n_train=1, n_test=8, size=64, seed=3, defects="semantic")
    assert not np.array_equal(test.masks, other.masks)


# the part each semantic defect moves lies within this radius (fraction of the image side)
# of the object's centre: the pill's mark, the nut (hole and hexagon), the bottle's lip
PART_RADIUS = {"pill": 0.22, "nut": 0.33, "bottle": 0.32}  # nut: outline+shadow; bottle: body 0.4


@pytest.mark.parametrize("category", S.OBJECTS)
@pytest.mark.parametrize("kind", S.SEMANTIC)
def test_semantic_defect_changes_only_the_part(category, kind):
    size = 96
    for seed in range(3):
        im, mask, clean = S.make_one(category, kind, size=size, seed=seed, pose=False,
                                     return_clean=True)
        good, _ = S.make_one(category, None, size=size, seed=seed, pose=False)
        assert mask.sum() >= 0.004 * size * size         # a visible part, not a few pixels
        np.testing.assert_array_equal(im[~mask], clean[~mask])   # untouched outside the mask
        assert np.abs(im - clean).max(-1)[mask].mean() > 0.05    # and changed inside it
        np.testing.assert_array_equal(clean, good)   # the same image without its defect
        y, x = np.nonzero(mask)
        r = np.hypot(x + 0.5 - size / 2, y + 0.5 - size / 2) / size
        assert r.max() < PART_RADIUS[category], (category, kind, seed, r.max())


def test_semantic_defects_need_an_object():
    with pytest.raises(ValueError, match="texture"):
        S.load("fabric", n_train=1, n_test=2, size=32, defects="semantic")
    with pytest.raises(ValueError, match="texture"):
        data.load("synthetic/tile/semantic", n_train=1, n_test=2, size=32)
    with pytest.raises(ValueError, match="defect set"):
        data.load("synthetic/pill/oops", n_train=1, n_test=2, size=32)
    with pytest.raises(ValueError, match="unknown defect type"):
        S.make("pill", 1, size=32, defective=["twisted"])


# -- the transistor: an object whose leads run out of the frame ---------------------------
def test_transistor_is_loaded_by_name_but_not_iterated():
    assert "transistor" in S.BORDER_OBJECTS and "transistor" in S.ALL_OBJECTS
    assert "transistor" not in S.CATEGORIES and "transistor" not in S.OBJECTS
    for name in ("synthetic/transistor", "synthetic/transistor/semantic"):
        assert name in data.available()


def test_transistor_load_masks_and_determinism():
    train, test = data.load("synthetic/transistor", n_train=3, n_test=10, size=64, seed=1)
    assert train.images.shape == (3, 64, 64, 3) and train.images.dtype == np.float32
    assert train.labels.sum() == 0 and not train.masks.any()
    assert set(test.defect_types) == {"good", *S.DEFECTS}
    np.testing.assert_array_equal(test.masks.reshape(10, -1).any(1), test.labels == 1)
    _, again = S.load("transistor", n_train=3, n_test=10, size=64, seed=1)
    np.testing.assert_array_equal(test.images, again.images)
    np.testing.assert_array_equal(test.masks, again.masks)
    g = S.make("transistor", 5, size=96, seed=3, defective=True, noise=False,
               return_clean=True)
    for img, mask, clean, kind in zip(g.images, g.masks, g.clean, g.defect_types):
        assert 0.001 < mask.mean() < 0.06, (kind, mask.mean())
        np.testing.assert_array_equal(img[~mask], clean[~mask])
        assert np.abs(img[mask] - clean[mask]).max(-1).mean() > 0.08, kind


@pytest.mark.parametrize("pose", [Pose(0.0, 0.0, 0.0, 1.0), Pose(0.03, -0.03, 0.087, 0.975),
                                  Pose(-0.03, -0.03, -0.087, 0.975)])
def test_transistor_leads_cross_the_bottom_border_only(pose):
    # the extreme poses of the transistor's jitter (half of the pose knob's): 3% shift,
    # 5 degrees, scale 0.975 -- its three leads always leave the frame at the bottom
    size = 96
    cov = render_object("transistor", size, pose, *fixed_ingredients("transistor", size)[:2])["cov"]
    bottom = cov[-1] > 0.5
    assert np.count_nonzero(np.diff(bottom.astype(int)) == 1) + bottom[0] == 3
    assert cov[0].max() == 0 and cov[:, 0].max() == 0 and cov[:, -1].max() == 0


@pytest.mark.parametrize("kind", S.SEMANTIC)
def test_transistor_semantic_defects_reach_the_border(kind):
    size = 64
    for seed in range(4):
        im, mask, clean = S.make_one("transistor", kind, size=size, seed=seed,
                                     return_clean=True)
        good, _ = S.make_one("transistor", None, size=size, seed=seed)
        np.testing.assert_array_equal(im[~mask], clean[~mask])
        np.testing.assert_array_equal(clean, good)
        assert mask.sum() >= 0.01 * size * size
        assert np.abs(im - clean).max(-1)[mask].mean() > 0.05
        # whole transistor moved, turned or absent, a lead bent or cut: what crosses the
        # bottom border changes (what a mirror padding of the border reflects)
        assert mask[-1].any(), (kind, seed)
