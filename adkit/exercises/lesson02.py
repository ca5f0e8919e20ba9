"""Exercises of lesson 02 (Noise2Noise variability normalization): the pairing of each
training image with its nearest other image."""
from __future__ import annotations

import numpy as np

from .base import Case, Exercise, Mistake, register

# -- 02.nearest_image -------------------------------------------------------------------------


def _nearest_reference(images):
    """The nearest other image of each image, by adkit's exact L2 search (faiss)."""
    from ..neighbors import nearest_neighbors
    flat = np.asarray(images, np.float32).reshape(len(images), -1)
    _, idx = nearest_neighbors(flat, flat, k=2)
    n = np.arange(len(images))
    # the image itself is at distance 0: keep the other one (an exact copy may come first)
    return np.where(idx[:, 0] == n, idx[:, 1], idx[:, 0]).astype(np.int64)


def _nearest_cases(rng):
    x = rng.random((6, 8, 8, 3)).astype(np.float32)
    yield Case("6 random 8×8 images", (x,))
    pairs = np.repeat(rng.random((3, 8, 8, 3)).astype(np.float32), 2, axis=0)
    pairs += 0.05 * rng.standard_normal(pairs.shape).astype(np.float32)
    order = rng.permutation(6)
    yield Case("3 pairs of near copies, shuffled", (pairs[order],),
               hint="each image's nearest other image is its near copy.")
    y = rng.random((5, 6, 6, 3)).astype(np.float32)
    y[3] = y[1]
    yield Case("an exact copy among 5 images", (y,),
               hint="an exact copy is at distance 0 from its original: it is the nearest "
                    "other image (leave out the image itself, not every image at distance 0).")
    yield Case("two images", (rng.random((2, 8, 8, 3)).astype(np.float32),))


def _nearest_hints(case, got, expected):
    g = np.asarray(got)
    n = len(case.args[0])
    if g.shape == (n,) and np.all(g == np.arange(n)):
        return ("each image is its own nearest image (distance 0): leave the image itself "
                "out, e.g. set its distance to np.inf before the argmin.")
    if g.ndim == 2 and g.shape[0] == n:
        return "return one index per image, shape (N,), not a matrix of indices or distances."
    return None


def _nearest_solution(images):
    flat = images.reshape(len(images), -1).astype(np.float64)
    d = ((flat[:, None, :] - flat[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return d.argmin(1)


def _nearest_self(images):
    flat = images.reshape(len(images), -1).astype(np.float64)
    return ((flat[:, None, :] - flat[None, :, :]) ** 2).sum(-1).argmin(1)


register(Exercise(
    "02.nearest_image",
    title="Pairing each image with its nearest other image",
    statement="""The "nearest_images" pairing of Noise2Noise (Artola et al. 2021) trains on
    pairs of training images that look alike. Write a function that takes N images
    (N × H × W × 3) and returns, for each image, the index of its nearest other image:
    the one at the smallest Euclidean (L2) distance, all pixels and channels counted.""",
    signature="my_nearest(images) -> indices",
    reference=_nearest_reference, cases=_nearest_cases, hints=[_nearest_hints],
    solution=_nearest_solution,
    mistakes=[Mistake("keeps the image itself", _nearest_self, "its own nearest image")]))
