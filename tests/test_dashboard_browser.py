"""The comparison dashboard served by ``python -m adkit dashboard`` on 127.0.0.1, driven by
headless Chromium (see ``browser_support``): it renders offline, fits a 1280×800 screen,
and its ε slider redraws the detection; the latency of that redraw is printed."""
import re
import sys
import time

import pytest

from browser_support import (ARTIFACTS, RequestLog, free_port, launch, report_latency,
                             slider_latencies, start, stop, wait_for_http)


@pytest.fixture
def served_dashboard(tmp_path):
    port, log = free_port(), tmp_path / "dashboard.log"
    proc = start([sys.executable, "-m", "adkit", "dashboard", "--data", "synthetic/pill",
                  "--methods", "reference", "--size", "64", "--n-train", "24", "--n-test", "8",
                  "--port", str(port)], log)
    url = f"http://127.0.0.1:{port}/"
    up = wait_for_http(url, proc, log)
    print(f"[dashboard] python -m adkit dashboard answered after {up:.1f} s")
    yield url
    stop(proc)


def _area(page) -> float:
    # the status line lives in the shadow DOM of panel's Markdown pane; Playwright's
    # text selectors pierce it
    text = page.get_by_text(re.compile(r"detected area: ")).first.inner_text(timeout=30_000)
    return float(re.search(r"detected area: ([0-9.]+)%", text).group(1))


def test_dashboard_offline_fits_the_screen_and_eps_redraws_the_detection(served_dashboard):
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        requests = RequestLog(page)
        t0 = time.perf_counter()
        page.goto(served_dashboard)
        page.get_by_text(re.compile(r"detected area: ")).first.wait_for(timeout=60_000)
        print(f"[dashboard] first page shown {time.perf_counter() - t0:.1f} s after the request")
        # it opens on a defective image on which something is detected
        before = _area(page)
        assert before > 0
        # the four pictures and the status line fit the screen
        for name in ("image", "map", "detection", "ground truth"):
            box = page.locator(f'img[alt="{name}"]').bounding_box()
            assert box is not None, f"no {name} picture"
            assert box["x"] >= 0 and box["x"] + box["width"] <= 1280, (name, box)
            assert box["y"] + box["height"] <= 800, (name, box)
        status = page.get_by_text(re.compile(r"detected area: ")).first.bounding_box()
        assert status["x"] + status["width"] <= 1280, status
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"))
        # the ε slider: focus its handle; each right arrow raises log10 ε by one step
        handle = page.locator(".noUi-handle").first
        latencies = slider_latencies(page, handle, 'img[alt="detection"]', key="ArrowRight")
        report_latency("served dashboard (python -m adkit dashboard)", latencies)
        for _ in range(5 + 12):                  # back, then 12 steps of 0.25 below ε = 1
            handle.press("ArrowLeft")
        page.get_by_text(re.compile(r"ε = 0\.001 ")).first.wait_for(timeout=30_000)
        after = _area(page)
        page.screenshot(path=str(ARTIFACTS / "dashboard-eps-0.001.png"))
        browser.close()
    requests.check()
    assert after < before, (before, after)
