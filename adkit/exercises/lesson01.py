"""Exercises of lesson 01 (midway equalization and alignment): the midway of two images,
histogram specification, the affine warp of a point."""
from __future__ import annotations

import numpy as np

from .base import Case, Exercise, Mistake, register

_TIES = ("many pixels share a value here: equal values take their ranks in raster order "
         "(np.argsort(..., kind='stable')), as adkit does.")
_CHANNELS = "equalize each colour channel on its own: the three histograms differ here."


def _image(rng, h, w):
    return rng.random((h, w, 3)).astype(np.float32)


def _is_sorted_image(a) -> bool:
    a = np.asarray(a)
    return a.ndim == 3 and bool(np.all(np.diff(a[..., 0].ravel()) >= 0))


# -- 01.midway_two_images --------------------------------------------------------------------

def _midway_reference(u, v):
    from ..normalize import midway_equalize
    return midway_equalize(u, v)


def _midway_cases(rng):
    u, v = _image(rng, 12, 16), _image(rng, 12, 16)
    yield Case("two random 12×16 images", (u, v))
    yield Case("v is a brighter copy of u (v = √u)", (u, np.sqrt(u)))
    yield Case("two constant images (0.2 and 0.8)",
               (np.full((8, 8, 3), 0.2, np.float32), np.full((8, 8, 3), 0.8, np.float32)),
               hint="two constant images meet halfway: both become 0.5 everywhere.")
    levels = np.array([0.1, 0.4, 0.6, 0.9], np.float32)
    yield Case("images with only 4 grey levels (many ties)",
               (levels[rng.integers(0, 4, (12, 16, 3))],
                levels[rng.integers(0, 4, (12, 16, 3))] * 0.8), hint=_TIES)
    cast = np.array([1.0, 0.6, 0.3], np.float32)
    yield Case("a colour cast: the channels of u have different ranges", (u * cast, v),
               hint=_CHANNELS)


def _midway_hints(case, got, expected):
    u, v = case.args
    if not (isinstance(got, (tuple, list)) and len(got) == 2):
        return "return the two equalized images, as a tuple: return u2, v2."
    g0, g1 = (np.asarray(x) for x in got)
    mean = (u.astype(np.float64) + v) / 2
    if g0.shape == mean.shape and np.allclose(g0, mean, atol=1e-5) and \
            np.allclose(g1, mean, atol=1e-5):
        return ("you averaged the images pixel by pixel: average their sorted values (the "
                "quantile functions), then give each pixel the average at its rank.")
    if g0.shape == u.shape and _is_sorted_image(g0) and not _is_sorted_image(expected[0]):
        return ("your images hold the midway values in increasing order: put the r-th value "
                "back at the pixel of rank r (the order np.argsort gives).")
    if g0.shape == u.shape and np.allclose(g0, expected[1], atol=1e-5) and \
            np.allclose(g1, expected[0], atol=1e-5):
        return "the two results are swapped: return (u2, v2), in that order."
    return None


def _specify_by_rank(x, values):
    """Give each channel of x (H, W, 3) the sorted ``values`` (3, P) by stable rank."""
    out = np.empty(x.shape, np.float32)
    for c in range(3):
        order = np.argsort(x[..., c].ravel(), kind="stable")
        flat = np.empty(x[..., c].size, np.float32)
        flat[order] = values[c]
        out[..., c] = flat.reshape(x.shape[:2])
    return out


def _midway_solution(u, v):
    mid = [(np.sort(u[..., c].ravel()) + np.sort(v[..., c].ravel().astype(np.float64))) / 2
           for c in range(3)]
    return _specify_by_rank(u, mid), _specify_by_rank(v, mid)


def _midway_pixel_average(u, v):
    m = (u + v) / 2
    return m, m.copy()


def _midway_sorted_only(u, v):
    out = []
    for x in (u, v):
        y = np.empty_like(x)
        for c in range(3):
            y[..., c] = ((np.sort(u[..., c].ravel()) + np.sort(v[..., c].ravel())) / 2
                         ).reshape(x.shape[:2])
        out.append(y)
    return tuple(out)


def _midway_unstable(u, v):
    mid = [(np.sort(u[..., c].ravel()) + np.sort(v[..., c].ravel())) / 2 for c in range(3)]
    out = []
    for x in (u, v):
        y = np.empty_like(x)
        for c in range(3):
            flat = x[..., c].ravel()
            order = np.lexsort((-np.arange(flat.size), flat))   # ties: last pixel first
            res = np.empty(flat.size, np.float32)
            res[order] = mid[c]
            y[..., c] = res.reshape(x.shape[:2])
        out.append(y)
    return tuple(out)


def _midway_pooled(u, v):
    mid = (np.sort(u.ravel()) + np.sort(v.ravel())) / 2
    out = []
    for x in (u, v):
        flat = np.empty(x.size, np.float32)
        flat[np.argsort(x.ravel(), kind="stable")] = mid
        out.append(flat.reshape(x.shape))
    return tuple(out)


register(Exercise(
    "01.midway_two_images",
    title="Midway of two images",
    statement="""The midway of two images u and v (Delon 2004) gives both the same
    histogram, "in the middle" of theirs, keeping the order of each image's pixels. Per
    colour channel: sort the values of u and of v; their average, value by value, is the
    midway quantile function; the pixel of rank r of u (and of v) receives its r-th value.
    Equal values take their ranks in raster order (np.argsort(..., kind="stable")). Write a
    function that takes two float images (H, W, 3) of the same size and returns the pair
    (u2, v2).""",
    signature="my_midway(u, v) -> (u2, v2)",
    reference=_midway_reference, cases=_midway_cases, hints=[_midway_hints],
    solution=_midway_solution, atol=1e-5, rtol=0.0, outputs=("u2", "v2"),
    mistakes=[
        Mistake("averages the pixels", _midway_pixel_average, "pixel by pixel"),
        Mistake("forgets to put the values back by rank", _midway_sorted_only,
                "increasing order"),
        Mistake("breaks ties in another order", _midway_unstable, "raster order"),
        Mistake("pools the three channels", _midway_pooled, "each colour channel"),
    ]))


# -- 01.specify_histogram ---------------------------------------------------------------------

def _specify_reference(image, reference):
    from ..normalize import specify_histogram
    return specify_histogram(image, reference)


def _specify_cases(rng):
    x, ref = _image(rng, 10, 12), _image(rng, 10, 12)
    yield Case("two random 10×12 images", (x, ref))
    yield Case("a darker reference (ref = x²)", (x, x ** 2))
    yield Case("a constant reference (0.3)", (x, np.full_like(x, 0.3)),
               hint="a constant reference makes every pixel 0.3.")
    yield Case("the image is its own reference", (x, x.copy()),
               hint="specifying an image onto its own histogram leaves it unchanged.")
    levels = np.array([0.2, 0.5, 0.7], np.float32)
    yield Case("an image with only 3 grey levels (many ties)",
               (levels[rng.integers(0, 3, (10, 12, 3))], ref), hint=_TIES)
    yield Case("a reference with a colour cast", (x, ref * np.array([0.3, 0.7, 1.0], np.float32)),
               hint=_CHANNELS)


def _specify_hints(case, got, expected):
    x, ref = case.args
    g = np.asarray(got)
    if g.shape == ref.shape and np.allclose(g, ref, atol=1e-6) and \
            not np.allclose(expected, ref, atol=1e-6):
        return ("you returned the reference: the image keeps the order of its own pixels "
                "and only takes the reference's values.")
    if g.shape == x.shape and _is_sorted_image(g) and not _is_sorted_image(expected):
        return ("your image holds the reference's values in increasing order: put the r-th "
                "smallest value at the pixel of rank r of the image.")
    return None


def _specify_solution(image, reference):
    values = [np.sort(reference[..., c].ravel()) for c in range(3)]
    return _specify_by_rank(image, values)


def _specify_sorted_only(image, reference):
    out = np.empty_like(image)
    for c in range(3):
        out[..., c] = np.sort(reference[..., c].ravel()).reshape(image.shape[:2])
    return out


register(Exercise(
    "01.specify_histogram",
    title="Histogram specification",
    statement="""Specifying an image onto the histogram of a reference gives it the
    reference's values while keeping the order of its own pixels. Per colour channel: sort
    the reference's values; the pixel of rank r of the image receives the r-th smallest of
    them (equal values of the image take their ranks in raster order,
    np.argsort(..., kind="stable")). Write a function that takes an image and a reference
    of the same size (H, W, 3) and returns the specified image.""",
    signature="my_specify(image, reference) -> image2",
    reference=_specify_reference, cases=_specify_cases, hints=[_specify_hints],
    solution=_specify_solution, atol=1e-6, rtol=0.0,
    mistakes=[
        Mistake("forgets the ranks", _specify_sorted_only, "increasing order"),
        Mistake("returns the reference", lambda image, reference: reference.copy(),
                "returned the reference"),
    ]))


# -- 01.warp_point ------------------------------------------------------------------------------

_SIDE = 128


def _warp_reference(p, x, y):
    """Where adkit's warp_affine samples for output pixel (x, y): warp images whose values
    are their own column and row (bilinear interpolation of a linear ramp is exact)."""
    from ..normalize import warp_affine
    cols, rows = np.meshgrid(np.arange(_SIDE, dtype=np.float32),
                             np.arange(_SIDE, dtype=np.float32))
    return (float(warp_affine(cols, p, order=1)[y, x]),
            float(warp_affine(rows, p, order=1)[y, x]))


def _warp_cases(rng):
    def p(*values):
        return np.array(values, np.float64)
    yield Case("p = 0, the identity", (p(0, 0, 0, 0, 0, 0), 20, 15))
    yield Case("a translation", (p(0, 0, 0, 0, 7.5, -3.25), 40, 30))
    yield Case("a zoom (p1 = p4 = 0.2)", (p(0.2, 0, 0, 0.2, 0, 0), 50, 20))
    yield Case("a shear (p3 only)", (p(0, 0, 0.3, 0, 0, 0), 10, 60),
               hint="A = [[1 + p1, p3, p5], [p2, 1 + p4, p6]]: p3 multiplies y in the first "
                    "row, p2 multiplies x in the second.")
    a = rng.uniform(-0.1, 0.1, 4)
    yield Case("a small rotation and translation",
               (p(a[0], 0.15, -0.15, a[1], 4.0, 6.0), int(rng.integers(30, 90)),
                int(rng.integers(30, 90))))
    yield Case("the origin pixel (0, 0) under a translation", (p(0.1, 0.05, -0.05, 0, 9, 12), 0, 0),
               hint="p5 and p6 are the translation: they are added to every point, the "
                    "origin too.")


def _warp_matrix_variant(p, x, y, matrix):
    v = matrix @ np.array([x, y, 1.0])
    return float(v[0]), float(v[1])


def _warp_hints(case, got, expected):
    from ..normalize.align import params_to_matrix
    p, x, y = case.args
    try:
        g = np.asarray(got, np.float64).reshape(2)
    except (TypeError, ValueError):
        return "return the two coordinates, as a tuple: return x2, y2."
    if np.allclose(g, expected[::-1], atol=1e-3) and not np.allclose(g, expected, atol=1e-3):
        return "you returned (row, column): return (x2, y2) = (column, row), x first."
    a = params_to_matrix(p)
    if np.allclose(g, _warp_matrix_variant(p, x, y, a - np.eye(2, 3)), atol=1e-3):
        return ("p = 0 must be the identity: the diagonal of A is 1 + p1 and 1 + p4, not "
                "p1 and p4.")
    swapped = params_to_matrix(np.asarray(p)[[0, 2, 1, 3, 4, 5]])
    if np.allclose(g, _warp_matrix_variant(p, x, y, swapped), atol=1e-3):
        return ("p2 and p3 are swapped: the 6-vector fills A column by column, "
                "A = [[1 + p1, p3, p5], [p2, 1 + p4, p6]].")
    return None


def _warp_solution(p, x, y):
    a = np.array([[1 + p[0], p[2], p[4]], [p[1], 1 + p[3], p[5]]])
    x2, y2 = a @ np.array([x, y, 1.0])
    return x2, y2


def _warp_row_major(p, x, y):
    a = np.array([[1 + p[0], p[1], p[4]], [p[2], 1 + p[3], p[5]]])
    x2, y2 = a @ np.array([x, y, 1.0])
    return x2, y2


def _warp_no_identity(p, x, y):
    a = np.array([[p[0], p[2], p[4]], [p[1], p[3], p[5]]])
    x2, y2 = a @ np.array([x, y, 1.0])
    return x2, y2


register(Exercise(
    "01.warp_point",
    title="The affine warp of a point",
    statement="""Alignment estimates the 6 parameters p of an affine warp
    W(x; p) = A·(x, y, 1) with A = [[1 + p1, p3, p5], [p2, 1 + p4, p6]] (Baker & Matthews):
    p = 0 is the identity, p5 and p6 a translation. adkit.normalize.warp_affine(image, p)
    shows at each output pixel (x, y) = (column, row) the point W(x; p) of the image.
    Write a function that takes p (6 numbers, p1…p6 as p[0]…p[5]) and a pixel (x, y) and
    returns the point (x2, y2) = W(x; p) that it shows.""",
    signature="my_warp_point(p, x, y) -> (x2, y2)",
    reference=_warp_reference, cases=_warp_cases, hints=[_warp_hints],
    solution=_warp_solution, atol=1e-3, rtol=0.0, dtype=None, outputs=("x2", "y2"),
    mistakes=[
        Mistake("fills A row by row", _warp_row_major, "p2 and p3 are swapped"),
        Mistake("forgets the identity", _warp_no_identity, "1 + p1"),
        Mistake("returns (row, column)", lambda p, x, y: _warp_solution(p, x, y)[::-1],
                "(row, column)"),
    ]))
