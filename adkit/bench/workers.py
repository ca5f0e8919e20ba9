"""What a Dask worker runs before the grid's cells: the thread limits.

Imported only when a scheduler is used (dask is an optional extra). A worker runs one cell
per worker thread; each cell then gets ``threads`` torch / BLAS / OpenMP threads, so that a
LocalCluster of one single-threaded worker per core (or a cluster's workers, sized by their
job scripts) never runs more threads than it has cores.
"""
from __future__ import annotations

from distributed import WorkerPlugin

from .grid import limit_threads

__all__ = ["ThreadLimits"]


class ThreadLimits(WorkerPlugin):
    """Worker plugin: :func:`adkit.bench.grid.limit_threads` on every worker, also on one
    that joins the cluster later."""

    name = "adkit-thread-limits"

    def __init__(self, threads: int = 1):
        self.threads = int(threads)

    def setup(self, worker):
        limit_threads(self.threads)
