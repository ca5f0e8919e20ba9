"""adkit: a notebook-driven teaching toolkit for industrial image anomaly detection.

Data flows one way: ``adkit.data`` → ``adkit.normalize`` → ``adkit.models`` →
``adkit.contrario`` / ``adkit.metrics`` → ``adkit.viz`` / ``adkit.widgets``.
Sub-packages are imported on first use, so ``import adkit`` stays light.
"""


__version__ = "0.1.0"

_SUBMODULES = ["data", "normalize", "models", "nets", "contrario", "features",
               "backbone", "coreset", "neighbors", "training", "memo",
               "corruptions", "metrics", "viz", "widgets", "cli", "checks", "exercises"]




def __getattr__(name):  # noqa: F811
    if name in _SUBMODULES:
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'adkit' has no attribute {name!r}")


def __dir__():  # noqa: F811
    return sorted(_SUBMODULES + ["__version__"])
