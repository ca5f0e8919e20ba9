"""Settings of the lessons that the benchmarks and acceptance tests reproduce.

The method modules keep the papers' defaults; what a lesson changes to run in a few
minutes on a 2-core CPU is written here, once, and read by the notebook, by the
benchmark of :mod:`adkit.bench.tasks` and by the tests that check the lesson's claims.
"""
from __future__ import annotations

__all__ = ["NOTEBOOK_SETTINGS"]

#: AESc in notebook 06 (and in its acceptance test and ``python -m adkit bench --task
#: aesc``): small enough to train in seconds on a laptop CPU at 64 px, the paper's
#: architecture otherwise (width 0.5: 8 to 256 channels, half the paper's). With 48
#: images and a 30-epoch budget there is nothing to hold out: no validation (holding
#: out 20 % drops the image AUROC of AESc + Stain from 0.69 to 0.59 here), and the
#: learning rate is reduced after 10 epochs of training-loss plateau.
NOTEBOOK_SETTINGS = dict(category="tile", size=64, n_train=48, n_test=60, width=0.5,
                         epochs=30, batch_size=4, validation_fraction=0.0, lr_patience=10)
