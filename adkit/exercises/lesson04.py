"""Exercises of lesson 04 (Gaussian and kNN on deep features): the next pick of the greedy
k-center coreset of PatchCore."""
from __future__ import annotations

import numpy as np

from .base import Case, Exercise, Mistake, register

# -- 04.coreset_next_pick --------------------------------------------------------------------


def _distances_to(features, selected):
    """(N, len(selected)) distances of every entry to every selected entry (adkit's search)."""
    from ..neighbors import nearest_neighbors
    sel = np.asarray(selected)
    d, idx = nearest_neighbors(features, features[sel], k=len(sel))
    out = np.empty_like(d)
    np.put_along_axis(out, idx, d, axis=1)
    return out


def _pick_case(rng, name, n, dim, k, hint=None):
    """A bank, the first k picks of adkit's greedy_coreset, and its pick k + 1 (the
    expected answer), drawn again until the best pick leads the runner-up clearly."""
    from ..coreset import greedy_coreset
    while True:
        feats = rng.standard_normal((n, dim)).astype(np.float32)
        seed = int(rng.integers(1000))
        order = greedy_coreset(feats, ratio=(k + 1) / n, dim=None, seed=seed)
        selected, nxt = order[:k], int(order[k])
        nearest = _distances_to(feats, selected).min(1)
        nearest[selected] = -np.inf
        top2 = np.sort(nearest)[-2:]
        if top2[1] - top2[0] > 1e-3 * top2[1] and int(np.argmax(nearest)) == nxt:
            return Case(name, (feats, selected.copy()), hint=hint, expected=nxt)


def _pick_cases(rng):
    yield _pick_case(rng, "40 entries in 5-D, one entry selected", 40, 5, 1)
    yield _pick_case(rng, "40 entries in 5-D, 3 selected", 40, 5, 3,
                     hint="the distance of an entry to the selected set is its distance to "
                          "the nearest selected entry (a min over the selected).")
    yield _pick_case(rng, "60 entries in 16-D, 8 selected", 60, 16, 8)
    yield _pick_case(rng, "200 entries in 3-D, 20 selected", 200, 3, 20)


def _pick_hints(case, got, expected):
    feats, selected = case.args
    try:
        g = int(np.asarray(got).reshape(()))
    except (TypeError, ValueError):
        return "return one index, an int (the row of the entry to add)."
    if g in set(np.asarray(selected).tolist()):
        return ("that entry is already selected (its distance to the selected set is 0): "
                "pick among the others.")
    d = _distances_to(feats, selected)
    others = np.setdiff1d(np.arange(len(feats)), selected)
    if g == others[np.argmin(d[others].min(1))]:
        return ("you picked the entry closest to the selected ones: k-center adds the "
                "farthest one, the argmax of the distance to the nearest selected entry.")
    if len(selected) > 1 and g == others[np.argmax(d[others].sum(1))]:
        return ("you maximised the distance to all the selected entries (a sum or a mean): "
                "use the distance to the nearest selected entry (the min), then the argmax.")
    if len(selected) > 1 and g == others[np.argmax(d[others, -1])]:
        return ("you measured the distance to the last pick only: take the min over every "
                "selected entry.")
    return None


def _pick_solution(features, selected):
    f = features.astype(np.float64)
    d = np.sqrt(((f[:, None, :] - f[None, selected, :]) ** 2).sum(-1)).min(1)
    d[selected] = -np.inf
    return int(np.argmax(d))


def _pick_sum(features, selected):
    f = features.astype(np.float64)
    d = np.sqrt(((f[:, None, :] - f[None, selected, :]) ** 2).sum(-1)).sum(1)
    d[selected] = -np.inf
    return int(np.argmax(d))


def _pick_nearest(features, selected):
    f = features.astype(np.float64)
    d = np.sqrt(((f[:, None, :] - f[None, selected, :]) ** 2).sum(-1)).min(1)
    d[selected] = np.inf
    return int(np.argmin(d))


register(Exercise(
    "04.coreset_next_pick",
    title="The next pick of the greedy coreset",
    statement="""PatchCore (Roth et al. 2022) keeps a small coreset of its memory bank by
    greedy k-center selection: starting from one entry, it repeatedly adds the entry whose
    distance to the nearest already selected entry is the largest,
    m = argmax over the bank of min over the selected n of ‖m − n‖₂. Write a function that
    takes the bank (N × D features) and the indices already selected, in order, and returns
    the index of the next entry greedy k-center adds (adkit.coreset.greedy_coreset with
    dim=None, i.e. without the random projection, makes the same picks).""",
    signature="my_next_pick(features, selected) -> int",
    cases=_pick_cases, hints=[_pick_hints], solution=_pick_solution,
    mistakes=[
        Mistake("sum of the distances to the selected", _pick_sum, "the min"),
        Mistake("the closest entry", _pick_nearest, "closest"),
    ]))
