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


def test_threshold_false_alarm_and_tree_plots_draw():
    from adkit.contrario.tree import level_set_tree
    le = np.arange(-4, 5, 2)
    ax = viz.plot_threshold_curve(le, {"all": np.linspace(0.4, 0.6, 5)},
                                  oracle={"all": 0.7}, spread={"all": np.full(5, 0.05)})
    assert any(abs(line.get_ydata()[0] - 0.7) < 1e-12 for line in ax.lines)  # the oracle
    assert any(list(line.get_xdata()) == [0, 0] for line in ax.lines)      # ε = 1
    ax = viz.plot_false_alarms(le, {"nfa": [0, 0, 0.1, 2.0, 30.0]}, n_good=20)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_ylim()[0] < 0.5 / 20                  # the zeros, on the floor
    rng = np.random.default_rng(0)
    stat = rng.chisquare(8, (12, 12))
    stat[3:6, 3:6] += 40
    tree = level_set_tree(stat, 8)
    ax = viz.plot_level_set_tree(tree)
    assert len(ax.figure.axes) == 2                     # the plot and its colorbar
    assert ax.get_xscale() == "log"


def test_show_normalization_draws_the_difference_on_a_fixed_scale_with_a_colorbar():
    rng = np.random.default_rng(0)
    ref = rng.random((24, 32, 3)).astype(np.float32)
    normalized = ref.copy()
    normalized[:, :8] += 0.2                       # a band that the normalization missed
    fig = viz.show_normalization(rng.random((24, 32, 3)), normalized, ref, vmax=0.4,
                                 suptitle="t")
    axes = fig.axes
    assert len(axes) == 5                          # image, normalized, reference, diff, bar
    diff_im = axes[3].images[0]
    assert diff_im.get_clim() == (0.0, 0.4)        # fixed scale: two settings compare
    assert diff_im.get_cmap().name == viz.MAP_CMAP
    d = diff_im.get_array()
    assert np.allclose(d[:, :8], 0.2, atol=1e-6) and np.allclose(d[:, 8:], 0.0)
    assert fig.get_size_inches()[0] * fig.dpi >= viz.MIN_FIGURE_WIDTH
    with pytest.raises(ValueError, match="one shape"):
        viz.show_normalization(ref, ref[:10], ref)
    with pytest.raises(ValueError, match="vmax"):
        viz.show_normalization(ref, ref, ref, vmax=0)


def test_false_alarm_panels_draw_the_promise_the_band_and_every_curve():
    import matplotlib.pyplot as plt
    le = np.arange(-2, 2)
    eps = 10.0 ** le
    fig = viz.plot_false_alarm_panels(le, {"own NFA": {"uflow": [0, 0, 0, 0.5]},
                                           "calibrated": {"uflow": eps * 1.2,
                                                          "knn": eps / 2}}, n_good=12)
    own, cal = fig.axes[:2]
    assert own.get_xscale() == cal.get_yscale() == "log"
    assert [a.get_title() for a in (own, cal)] == ["own NFA", "calibrated"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[0] == "within a factor 3 of ε" and "knn" in legend and "uflow" in legend
    # the band is [ε/3, 3ε]; zeros are drawn at the floor 0.5 / n_good, not dropped
    band = own.collections[0].get_paths()[0].vertices
    assert np.isclose(band[:, 1].max(), 30.0) and np.isclose(band[:, 1].min(), 0.01 / 3)
    zeros = [ln for ln in own.lines if ln.get_marker() == "o" and ln.get_mfc() == "none"]
    assert np.allclose(zeros[0].get_ydata(), 0.5 / 12) and len(zeros[0].get_ydata()) == 3
    # one colour per method in every panel
    colour = {ln.get_color() for a in (own, cal) for ln in a.lines if ln.get_label() == "uflow"}
    assert len(colour) == 1
    assert fig.get_figwidth() * fig.dpi >= viz.MIN_FIGURE_WIDTH - 1
    with pytest.raises(ValueError, match="levels"):
        viz.plot_false_alarm_panels(le, {"a": {"x": [1, 2]}})
    with pytest.raises(ValueError, match="band"):
        viz.plot_false_alarms(le, {"x": eps}, band=1.0)
    plt.close("all")


def test_show_detections_one_row_per_method_outlined_in_their_colours():
    import matplotlib.pyplot as plt
    imgs = np.full((2, 16, 16, 3), 0.5, np.float32)
    gt = np.zeros((2, 16, 16), bool)
    gt[:, 4:8, 4:8] = True
    fig = viz.show_detections(imgs, {"a": gt, "b": ~gt}, gt=gt, titles=["x", "y"])
    assert len(fig.axes) == 3 * 2
    assert [fig.axes[k].get_ylabel() for k in (0, 2, 4)] == ["ground truth", "a", "b"]
    assert _has_color(fig.axes[0], viz.TRUTH_COLOR) and _has_color(fig.axes[2], viz.DETECTION_COLOR)
    with pytest.raises(ValueError, match="one mask per image"):
        viz.show_detections(imgs, {"a": gt[:1]})
    plt.close("all")


def test_show_scale_votes_and_plot_against_eps():
    import pandas as pd
    from adkit.data import load
    from adkit.models import SelfSimilarity
    train, test = load("synthetic/pill", n_train=6, n_test=4, size=48, seed=0)
    det = SelfSimilarity(scales=(0, 1), progress=False).fit(train)
    fig = viz.show_scale_votes(det.vote_view(det.predict(test), 1, eps=1.0),
                               image=test.images[1], title="t")
    # image, one panel per scale, the map (and its colorbar), the vote
    assert len([a for a in fig.axes if a.images]) == 1 + 2 + 2
    assert fig.get_figwidth() * fig.dpi >= viz.MIN_FIGURE_WIDTH
    table = pd.DataFrame([{"variant": v, "seed": s, "eps": e, "image_auroc": 0.5 + 0.1 * s}
                          for v in ("a", "b") for s in (0, 1, 2) for e in (0.01, 1.0)])
    ax = viz.plot_against_eps(table, mark=10 ** -2.2, mark_label="paper")
    assert len(ax.lines) == 3                         # two means and the mark
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.6, 0.6])


def test_show_rows_shares_one_scale_between_map_rows():
    rng = np.random.default_rng(0)
    images = rng.random((3, 16, 16, 3)).astype(np.float32)
    a, b = rng.random((3, 16, 16)), 2 * rng.random((3, 16, 16))
    fig = viz.show_rows({"input": images, "A": a, "B": b}, titles=list("xyz"),
                        gt=np.ones((3, 16, 16), bool))
    ims = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(ims) == 9
    assert ims[3].get_clim() == ims[8].get_clim()          # one scale for both map rows
    assert ims[3].get_clim()[1] == pytest.approx(np.percentile(np.r_[a.ravel(), b.ravel()], 99.5))
    own = viz.show_rows({"A": a, "B": b}, share_scale=False)
    ims = [ax.images[0] for ax in own.axes if ax.images]
    assert ims[0].get_clim()[1] == pytest.approx(np.percentile(a, 99.5))
    assert ims[3].get_clim()[1] == pytest.approx(np.percentile(b, 99.5))
    with pytest.raises(ValueError, match="same number"):
        viz.show_rows({"input": images, "A": a[:2]})


def test_latent_check_draws_the_latents_against_their_laws():
    rng = np.random.default_rng(0)
    z = [rng.standard_normal((4, 8, 6, 6)), rng.standard_normal((4, 16, 3, 3))]
    fig = viz.plot_latent_check(z, [8, 16])
    left, right = fig.axes
    assert sum(p.get_height() for p in left.patches) * (10 / 120) == pytest.approx(1.0, abs=0.02)
    assert "C = 8" in right.get_legend().get_texts()[0].get_text() + right.get_legend().get_texts()[1].get_text()
