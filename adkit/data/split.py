"""The one dataset type of adkit: a ``Split`` of images with masks and labels.

Missing ground truth
--------------------
A user's own data may have anomalous images without a ground-truth mask (a defect
folder without ``ground_truth``, a ``folder`` dataset without mask files). A
``Split`` keeps one flag per image, ``has_mask`` (bool (N,)): False means *the mask
of that image is unknown*. Its row of ``masks`` is then all False so that array code
keeps working, but it does **not** mean "no defect". The readers mark good images
(label 0) True: their mask is known to be empty.

- ``split.has_mask.all()`` tells whether pixel metrics can be computed;
  :func:`adkit.metrics.evaluate` reports image metrics and gives NaN pixel metrics
  with a ``"note"`` otherwise.
- ``split[split.has_mask]`` keeps the images whose masks are known (the good ones
  and the annotated anomalous ones), e.g. to compute pixel metrics on those.
- ``Split(images, labels=labels)`` without masks marks the anomalous images as
  mask-less; ``Split(images, masks)`` has every mask known (the default for
  complete datasets such as the embedded ones and MVTec AD).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..checks import check_images, check_masks, check_seed

__all__ = ["Split"]


@dataclass
class Split:
    """A set of images with their ground truth.

    Attributes
    ----------
    images : float32 (N, H, W, 3) in [0, 1]
    masks : bool (N, H, W), True on anomalous pixels (all False for good images)
    labels : int (N,), 1 for an anomalous image, 0 for a good one
    defect_types : list of str, ``"good"`` for good images
    names : list of str, a short identifier per image (file name for MVTec AD)
    has_mask : bool (N,), False where the mask of an (anomalous) image is unknown;
        its row of ``masks`` is then all False (see the module docstring). Default:
        all True when ``masks`` are given, else True for the good images only.
    """

    images: np.ndarray
    masks: np.ndarray | None = None
    labels: np.ndarray | None = None
    defect_types: list = field(default_factory=list)
    names: list = field(default_factory=list)
    has_mask: np.ndarray | None = None

    def __post_init__(self):
        self.images = check_images(self.images, "Split.images", min_count=0)
        n, h, w = self.images.shape[:3]
        masks_given = self.masks is not None
        if self.masks is None:
            self.masks = np.zeros((n, h, w), bool)
        self.masks = check_masks(self.masks, (n, h, w), "Split.masks") if n else \
            np.zeros((0, h, w), bool)
        if self.labels is None:
            self.labels = self.masks.reshape(n, -1).any(1).astype(np.int64)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if self.labels.shape != (n,):
            raise ValueError(f"Split.labels has {self.labels.size} entries for {n} images.")
        if self.has_mask is None:
            self.has_mask = np.ones(n, bool) if masks_given else self.labels == 0
        has = np.asarray(self.has_mask).reshape(-1)
        if has.shape != (n,) or not (has.dtype == bool or np.isin(has, [0, 1]).all()):
            raise ValueError(f"Split.has_mask needs one True/False per image ({n}), got "
                             f"{has.shape[0]} values of dtype {has.dtype}.")
        self.has_mask = has.astype(bool)
        if n and self.masks[~self.has_mask].any():
            raise ValueError("Split.masks has defect pixels on images whose has_mask is "
                             "False (unknown mask): set has_mask True for them, or give "
                             "all-False masks.")
        if not self.defect_types:
            self.defect_types = ["good" if l == 0 else "defect" for l in self.labels]
        if not self.names:
            self.names = [f"{i:03d}" for i in range(n)]
        self.defect_types = list(self.defect_types)
        self.names = list(self.names)
        if len(self.defect_types) != n or len(self.names) != n:
            raise ValueError("Split.defect_types and Split.names need one entry per image.")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the images."""
        return tuple(self.images.shape[1:3])

    def subset(self, index: Sequence[int] | slice | np.ndarray) -> "Split":
        """A new Split with the images selected by ``index`` (indices, slice or bool mask)."""
        idx = np.arange(len(self))[index]
        idx = np.atleast_1d(idx)
        return Split(self.images[idx], self.masks[idx], self.labels[idx],
                     [self.defect_types[i] for i in idx], [self.names[i] for i in idx],
                     self.has_mask[idx])

    def __getitem__(self, index) -> "Split":
        return self.subset(index)

    @property
    def good(self) -> "Split":
        """The good images only."""
        return self.subset(self.labels == 0)

    @property
    def anomalous(self) -> "Split":
        """The anomalous images only."""
        return self.subset(self.labels == 1)

    def split(self, fraction: float = 0.2, seed=0) -> tuple["Split", "Split"]:
        """Randomly split into (rest, held_out) with ``fraction`` of the images held out.

        Used for instance to calibrate a detector on normal images it was not fitted on.
        """
        if not 0 < fraction < 1:
            raise ValueError(f"fraction must be in (0, 1), got {fraction}.")
        rng = check_seed(seed)
        perm = rng.permutation(len(self))
        k = max(1, int(round(fraction * len(self))))
        return self.subset(np.sort(perm[k:])), self.subset(np.sort(perm[:k]))

    @staticmethod
    def concatenate(splits: Sequence["Split"]) -> "Split":
        """Join several splits of the same image size."""
        return Split(np.concatenate([s.images for s in splits]),
                     np.concatenate([s.masks for s in splits]),
                     np.concatenate([s.labels for s in splits]),
                     sum((s.defect_types for s in splits), []),
                     sum((s.names for s in splits), []),
                     np.concatenate([s.has_mask for s in splits]))

    def __repr__(self) -> str:
        n = len(self)
        kinds = sorted(set(self.defect_types))
        unknown = int((~self.has_mask).sum())
        missing = f", {unknown} without mask" if unknown else ""
        return (f"Split({n} images of {self.size[0]}x{self.size[1]}, "
                f"{int(self.labels.sum())} anomalous{missing}, types={kinds})")
