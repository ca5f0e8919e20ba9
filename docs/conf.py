"""Sphinx configuration: the lessons as executed and saved, and the API from the docstrings.

Build (from the repository root)::

    python -m sphinx -W -b html docs docs/_build/html

The site works offline: MathJax is served from the build itself
(``sphinx-mathjax-offline``), and the notebooks' live widgets, which need a running
kernel (and would load their JavaScript from a CDN), are replaced by a note; the static
figure each lesson draws under a widget stays.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

project = "adkit"
author = "the adkit authors"
copyright = "adkit authors, BSD-3-Clause"
release = "0.1.0"

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",   # MathJax 3 copied into _static: no CDN
]
html_theme = "furo"
html_title = "adkit"
templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
# numbered references (".. [1] Author, title") are listed, not always cited in the text
suppress_warnings = ["myst.header", "ref.footnote"]

# the lessons as saved: never re-executed here
nb_execution_mode = "off"
nb_ipywidgets_js = {}                 # no require.js / widget manager from a CDN
myst_enable_extensions = ["dollarmath", "amsmath"]

autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_ivar = True          # "Attributes" as fields: no duplicate of autodoc's own

# -- the lessons: copied from notebooks/ at every build --------------------------------
_WIDGET = "application/vnd.jupyter.widget-view+json"
_PANEL = ("application/vnd.holoviews_exec.v0+json", "application/vnd.holoviews_load.v0+json")
_NOTE = ("*A live widget is here when the notebook runs (JupyterLab, or `panel serve` for "
         "the dashboard); the static figure below shows one of its states.*")


def _static_outputs(outputs: list) -> list:
    """Outputs without the live ones: a widget or a panel view becomes a short note, the
    panel JavaScript that only a kernel connection uses is dropped."""
    kept = []
    for out in outputs:
        data = out.get("data", {})
        if _WIDGET in data or _PANEL[0] in data:
            kept.append({"output_type": "display_data", "metadata": {},
                         "data": {"text/markdown": _NOTE}})
        elif _PANEL[1] in data or set(data) == {"application/javascript"}:
            continue
        elif set(data) == {"text/html"} and "esms-options" in data["text/html"]:
            continue                   # panel's style and module-shim preamble
        else:
            kept.append(out)
    return kept


def _copy_lessons() -> None:
    dest = DOCS / "lessons"
    dest.mkdir(exist_ok=True)
    sources = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for stale in set(dest.glob("*.ipynb")) - {dest / s.name for s in sources}:
        stale.unlink()                 # a lesson renamed or removed since the last build
    for src in sources:
        nb = json.loads(src.read_text(encoding="utf-8"))
        nb.get("metadata", {}).pop("widgets", None)
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                cell["outputs"] = _static_outputs(cell.get("outputs", []))
        text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        target = dest / src.name
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")


_copy_lessons()
# the API pages are generated anew at every build, so a module renamed or removed since
# the last build leaves no stale page behind
shutil.rmtree(DOCS / "api", ignore_errors=True)
