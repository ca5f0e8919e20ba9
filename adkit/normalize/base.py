"""The normalization-step contract: ``Transform``.

A step is fitted on normal training images and then applied to any image::

    step = adkit.normalize.Midway().fit(train)
    x = step.transform(test)

Steps that move pixels (alignment) also say how to bring a map computed on the
transformed image back to the input frame (:meth:`Transform.transform_with_inverse`),
so that maps and ground-truth masks stay comparable. Steps compose in front of any detector through
:class:`adkit.models.Pipeline`.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..checks import check_images
from ..estimator import Estimator

__all__ = ["Transform"]


class Transform(Estimator):
    """Base class of normalization steps (images in, images out, numpy float32)."""

    #: the fewest training images ``fit`` accepts, and why (for the error message)
    _min_train: int = 1
    _min_train_why: str = ""

    def fit(self, images: Any) -> "Transform":
        """Learn what the step needs from normal images; returns self."""
        x = check_images(images, "train images")
        if len(x) < self._min_train:
            why = f" ({self._min_train_why})" if self._min_train_why else ""
            raise ValueError(f"{type(self).__name__} needs at least {self._min_train} "
                             f"training images{why}, got {len(x)}: pass more normal images.")
        self._fit(x)
        self._mark_fitted()
        return self

    def transform(self, images: Any) -> np.ndarray:
        """Normalize ``images``; returns float32 (N, H, W, 3) in [0, 1]."""
        self._check_fitted("transform")
        x = check_images(images, "images")
        out, _ = self._transform_info(x)
        return np.clip(out, 0, 1).astype(np.float32, copy=False)

    def fit_transform(self, images: Any) -> np.ndarray:
        return self.fit(images).transform(images)

    def transform_with_inverse(self, images: Any):
        """``(transformed, inverse)`` where ``inverse(maps)`` takes (N, H, W) maps
        computed on ``transformed`` back to the frame of ``images``.

        Steps that move pixels override :meth:`_inverse_maps`; for the others the
        inverse is the identity.
        """
        self._check_fitted("transform")
        x = check_images(images, "images")
        out, info = self._transform_info(x)
        out = np.clip(out, 0, 1).astype(np.float32, copy=False)
        return out, (lambda maps: self._inverse_maps(maps, info))

    # -- for subclasses -------------------------------------------------------------
    def _fit(self, images: np.ndarray) -> None:
        """Default: nothing to learn."""

    def _transform(self, images: np.ndarray) -> np.ndarray:  # pragma: no cover
        """Override this, or :meth:`_transform_info` for steps that move pixels."""
        raise NotImplementedError

    def _transform_info(self, images: np.ndarray):
        """Transform and return what :meth:`_inverse_maps` needs (e.g. the warps)."""
        return self._transform(images), None

    def _inverse_maps(self, maps: np.ndarray, info) -> np.ndarray:
        return maps

    # state hooks (see adkit.estimator): by default a step has nothing fitted to save
    def _get_state(self) -> dict:
        return {}

    def _set_state(self, state: dict) -> None:
        pass
