"""Lazy attribute loading for package ``__init__`` files (nothing heavy at import)."""
from __future__ import annotations

import importlib


def lazy(package: str, mapping: dict[str, str]):
    """Return ``(__getattr__, __dir__)`` resolving ``name`` to ``mapping[name]``'s module."""

    def __getattr__(name):
        if name in mapping:
            mod = importlib.import_module(mapping[name], package)
            return getattr(mod, name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(mapping)

    return __getattr__, __dir__
