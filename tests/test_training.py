"""The shared training loop: loss history, progress bar, interruption, eval mode."""
import warnings

import numpy as np
import pytest
import torch

from adkit.training import train_epochs


def _net():
    return torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5))


def test_history_and_modes():
    net = _net()
    modes = []

    def epoch():
        modes.append(net.training)
        return float(len(modes)) / 10

    history = train_epochs(epoch, 4, net=net, name="X", progress=True)
    assert history == [0.1, 0.2, 0.3, 0.4]
    assert modes == [True] * 4          # trained in training mode
    assert not net.training             # evaluation mode afterwards


def test_interrupt_warns_and_keeps_what_was_done():
    net = _net()
    calls = []

    def epoch():
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return 1.0

    with pytest.warns(UserWarning, match="X training interrupted after 2 epoch"):
        history = train_epochs(epoch, 10, net=net, name="X", progress=False)
    assert history == [1.0, 1.0] and len(calls) == 3 and not net.training


def test_other_errors_propagate_with_the_history_so_far():
    net = _net()
    history = []
    calls = []

    def epoch():
        calls.append(1)
        if len(calls) == 2:
            raise FloatingPointError("nan")
        return 0.5

    with pytest.raises(FloatingPointError):
        train_epochs(epoch, 5, net=net, name="X", progress=False, history=history)
    assert history == [0.5] and not net.training


def _interrupt_after(n_calls):
    calls = []

    def maybe_stop(*_, **__):
        calls.append(1)
        if len(calls) > n_calls:
            raise KeyboardInterrupt
    return maybe_stop


def test_n2n_interrupted_keeps_weights_and_warns_at_the_callers_line(monkeypatch):
    from adkit.normalize import N2N
    images = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    step = N2N(epochs=50, batch_size=2, crop=16, crops_per_image=1, progress=False)
    real = N2N._sampler
    stop = _interrupt_after(4)       # 2 steps per epoch: stops in the third epoch

    def sampler(self, x, rng):
        draw = real(self, x, rng)

        def patched(b):
            stop()
            return draw(b)
        return patched

    monkeypatch.setattr(N2N, "_sampler", sampler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        step.fit(images)
    [w] = [w for w in caught if "interrupted" in str(w.message)]
    assert "N2N training interrupted after 2 epoch(s)" in str(w.message)
    assert w.filename == __file__      # points at the user's call of fit
    assert len(step.history_) == 2 and not step.net_.training
    assert step.transform(images).shape == images.shape


def test_aesc_interrupted_is_fitted_with_its_history(monkeypatch):
    from adkit.models import AESc
    images = np.random.default_rng(0).random((4, 64, 64, 3), dtype=np.float32)
    det = AESc(width=0.125, epochs=20, batch_size=2, n_samples=2, progress=False,
               validation_fraction=0)
    stop = _interrupt_after(2)       # 2 batches per epoch: stops in the second epoch

    def corrupt(self, batch, rng):
        stop()
        return batch

    monkeypatch.setattr(AESc, "_corrupt", corrupt)
    with pytest.warns(UserWarning, match="AESc training interrupted after 1 epoch"):
        det.fit(images)
    assert len(det.history_) == 1 and not det.net_.training
    assert det.predict(images[:1]).maps.shape == (1, 64, 64)


# -- early stopping ---------------------------------------------------------------------
from adkit.training import EarlyStopping  # noqa: E402


def _sgd_setup(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    x, y = torch.randn(32, 4), torch.randn(32, 1)

    def epoch():
        loss = torch.mean((net(x) - y) ** 2)   # dropout draws from torch's generator
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())
    return net, epoch, x, y


def test_without_early_stopping_the_loop_is_a_plain_loop_bit_for_bit():
    """Callers that do not ask for early stopping (N2N, U-Flow) train exactly as a bare
    ``for`` loop over their epoch function would: same losses, same weights, same
    random stream afterwards."""
    net_a, epoch_a, _, _ = _sgd_setup()
    ref = [epoch_a() for _ in range(6)]
    ref_w = [p.detach().clone() for p in net_a.parameters()]
    ref_next = torch.rand(3)
    net_b, epoch_b, _, _ = _sgd_setup()
    history = train_epochs(epoch_b, 6, net=net_b, name="X", progress=False)
    assert history == ref
    for a, b in zip(ref_w, net_b.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(torch.rand(3), ref_next)


def test_validation_does_not_change_the_training():
    """Validating after every epoch (in eval mode, without gradients) draws nothing
    from the random stream: with patience=None and no restore, the weights and the
    training losses are those of the loop without validation."""
    net_a, epoch_a, x, y = _sgd_setup()
    ref = train_epochs(epoch_a, 6, net=net_a, name="X", progress=False)
    net_b, epoch_b, x, y = _sgd_setup()
    modes = []

    def validate():
        modes.append((net_b.training, torch.is_grad_enabled()))
        return float(torch.mean((net_b(x) - y) ** 2))
    stop = EarlyStopping(validate, patience=None, restore_best=False)
    assert train_epochs(epoch_b, 6, net=net_b, name="X", progress=False,
                        early_stopping=stop) == ref
    for a, b in zip(net_a.parameters(), net_b.parameters()):
        assert torch.equal(a, b)
    assert modes == [(False, False)] * 6 and len(stop.history) == 6
    assert not net_b.training


class _Scripted:
    """A net with one weight set to the epoch number, and a scripted validation loss."""

    def __init__(self, val_losses):
        self.net = torch.nn.Linear(1, 1, bias=False)
        self.val = list(val_losses)
        self.epoch = 0
        self.train_modes = []

    def run_epoch(self):
        self.train_modes.append(self.net.training)
        self.epoch += 1
        with torch.no_grad():
            self.net.weight.fill_(self.epoch)
        return 1.0 / self.epoch

    def validate(self):
        return self.val[self.epoch - 1]


def test_early_stop_after_patience_restores_the_best_epoch():
    s = _Scripted([5, 4, 3, 3.5, 3.2, 3.1, 3.3, 2.0, 1.0])
    stop = EarlyStopping(s.validate, patience=3)
    history = train_epochs(s.run_epoch, 20, net=s.net, name="X", progress=False,
                           early_stopping=stop)
    # best at epoch 3 (loss 3); epochs 4, 5, 6 do not improve: stop after epoch 6
    assert len(history) == 6 and stop.history == [5, 4, 3, 3.5, 3.2, 3.1]
    assert stop.best_epoch == 3 and stop.best_loss == 3 and stop.stopped_early
    assert s.net.weight.item() == 3.0          # the weights of epoch 3
    assert s.train_modes == [True] * 6 and not s.net.training


def test_min_delta_and_no_patience():
    # a relative min_delta of 10 %: 3.1 after 3.3 is not an improvement
    s = _Scripted([4, 3.3, 3.1, 3.05, 3.2, 1.0])
    stop = EarlyStopping(s.validate, patience=3, min_delta=0.1)
    train_epochs(s.run_epoch, 10, net=s.net, name="X", progress=False, early_stopping=stop)
    assert stop.best_epoch == 2 and len(stop.history) == 5 and s.net.weight.item() == 2.0
    # patience=None: the whole budget, then the best epoch's weights
    s = _Scripted([4, 3, 5, 6, 7])
    stop = EarlyStopping(s.validate, patience=None)
    assert len(train_epochs(s.run_epoch, 5, net=s.net, name="X", progress=False,
                            early_stopping=stop)) == 5
    assert stop.best_epoch == 2 and not stop.stopped_early and s.net.weight.item() == 2.0
    # restore_best=False keeps the last weights
    s = _Scripted([4, 3, 5])
    stop = EarlyStopping(s.validate, patience=None, restore_best=False)
    train_epochs(s.run_epoch, 3, net=s.net, name="X", progress=False, early_stopping=stop)
    assert stop.best_epoch == 2 and s.net.weight.item() == 3.0


def test_interrupt_with_early_stopping_keeps_the_best_epoch_so_far():
    s = _Scripted([3, 2, 4, 5])
    run = s.run_epoch

    def epoch():
        if s.epoch == 4:
            raise KeyboardInterrupt
        return run()
    stop = EarlyStopping(s.validate, patience=10)
    with pytest.warns(UserWarning, match=r"interrupted after 4 epoch\(s\); the weights of "
                                         r"the best epoch so far \(2\) are kept"):
        train_epochs(epoch, 10, net=s.net, name="X", progress=False, early_stopping=stop)
    assert s.net.weight.item() == 2.0 and not s.net.training


def test_error_during_training_propagates_without_restoring():
    s = _Scripted([3, 2, 4, 5])
    run = s.run_epoch

    def epoch():
        if s.epoch == 3:
            raise FloatingPointError("nan")
        return run()
    history = []
    with pytest.raises(FloatingPointError):
        train_epochs(epoch, 10, net=s.net, name="X", progress=False, history=history,
                     early_stopping=EarlyStopping(s.validate, patience=10))
    # the best epoch was 2; after an error the weights are left as they were (epoch 3)
    assert history == [1.0, 0.5, 1 / 3] and s.net.weight.item() == 3.0 and not s.net.training


def test_early_stopping_clear_errors():
    with pytest.raises(TypeError, match="validate must be a function"):
        EarlyStopping(0.5)
    with pytest.raises(ValueError, match="patience must be a positive integer or None"):
        EarlyStopping(lambda: 0.0, patience=0)
    with pytest.raises(ValueError, match="min_delta is relative"):
        EarlyStopping(lambda: 0.0, min_delta=1.5)
