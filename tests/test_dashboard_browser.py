"""The comparison dashboard served on 127.0.0.1 and driven by headless Chromium.

Needs Debian's ``chromium`` (``apt-get install chromium``; ``.ci/run`` installs it)
and Playwright from PyPI (a test dependency), which drives that browser: no browser
download. Outside CI, without a Chromium, the test is skipped with that reason; in
CI (``ADKIT_REQUIRE_BROWSER=1``) a missing browser is a failure.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ARTIFACTS = Path(os.environ.get("ADKIT_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts"))


def _chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("ADKIT_REQUIRE_BROWSER"):
        pytest.fail("no Chromium found: install Debian's chromium package (apt-get install "
                    "chromium) to run the browser test.")
    pytest.skip("no Chromium on this machine (apt-get install chromium)")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served_dashboard():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "adkit", "dashboard", "--data", "synthetic/pill",
         "--methods", "reference", "--size", "64", "--n-train", "24", "--n-test", "8",
         "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"the dashboard did not start:\n{proc.stdout.read()}")
            time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _area(page) -> float:
    # the status line lives in the shadow DOM of panel's Markdown pane; Playwright's
    # text selectors pierce it
    text = page.get_by_text(re.compile(r"detected area: ")).first.inner_text(timeout=30_000)
    return float(re.search(r"detected area: ([0-9.]+)%", text).group(1))


def test_moving_eps_changes_the_detected_area(served_dashboard):
    browser_path = _chromium()
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1200, "height": 700})
        page.goto(served_dashboard)
        page.get_by_text(re.compile(r"detected area: ")).first.wait_for(timeout=60_000)
        before = _area(page)
        # the dashboard opens on a defective image at ε = 1: something is detected
        assert before > 0
        # the ε slider: focus its handle and lower log10 ε with the keyboard
        handle = page.locator(".noUi-handle").nth(0)
        handle.focus()
        for _ in range(12):                      # 12 steps of 0.25: ε = 1e-3
            handle.press("ArrowLeft")
        # wait for the server round trip to show the new ε
        page.get_by_text(re.compile(r"ε = 0\.001 ")).first.wait_for(timeout=30_000)
        after = _area(page)
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        browser.close()
    assert after < before, (before, after)
