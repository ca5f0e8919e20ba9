"""The structure of the package, read from the source of every module with ``ast``.

1. No module uses a private name (``_name``) of another adkit module: neither
   ``from adkit.x import _name`` nor ``x._name`` on an imported module or on a class
   imported from another module. A module may use its own privates; dunders are public.
   Shared machinery has a public name in its one named home.
2. Data flows one way (DESIGN.md): data → normalize → models → contrario / metrics →
   viz / widgets, on top of low-level shared modules, with ``bench`` and ``cli`` on top of
   everything. ``contrario`` holds the NFA machinery that the models use, so it sits below
   the models; ``metrics`` works on arrays and never imports a method; ``viz`` and
   ``widgets`` show results and never compute a method. Every import, also one inside a
   function, must go down the table :data:`MAY_IMPORT`.
"""
from __future__ import annotations

import ast
import pathlib

import pytest

import adkit

ROOT = pathlib.Path(adkit.__file__).parent

#: the layer of each module (by the longest matching dotted prefix)
LAYER = {
    # low-level core: conventions, checks, the estimator contract
    "adkit": "core", "adkit._lazy": "core", "adkit.checks": "core",
    "adkit.torch_utils": "core", "adkit.estimator": "core", "adkit.memo": "core",
    "adkit.params": "core",
    # low-level shared machinery, used by every method that needs it
    "adkit.features": "shared", "adkit.backbone": "shared", "adkit.coreset": "shared",
    "adkit.neighbors": "shared", "adkit.training": "shared", "adkit.nets": "shared",
    # the corruptions draw synthetic defects on images, as the synthetic datasets do: data
    # (AESc trains on them; lesson 06's explorer draws them)
    # the data flow
    "adkit.data": "data", "adkit.corruptions": "data",
    "adkit.normalize": "normalize",
    "adkit.contrario": "contrario",
    "adkit.models": "models",
    "adkit.metrics": "metrics",
    "adkit.viz": "viz",
    "adkit.widgets": "widgets",
    # on top
    "adkit.bench": "top", "adkit.cli": "top", "adkit.__main__": "top",
    # the lessons' exercises check a student's function against any layer's function
    "adkit.exercises": "top",
}

#: the layers each layer may import (its own included)
MAY_IMPORT = {
    "core": {"core"},
    "shared": {"core", "shared"},
    "data": {"core", "shared", "data"},
    "normalize": {"core", "shared", "data", "normalize"},
    "contrario": {"core", "shared", "contrario"},
    "models": {"core", "shared", "data", "normalize", "contrario", "models"},
    "metrics": {"core", "data", "metrics"},
    "viz": {"core", "data", "metrics", "viz"},
    "widgets": {"core", "data", "metrics", "viz", "widgets"},
    "top": {"core", "shared", "data", "normalize", "contrario", "models", "metrics", "viz",
            "widgets", "top"},
}

#: known exceptions, each with the reason; the test fails when one is no longer needed
EXEMPT_IMPORTS: dict = {}
EXEMPT_PRIVATE: dict = {}

#: underscore names that are public API of the standard library's namedtuple
NAMEDTUPLE_API = {"_replace", "_make", "_fields", "_asdict", "_field_defaults"}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("adkit",) + path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        layer = LAYER.get(".".join(parts[:i]))
        if layer is not None:
            return layer
    return None


def _imports(module: str, tree: ast.AST, is_package: bool, modules=MODULES):
    """Every adkit import of a module, also inside functions, as
    ``(line, target module, imported name or None, local name, what the local name is)``.

    ``from pkg import sub`` with ``pkg.sub`` a module gives the target ``pkg.sub`` and no
    name; ``import adkit.x`` binds ``adkit`` (the root package) to the target ``adkit.x``.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "adkit":
                    local = a.asname or "adkit"
                    yield node.lineno, a.name, None, local, (a.name if a.asname else "adkit",
                                                            None)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[:len(parts) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "adkit":
                continue
            for a in node.names:
                sub = f"{target}.{a.name}"
                local = a.asname or a.name
                if sub in modules:
                    yield node.lineno, sub, None, local, (sub, None)
                else:
                    yield node.lineno, target, a.name, local, (target, a.name)


def check_module(module: str, source: str, modules=MODULES):
    """The violations of one module, as ``(kind, line, what, message)`` with kind
    ``"private"`` or ``"layer"``."""
    is_package = module in modules and modules[module].name == "__init__.py"
    tree = ast.parse(source)
    own = layer_of(module)
    found = []
    bound = {}                     # local name -> (module, name imported from it or None)
    for line, target, name, local, binding in _imports(module, tree, is_package, modules):
        if name is not None and _private(name) and target != module:
            found.append(("private", line, f"{target}.{name}",
                          f"imports the private name {name} of {target}"))
        bound[local] = binding
        to = layer_of(target)
        if to is not None and own is not None and to not in MAY_IMPORT[own]:
            found.append(("layer", line, target,
                          f"({own}) imports {target} ({to}); {own} may import only "
                          f"{sorted(MAY_IMPORT[own])}"))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        path, base = [], node
        while isinstance(base, ast.Attribute):
            path.insert(0, base.attr)
            base = base.value
        if not isinstance(base, ast.Name) or base.id not in bound:
            continue
        mod, name = bound[base.id]
        if name is not None:            # an object (a class...) imported from ``mod``
            attr = path[0]
            if _private(attr) and attr not in NAMEDTUPLE_API and mod != module:
                found.append(("private", node.lineno, f"{mod}.{name}.{attr}",
                              f"uses the private attribute {attr} of {mod}.{name}"))
            continue
        for attr in path:               # down the submodules, to the first attribute
            if f"{mod}.{attr}" in modules:
                mod = f"{mod}.{attr}"
                continue
            if _private(attr) and mod != module:
                found.append(("private", node.lineno, f"{mod}.{attr}",
                              f"uses the private name {attr} of {mod}"))
            break
    return sorted(set(found), key=lambda v: (v[1], v[0], v[2]))


def _exempt(module, kind, what):
    if kind == "layer":
        return (module, what) in EXEMPT_IMPORTS
    return (module, what) in EXEMPT_PRIVATE


def _report(module, path, violations):
    rel = path.relative_to(ROOT.parent)
    return "\n".join(f"{rel}:{line}: {module} {msg}" for _, line, _, msg in violations)


def test_every_module_has_a_layer():
    missing = [m for m in MODULES if layer_of(m) is None]
    assert not missing, f"modules without a layer (add them to LAYER): {missing}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_names_across_modules_and_imports_go_down(module):
    path = MODULES[module]
    found = [v for v in check_module(module, path.read_text())
             if not _exempt(module, v[0], v[2])]
    assert not found, "\n" + _report(module, path, found)


def test_exemptions_are_still_needed():
    used = set()
    for module, path in MODULES.items():
        for kind, _, what, _ in check_module(module, path.read_text()):
            used.add((kind, module, what))
    stale = [k for k in EXEMPT_IMPORTS if ("layer",) + k not in used]
    stale += [k for k in EXEMPT_PRIVATE if ("private",) + k not in used]
    assert not stale, f"exemptions no longer needed, remove them from tests/test_layers.py: {stale}"


# -- the checker itself finds what it must find ------------------------------------------
@pytest.mark.parametrize("module, source, kind, what", [
    ("adkit.models.knn", "from .gaussian import _blur_maps\n", "private",
     "adkit.models.gaussian._blur_maps"),
    ("adkit.models.uflow", "def f():\n    from ..features import _get_extractor\n", "private",
     "adkit.features._get_extractor"),
    ("adkit.models.knn", "from .gaussian import Gaussian\nGaussian._check_strides(1)\n",
     "private", "adkit.models.gaussian.Gaussian._check_strides"),
    ("adkit.widgets", "from . import viz\nplt = viz._plt()\n", "private", "adkit.viz._plt"),
    ("adkit.cli", "import adkit.features\nadkit.features._CACHE.clear()\n", "private",
     "adkit.features._CACHE"),
    ("adkit.data.synthetic", "from .draw import _grid\n", "private",
     "adkit.data.synthetic.draw._grid"),
    ("adkit.metrics", "def f():\n    from .models import KNN\n", "layer", "adkit.models"),
    ("adkit.models.knn", "def f():\n    from ..metrics import image_auroc\n", "layer",
     "adkit.metrics"),
    ("adkit.viz", "from .models.selfsim import rethreshold\n", "layer", "adkit.models.selfsim"),
    ("adkit.contrario.tree", "from ..models.base import AnomalyResult\n", "layer",
     "adkit.models.base"),
    ("adkit.features", "from . import bench\n", "layer", "adkit.bench"),
])
def test_the_checker_finds_violations(module, source, kind, what):
    found = check_module(module, source, modules=MODULES)
    assert (kind, what) in {(k, w) for k, _, w, _ in found}, found


@pytest.mark.parametrize("module, source", [
    ("adkit.models.knn", "from ..backbone import blur_maps\nfrom .base import FeatureDetector\n"),
    ("adkit.models.gaussian", "def _own():\n    pass\n_own()\n"),
    ("adkit.bench", "from .. import models\nfrom ..models import knn\n"),
    ("adkit.data.synthetic.pose", "from .draw import F32\np = P()._replace(tx=1)\n"),
    ("adkit.estimator", "from .checks import check_images\nx = __name__\n"),
])
def test_the_checker_accepts_what_is_allowed(module, source):
    assert check_module(module, source, modules=MODULES) == []
