"""No saved notebook output points at a CDN: a lesson opened on a machine without internet
(a workshop room) renders from what the notebook and the installed packages hold.

Lesson 07 keeps panel's JavaScript inline (``pn.extension(inline=True)``): those outputs
hold copies of the installed BokehJS and panel bundles (re-indented by bokeh), whose own source names
a CDN in two fallbacks that are never taken here (MathJax for TeX labels in bokeh plots,
the Tabler icon font); the test reads every output with those copies taken out.
"""
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CDN = re.compile(r"[\w.-]*cdn[\w-]*\.[\w.-]+|unpkg\.com|jsdelivr\.net|cdnjs")


def _library_sources() -> list[str]:
    """The JavaScript files panel inlines, as installed."""
    import bokeh
    import panel
    js = Path(bokeh.__file__).parent / "server" / "static" / "js"
    files = sorted(js.glob("bokeh*.min.js")) + [Path(panel.__file__).parent / "dist" / "panel.min.js"]
    return [_dedent(f.read_text(encoding="utf-8")).strip() for f in files if f.is_file()]


def _dedent(text: str) -> str:
    """Lines without their indentation (bokeh indents the code it inlines)."""
    return re.sub(r"\n[ \t]+", "\n", text)


def _text(value) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)
    return json.dumps(value, ensure_ascii=False)


def _outputs_text(nb: dict) -> list[tuple[int, str]]:
    """(cell index, text) of every part of every saved output."""
    texts = []
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            for key in ("text", "traceback", "metadata"):
                if key in out:
                    texts.append((i, _text(out[key])))
            texts += [(i, _text(v)) for v in out.get("data", {}).values()]
    return texts


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_saved_output_points_at_a_cdn(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    libraries = _library_sources()
    found = []
    for cell, text in _outputs_text(nb):
        if "BEGIN bokeh" in text or "BEGIN panel" in text:
            text = _dedent(text)
            for lib in libraries:
                text = text.replace(lib, "")
        found += [(cell, m.group(0)) for m in CDN.finditer(text)]
    assert not found, f"{path.name}: outputs point at a CDN (cell, host): {sorted(set(found))}"
    widgets = json.dumps(nb.get("metadata", {}).get("widgets", {}))
    assert not CDN.search(widgets), f"{path.name}: the saved widget state points at a CDN"


def test_the_check_finds_a_cdn_link():
    nb = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "display_data", "data": {
        "text/html": '<script src="https://cdn.bokeh.org/bokeh/release/bokeh-3.9.2.min.js">'}}]}]}
    assert any(CDN.search(t) for _, t in _outputs_text(nb))
