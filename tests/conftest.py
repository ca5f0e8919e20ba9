import os
import sys

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt
    plt.close("all")


def pytest_terminal_summary(terminalreporter):
    """The browser tests' slider latencies, in every run's summary (also without -s)."""
    support = sys.modules.get("browser_support")
    lines = getattr(support, "LATENCY_LINES", [])
    if lines:
        terminalreporter.section("slider latencies (browser tests)")
        for line in lines:
            terminalreporter.write_line(line)
