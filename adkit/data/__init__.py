"""Datasets: one ``Split`` type, embedded generators and the MVTec AD reader.

>>> from adkit import data
>>> data.available()                      # doctest: +SKIP
>>> train, test = data.load("synthetic/pill", seed=0)   # doctest: +SKIP

``load(name, **knobs)`` dispatches on the prefix of ``name``:

- ``synthetic/<category>``: procedurally generated objects and textures
  (:mod:`adkit.data.synthetic`), deterministic by ``seed``.
- ``textures/<name>``: real photographs shipped with scikit-image, cut into crops,
  with inserted defects (:mod:`adkit.data.textures`).
- ``mvtec/<category>``: the official MVTec AD layout on disk under ``root=``
  (:mod:`adkit.data.mvtec`).
"""
from __future__ import annotations

from .split import Split

__all__ = ["Split", "load", "available"]


def available() -> list[str]:
    """Names accepted by :func:`load` without a download (MVTec AD needs ``root=``)."""
    from . import synthetic, textures
    names = [f"synthetic/{c}" for c in synthetic.CATEGORIES]
    names += [f"textures/{c}" for c in textures.TEXTURES]
    return names


def load(name: str, **kwargs) -> tuple[Split, Split]:
    """Load a dataset by name and return ``(train, test)`` splits.

    Parameters
    ----------
    name : str
        ``"synthetic/<category>"``, ``"textures/<name>"`` or ``"mvtec/<category>"``;
        see :func:`available`.
    **kwargs
        Passed to the generator or reader (e.g. ``seed``, ``size``, ``root``, and the
        variability knobs of :func:`adkit.data.synthetic.make`).
    """
    if not isinstance(name, str) or "/" not in name:
        raise ValueError(
            f"dataset name must look like 'synthetic/pill', 'textures/brick' or "
            f"'mvtec/bottle', got {name!r}. See adkit.data.available()."
        )
    kind, _, category = name.partition("/")
    if kind == "synthetic":
        from . import synthetic
        return synthetic.load(category, **kwargs)
    if kind == "textures":
        from . import textures
        return textures.load(category, **kwargs)
    if kind == "mvtec":
        from . import mvtec
        return mvtec.load(category, **kwargs)
    raise ValueError(
        f"unknown dataset family {kind!r} in {name!r}: expected 'synthetic', 'textures' "
        f"or 'mvtec'. Available without download: {available()}."
    )


_SUBMODULES = ("synthetic", "textures", "mvtec", "split")


def __getattr__(name):
    # ``adkit.data.mvtec`` etc. without importing every reader up front
    if name in _SUBMODULES:
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
