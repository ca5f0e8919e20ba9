"""Procedural industrial images: three rigid objects, two textures, five defects (and
three semantic defects of the objects).

>>> from adkit.data import synthetic
>>> train, test = synthetic.load("pill", n_train=60, n_test=40, size=256, seed=0)
>>> image, mask = synthetic.make_one("nut", defect="crack", pose=False)

Everything is drawn at ``size`` directly from analytic shapes (signed distances,
normals lit by one lamp, smooth ramps for anti-aliased edges) with numpy only, so a
batch of 100 images of 256x256 takes a fraction of a second.

Categories
----------
Objects (:data:`OBJECTS`), on a plain dark-to-mid background with a vignette, a
slight grain and a soft shadow:

``pill``
    a white/cream capsule (a rounded rectangle seen from above) with a printed red
    mark "AK", lit from the top left;
``nut``
    a steel hexagonal nut with chamfered corners, a bevelled round hole showing the
    thread and the background through it, and brushed-metal reflections;
``bottle``
    an amber glass bottle seen from above: concentric rings (body, shoulder, a
    bright lip) around a dark mouth.

An object that reaches the image border (:data:`BORDER_OBJECTS`, loaded by name --
``load("synthetic/transistor")`` -- but outside :data:`CATEGORIES`, so the tests and
benchmarks that loop over the categories do not grow; :data:`ALL_CATEGORIES` holds
all):

``transistor``
    a dark plastic body printed "T7" with three metal leads that run down out of the
    frame, on a textured board (a fibre weave), after MVTec AD's transistor; its pose
    jitter is half the ``pose`` knob's (a part held in a fixture).

Textures (:data:`TEXTURES_SYN`), filling the whole image:

``fabric``
    a plain weave (warp and weft threads going over and under each other) whose
    threads vary in tone and thickness and have slubs along their length;
``tile``
    a grid of ceramic tiles separated by grout, each tile with its own tone, a
    bevel lit from the top left and a mottled glaze.

Normal variability (the knobs)
------------------------------
Every knob is ``True`` (default strength 1), ``False``/``0`` (off) or a float
strength ``s`` in [0, 5] that scales the ranges given below: the exposure ranges, the
pose translation and rotation (the scale range stops growing at ``s = 1``), the number
of speckles and dust particles (their opacity too when ``s < 1``), the noise
standard deviation. Each knob has its own random
stream, so turning one off does not change what the others draw. Each simulates a
nuisance that one normalization method of the course is meant to remove:

``exposure`` -- global gain ``exp(U(-0.18, 0.18))``, gamma ``exp(U(-0.15, 0.15))`` and a
    colour cast (a per-channel gain ``exp(U(-0.05, 0.05))``) per image: lamp and camera
    drift. Exercises **midway histogram equalization** (``adkit.normalize.Midway``).
``pose`` -- rigid jitter of the object: translation up to 6% of the image size,
    rotation up to 10 degrees, scale 0.95-1.05. For textures, a random shift (up to
    the image size) and rotation (up to 10 degrees) of the pattern. Exercises
    **alignment / registration** (``adkit.normalize.Align``).
``speckles`` -- on the pill, 25-40 small red/brown speckles at random places on the
    capsule, a new pattern per image (a *normal* variation, as in the MVTec AD pill
    class). Mild equivalents elsewhere: machining pits (dark dots) on the nut face,
    specks of dust on the bottle glass, lint nubs on the fabric, dark pores in the
    tiles (4-15 dots of low contrast). Exercises **Noise2Noise** variability
    normalization (``adkit.normalize.N2N``), which learns to remove what is
    unpredictable from one image to the next.
``dust`` -- objects only: 2-6 small dark or bright particles on the *background*
    (never on the object, never in the masks: not a defect). Exercises
    **background cleanup** (``adkit.normalize.BackgroundCleanup``). No effect on
    textures.
``noise`` -- additive Gaussian sensor noise of standard deviation 0.015 (times the
    strength), drawn independently per pixel and channel. Every method has to cope
    with it.

Defects (:data:`DEFECTS`)
-------------------------
Drawn on the object (objects) or anywhere (textures), sized like MVTec AD defects
(about 0.3-3% of the image), each with its exact mask: the pixels whose value the
defect changed, and no other (a pixel outside the mask equals the good rendering of
the same image; see ``return_clean``).

``crack`` a thin dark (bright on dark surfaces) branching polyline;
``scratch`` a thin bright or dark curve, a few pixels wide;
``contamination`` a blob of a foreign colour with its own grainy texture;
``missing`` a chunk of the object replaced by background (a chip at its edge), or a
hole in a texture;
``stain`` a smooth-edged colour change.

Semantic defects (:data:`SEMANTIC`), objects only, not in the default mix
(``defects="semantic"``, or ``adkit.data.load("synthetic/<object>/semantic")``): a
part of the object is where it should not be, with a normal texture -- the defects a
detector of local appearance alone finds hardest (MVTec AD's misplaced or missing
transistor leads). The part is the pill's printed mark, the nut's hole and the
bottle's lip and mouth (the transistor: the whole transistor, or one lead bent or cut,
see :func:`~adkit.data.synthetic.defects.draw_part`):

``shifted`` the part moved (the mark along or across the capsule, the hole off
centre, the mouth off the bottle's axis);
``turned`` the mark turned by 35-180 degrees, the nut's hexagon turned by about 30
degrees (corners where flats should be), the mouth seen as an ellipse (a tilted neck);
``absent`` no mark, no hole, a closed mouth.

The object is rendered again with its part moved; the mask is where the two
renderings differ (by more than 0.02), so it covers both where the part should be and
where it is.

``defect_contrast`` (default 1) scales how visible a defect is: below 1 the defect is
blended with the defect-free scene (same shape, place and mask), to make subtle
defects that normal variability can hide.

Randomness: ``seed`` goes through :class:`numpy.random.SeedSequence`. In :func:`load`
the train and test sets use two independent sub-streams (changing ``n_test`` does
not change the training images), and in :func:`make` image ``i`` uses sub-stream
``i`` (so the first images do not depend on ``n``) split again per knob and for
the defect. The same arguments give bit-identical arrays.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from ...checks import check_batch_memory, check_in_range, check_positive_int
from ..split import Split
from .categories import (ALL_CATEGORIES, ALL_OBJECTS, BORDER_OBJECTS, CATEGORIES, DEFAULTS,
                         DEFECT_SETS, DEFECTS, KNOBS, NOISE_SIGMA, OBJECTS, SEMANTIC,
                         TEXTURES_SYN, check_category, check_contrast, check_defect_type,
                         check_defects, check_strength)
from .defects import apply_defect, apply_part_defect
from .draw import F32, fixed_ingredients
from .nuisances import add_dust, add_speckles, apply_exposure
from .objects import render_object
from .patterns import render_texture
from .pose import Pose, draw_pose
from .streams import seed_sequence, substream, substream_rng
from .transistor import POSE_FACTOR

__all__ = ["CATEGORIES", "OBJECTS", "BORDER_OBJECTS", "ALL_OBJECTS", "ALL_CATEGORIES",
           "TEXTURES_SYN", "DEFECTS", "SEMANTIC", "DEFECT_SETS",
           "DEFAULTS", "Generated", "load", "make", "make_one"]


class Generated(NamedTuple):
    """What :func:`make` returns.

    Attributes
    ----------
    images : float32 (N, H, W, 3) in [0, 1]
    masks : bool (N, H, W), True on the pixels a defect changed
    defect_types : list of str, ``"good"`` or one of :data:`DEFECTS`
    clean : float32 (N, H, W, 3) or None: the same images without their defect
        (same pose, exposure, speckles, dust and noise), when ``return_clean=True``
    """

    images: np.ndarray
    masks: np.ndarray
    defect_types: list
    clean: np.ndarray | None


def _render(category, size, ss, kind, strengths, want_clean, contrast=1.0):
    """One image from stream ``ss``: returns (image, mask, clean or None)."""
    st = strengths
    texture = category in TEXTURES_SYN
    grain, vignette, tables = fixed_ingredients(category, size)
    strength = st["pose"] * POSE_FACTOR if category == "transistor" else st["pose"]
    pose = draw_pose(substream_rng(ss, 0), strength, texture) if st["pose"] > 0 \
        else Pose(0.0, 0.0, 0.0, 1.0)
    if texture:
        R = render_texture(category, size, pose, grain, tables)
    else:
        R = render_object(category, size, pose, grain, vignette)
    add_speckles(category, R, size, pose, substream_rng(ss, 1), st["speckles"])
    add_dust(R, size, substream_rng(ss, 2), st["dust"])
    clean_scene = R["scene"].copy() if (want_clean and kind != "good") else None
    if kind in SEMANTIC:
        mask = apply_part_defect(kind, R, category, size, pose, grain, vignette,
                                 substream_rng(ss, 5), contrast)
    elif kind != "good":
        mask = apply_defect(kind, R, category, size, substream_rng(ss, 5), contrast)
    else:
        mask = np.zeros((size, size), bool)
    noise = None
    if st["noise"] > 0:
        noise = (substream_rng(ss, 4).standard_normal((size, size, 3), dtype=np.float32)
                 * F32(NOISE_SIGMA * st["noise"]))

    def finish(scene):
        img = apply_exposure(scene, substream_rng(ss, 3), st["exposure"])
        if noise is not None:
            img = img + noise
        return np.clip(img, 0, 1).astype(F32)

    image = finish(R["scene"])
    clean = None
    if want_clean:
        clean = image.copy() if clean_scene is None else finish(clean_scene)
    return image, mask, clean


def make(category: str, n: int = 1, size: int = 256, seed=0, defective=False,
         defects: Sequence[str] | None = None, exposure=True, pose=True, speckles=True,
         dust=True, noise=True, return_clean: bool = False,
         defect_contrast: float = 1.0) -> Generated:
    """Generate ``n`` images of one category.

    Parameters
    ----------
    category : str
        One of :data:`CATEGORIES`.
    n : int
        Number of images.
    size : int
        Side of the square images in pixels (>= 32).
    seed : int or numpy.random.SeedSequence
        Image ``i`` is drawn from sub-stream ``i`` of this seed.
    defective : bool or sequence of str
        ``False``: all good. ``True``: all defective, the defect types cycling through
        ``defects``. A sequence of ``n`` entries, each ``"good"`` or a defect type.
    defects : sequence of str or "semantic", optional
        Defect types to cycle through when ``defective=True`` (default all of
        :data:`DEFECTS`; ``"semantic"``: those of :data:`SEMANTIC`, objects only).
    exposure, pose, speckles, dust, noise : bool or float
        The normal variability knobs, see the module docstring (True = strength 1).
    return_clean : bool
        Also return each image rendered without its defect (everything else equal).
    defect_contrast : float in (0, 1]
        Visibility of the defects: each defect is blended with the defect-free
        scene, ``clean + defect_contrast * (defect - clean)`` on its pixels (before
        exposure and noise are applied). 1 (the default) draws the defects fully;
        smaller values make them subtle (the same shapes, places and masks, the same
        random draws) -- e.g. 0.3 to see normal variability (speckles) hide a faint
        stain from a detector.

    Returns
    -------
    Generated
        ``(images, masks, defect_types, clean)``.
    """
    category = check_category(category)
    n = check_positive_int(n, "n")
    size = check_positive_int(size, "size", minimum=32, maximum=4096)
    check_batch_memory(n, size, size, "synthetic images")
    ss = seed_sequence(seed)
    defects = check_defects(defects, category)
    strengths = {k: check_strength(v, k) for k, v in
                 zip(KNOBS, (exposure, pose, speckles, dust, noise))}
    contrast = check_contrast(defect_contrast)
    if isinstance(defective, (bool, np.bool_)):
        kinds = [defects[i % len(defects)] for i in range(n)] if defective else ["good"] * n
    elif isinstance(defective, str) or not isinstance(defective, Sequence):
        raise TypeError(
            f"defective must be True, False or a list of {n} defect types "
            f"('good' or one of {list(DEFECTS)}), got {defective!r}.")
    else:
        kinds = list(defective)
        if len(kinds) != n:
            raise ValueError(f"defective lists {len(kinds)} types for n={n} images.")
        for k in kinds:
            if k != "good":
                check_defect_type(k, category)
    images = np.empty((n, size, size, 3), F32)
    masks = np.zeros((n, size, size), bool)
    clean = np.empty_like(images) if return_clean else None
    for i, kind in enumerate(kinds):
        img, m, cl = _render(category, size, substream(ss, i), kind, strengths, return_clean,
                             contrast)
        images[i], masks[i] = img, m
        if return_clean:
            clean[i] = cl
    return Generated(images, masks, kinds, clean)


def make_one(category: str, defect: str | None = None, size: int = 256, seed=0,
             exposure=True, pose=True, speckles=True, dust=True, noise=True,
             return_clean: bool = False, defect_contrast: float = 1.0):
    """One image with chosen knobs, for a notebook to show.

    ``defect`` is ``None``/``"good"`` or one of :data:`DEFECTS`; ``defect_contrast``
    in (0, 1] scales its visibility (see :func:`make`). Returns
    ``(image, mask)`` (float32 (H, W, 3), bool (H, W)), plus the image without its
    defect when ``return_clean=True``. ``make_one(c, d, seed=s)`` is image 0 of
    ``make(c, 1, seed=s, defective=[d])``.
    """
    kind = "good" if defect is None else defect
    g = make(category, 1, size=size, seed=seed, defective=[kind], exposure=exposure,
             pose=pose, speckles=speckles, dust=dust, noise=noise, return_clean=return_clean,
             defect_contrast=defect_contrast)
    if return_clean:
        return g.images[0], g.masks[0], g.clean[0]
    return g.images[0], g.masks[0]


def load(category: str, n_train: int = 60, n_test: int = 40, size: int = 256, seed=0,
         exposure=True, pose=True, speckles=True, dust=True, noise=True,
         anomaly_ratio: float = 0.5, defects: Sequence[str] | None = None,
         defect_contrast: float = 1.0) -> tuple[Split, Split]:
    """Train (all good) and test (good + defective) splits of one synthetic category.

    Parameters
    ----------
    category : str
        One of :data:`CATEGORIES` (``adkit.data.load("synthetic/<category>")``).
    n_train, n_test : int
        Numbers of training and test images.
    size : int
        Image side in pixels (default 256, at least 32).
    seed : int
        Train and test are drawn from two independent sub-streams of this seed.
    exposure, pose, speckles, dust, noise : bool or float
        Normal variability knobs (module docstring); True = default strength.
    anomaly_ratio : float in [0, 1]
        Fraction of defective test images (rounded; at least one good and one
        defective image when 0 < ratio < 1 and ``n_test >= 2``).
    defects : sequence of str or "semantic", optional
        Defect types of the test set, cycled through (default all of :data:`DEFECTS`;
        ``"semantic"``: the parts shifted, turned or absent of :data:`SEMANTIC`).
    defect_contrast : float in (0, 1]
        Visibility of the defects (1 = fully drawn, the default; smaller = the defect
        blended with the defect-free image, same masks), see :func:`make`.

    Returns
    -------
    train, test : Split
        Test images are ordered good first, then by defect type, and named like
        ``good_003`` and ``crack_001``.
    """
    category = check_category(category)
    n_train = check_positive_int(n_train, "n_train")
    n_test = check_positive_int(n_test, "n_test")
    size = check_positive_int(size, "size", minimum=32, maximum=4096)
    check_batch_memory(n_train + n_test, size, size, "synthetic images")
    ratio = check_in_range(anomaly_ratio, "anomaly_ratio", 0.0, 1.0)
    defects = check_defects(defects, category)
    contrast = check_contrast(defect_contrast)
    ss = seed_sequence(seed)
    knobs = dict(size=size, exposure=exposure, pose=pose, speckles=speckles, dust=dust,
                 noise=noise)
    tr = make(category, n_train, seed=substream(ss, 0), **knobs)
    train = Split(tr.images, tr.masks, np.zeros(n_train, np.int64), ["good"] * n_train,
                  [f"good_{i:03d}" for i in range(n_train)])
    n_def = int(round(ratio * n_test))
    if 0 < ratio < 1 and n_test >= 2:
        n_def = min(max(n_def, 1), n_test - 1)
    kinds = ["good"] * (n_test - n_def) + [defects[k % len(defects)] for k in range(n_def)]
    te = make(category, n_test, seed=substream(ss, 1), defective=kinds, defects=defects,
              defect_contrast=contrast, **knobs)
    order = sorted(range(n_test), key=lambda i: (0 if kinds[i] == "good" else
                                                 1 + defects.index(kinds[i]), i))
    counts: dict = {}
    names = []
    for i in order:
        k = kinds[i]
        names.append(f"{k}_{counts.get(k, 0):03d}")
        counts[k] = counts.get(k, 0) + 1
    labels = np.array([0 if kinds[i] == "good" else 1 for i in order], np.int64)
    test = Split(te.images[order], te.masks[order], labels, [kinds[i] for i in order], names)
    return train, test
