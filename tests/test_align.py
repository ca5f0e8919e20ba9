import numpy as np
import pytest
from skimage import draw, filters

from adkit.normalize import Align, align_affine, warp_affine
from adkit.normalize.align import invert_affine, medoid_index

N = 128


def _object(n=N):
    """A coloured object on a plain background, with some inner structure."""
    im = np.full((n, n, 3), 0.2, np.float32)
    rr, cc = draw.ellipse(n * 0.5, n * 0.45, n * 0.2, n * 0.3, shape=(n, n))
    im[rr, cc] = [0.8, 0.7, 0.6]
    rr, cc = draw.rectangle((int(n * .35), int(n * .3)), (int(n * .45), int(n * .5)),
                            shape=(n, n))
    im[rr, cc] = [0.3, 0.1, 0.1]
    rr, cc = draw.disk((n * 0.6, n * 0.6), n * 0.06, shape=(n, n))
    im[rr, cc] = [0.1, 0.5, 0.2]
    return filters.gaussian(im, 1.0, channel_axis=-1).astype(np.float32)


def _similarity(deg, tx, ty, scale, n=N):
    """Rotation + scale about the centre, then translation (pixels), as a (2, 3) matrix."""
    c, th = (n - 1) / 2, np.deg2rad(deg)
    a = scale * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    t = np.array([c, c]) - a @ [c, c] + [tx, ty]
    return np.hstack([a, t[:, None]])


def _corner_error(m1, m2, n=N):
    corners = np.array([[0, 0, 1], [n - 1, 0, 1], [0, n - 1, 1], [n - 1, n - 1, 1.0]]).T
    return np.linalg.norm((m1 - m2) @ corners, axis=0).mean()


def _moved(ref, m):
    """The image that shows ``ref`` through the warp m: image(m x) = ref(x)."""
    return warp_affine(ref, invert_affine(m))


@pytest.mark.parametrize("deg,tx,ty,scale", [(10, 12.8, -12.8, 1.1), (-10, -12.8, 9, 0.9),
                                             (4, 3.3, 6.1, 1.0)])
def test_recovers_a_known_affine_warp_to_subpixel_accuracy(deg, tx, ty, scale):
    ref = _object()
    m_true = _similarity(deg, tx, ty, scale)
    img = _moved(ref, m_true) * 0.85 + 0.03      # also a change of exposure
    m, warped, info = align_affine(img, ref)
    assert info["converged"] and info["iterations"] >= 1
    assert _corner_error(m, m_true) < 0.5
    inner = (slice(16, -16), slice(16, -16))
    assert np.abs(warped[inner] - (ref[inner] * 0.85 + 0.03)).mean() < 0.01


def test_identity_on_identical_images_and_six_vector():
    ref = _object()
    m, warped, info = align_affine(ref, ref, loss="huber")
    # float32 sampling: the identity up to 1e-4 pixel
    np.testing.assert_allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-4)
    np.testing.assert_allclose(warped, ref, atol=1e-4)
    assert info["converged"] and info["error"] < 1e-4 and not info["lost"]
    p = np.array([0.01, -0.02, 0.03, 0.0, 2.0, -1.0])
    np.testing.assert_allclose(warp_affine(ref, p),
                               warp_affine(ref, [[1.01, 0.03, 2.0], [-0.02, 1.0, -1.0]]))


def test_robust_loss_ignores_an_occluding_blob():
    ref = _object()
    m_true = _similarity(-6, -8, 9, 0.93)
    img = _moved(ref, m_true)
    rr, cc = draw.disk((40, 80), 14, shape=(N, N))
    img[rr, cc] = [0.95, 0.95, 0.1]
    m_l2, _, _ = align_affine(img, ref, loss="l2")
    m_rob, _, info = align_affine(img, ref, loss="lorentzian")
    assert _corner_error(m_l2, m_true) > 2          # the blob drags the quadratic loss
    assert _corner_error(m_rob, m_true) < 0.5 and info["converged"]


def test_align_transform_and_inverse_maps(tmp_path):
    ref = _object()
    warps = [_similarity(d, tx, ty, s) for d, tx, ty, s in
             [(0, 0, 0, 1), (5, 4, -3, 1.02), (-4, -5, 2, 0.98), (2, 1, 5, 1.0), (-7, 6, 6, 1.04)]]
    images = np.stack([_moved(ref, m) for m in warps])
    step = Align().fit(images)
    assert step.reference_index_ == medoid_index(images)
    out, inverse = step.transform_with_inverse(images)
    # every image now sits where the reference does
    inner = (slice(None), slice(16, -16), slice(16, -16))
    assert np.abs(out - step.reference_)[inner].mean() < 0.01
    assert all(i["converged"] for i in step.info_)
    # a map drawn in the aligned frame goes back onto the object of each input image
    obj_ref = (step.reference_.mean(-1) > 0.45).astype(np.float32)
    back = inverse(np.repeat(obj_ref[None], len(images), 0))
    obj_in = images.mean(-1) > 0.45
    iou = ((back > 0.5) & obj_in).sum((1, 2)) / ((back > 0.5) | obj_in).sum((1, 2))
    assert iou.min() > 0.97
    path = step.save(tmp_path / "align.npz")
    np.testing.assert_allclose(Align.load(path).transform(images), out, atol=1e-6)
    mean_step = Align(reference="mean").fit(images)
    assert mean_step.reference_.shape == ref.shape


def test_medoid_and_errors():
    ref = _object()
    images = np.stack([ref, ref * 0.98, np.clip(ref * 1.02, 0, 1), ref[::-1, ::-1].copy()])
    assert medoid_index(images) in (0, 1, 2)
    with pytest.raises(ValueError, match="loss"):
        Align(loss="l1")
    with pytest.raises(ValueError, match="reference"):
        Align(reference="median")
    step = Align().fit(images)
    with pytest.raises(ValueError, match="resize"):
        step.transform(np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="resize"):
        align_affine(np.zeros((64, 64, 3)), ref)


def test_batch_equals_one_by_one_and_reports_convergence():
    ref = _object()
    warps = [_similarity(d, tx, ty, s) for d, tx, ty, s in
             [(8, 10, -6, 1.07), (-9, -11, 4, 0.92), (3, 2, 12, 1.0)]]
    images = np.stack([_moved(ref, m) for m in warps])
    step = Align(reference=0, progress=False).fit(np.concatenate([ref[None], images]))
    out = step.transform(images)
    for i, m in enumerate(warps):
        m1, w1, info = align_affine(images[i], ref)
        np.testing.assert_allclose(step.params_[i], m1, atol=1e-3)
        np.testing.assert_allclose(out[i], w1, atol=1e-3)
        assert _corner_error(step.params_[i], m) < 0.5
    assert step.converged_ == 1.0 and len(step.info_) == 3
    # a start that leaves the field of view: reported, not raised
    _, _, info = align_affine(images[0], ref, init=[[1, 0, 1000], [0, 1, 1000]])
    assert info["lost"] and not info["converged"]
    # too few iterations: not converged, and Align warns
    with pytest.warns(UserWarning, match="did not converge"):
        Align(reference=0, max_iter=1, tol=1e-6, progress=False).fit(ref[None]).transform(images)
