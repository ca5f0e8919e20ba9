"""The summary of a benchmark grid: a method × dataset table, mean ± std over seeds.

``python -m adkit report results.parquet`` reads the rows that
:func:`adkit.bench.grid.run_grid` wrote, prints the table of one metric (``image_auroc``
by default) and draws it as a heatmap. A row's method is its CLI name with its
normalization steps (``reference+midway``); when rows of one method differ in another
setting (detector parameters, image size, number of images, ε, root), the label names
the settings that differ (``knn [size=128]``), so that unlike runs are never averaged.
"""
from __future__ import annotations

import json
import math

__all__ = ["summarize", "format_summary", "heatmap"]

#: cell settings that split a method into variants when they differ between rows
VARIANT_FIELDS = ("params", "size", "n_train", "n_test", "eps", "root")


def _spec(row: dict) -> dict:
    if "cell" in row:
        return json.loads(row["cell"])
    params = row.get("params", "{}")
    return {"params": json.loads(params) if isinstance(params, str) else params,
            "size": row.get("size")}


def _describe(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "defaults"
    return str(value)


def _labels(rows: list[dict]) -> list[str]:
    """Each row's method label, with the settings that tell its variants apart."""
    variants: dict = {}
    specs = [_spec(r) for r in rows]
    for r, s in zip(rows, specs):
        v = {f: json.dumps(s.get(f), sort_keys=True) for f in VARIANT_FIELDS}
        variants.setdefault(r["method"], []).append(v)
    labels = []
    for r, s in zip(rows, specs):
        vs = variants[r["method"]]
        differ = [f for f in VARIANT_FIELDS if len({v[f] for v in vs}) > 1]
        if not differ:
            labels.append(r["method"])
            continue
        parts = []
        for f in differ:
            parts.append(_describe(s.get(f)) if f == "params" else f"{f}={s.get(f)}")
        labels.append(f"{r['method']} [{', '.join(parts)}]")
    return labels


def _number(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return None if math.isnan(v) else v


def summarize(rows: list[dict], metric: str = "image_auroc") -> dict:
    """Mean ± std over seeds of ``metric`` for each (method, dataset).

    Returns a dict (JSON-ready): ``metric``, ``methods`` and ``datasets`` (in the order
    they first appear), ``cells`` ``{method: {dataset: {"mean", "std", "n", "seeds",
    "errors"}}}`` (``std`` is the sample standard deviation, None for one seed;
    ``errors`` counts the error rows) and ``mean`` ``{method: mean over datasets}`` (None
    unless every dataset has a value).
    """
    if not rows:
        raise ValueError("no rows to summarize: run python -m adkit bench ... --results "
                         "FILE first.")
    present = {k for r in rows for k in r if _number(r[k]) is not None}
    if metric not in present:
        numeric = sorted(present - {"seed", "pid", "started", "finished"})
        raise ValueError(f"no row has a value for metric {metric!r}; numeric columns of "
                         f"these rows: {numeric}.")
    labels = _labels(rows)
    methods = list(dict.fromkeys(labels))
    datasets = list(dict.fromkeys(r["data"] for r in rows))
    acc: dict = {}
    for label, r in zip(labels, rows):
        a = acc.setdefault(label, {}).setdefault(r["data"], {"values": [], "seeds": [],
                                                             "errors": 0})
        if "error" in r:
            a["errors"] += 1
            continue
        v = _number(r.get(metric))
        if v is not None:
            a["values"].append(v)
            a["seeds"].append(r.get("seed"))
    cells: dict = {}
    for m in methods:
        for d in datasets:
            a = acc[m].get(d)
            if a is None:
                continue
            vals = a["values"]
            n = len(vals)
            mean = sum(vals) / n if n else None
            std = (math.sqrt(sum((x - mean) ** 2 for x in vals) / (n - 1)) if n > 1
                   else None)
            cells.setdefault(m, {})[d] = {"mean": mean, "std": std, "n": n,
                                          "seeds": a["seeds"], "errors": a["errors"]}
    mean = {}
    for m in methods:
        ms = [cells.get(m, {}).get(d, {}).get("mean") for d in datasets]
        mean[m] = sum(ms) / len(ms) if all(x is not None for x in ms) else None
    return {"metric": metric, "methods": methods, "datasets": datasets, "cells": cells,
            "mean": mean}


def _cell_text(c: dict | None, n_max: int) -> str:
    if c is None:
        return "-"
    if c["mean"] is None:
        return f"error ×{c['errors']}" if c["errors"] else "-"
    text = f"{c['mean']:.3f}" + (f" ± {c['std']:.3f}" if c["std"] is not None else "")
    if c["n"] < n_max:
        text += f" (n={c['n']})"
    if c["errors"]:
        text += f" +{c['errors']} err"
    return text


def format_summary(summary: dict) -> str:
    """The table of :func:`summarize` as fixed-width text, with a line on what it shows."""
    from . import format_table
    cells, datasets = summary["cells"], summary["datasets"]
    n_max = max((c["n"] for row in cells.values() for c in row.values()), default=0)
    table = []
    for m in summary["methods"]:
        row = {"method": m}
        for d in datasets:
            row[d] = _cell_text(cells.get(m, {}).get(d), n_max)
        if len(datasets) > 1:
            mean = summary["mean"][m]
            row["mean"] = "-" if mean is None else f"{mean:.3f}"
        table.append(row)
    errors = sum(c["errors"] for row in cells.values() for c in row.values())
    note = (f"{summary['metric']}: mean ± std over seeds (n = {n_max} per cell unless "
            "noted)")
    if errors:
        note += f"; {errors} error row(s): see the 'error' column of the results file"
    return format_table(table) + "\n" + note


def heatmap(summary: dict, path) -> None:
    """Draw the table of :func:`summarize` as a heatmap (mean, with ± std written in each
    cell) and save it to ``path`` (any format matplotlib writes, by its extension)."""
    import matplotlib
    import numpy as np
    from matplotlib.figure import Figure
    methods, datasets, cells = summary["methods"], summary["datasets"], summary["cells"]
    values = np.full((len(methods), len(datasets)), np.nan)
    for i, m in enumerate(methods):
        for j, d in enumerate(datasets):
            c = cells.get(m, {}).get(d)
            if c is not None and c["mean"] is not None:
                values[i, j] = c["mean"]
    fig = Figure(figsize=(1.6 + 1.5 * len(datasets), 1.2 + 0.55 * len(methods)),
                 layout="constrained")
    ax = fig.add_subplot()
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
    im = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=lo,
                   vmax=hi if hi > lo else lo + 1e-9, aspect="auto")
    n_max = max((c["n"] for row in cells.values() for c in row.values()), default=0)
    for i, m in enumerate(methods):
        for j, d in enumerate(datasets):
            text = _cell_text(cells.get(m, {}).get(d), n_max).replace(" ± ", "\n± ")
            dark = np.isfinite(values[i, j]) and values[i, j] < lo + 0.5 * (hi - lo)
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if dark else "black")
    ax.set_xticks(range(len(datasets)), datasets, rotation=30, ha="right")
    ax.set_yticks(range(len(methods)), methods)
    ax.set_title(f"{summary['metric']} (mean ± std over seeds)")
    fig.colorbar(im, ax=ax, label=summary["metric"])
    fig.savefig(path, dpi=120)
