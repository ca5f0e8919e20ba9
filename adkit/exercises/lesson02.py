"""Exercises of lesson 02 (Noise2Noise variability normalization): the pairing of each
training image with its nearest other image, and the "nearest_patches" pairing's choice of
the nearest patch in a local window."""
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


# -- 02.nearest_patch ------------------------------------------------------------------------
# The reference is N2N's own pairing: N2N._patch_pairs matches a grid of patches of each
# image (top-left corners every p // 2 pixels, plus the last one) with the nearest patch in
# a ±search window of its nearest images. The cases put the query on that grid and give
# the query image the candidates as its nearest images.

def _grid(n, p):
    step = max(1, p // 2)
    return np.unique(np.r_[np.arange(0, n - p + 1, step), n - p])


def _patch_reference(image, others, y, x, p, r):
    from ..normalize import N2N
    x_all = np.concatenate([image[None], others]).astype(np.float32)
    k = len(others)
    nn_idx = np.zeros((k + 1, k), np.int64)        # only image 0's row is used here
    nn_idx[0] = np.arange(1, k + 1)
    ys, xs, match, _ = N2N(patch_size=p, search=r)._patch_pairs(x_all, nn_idx)
    iy, ix = int(np.flatnonzero(ys == y)[0]), int(np.flatnonzero(xs == x)[0])
    j, y2, x2 = (int(v) for v in match[0, iy, ix])
    return j - 1, y2, x2


def _plant(rng, others, image, y, x, p, j, y2, x2, noise):
    patch = image[y:y + p, x:x + p]
    others[j, y2:y2 + p, x2:x2 + p] = patch + noise * rng.standard_normal(patch.shape)


def _patch_cases(rng):
    p, r, size = 8, 3, 24
    image = rng.random((size, size, 3)).astype(np.float32)
    others = rng.random((3, size, size, 3)).astype(np.float32)
    _plant(rng, others, image, 8, 8, p, 1, 10, 7, 0.05)
    yield Case("the query patch copied (with a little noise) into the 2nd of 3 images, "
               "2 px lower and 1 px left", (image, others, 8, 8, p, r),
               hint="look in every candidate image, not only the first.")
    image = rng.random((size, size, 3)).astype(np.float32)
    others = rng.random((2, size, size, 3)).astype(np.float32)
    _plant(rng, others, image, 0, 12, p, 0, 0, 14, 0.05)
    yield Case("a query at the top border (y = 0): the window is cut by the image",
               (image, others, 0, 12, p, r),
               hint="the window is clipped to the image: y2 runs from max(0, y − r) to "
                    "min(H − p, y + r), and likewise x2.")
    image = rng.random((size, size, 3)).astype(np.float32)
    others = rng.random((3, size, size, 3)).astype(np.float32)
    _plant(rng, others, image, 4, 4, p, 0, 4 + r + 3, 4 + r + 2, 0.0)   # outside the window
    _plant(rng, others, image, 4, 4, p, 2, 6, 3, 0.08)                   # inside
    yield Case("an exact copy outside the ±r window, a noisy one inside",
               (image, others, 4, 4, p, r),
               hint="the search is local: only the patches whose corner is within ±r of "
                    "(y, x) are candidates.")
    image = rng.random((16, 20, 3)).astype(np.float32)
    others = rng.random((2, 16, 20, 3)).astype(np.float32)
    yield Case("random 16×20 images, 2 candidates, query at the bottom-right corner",
               (image, others, 8, 12, p, 2))


def _patch_hints(case, got, expected):
    image, others, y, x, p, r = case.args
    try:
        g = tuple(int(v) for v in got)
    except (TypeError, ValueError):
        return "return three integers: (j, y2, x2)."
    if len(g) != 3:
        return None
    if (g[0], g[2], g[1]) == tuple(expected):
        return "y2 and x2 are swapped: return (j, y2, x2), the row first."
    if abs(g[1] - y) > r or abs(g[2] - x) > r:
        return (f"({g[1]}, {g[2]}) is more than r = {r} pixels from (y, x) = ({y}, {x}): "
                "search only the window of ±r around the query's place.")
    if g[0] == 0 and expected[0] != 0:
        return "look in every candidate image (others[0], others[1], ...), not only the first."
    return None


def _patch_solution(image, others, y, x, p, r):
    h, w = image.shape[:2]
    query = image[y:y + p, x:x + p].astype(np.float64)
    best, best_d = None, np.inf
    for j in range(len(others)):
        for y2 in range(max(0, y - r), min(h - p, y + r) + 1):
            for x2 in range(max(0, x - r), min(w - p, x + r) + 1):
                d = np.sum((others[j, y2:y2 + p, x2:x2 + p] - query) ** 2)
                if d < best_d:
                    best, best_d = (j, y2, x2), d
    return best


def _patch_whole_image(image, others, y, x, p, r):
    h, w = image.shape[:2]
    query = image[y:y + p, x:x + p].astype(np.float64)
    d = {(j, y2, x2): np.sum((others[j, y2:y2 + p, x2:x2 + p] - query) ** 2)
         for j in range(len(others)) for y2 in range(h - p + 1) for x2 in range(w - p + 1)}
    return min(d, key=d.get)


def _patch_first_only(image, others, y, x, p, r):
    j, y2, x2 = _patch_solution(image, others[:1], y, x, p, r)
    return 0, y2, x2


register(Exercise(
    "02.nearest_patch",
    title="The nearest patch in a local window",
    statement="""The "nearest_patches" pairing of N2N pairs a patch of a training image with
    the most similar patch of its nearest images, searched near the same place, so that the
    pairs still match when parts move between images. Write a function that takes the
    image (H × W × 3), the candidate images `others` (k × H × W × 3), the top-left corner
    (y, x) of a p × p patch of the image and the search radius r, and returns (j, y2, x2):
    the candidate image j and the top-left corner of its patch others[j, y2:y2+p, x2:x2+p]
    nearest to the query patch (smallest sum of squared differences over pixels and
    channels), among the corners with |y2 − y| ≤ r and |x2 − x| ≤ r that keep the patch
    inside the image (N2N(pairing="nearest_patches", patch_size=p, search=r) makes the same
    choice).""",
    signature="my_nearest_patch(image, others, y, x, p, r) -> (j, y2, x2)",
    reference=_patch_reference, cases=_patch_cases, hints=[_patch_hints],
    solution=_patch_solution, outputs=("j", "y2", "x2"),
    mistakes=[
        Mistake("searches the whole image", _patch_whole_image, "±r"),
        Mistake("looks in the first image only", _patch_first_only, "every candidate image"),
    ]))
