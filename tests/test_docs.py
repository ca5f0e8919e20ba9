"""The documentation site: Sphinx + myst-nb build it from the lessons as saved (never
re-executed) and from the docstrings, with warnings as errors; headless Chromium then
reads it from a local server: home page, a lesson, an API page and the search, with no
failed request and none leaving the machine (MathJax is served from the site itself)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

from browser_support import ARTIFACTS, RequestLog, free_port, launch, start, stop, wait_for_http

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs") / "html"
    # the README's command, into a temporary folder
    run = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b",
                          "html", str(ROOT / "docs"), str(out)],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, f"the docs build failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
    return out


def test_docs_build_every_lesson_and_module_offline(site):
    assert (site / "index.html").is_file()
    for name in LESSONS:
        page = (site / "lessons" / f"{name}.html").read_text(encoding="utf-8")
        assert "<img" in page, f"lesson {name} shows no saved figure"
    import adkit.widgets
    api = (site / "api" / "adkit.widgets.html").read_text(encoding="utf-8")
    for member in adkit.widgets.__all__:
        assert f"adkit.widgets.{member}" in api
    for module in ("adkit.models.knn", "adkit.contrario.gaussian", "adkit.metrics"):
        assert (site / "api" / f"{module}.html").is_file()
    # MathJax ships with the site, and no page links a CDN
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        hits = re.findall(r"""(?:src|href)=["'](https?://[^"']*cdn[^"']*)""", text)
        assert not hits, f"{page.relative_to(site)} loads from a CDN: {hits}"


def test_docs_in_the_browser(site, tmp_path):
    from playwright.sync_api import sync_playwright
    port, log = free_port(), tmp_path / "http.log"
    proc = start([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                  "--directory", str(site)], log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/index.html", proc, log)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            requests = RequestLog(page)
            page.goto(f"{base}/index.html")
            for name in LESSONS:                 # the home page links every lesson
                assert page.locator(f'a[href="lessons/{name}.html"]').count() > 0, name
            page.screenshot(path=str(ARTIFACTS / "docs-home.png"))
            # a lesson: its formulas typeset by the local MathJax, its saved figures shown
            page.goto(f"{base}/lessons/00_data_and_metrics.html")
            page.locator("mjx-container").first.wait_for(timeout=30_000)
            assert page.locator("img").count() > 5
            page.screenshot(path=str(ARTIFACTS / "docs-lesson.png"))
            # an API page, its docstring formulas typeset too
            page.goto(f"{base}/api/adkit.contrario.gaussian.html")
            page.locator("mjx-container").first.wait_for(timeout=30_000)
            assert page.get_by_text("gaussian_threshold").count() > 0
            page.screenshot(path=str(ARTIFACTS / "docs-api.png"))
            # the search, from the index the build wrote
            page.goto(f"{base}/search.html?q=midway")
            page.locator("ul.search li").first.wait_for(timeout=30_000)
            assert page.locator("ul.search li").count() >= 2
            page.screenshot(path=str(ARTIFACTS / "docs-search.png"))
            browser.close()
        requests.check()
    finally:
        stop(proc)
