"""What the browser tests share: Debian's Chromium driven by Playwright, a log of every
request a page makes, and a clock for "slider move -> new picture".

Playwright (a test dependency) drives the system's ``chromium`` (Debian's package;
``.ci/run`` installs it): no browser download. Outside CI, without a Chromium, the
browser tests are skipped with that reason; in CI (``ADKIT_REQUIRE_BROWSER=1``) a
missing browser is a failure.
"""
from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ARTIFACTS = Path(os.environ.get("ADKIT_ARTIFACTS",
                                Path(__file__).parent.parent / "test-artifacts"))
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
#: the latency lines of this run, printed again in pytest's terminal summary (conftest.py)
LATENCY_LINES: list = []
# the flags of a browser that talks to nothing but the pages it is sent to
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("ADKIT_REQUIRE_BROWSER"):
        pytest.fail("no Chromium found: install Debian's chromium package (apt-get install "
                    "chromium) to run the browser tests.")
    pytest.skip("no Chromium on this machine (apt-get install chromium)")


def launch(playwright):
    """A fresh headless Chromium (Playwright gives each launch a new profile)."""
    return playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], log: Path, **kw) -> subprocess.Popen:
    """Start a server, its output going to the file ``log`` (a pipe nobody reads would
    fill up and block the server)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, **kw)


def wait_for_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> float:
    """Poll ``url`` until it answers; fail with the server's output if it dies or times out.
    Returns the seconds it took."""
    t0 = time.perf_counter()
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            return time.perf_counter() - t0
        except OSError:
            if proc.poll() is not None or time.perf_counter() - t0 > timeout:
                stop(proc)
                pytest.fail(f"the server at {url} did not start:\n"
                            f"{Path(log).read_text()[-4000:]}")
            time.sleep(0.25)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


class RequestLog:
    """Every request a page makes, and which of them failed or left the machine."""

    def __init__(self, page):
        self.urls: list[str] = []
        self.failed: list[str] = []
        page.on("request", lambda r: self.urls.append(r.url))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url} ({r.failure})"))
        page.on("response", lambda r: r.status >= 400 and self.failed.append(
            f"{r.url} (HTTP {r.status})"))
        page.on("websocket", lambda ws: self.urls.append(ws.url))

    @property
    def outside(self) -> list[str]:
        """Requests to anything but this machine (data:, blob: and about: URLs stay local)."""
        out = []
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob", "about", "chrome-extension"):
                continue
            if parts.hostname not in LOOPBACK:
                out.append(url)
        return out

    def check(self, allow_failed=()):
        assert not self.outside, f"requests left the machine: {sorted(set(self.outside))}"
        cdn = [u for u in self.urls if "cdn." in urlsplit(u).netloc]
        assert not cdn, f"requests to a CDN: {cdn}"
        failed = [f for f in self.failed if not any(a in f for a in allow_failed)]
        assert not failed, f"failed requests: {failed}"


# In the page: find an <img> by CSS selector through open shadow roots (panel renders
# its panes inside them) and watch it. A keydown (captured on window, before any widget
# sees it) starts the clock; the first mutation after which the image's src differs
# stops it. ``window.__adkit_clock`` holds the log.
_CLOCK_JS = """
(selector) => {
  const find = (root) => {
    const hit = root.querySelector(selector);
    if (hit) return hit;
    for (const el of root.querySelectorAll('*')) {
      if (el.shadowRoot) { const f = find(el.shadowRoot); if (f) return f; }
    }
    return null;
  };
  const img = find(document);
  if (!img) return false;
  const root = img.getRootNode();
  const clock = window.__adkit_clock = {selector, t0: null, src: img.src, moves: []};
  window.addEventListener('keydown', () => { clock.t0 = performance.now(); }, true);
  new MutationObserver(() => {
    const now = root.querySelector(selector) || find(document);
    if (now && now.src !== clock.src) {
      clock.src = now.src;
      if (clock.t0 !== null) { clock.moves.push(performance.now() - clock.t0); clock.t0 = null; }
    }
  }).observe(root, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
  return true;
}
"""


def slider_latencies(page, handle, image_selector: str, key: str = "ArrowLeft",
                     moves: int = 5, timeout_ms: int = 20_000) -> list[float]:
    """Press ``key`` on a focused slider ``handle`` ``moves`` times; for each, the
    milliseconds from the keydown to the picture ``image_selector`` changing (in the page's
    own clock). Fails if a move does not change the picture."""
    assert page.evaluate(_CLOCK_JS, image_selector), f"no image {image_selector!r} on the page"
    handle.focus()
    for i in range(moves):
        page.wait_for_timeout(150)          # let the previous update settle
        handle.press(key)
        try:
            page.wait_for_function(f"window.__adkit_clock.moves.length > {i}",
                                   timeout=timeout_ms)
        except Exception:  # playwright's TimeoutError
            pytest.fail(f"move {i + 1} of the slider did not change the picture "
                        f"{image_selector!r} within {timeout_ms} ms")
    return page.evaluate("window.__adkit_clock.moves")


def report_latency(where: str, latencies: list[float]) -> float:
    med = statistics.median(latencies)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    line = (f"[latency] {where}: slider -> new picture, median {med:.0f} ms of "
            f"{len(latencies)} moves ({', '.join(f'{x:.0f}' for x in latencies)}); "
            f"load {load:.2f}")
    print(line)
    LATENCY_LINES.append(line)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with open(ARTIFACTS / "latency.txt", "a") as f:
        f.write(line + "\n")
    return med
