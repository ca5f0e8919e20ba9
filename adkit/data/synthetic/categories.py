"""Names of the synthetic dataset (categories, defects, knobs) and the checks of its arguments."""
from __future__ import annotations

import numbers

import numpy as np

from ...checks import check_in_range

__all__ = ["OBJECTS", "BORDER_OBJECTS", "ALL_OBJECTS", "TEXTURES_SYN", "CATEGORIES",
           "ALL_CATEGORIES", "DEFECTS", "SEMANTIC", "DEFECT_SETS",
           "DEFAULTS", "KNOBS",
           "NOISE_SIGMA", "check_category", "check_strength", "check_defects", "check_defect_type",
           "check_contrast"]


#: rigid objects on a background
OBJECTS = ("pill", "nut", "bottle")
#: textures filling the image
TEXTURES_SYN = ("fabric", "tile")
#: the categories that the tests and benchmarks iterate over (``CATEGORIES``)
CATEGORIES = OBJECTS + TEXTURES_SYN
#: objects that reach the image border (a transistor whose leads run out of the frame),
#: loaded by name but outside :data:`CATEGORIES`, so loops over it do not grow
BORDER_OBJECTS = ("transistor",)
#: every object (semantic defects apply to each)
ALL_OBJECTS = OBJECTS + BORDER_OBJECTS
#: every category :func:`check_category` accepts
ALL_CATEGORIES = CATEGORIES + BORDER_OBJECTS
#: defect types, in the order used to cycle through them
DEFECTS = ("crack", "scratch", "contamination", "missing", "stain")
#: semantic defects of the objects (a part shifted, turned or absent), not in the
#: default mix: ``defects="semantic"`` or ``load("synthetic/<object>/semantic")``
SEMANTIC = ("shifted", "turned", "absent")
#: named sets of defect types (``defects="semantic"``)
DEFECT_SETS = {"texture": DEFECTS, "semantic": SEMANTIC}
#: what strength 1 (``True``) of each knob means
DEFAULTS = {
    "exposure": "gain exp(U(-0.18,0.18)), gamma exp(U(-0.15,0.15)), cast exp(U(-0.05,0.05))",
    "pose": "translation <= 6% of size, rotation <= 10 deg, scale 0.95-1.05",
    "speckles": "pill: 25-40 red/brown dots; others: 4-15 faint dots",
    "dust": "2-6 particles of radius 0.4-0.9% of size on the background (objects)",
    "noise": "Gaussian sigma = 0.015",
}
KNOBS = ("exposure", "pose", "speckles", "dust", "noise")
NOISE_SIGMA = 0.015


def check_category(category) -> str:
    """One of :data:`ALL_CATEGORIES`, or a ValueError listing them."""
    if not isinstance(category, str) or category not in ALL_CATEGORIES:
        raise ValueError(
            f"unknown synthetic category {category!r}: choose one of {list(ALL_CATEGORIES)} "
            f"(objects {list(ALL_OBJECTS)}, textures {list(TEXTURES_SYN)}), e.g. "
            "adkit.data.load('synthetic/pill')."
        )
    return category


def check_strength(value, name: str) -> float:
    """A knob: True -> 1, False/None -> 0, a number >= 0 -> that strength."""
    if value is None or isinstance(value, (bool, np.bool_)):
        return 1.0 if value else 0.0
    if not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be True, False or a strength >= 0 (1 = default), got {value!r}.")
    return check_in_range(value, name, 0.0, 5.0)


def check_defects(defects, category=None) -> tuple:
    """Defect types to cycle through: None → all of :data:`DEFECTS`; one name, a set
    name of :data:`DEFECT_SETS` (``"semantic"``) or a sequence. The :data:`SEMANTIC`
    types need an object (``category`` in :data:`ALL_OBJECTS`, or None to skip that check)."""
    if defects is None:
        return DEFECTS
    if isinstance(defects, str):
        defects = DEFECT_SETS.get(defects, (defects,))
    defects = tuple(defects)
    if not defects:
        raise ValueError(f"defects is empty: give one or more of {list(DEFECTS)}.")
    for d in defects:
        check_defect_type(d, category)
    return defects


def check_defect_type(kind, category=None) -> None:
    """One defect type: of :data:`DEFECTS`, or of :data:`SEMANTIC` on an object."""
    if kind not in DEFECTS + SEMANTIC:
        raise ValueError(
            f"unknown defect type {kind!r}: choose among {list(DEFECTS)} or the semantic "
            f"defects of the objects {list(SEMANTIC)} (defects='semantic').")
    if kind in SEMANTIC and category is not None and category not in ALL_OBJECTS:
        raise ValueError(
            f"the semantic defect {kind!r} moves a part of an object; {category!r} is a "
            f"texture: use it with one of {list(ALL_OBJECTS)}, or a defect of {list(DEFECTS)}.")


def check_contrast(value) -> float:
    """``defect_contrast``: a number in (0, 1]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"defect_contrast must be a number in (0, 1] (1 = fully visible defects), "
            f"got {value!r}.")
    value = float(value)
    if not 0.0 < value <= 1.0:
        raise ValueError(
            f"defect_contrast must be in (0, 1] (1 = fully visible defects, smaller = "
            f"fainter; 0 would erase them), got {value}.")
    return value
