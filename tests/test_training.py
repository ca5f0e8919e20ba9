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
    det = AESc(width=0.0625, epochs=20, batch_size=2, n_samples=2, progress=False)
    stop = _interrupt_after(2)       # 2 batches per epoch: stops in the second epoch

    def corrupt(self, batch, rng):
        stop()
        return batch

    monkeypatch.setattr(AESc, "_corrupt", corrupt)
    with pytest.warns(UserWarning, match="AESc training interrupted after 1 epoch"):
        det.fit(images)
    assert len(det.history_) == 1 and not det.net_.training
    assert det.predict(images[:1]).maps.shape == (1, 64, 64)
