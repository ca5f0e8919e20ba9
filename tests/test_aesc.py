"""Tests of the AE / AESc network (adkit.nets.autoencoder) and the AESc detector."""
import numpy as np
import pytest
import torch

from adkit.bench.settings import NOTEBOOK_SETTINGS
from adkit.models.aesc import AESc
from adkit.nets.autoencoder import PAPER_DROPOUT, Autoencoder



@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny convolutions: one thread is about as fast and immune to a busy machine
    (threads are restored for the other test modules)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- the network ------------------------------------------------------------------------
def test_width_one_is_the_papers_network():
    """16 channels doubling to 512 at the 6th level: the paper's 4x4x512 latent at 256 px."""
    net = Autoencoder(width=1.0).eval()
    assert net.channels == [16, 32, 64, 128, 256, 512]
    assert Autoencoder(width=0.5).channels == [8, 16, 32, 64, 128, 256]
    latent = {}
    net.enc[-1].register_forward_hook(lambda m, i, o: latent.update(z=o))
    with torch.no_grad():
        net(torch.rand(1, 3, 256, 256))
    assert latent["z"].shape == (1, 512, 4, 4)
    assert AESc().width == 0.5 and AESc(width=1.0)._build().channels[-1] == 512


def test_shapes_latent_and_channels():
    net = Autoencoder(width=1 / 8).eval()
    assert net.channels == [2, 4, 8, 16, 32, 64]
    latent = {}
    net.enc[-1].register_forward_hook(lambda m, i, o: latent.update(z=o))
    with torch.no_grad():
        y = net(torch.rand(1, 3, 256, 256))
    assert y.shape == (1, 3, 256, 256)
    assert latent["z"].shape == (1, 64, 4, 4)  # six stride-2 levels: 4x4 at 256 px
    assert float(y.min()) >= 0 and float(y.max()) <= 1  # sigmoid output
    # 5x5 kernels everywhere, stride 2 in the encoder
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 12 and all(c.kernel_size == (5, 5) for c in convs)
    assert [c.stride for c in convs[:6]] == [(2, 2)] * 6
    with torch.no_grad():  # sides that are not multiples of 64 are padded and cropped
        assert net(torch.rand(2, 3, 80, 96)).shape == (2, 3, 80, 96)


def _fixed_latent_outputs(skips):
    torch.manual_seed(0)
    net = Autoencoder(width=0.125, skips=skips).eval()
    z = torch.randn(1, net.channels[-1], 1, 1)
    net.enc[-1].register_forward_hook(lambda m, i, o: z.expand_as(o).contiguous())
    with torch.no_grad():
        a = net(torch.rand(1, 3, 64, 64))
        b = net(torch.rand(1, 3, 64, 64))
    return a, b


def test_skips_carry_information_past_the_latent():
    # AE: with the latent fixed, the output no longer depends on the input
    a, b = _fixed_latent_outputs(skips=False)
    torch.testing.assert_close(a, b)
    # AESc: the skip connections still bring the input to the output
    a, b = _fixed_latent_outputs(skips=True)
    assert (a - b).abs().max() > 1e-3
    # same layers, same parameters: only the wiring differs
    assert Autoencoder(skips=True).state_dict().keys() == Autoencoder(skips=False).state_dict().keys()


def test_dropout_only_active_in_mc_mode():
    torch.manual_seed(0)
    net = Autoencoder(width=0.125)
    assert [m.p for m in net.enc_drop] == list(PAPER_DROPOUT)
    x = torch.rand(4, 3, 64, 64)
    with torch.no_grad():
        net.train()
        torch.testing.assert_close(net(x), net(x))  # training: no dropout
        net.eval()
        ref = net(x)
        torch.testing.assert_close(net(x), ref)  # inference: no dropout
        with net.mc():
            s1, s2 = net(x), net(x)
        assert (s1 - s2).abs().max() > 1e-4  # MC sampling: dropout on
        torch.testing.assert_close(net(x), ref)  # off again afterwards
        net.train()
        with net.mc():
            assert not net.training  # BatchNorm in inference mode while sampling
        assert net.training
        # zero rates: MC sampling equals ordinary inference
        quiet = Autoencoder(width=0.125, dropout=(0,) * 6).eval()
        quiet.load_state_dict(net.state_dict())
        with quiet.mc():
            torch.testing.assert_close(quiet(x), net.eval()(x))


def test_depth_sets_the_latent_size_and_the_dropout_rates():
    """depth = number of stride-2 levels: 4 levels keep the paper's 4x4 latent at 64 px
    (six leave 1x1 there); the paper's dropout rates are kept for the first levels."""
    det = AESc(width=0.125, depth=4)
    assert det.dropout == None and det.dropout_rates == (0.0, 0.0, 0.1, 0.2)  # noqa: E711
    assert AESc().dropout_rates == PAPER_DROPOUT and AESc().depth == 6
    for depth, side in ((4, 4), (6, 1)):
        net = AESc(width=0.125, depth=depth)._build().eval()
        assert len(net.enc) == depth and [m.p for m in net.enc_drop] == list(PAPER_DROPOUT[:depth])
        latent = {}
        net.enc[-1].register_forward_hook(lambda m, i, o: latent.update(z=o))
        with torch.no_grad():
            assert net(torch.rand(1, 3, 64, 64)).shape == (1, 3, 64, 64)
        assert latent["z"].shape[-2:] == (side, side)
    with pytest.raises(ValueError, match="dropout needs one rate per level, depth=4, got 6"):
        AESc(depth=4, dropout=PAPER_DROPOUT)
    with pytest.raises(ValueError, match="depth=7 has more levels than the paper's 6"):
        AESc(depth=7)
    assert AESc(depth=7, dropout=(0.1,) * 7).dropout_rates == (0.1,) * 7
    small = np.random.default_rng(0).random((4, 32, 32, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="depth=6 has 6 stride-2 levels"):
        AESc(epochs=1, progress=False).fit(small)
    det = AESc(width=0.125, depth=4, epochs=1, n_samples=2, validation_fraction=0,
               progress=False).fit(small)   # 32 px is enough for 4 levels
    assert det.predict(small[:1]).maps.shape == (1, 32, 32)


# -- the detector -----------------------------------------------------------------------
# the settings of notebook 06 (64 px, width 0.5, four levels: a 4x4 latent, 30 epochs,
# batch 4, no validation), more test images
S = NOTEBOOK_SETTINGS
FIT = {k: S[k] for k in ("width", "depth", "batch_size", "validation_fraction", "lr_patience")}
SIZE, EPOCHS, N_TEST = S["size"], S["epochs"], 80
FLOOR, MARGIN, RATIO = 0.65, 0.1, 1.1


@pytest.fixture(scope="module")
def data():
    from adkit import data as D
    return D.load(f"synthetic/{S['category']}", n_train=S["n_train"], n_test=N_TEST, size=SIZE,
                  seed=0)


@pytest.fixture(scope="module")
def trained(data):
    train, _ = data
    kw = dict(epochs=EPOCHS, n_samples=8, progress=False, seed=0, **FIT)
    return {c: AESc(corruption=c, **kw).fit(train) for c in ("stain", None)}


@pytest.fixture(scope="module")
def results(trained, data):
    _, test = data
    return {c: m.predict(test) for c, m in trained.items()}


def test_stain_beats_identity_trap(results, data):
    """The paper's claim on the embedded data: the same AESc network trained to remove
    Stain noise detects defects that it misses when trained on clean images."""
    from sklearn.metrics import roc_auc_score
    _, test = data
    auc = {c: roc_auc_score(test.labels, r.scores) for c, r in results.items()}
    assert auc["stain"] > FLOOR, auc                  # measured 0.74 (depth 4)
    assert auc["stain"] > auc[None] + MARGIN, auc     # measured 0.74 vs 0.57
    # the identity trap: trained on clean images, AESc copies the defects (its residual
    # inside the defect masks is hardly larger than outside); trained on Stain it repairs them
    ratio = {c: r.extras["residual"][test.masks].mean() / r.extras["residual"][~test.masks].mean()
             for c, r in results.items()}
    assert ratio["stain"] > ratio[None] * RATIO, ratio  # measured 4.8 vs 2.6


def test_result_contents(results, trained, data):
    _, test = data
    r = results["stain"]
    n = len(test.images)
    assert r.maps.shape == (n, SIZE, SIZE) and r.scores.shape == (n,)
    for k in ("residual", "uncertainty"):
        assert r.extras[k].shape == (n, SIZE, SIZE) and r.extras[k].dtype == np.float32
        assert (r.extras[k] >= 0).all()
    rec = r.extras["reconstruction"]
    assert rec.shape == test.images.shape
    # residual map: |x - x_hat| summed over the colour channels
    np.testing.assert_allclose(r.extras["residual"], np.abs(test.images - rec).sum(-1),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(r.maps, r.extras["residual"])
    # score: L2 norm of the map / sqrt(H W)
    np.testing.assert_allclose(r.scores, np.sqrt((r.maps.astype(np.float64) ** 2).mean((1, 2))),
                               rtol=1e-5)
    assert (r.extras["uncertainty"].reshape(n, -1).max(1) > 0).all()
    # history: one mean MSE per epoch, decreasing overall; no validation at these settings
    m = trained["stain"]
    h = m.history_
    assert len(h) == EPOCHS and h[-1] < 0.5 * h[0]
    assert m.val_history_ == [] and m.best_epoch_ == EPOCHS and m.n_validation_ == 0


def test_uncertainty_map_and_roundtrip(trained, results, data, tmp_path):
    _, test = data
    m = trained["stain"]
    path = m.save(tmp_path / "aesc")
    loaded = AESc.load(path)
    assert loaded.get_params() == m.get_params()
    assert loaded.history_ == m.history_ and loaded.val_history_ == m.val_history_
    assert loaded.best_epoch_ == m.best_epoch_ and loaded.n_validation_ == m.n_validation_
    r2 = loaded.predict(test.images[:6])
    r = results["stain"]
    np.testing.assert_allclose(r2.maps, r.maps[:6], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(r2.extras["uncertainty"], r.extras["uncertainty"][:6],
                               rtol=1e-4, atol=1e-7)
    loaded.map = "uncertainty"
    ru = loaded.predict(test.images[:6])
    np.testing.assert_array_equal(ru.maps, ru.extras["uncertainty"])


def test_same_seed_same_model(data):
    train, test = data
    kw = dict(width=0.125, epochs=2, n_samples=3, progress=False, corruption="mix2")
    a = AESc(seed=1, **kw).fit(train.images[:16]).predict(test.images[:4])
    b = AESc(seed=1, **kw).fit(train.images[:16]).predict(test.images[:4])
    c = AESc(seed=2, **kw).fit(train.images[:16]).predict(test.images[:4])
    np.testing.assert_array_equal(a.maps, b.maps)
    np.testing.assert_array_equal(a.extras["uncertainty"], b.extras["uncertainty"])
    assert not np.array_equal(a.maps, c.maps)


def test_clear_errors():
    with pytest.raises(ValueError, match="corruption must be one of"):
        AESc(corruption="smudge")
    with pytest.raises(ValueError, match="map must be one of"):
        AESc(map="variance")
    with pytest.raises(ValueError, match="n_samples"):
        AESc(n_samples=1)
    small = np.random.default_rng(0).random((4, 32, 32, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="at least 64x64"):
        AESc(epochs=1, progress=False).fit(small)
    with pytest.raises(RuntimeError, match="not fitted"):
        AESc().predict(small)


# -- early stopping on held-out images ----------------------------------------------------
@pytest.fixture(scope="module")
def early(data):
    train, _ = data
    det = AESc(width=0.25, epochs=40, batch_size=4, lr=3e-3, lr_patience=1, patience=2,
               n_samples=2, progress=False, seed=3)
    return det.fit(train.images[:20]), train.images[:20]


def test_early_stopping_keeps_the_best_held_out_epoch(early):
    """Validation on 20 % of the training images (fixed corruptions): training stops
    ``patience`` epochs after the best validation loss and the network has that
    epoch's weights (its loss on the held-out images, recomputed, is the best one)."""
    det, images = early
    h, v = det.history_, det.val_history_
    assert det.n_validation_ == 4 and len(v) == len(h) < 40       # stopped early
    best = int(np.argmin(v)) + 1
    assert det.best_epoch_ == best and len(h) == best + det.patience
    train_idx, val_idx = det._split(len(images))
    assert len(val_idx) == 4 and not set(train_idx) & set(val_idx)
    assert len(train_idx) + len(val_idx) == len(images)
    np.testing.assert_array_equal(det._split(len(images))[1], val_idx)   # seeded
    clean = images[val_idx]
    noisy = det._corrupt(clean, np.random.default_rng([det.seed, 2]))
    rec = AESc.reconstruct(det, noisy)
    np.testing.assert_allclose(np.mean((rec.astype(np.float64) - clean) ** 2), v[best - 1],
                               rtol=1e-4)


def test_without_patience_the_whole_budget_runs_and_the_best_epoch_is_kept(data):
    train, _ = data
    det = AESc(width=0.125, epochs=4, batch_size=4, patience=None, n_samples=2,
               progress=False).fit(train.images[:10])
    assert len(det.history_) == len(det.val_history_) == 4 and det.n_validation_ == 2
    assert det.best_epoch_ == int(np.argmin(det.val_history_)) + 1


def test_validation_split_errors(data):
    train, _ = data
    with pytest.raises(ValueError, match="validation_fraction"):
        AESc(validation_fraction=1.0)
    with pytest.raises(ValueError, match="holds out 1 and leaves 1 to train"):
        AESc(epochs=1, progress=False).fit(train.images[:2])
    # validation_fraction=0 trains on few images
    det = AESc(width=0.125, epochs=1, validation_fraction=0, n_samples=2,
               progress=False).fit(train.images[:2])
    assert det.n_validation_ == 0 and det.best_epoch_ == 1
