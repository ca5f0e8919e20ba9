"""Normalization steps (:class:`~adkit.normalize.base.Transform`), put in front of any
detector with :class:`adkit.models.Pipeline`.

- :mod:`.midway`: midway histogram equalization of N images (Delon 2004)
- :mod:`.align`: affine alignment, inverse compositional (Baker & Matthews 2001)
- :mod:`.background`: background anomaly removal (Son et al.)
- :mod:`.n2n`: Noise2Noise variability normalization (Artola et al. 2021)
"""
from .._lazy import lazy

_MAP = {
    "Transform": ".base",
    "Midway": ".midway", "midway_equalize": ".midway", "specify_histogram": ".midway",
    "Align": ".align", "align_affine": ".align", "warp_affine": ".align",
    "BackgroundCleanup": ".background", "clean_background": ".background",
    "N2N": ".n2n",
}
__all__ = sorted(_MAP)
__getattr__, __dir__ = lazy(__name__, _MAP)
