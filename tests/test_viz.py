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
    assert len(fig.axes) == 12
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


def test_notebook_style_sets_a_modest_resolution():
    import matplotlib.pyplot as plt
    viz.notebook_style(dpi=50)
    assert plt.rcParams["figure.dpi"] == 50 and plt.rcParams["savefig.dpi"] == 50
