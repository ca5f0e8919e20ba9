"""The training loop shared by the networks of adkit (N2N, U-Flow, AESc).

Each method knows what one epoch is (its batches, its loss, its scheduler, stepped per
batch or on plateau) and gives it to :func:`train_epochs` as a function; the loop
around it is the same for all:

- a progress bar over the epochs (tqdm) showing the last epoch's loss;
- the loss history, one mean loss per epoch, that a notebook can plot;
- an interruption (Ctrl-C, or a notebook's stop button) ends training cleanly: a
  warning says after how many epochs, and the weights reached so far are kept;
- the network in training mode during the loop, in evaluation mode afterwards.
"""
from __future__ import annotations

import warnings
from typing import Callable

__all__ = ["train_epochs"]


def train_epochs(run_epoch: Callable[[], float], epochs: int, *, net, name: str,
                 desc: str | None = None, progress: bool = True,
                 history: list | None = None, loss_format: str = ".4f",
                 stacklevel: int = 4) -> list:
    """Call ``run_epoch()`` ``epochs`` times and collect the epoch losses.

    Parameters
    ----------
    run_epoch : callable () -> float
        Trains ``net`` for one epoch and returns its mean loss.
    epochs : int
        Number of epochs.
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

    Returns
    -------
    history : list of float
        One loss per completed epoch.
    """
    from tqdm.auto import tqdm

    from .estimator import FitInterrupted
    history = [] if history is None else history
    net.train()
    bar = tqdm(range(epochs), desc=name if desc is None else desc, disable=not progress)
    try:
        for _ in bar:
            history.append(run_epoch())
            bar.set_postfix(loss=f"{history[-1]:{loss_format}}")
    except KeyboardInterrupt:
        warnings.warn(f"{name} training interrupted after {len(history)} epoch(s); the "
                      "weights reached so far are kept.", FitInterrupted, stacklevel=stacklevel)
    finally:
        bar.close()
        net.eval()
    return history
