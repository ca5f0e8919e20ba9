"""Settings of the lessons that the benchmarks and acceptance tests reproduce.

The method modules keep the papers' defaults; what a lesson changes to run in a few
minutes on a 2-core CPU is written here, once, and read by the notebook, by the
benchmark of :mod:`adkit.bench.tasks` and by the tests that check the lesson's claims.
"""
from __future__ import annotations

__all__ = ["NOTEBOOK_SETTINGS", "AESC_CORRUPTIONS", "NORMALIZATION_STUDY", "ARTOLA_STUDY", "ARTOLA_VARIANTS", "FEATURE_STUDY",
           "BACKGROUND_STUDY", "BACKGROUND_TEST_KNOBS", "BACKGROUND_RANGE"]

#: AESc in notebook 06 (and in its acceptance test and ``python -m adkit bench --task
#: aesc_notebook``): small enough to train in seconds on a laptop CPU at 64 px, the paper's
#: architecture otherwise, with four stride-2 levels instead of six (``depth=4``) so
#: that the latent keeps the paper's 4×4 size (six levels leave 1×1 at 64 px, where the
#: AE learns the mean colour whatever it is trained on), and width 0.5 (8 to 64 channels,
#: half the paper's). With 48 images and a 30-epoch budget there is nothing to hold
#: out: no validation (holding out 20 % dropped the image AUROC of AESc + Stain from 0.69
#: to 0.59 with six levels), and the learning rate is reduced after 10 epochs of
#: training-loss plateau.
NOTEBOOK_SETTINGS = dict(category="tile", size=64, n_train=48, n_test=60, width=0.5,
                         depth=4, epochs=30, batch_size=4, validation_fraction=0.0,
                         lr_patience=10)

#: The rows of Collin & De Vleeschouwer's Table III (notebook 06): the corruption model
#: of the training inputs, as :class:`adkit.models.AESc` keywords; Gaussian noise at the
#: paper's four *variances*.
AESC_CORRUPTIONS = {
    "none": dict(corruption=None),
    **{f"gaussian {v:g}": dict(corruption="gaussian", corruption_params={"variance": v})
       for v in (0.1, 0.2, 0.4, 0.8)},
    "scratch": dict(corruption="scratch"),
    "drops": dict(corruption="drops"),
    "stain": dict(corruption="stain"),
    "mix1": dict(corruption="mix1"),
    "mix2": dict(corruption="mix2"),
}

#: Lesson 01's study of the normalization steps (:func:`adkit.bench.study.seed_study` on
#: ``synthetic/pill``): the reference detector on pills whose defects are faint (a fifth of
#: their contrast) among dense red speckles, with the exposure and pose jitter on, so that
#: no variant saturates
NORMALIZATION_STUDY = dict(n_train=30, n_test=40, size=128, exposure=True, pose=True,
                           speckles=2.5, defect_contrast=0.2)

#: Lessons 02-03's reproduction of Artola et al.'s Table 2 and Fig. 5 (and the acceptance
#: test of tests/test_selfsim.py): speckled pills whose thin and structural defects are
#: faint (a fifth of their contrast), so that the speckles hide them from the bare
#: detector. Exposure and pose are off: they are lesson 01's normalization, which the
#: paper applies before N2N. Small (96 px, 12 training images) so that three data seeds
#: of the three methods run in about two minutes on a laptop CPU.
ARTOLA_STUDY = dict(n_train=12, n_test=30, size=96, exposure=False, pose=False,
                    speckles=2.5, defect_contrast=0.2, defects=["crack", "scratch", "missing"])

#: The three rows of the paper's Table 2, as :func:`adkit.bench.study.seed_study` variants
ARTOLA_VARIANTS = {
    "per-pixel Gaussian (reference)": {"method": "reference"},
    "self-similarity": {"method": "selfsim"},
    "N2N + self-similarity": {"method": "selfsim", "steps": [
        ("n2n", dict(pairing="images", epochs=40, crop=64, seed=0))]},
}

#: Lesson 04's hard setting for the deep-feature models (:func:`adkit.bench.study.feature_study`
#: on ``synthetic/pill``): dense speckles and defects at a fifth of their contrast, 128 px,
#: where neither the Gaussian nor the memory bank saturates
FEATURE_STUDY = dict(n_train=30, n_test=40, size=128, speckles=2.5, defect_contrast=0.2)

#: Lesson 04's background anomalies (Son et al.): pills trained on clean backgrounds, tested
#: with twice the default dust (``seed_study(..., test_knobs=BACKGROUND_TEST_KNOBS)``); the
#: pill's background is dark, so the cleanup's range is (0, 100/255)
BACKGROUND_STUDY = dict(n_train=30, n_test=40, size=128, dust=False)
BACKGROUND_TEST_KNOBS = {"dust": 2.0}
BACKGROUND_RANGE = (0.0, 100 / 255)
