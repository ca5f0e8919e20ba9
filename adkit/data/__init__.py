"""Datasets: one ``Split`` type, embedded generators and the MVTec AD reader.

>>> from adkit import data
>>> data.available()                      # doctest: +SKIP
>>> train, test = data.load("synthetic/pill", seed=0)   # doctest: +SKIP

``load(name, **knobs)`` dispatches on the prefix of ``name``:

- ``synthetic/<category>``: procedurally generated objects and textures
  (:mod:`adkit.data.synthetic`), deterministic by ``seed``;
  ``synthetic/<object>/semantic``: the same objects with semantic defects only (a part
  shifted, turned or absent), i.e. ``defects="semantic"``.
- ``textures/<name>``: real photographs shipped with scikit-image, cut into crops,
  with inserted defects (:mod:`adkit.data.textures`).
- ``mvtec/<category>``: the official MVTec AD layout on disk under ``root=``
  (:mod:`adkit.data.mvtec`).
- ``folder`` (or ``folder/<root>``): your own folders of normal and abnormal images
  with optional masks, ``load("folder", root=..., normal_dir=..., abnormal_dir=...,
  mask_dir=...)`` (:mod:`adkit.data.folder`).

Files on disk are read by one set of rules (:mod:`adkit.data.files`): scaled by their
bit depth, never stretched, hidden files skipped. Anomalous images without a
ground-truth mask have ``split.has_mask`` False (:mod:`adkit.data.split`).
"""
from __future__ import annotations

from .split import Split

__all__ = ["Split", "load", "available"]


def available() -> list[str]:
    """Names accepted by :func:`load` without a download (MVTec AD needs ``root=``)."""
    from . import synthetic, textures
    names = [f"synthetic/{c}" for c in synthetic.ALL_CATEGORIES]
    names += [f"synthetic/{c}/semantic" for c in synthetic.ALL_OBJECTS]
    names += [f"textures/{c}" for c in textures.TEXTURES]
    return names


def load(name: str, **kwargs) -> tuple[Split, Split]:
    """Load a dataset by name and return ``(train, test)`` splits.

    Parameters
    ----------
    name : str
        ``"synthetic/<category>"``, ``"textures/<name>"``, ``"mvtec/<category>"``,
        ``"folder"`` or ``"folder/<root>"``; see :func:`available`.
    **kwargs
        Passed to the generator or reader (e.g. ``seed``, ``size``, ``root``, the
        variability knobs of :func:`adkit.data.synthetic.make`, the folders of
        :func:`adkit.data.folder.load`).
    """
    if not isinstance(name, str) or ("/" not in name and name != "folder"):
        raise ValueError(
            f"dataset name must look like 'synthetic/pill', 'textures/brick', "
            f"'mvtec/bottle' or 'folder' (your own folders), got {name!r}. See "
            "adkit.data.available()."
        )
    kind, _, category = name.partition("/")
    if kind == "folder":
        from . import folder
        if category:
            if kwargs.get("root") is not None:
                raise ValueError(f"{name!r} names the folder already; do not pass root= "
                                 "as well (or use load('folder', root=...)).")
            kwargs["root"] = category
        return folder.load(**kwargs)
    if kind == "synthetic":
        from . import synthetic
        category, _, defect_set = category.partition("/")
        if defect_set:
            if defect_set not in synthetic.DEFECT_SETS:
                raise ValueError(
                    f"unknown defect set {defect_set!r} in {name!r}: use "
                    f"'synthetic/<category>' or 'synthetic/<object>/semantic'.")
            if kwargs.get("defects") is not None:
                raise ValueError(f"{name!r} names the defects already; do not pass "
                                 "defects= as well.")
            kwargs["defects"] = defect_set
        return synthetic.load(category, **kwargs)
    if kind == "textures":
        from . import textures
        return textures.load(category, **kwargs)
    if kind == "mvtec":
        from . import mvtec
        return mvtec.load(category, **kwargs)
    raise ValueError(
        f"unknown dataset family {kind!r} in {name!r}: expected 'synthetic', 'textures', "
        f"'mvtec' or 'folder'. Available without download: {available()}."
    )


_SUBMODULES = ("synthetic", "textures", "mvtec", "folder", "files", "split")


def __getattr__(name):
    # ``adkit.data.mvtec`` etc. without importing every reader up front
    if name in _SUBMODULES:
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
