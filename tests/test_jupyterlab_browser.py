"""The lessons' live widgets in a real JupyterLab, driven by headless Chromium.

JupyterLab is started on 127.0.0.1 with a token (``--allow-root`` when run as root, as in
a workshop container) in a temporary folder holding a small notebook written here: the
same calls as lesson 00 (``widgets.explore`` over a ReferenceGaussian result) and lesson
07 (``pn.extension(inline=True)`` and ``widgets.dashboard`` over calibrated results), on
64×64 images so that the whole test takes seconds, not the minutes of a full lesson. The
browser runs the notebook, moves the ipywidgets ε slider and the dashboard's ε slider,
checks that each move changes the picture, prints the latency, fails on any request that
leaves the machine (a CDN) or fails, and saves screenshots in ``$ADKIT_ARTIFACTS``
(default ``test-artifacts/``).
"""
import os
import secrets
import sys

import nbformat
import pytest

from browser_support import (ARTIFACTS, RequestLog, free_port, launch, report_latency,
                             slider_latencies, start, stop, wait_for_http)

CELLS = [
    """\
import panel as pn
from adkit import data, viz, widgets
from adkit.bench import compare
from adkit.models import ReferenceGaussian

viz.notebook_style()
pn.extension(inline=True)""",
    """\
# lesson 00: the explorer over a result with its own NFA
train, test = data.load("synthetic/pill", n_train=24, n_test=8, size=64, seed=0)
res = ReferenceGaussian().fit(train).predict(test)
widgets.explore(res, test)""",
    """\
# lesson 07: the dashboard over calibrated results
results, rows = compare(["reference"], train, test, progress=False)
widgets.dashboard(results, test, title="adkit · test")""",
]


@pytest.fixture
def jupyterlab(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, tmp_path / "widgets.ipynb")
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ,
               JUPYTER_RUNTIME_DIR=str(tmp_path / ".runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / ".workspaces"),
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / ".settings"))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={tmp_path}", "--LabApp.expose_app_in_browser=True",
           "--LabApp.news_url=None"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = tmp_path / "jupyterlab.log"
    proc = start(cmd, log, env=env)
    base = f"http://127.0.0.1:{port}"
    up = wait_for_http(f"{base}/api/status?token={token}", proc, log)
    print(f"[jupyterlab] server answered after {up:.1f} s")
    yield f"{base}/lab/tree/widgets.ipynb?token={token}"
    stop(proc)


def test_lesson_widgets_live_and_offline_in_jupyterlab(jupyterlab):
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        requests = RequestLog(page)
        page.goto(jupyterlab)
        page.wait_for_function("window.jupyterapp && document.querySelector('.jp-Notebook')",
                               timeout=120_000)
        # once the notebook and its kernel are ready, run all cells (without waiting here)
        page.evaluate("""() => {
            const nb = window.jupyterapp.shell.currentWidget;
            window.__adkit_ready = false;
            nb.sessionContext.ready.then(() => nb.context.ready).then(() => {
                window.__adkit_ready = true;
                window.jupyterapp.commands.execute('notebook:run-all-cells');
            });
        }""")
        page.wait_for_function("window.__adkit_ready", timeout=120_000)
        cells = page.locator(".jp-Notebook .jp-Cell")

        explorer, dash = cells.nth(1), cells.nth(2)
        # every cell has run (the kernel is free again) before a slider moves
        explorer.locator("img.adkit-detection").wait_for(timeout=180_000)
        dash.locator('img[alt="detection"]').wait_for(timeout=180_000)
        page.wait_for_function(
            "window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
            " === 'idle'", timeout=60_000)

        # lesson 00's explorer: the ipywidgets slider moves log10 ε
        handle = explorer.locator(".noUi-handle").first
        handle.scroll_into_view_if_needed()
        latencies = slider_latencies(page, handle, "img.adkit-detection", key="ArrowRight")
        report_latency("JupyterLab, ipywidgets explorer (lesson 00)", latencies)
        explorer.screenshot(path=str(ARTIFACTS / "jupyterlab-explorer.png"))

        # lesson 07's dashboard: panel, rendered from the inline resources
        handle = dash.locator(".noUi-handle").first
        handle.scroll_into_view_if_needed()
        latencies = slider_latencies(page, handle, 'img[alt="detection"]', key="ArrowRight")
        report_latency("JupyterLab, panel dashboard (lesson 07)", latencies)
        dash.screenshot(path=str(ARTIFACTS / "jupyterlab-dashboard.png"))
        page.screenshot(path=str(ARTIFACTS / "jupyterlab.png"))
        browser.close()
    requests.check()
