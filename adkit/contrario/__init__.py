"""A contrario detection: Number of False Alarms (NFA) under a background model.

A detection is declared where an event would be expected fewer than ε times under
the background (normal) model: NFA = N_tests · P(event) < ε. Everything here works
in log10 to stay finite far in the tails.

- :mod:`.gaussian`: Gaussian-tail NFA of normalized residuals (self-similarity,
  the reference detector); threshold γ_ε = √2·erfc⁻¹(ε/N).
- :mod:`.tree`: NFA of regions in the tree of upper level sets of a statistic map
  (U-Flow): the paper's χ² test with one count of all polyominoes, and the test with
  the count per region size.
- :mod:`.null`: background laws estimated on normal data (empirical law with a
  generalized Pareto tail, per-position scale, correlation of neighbouring cells; for
  pixel maps, the extremal index as the effective number of tests).
"""
from .._lazy import lazy

_MAP = {
    "log10_gaussian_tail": ".gaussian", "log_nfa_gaussian": ".gaussian",
    "gaussian_threshold": ".gaussian", "normalize_residual": ".gaussian",
    "gaussian_nfa": ".gaussian", "count_tests": ".gaussian", "vote_log_nfa": ".gaussian",
    "tree_log_nfa": ".tree", "polyomino_tests": ".tree", "level_set_tree": ".tree",
    "chi2_region_log_pfa": ".tree", "LevelSetTree": ".tree",
    "chi2_log_sf": ".tree", "polyomino_log_count": ".tree", "AllSizesChi2Test": ".tree",
    "PerSizeTest": ".tree",
    "CellBackground": ".null", "EmpiricalTail": ".null", "ar1_kappa": ".null",
    "effective_cells": ".null",
    "false_alarm_curve": ".calibration", "FalseAlarmCurve": ".calibration",
    "calibrated_log_nfa": ".calibration",
    "robust_normalize": ".null", "extremal_index": ".null", "PixelBackground": ".null",
}
__all__ = sorted(_MAP)
__getattr__, __dir__ = lazy(__name__, _MAP)
