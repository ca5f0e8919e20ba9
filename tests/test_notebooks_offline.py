"""No saved notebook output points at a CDN: a lesson opened on a machine without internet
(a workshop room) renders from what the notebook and the installed packages hold.

Lesson 07 keeps panel's JavaScript inline (``pn.extension(inline=True)``): those outputs
hold verbatim copies of the installed BokehJS and panel bundles, whose own source names
a CDN in two fallbacks that are never taken here (MathJax for TeX labels in bokeh plots,
the Tabler icon font); the test reads every output with those verbatim copies taken out.
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
    return [f.read_text(encoding="utf-8") for f in files if f.is_file()]


def _outputs_text(nb: dict) -> list[tuple[int, str]]:
    texts = []
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            texts.append((i, json.dumps(out, ensure_ascii=False)))
            for value in out.get("data", {}).values():
                texts.append((i, value if isinstance(value, str) else "".join(value)
                               if isinstance(value, list) else json.dumps(value)))
    return texts


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_no_saved_output_points_at_a_cdn(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    libraries = _library_sources()
    found = []
    for cell, text in _outputs_text(nb):
        if "inline_js" in text or "Bokeh" in text:
            for lib in libraries:
                text = text.replace(lib, "")
        found += [(cell, m.group(0)) for m in CDN.finditer(text)]
    # the JSON dump of an output holds the same text escaped: count each hit once
    assert not sorted(set(found)), f"{path.name}: outputs point at a CDN (cell, host): {sorted(set(found))}"
    widgets = json.dumps(nb.get("metadata", {}).get("widgets", {}))
    assert not CDN.search(widgets), f"{path.name}: the saved widget state points at a CDN"


def test_the_check_finds_a_cdn_link():
    nb = {"cells": [{"cell_type": "code", "outputs": [{"output_type": "display_data", "data": {
        "text/html": '<script src="https://cdn.bokeh.org/bokeh/release/bokeh-3.9.2.min.js">'}}]}]}
    assert any(CDN.search(t) for _, t in _outputs_text(nb))
