r"""The training loop shared by the networks of adkit (N2N, U-Flow, AESc).

Each method knows what one epoch is (its batches, its loss, its scheduler, stepped per
batch or on plateau) and gives it to :func:`train_epochs` as a function; the loop
around it is the same for all:

- a progress bar over the epochs (tqdm) showing the last epoch's loss;
- the loss history, one mean loss per epoch, that a notebook can plot;
- an interruption (Ctrl-C, or a notebook's stop button) ends training cleanly: a
  warning says after how many epochs, and the weights reached so far are kept;
- the network in training mode during the loop, in evaluation mode afterwards;
- optionally (:class:`EarlyStopping`), a validation loss after every epoch, a stop
  when it has not improved for ``patience`` epochs, and the weights of the best
  epoch restored at the end.

Early stopping (Prechelt, "Early stopping — but when?", in *Neural Networks: Tricks of
the Trade*, 1998): with :math:`v_t` the validation loss after epoch :math:`t` and
:math:`t^\star = \arg\min_{s \le t} v_s` (the first epoch that reached the minimum, an
improvement being :math:`v_t < (1 - \delta)\, v_{t^\star}` with the relative
``min_delta`` :math:`\delta`), training stops after epoch :math:`t` when
:math:`t - t^\star \ge` ``patience``, and the network gets the weights of epoch
:math:`t^\star` back.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable

__all__ = ["train_epochs", "EarlyStopping"]


class EarlyStopping:
    """Validation loss, patience and best weights for :func:`train_epochs`.

    Parameters
    ----------
    validate : callable () -> float
        Returns the validation loss of the network as it is now (lower is better).
        The loop calls it after every epoch with the network in evaluation mode and
        gradients off, and puts the network back in training mode afterwards. It
        should be deterministic (e.g. fixed corruptions of held-out images), so that
        two epochs' losses are comparable.
    patience : int or None, default 10
        Stop when the validation loss has not improved for this many epochs; ``None``
        never stops early (the best weights are still restored).
    min_delta : float, default 0.0
        Relative improvement that counts: :math:`v < (1 - \\delta) v_{best}`.
    restore_best : bool, default True
        Give the network the weights of the best epoch at the end (also after an
        interruption).
    history : list, optional
        The list the validation losses are appended to (a new one by default); pass
        the fitted attribute (``self.val_history_``).

    Attributes
    ----------
    history : list of float
        Validation loss after every completed epoch.
    best_epoch : int or None
        The epoch (1-based) whose weights were restored / the best one.
    best_loss : float
        Its validation loss.
    stopped_early : bool
        True when patience ran out before the epoch budget.

    Notes
    -----
    The attributes are filled in by :func:`train_epochs`; one object serves one
    training.
    """

    def __init__(self, validate: Callable[[], float], *, patience: int | None = 10,
                 min_delta: float = 0.0, restore_best: bool = True,
                 history: list | None = None):
        if not callable(validate):
            raise TypeError(f"validate must be a function () -> float, got {validate!r}.")
        if patience is not None and (isinstance(patience, bool) or int(patience) != patience
                                     or patience < 1):
            raise ValueError(f"patience must be a positive integer or None, got {patience!r}.")
        if not 0 <= float(min_delta) < 1:
            raise ValueError(f"min_delta is relative and must be in [0, 1), got {min_delta!r}.")
        self.validate = validate
        self.patience = None if patience is None else int(patience)
        self.min_delta = float(min_delta)
        self.restore_best = bool(restore_best)
        self.history = [] if history is None else history
        self.best_epoch: int | None = None
        self.best_loss = math.inf
        self.stopped_early = False
        self._best_state = None

    def _step(self, net) -> bool:
        """Validate after one epoch; remember the best weights. True: stop now."""
        import torch
        net.eval()
        try:
            with torch.no_grad():
                loss = float(self.validate())
        finally:
            net.train()
        self.history.append(loss)
        epoch = len(self.history)
        if self.best_epoch is None or loss < (1 - self.min_delta) * self.best_loss:
            self.best_epoch, self.best_loss = epoch, loss
            if self.restore_best:
                self._best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        if self.patience is not None and epoch - self.best_epoch >= self.patience:
            self.stopped_early = True
        return self.stopped_early

    def _restore(self, net) -> None:
        if self.restore_best and self._best_state is not None:
            net.load_state_dict(self._best_state)
        self._best_state = None


def train_epochs(run_epoch: Callable[[], float], epochs: int, *, net, name: str,
                 desc: str | None = None, progress: bool = True,
                 history: list | None = None, loss_format: str = ".4f",
                 stacklevel: int = 4, early_stopping: EarlyStopping | None = None) -> list:
    """Call ``run_epoch()`` ``epochs`` times and collect the epoch losses.

    Parameters
    ----------
    run_epoch : callable () -> float
        Trains ``net`` for one epoch and returns its mean loss.
    epochs : int
        Number of epochs (the budget, with ``early_stopping``).
    net : torch.nn.Module
        Put in training mode before the first epoch and in evaluation mode at the end
        (also after an interruption or an error).
    name : str
        The method's name, for the interruption warning (e.g. ``"U-Flow"``).
    desc : str, optional
        Label of the progress bar (default ``name``).
    progress : bool
        Show the progress bar.
    history : list, optional
        The list the epoch losses are appended to (a new one by default); pass the
        fitted attribute (``self.history_``) so that it holds the epochs done even if
        an epoch raises.
    loss_format : str
        Format of the loss in the progress bar.
    stacklevel : int
        Of the interruption warning (4: the caller of the method's ``fit``).
    early_stopping : EarlyStopping, optional
        Validate after every epoch, stop when the validation loss stalls, restore the
        best weights (see :class:`EarlyStopping`; it holds the validation history and
        the best epoch afterwards). Without it the loop runs exactly ``epochs`` epochs
        and touches nothing else.

    Returns
    -------
    history : list of float
        One loss per completed epoch.
    """
    from tqdm.auto import tqdm

    from .estimator import FitInterrupted
    history = [] if history is None else history
    stop = early_stopping
    net.train()
    bar = tqdm(range(epochs), desc=name if desc is None else desc, disable=not progress)
    interrupted = completed = False
    try:
        for _ in bar:
            history.append(run_epoch())
            if stop is None:
                bar.set_postfix(loss=f"{history[-1]:{loss_format}}")
                continue
            done = stop._step(net)
            bar.set_postfix(loss=f"{history[-1]:{loss_format}}",
                            val=f"{stop.history[-1]:{loss_format}}", best=stop.best_epoch)
            if done:
                break
        completed = True
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
        if stop is not None and (completed or interrupted):
            stop._restore(net)  # not after an error: the fit fails anyway
        net.eval()
    if interrupted:
        kept = "the weights reached so far are kept" if stop is None or stop.best_epoch is None \
            or not stop.restore_best else \
            f"the weights of the best epoch so far ({stop.best_epoch}) are kept"
        warnings.warn(f"{name} training interrupted after {len(history)} epoch(s); {kept}.",
                      FitInterrupted, stacklevel=stacklevel)
    return history
