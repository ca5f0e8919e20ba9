"""Detectors, all following the contract of :mod:`adkit.models.base`.

=====================  ===========================================================
``ReferenceGaussian``  per-pixel Gaussian on aligned images (the baseline)
``SelfSimilarity``     patch self-similarity + a contrario (Artola et al. 2021)
``Gaussian``           OPCA + Ledoit-Wolf + Mahalanobis on deep features (Wang et al.)
``KNN``                PatchCore / SPADE memory bank with coreset (Roth et al.)
``UFlow``              U-shaped normalizing flow + a contrario (Tailanian et al.)
``AESc``               autoencoder with skips trained on Stain noise (Collin et al.)
``Pipeline``           normalization steps in front of any detector
=====================  ===========================================================
"""
from .._lazy import lazy

_MAP = {
    "Detector": ".base", "AnomalyResult": ".base",
    "Pipeline": ".pipeline", "Calibrated": ".calibrated",
    "ReferenceGaussian": ".reference",
    "SelfSimilarity": ".selfsim",
    "Gaussian": ".gaussian",
    "KNN": ".knn",
    "UFlow": ".uflow",
    "AESc": ".aesc",
}

#: CLI / benchmark names of the detectors
METHODS = {"reference": "ReferenceGaussian", "selfsim": "SelfSimilarity",
           "gaussian": "Gaussian", "knn": "KNN", "uflow": "UFlow", "aesc": "AESc"}

__all__ = sorted(_MAP)
__getattr__, __dir__ = lazy(__name__, _MAP)
