import numpy as np
import pytest

from adkit import viz


def test_overlay_mask_tints_only_masked_pixels():
    img = np.full((4, 4, 3), 0.5, np.float32)
    mask = np.zeros((4, 4), bool)
    mask[1, 2] = True
    out = viz.overlay(img, mask, alpha=0.5, color=(1, 0, 0))
    np.testing.assert_allclose(out[1, 2], [0.75, 0.25, 0.25])
    np.testing.assert_array_equal(out[~mask], img[~mask])


def test_overlay_map_and_shape_error():
    img = np.zeros((4, 4, 3), np.float32)
    out = viz.overlay(img, np.arange(16, dtype=np.float32).reshape(4, 4), alpha=1.0)
    assert out.shape == (4, 4, 3) and out.dtype == np.float32
    assert not np.allclose(out[0, 0], out[3, 3])   # low and high values differ in colour
    with pytest.raises(ValueError, match="does not match"):
        viz.overlay(img, np.zeros((3, 3)))


def test_grid_and_curves_draw():
    rng = np.random.default_rng(0)
    imgs = rng.random((3, 8, 8, 3)).astype(np.float32)
    maps = rng.random((3, 8, 8)).astype(np.float32)
    gt = maps > 0.8
    fig = viz.show_grid(imgs, maps, maps > 0.7, gt, titles=["a", "b", "c"])
    assert len(fig.axes) == 12 + 1            # 4 rows of 3 panels, the maps' colorbar
    ax = viz.plot_roc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert "0.750" in ax.get_legend().get_texts()[0].get_text()
    ax = viz.plot_history([1.0, 0.5, 0.25])
    assert ax.get_yscale() == "log"
    assert ax.get_legend() is None and len(ax.lines) == 1
    # training and validation of the same epochs, the kept epoch marked
    ax = viz.plot_history([1.0, 0.5, 0.25, 0.2], val_history=[0.8, 0.4, 0.3, 0.35],
                          best_epoch=3, label="AESc")
    train, val, best = ax.lines
    np.testing.assert_array_equal(val.get_ydata(), [0.8, 0.4, 0.3, 0.35])
    assert val.get_linestyle() == "--" and val.get_color() == train.get_color()
    assert list(best.get_xdata()) == [3] and list(best.get_ydata()) == [0.3]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "AESc (training)", "AESc (validation)", "AESc (best epoch 3)"]
    assert ax.get_xlabel() == "epoch"
    assert len(viz.show_images(imgs, ncols=2).axes) == 4
    assert len(viz.show_images(maps, ncols=3).axes) == 3 + 1   # maps get a colorbar


def test_notebook_style_sets_a_modest_resolution_and_one_style():
    import matplotlib.pyplot as plt
    with plt.rc_context():
        viz.notebook_style(dpi=50)
        assert plt.rcParams["figure.dpi"] == 50 and plt.rcParams["savefig.dpi"] == 50
        assert plt.rcParams["image.cmap"] == viz.MAP_CMAP == "inferno"
        assert plt.rcParams["axes.titlesize"] == viz.STYLE["axes.titlesize"]


def test_outline_draws_a_ring_around_each_region_and_keeps_the_rest():
    img = np.full((32, 32, 3), 0.5, np.float32)
    mask = np.zeros((32, 32), bool)
    mask[10:14, 10:14] = True
    out = viz.outline(img, mask, fill=0.0)
    assert out.shape == img.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out[mask], img[mask])          # inside: untouched
    np.testing.assert_array_equal(out[9, 10:14], np.tile(viz.DETECTION_COLOR, (4, 1)))
    np.testing.assert_array_equal(out[14, 12], viz.DETECTION_COLOR)
    assert np.all(out[0:5, 0:5] == 0.5) and np.all(out[20:, 20:] == 0.5)   # far: untouched
    # a one-pixel detection still shows, as a ring; thicker lines on a larger image
    dot = np.zeros((32, 32), bool)
    dot[5, 5] = True
    assert (viz.outline(img, dot, fill=0.0) != img).any(-1).sum() == 8
    big = np.zeros((512, 512), bool)
    big[100:200, 100:200] = True
    ring = (viz.outline(np.zeros((512, 512, 3), np.float32), big, fill=0.0) > 0).any(-1)
    assert ring[96:100, 150].all() and not ring[95, 150]        # 4 px wide at 512 px
    # fill tints the inside; an empty mask changes nothing; shapes are checked
    assert np.all(viz.outline(img, mask, fill=0.5)[mask] != img[mask])
    np.testing.assert_array_equal(viz.outline(img, np.zeros((32, 32), bool)), img)
    with pytest.raises(ValueError, match="does not match"):
        viz.outline(img, np.zeros((3, 3), bool))


def _has_color(ax, color, tol=0.02):
    data = np.asarray(ax.get_images()[0].get_array(), np.float32)
    return bool((np.abs(data[..., :3] - np.asarray(color)) < tol).all(-1).any())


def test_show_grid_outlines_detections_in_cyan_and_truth_in_green():
    img = np.full((1, 32, 32, 3), (0.8, 0.1, 0.1), np.float32)     # a red part
    mask = np.zeros((1, 32, 32), bool)
    mask[0, 8:16, 8:16] = True
    fig = viz.show_grid(img, maps=np.random.default_rng(0).random((1, 32, 32)), masks=mask,
                        gt=mask)
    image_ax, map_ax, det_ax, gt_ax = fig.axes[:4]
    assert _has_color(det_ax, viz.DETECTION_COLOR) and not _has_color(det_ax, viz.TRUTH_COLOR)
    assert _has_color(gt_ax, viz.TRUTH_COLOR) and not _has_color(gt_ax, viz.DETECTION_COLOR)
    assert map_ax.get_images()[0].get_cmap().name == viz.MAP_CMAP
    assert len(fig.axes) == 5                                        # + the map's colorbar


def test_figures_are_never_narrower_than_the_minimum():
    import matplotlib.pyplot as plt
    one = np.zeros((1, 8, 8, 3), np.float32)
    for fig in (viz.show_grid(one, size=1.0), viz.show_images(one, size=1.0),
                viz.plot_roc([0, 1], [0.2, 0.7]).figure, viz.plot_history([1.0, 0.5]).figure):
        assert fig.get_figwidth() * fig.dpi >= viz.MIN_FIGURE_WIDTH - 1
        plt.close(fig)


def test_png_round_trips_an_image_at_its_own_resolution():
    import io

    from PIL import Image
    img = np.zeros((5, 7, 3), np.float32)
    img[1, 2] = (1.0, 0.5, 0.0)
    data = viz.png(img)
    assert viz.png_size(data) == (7, 5)
    back = np.asarray(Image.open(io.BytesIO(data)))
    assert back.shape == (5, 7, 3) and tuple(back[1, 2]) == (255, 128, 0) and back[0, 0].sum() == 0
    with pytest.raises(ValueError, match="PNG"):
        viz.png_size(b"GIF89a" + bytes(30))


def test_map_png_is_the_requested_height_with_room_for_its_colorbar():
    data = viz.map_png(np.random.default_rng(0).random((32, 32)), 0.0, 1.0, height=100)
    w, h = viz.png_size(data)
    assert h == 100 and w > 100 + 40            # the map is square; the colorbar beside it
    assert viz.map_scale(np.arange(1000.0)) == (0.0, float(np.percentile(np.arange(1000.0), 99.5)))
