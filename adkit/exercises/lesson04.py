"""Exercises of lesson 04 (Gaussian and kNN on deep features): the next pick of the greedy
k-center coreset of PatchCore, PatchCore's reweighted image score, and the Mahalanobis
distance to a Gaussian with a Ledoit-Wolf covariance."""
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


# -- 04.patchcore_score ----------------------------------------------------------------------

def _score_reference(s_star, dists):
    from ..models.knn import patchcore_score
    return patchcore_score(s_star, dists)


def _neighbours(rng, n, b, scale, spread):
    """s* (n,) and the distances (n, b) to N_b(m*), m* itself first (at s*)."""
    s = scale * rng.uniform(1.0, 3.0, n)
    extra = s[:, None] + spread * rng.exponential(1.0, (n, b - 1))
    return s, np.concatenate([s[:, None], extra], 1)


def _score_cases(rng):
    s, d = _neighbours(rng, 6, 9, 1.0, 0.5)
    yield Case("6 images, b = 9 neighbours (m* first, at s*)", (s, d),
               hint="the neighbourhood N_b(m*) includes m* itself: sum e^d over all b columns.")
    s, d = _neighbours(rng, 5, 3, 2.0, 2.0)
    yield Case("b = 3, neighbours far from m*", (s, d))
    s = rng.uniform(1, 2, 4)
    yield Case("every neighbour at the same distance s*: the weight is 1 − 1/b",
               (s, np.repeat(s[:, None], 5, 1)))
    s, d = _neighbours(rng, 4, 9, 300.0, 20.0)
    yield Case("deep-feature distances in the hundreds", (s, d),
               hint="e^900 overflows a float64 (it is inf, and inf/inf is NaN): compute "
                    "e^{s*}/Σ e^d as exp(s* − logsumexp(d)) (scipy.special.logsumexp), or "
                    "subtract the largest distance before the exponentials.")


def _score_hints(case, got, expected):
    s, d = (np.asarray(a, np.float64) for a in case.args)
    g = np.asarray(got, np.float64)
    if g.shape != s.shape:
        return None
    if np.isnan(g).any() and d.max() > 700:
        return ("NaN where the distances are large: e^d overflows. Compute the weight as "
                "exp(s* − logsumexp(d)) (scipy.special.logsumexp), or subtract the largest "
                "distance from s* and d before np.exp.")
    m = d.max(1, keepdims=True)
    soft = np.exp(s - m[:, 0]) / np.exp(d - m).sum(1)
    close = lambda v: np.allclose(g, v, rtol=1e-4, atol=1e-6)   # noqa: E731
    if close(soft * s):
        return ("that is softmax·s*: the weight is 1 − e^{s*}/Σ e^d (s* is kept when the "
                "neighbours of m* are far from the test patch, and reduced to (1 − 1/b)·s* "
                "when they all are at s*).")
    if close(1 - soft):
        return "that is the weight alone: multiply it by s*."
    m2 = d[:, 1:].max(1, keepdims=True)
    soft2 = np.exp(s - m2[:, 0]) / np.exp(d[:, 1:] - m2).sum(1)
    if close((1 - soft2) * s):
        return ("the sum must include m* itself (the first column, at s*): "
                "N_b(m*) holds m* and its b − 1 nearest bank entries.")
    return None


def _score_solution(s_star, dists):
    from scipy.special import logsumexp
    weight = 1 - np.exp(s_star - logsumexp(dists, axis=1))
    return weight * s_star


def _score_softmax(s_star, dists):
    from scipy.special import logsumexp
    return np.exp(s_star - logsumexp(dists, axis=1)) * s_star


def _score_naive(s_star, dists):
    return (1 - np.exp(s_star) / np.exp(dists).sum(1)) * s_star


def _score_without_m_star(s_star, dists):
    from scipy.special import logsumexp
    return (1 - np.exp(s_star - logsumexp(dists[:, 1:], axis=1))) * s_star


register(Exercise(
    "04.patchcore_score",
    title="PatchCore's reweighted image score",
    statement="""PatchCore (Roth et al. 2022, eq. 7) scores an image by its worst patch:
    s* = ‖m_test,* − m*‖, the distance of the most anomalous test patch to its nearest bank
    entry m*, reweighted by how dense the bank is around m*: with N_b(m*) the b nearest bank
    entries of m* (m* itself included), s = (1 − e^{s*} / Σ_{m ∈ N_b(m*)} e^{‖m_test,* − m‖})
    · s*. Write a function that takes s* (N,) for N images and the distances (N × b) of
    each worst test patch to the entries of N_b(m*) (m* first, at distance s*) and returns
    the N scores (adkit.models.knn.patchcore_score).""",
    signature="my_patchcore_score(s_star, dists) -> scores",
    reference=_score_reference, cases=_score_cases, hints=[_score_hints],
    solution=_score_solution, atol=1e-5, rtol=1e-5,
    mistakes=[
        Mistake("softmax instead of 1 − softmax", _score_softmax, "1 − e^{s*}"),
        Mistake("naive exponentials", _score_naive, "logsumexp"),
        Mistake("m* left out of the sum", _score_without_m_star, "include m* itself"),
    ]))


# -- 04.mahalanobis_lw -----------------------------------------------------------------------

def _lw_reference(train, queries):
    from ..models.gaussian import ledoit_wolf, mahalanobis
    train = np.asarray(train, np.float64)
    cov, _ = ledoit_wolf(train)
    return mahalanobis(queries, train.mean(0), np.linalg.inv(cov))


def _lw_cases(rng):
    a = rng.standard_normal((5, 5))
    train = rng.standard_normal((200, 5)) @ a
    yield Case("200 correlated samples in 5-D, 4 queries",
               (train, rng.standard_normal((4, 5)) @ a))
    train = rng.standard_normal((12, 30)) * rng.uniform(0.5, 2, 30)
    yield Case("12 samples in 30-D: fewer samples than dimensions", (train,
               rng.standard_normal((3, 30)) * 2),
               hint="with n ≤ p samples the sample covariance S is singular: the Ledoit-Wolf "
                    "shrinkage (1 − ρ)S + ρμI makes it invertible.")
    train = 3.0 + rng.standard_normal((40, 8)) * 0.1
    yield Case("40 samples around 3 (not centred), 8-D", (train, train[:3] + 0.05))
    yield Case("a training sample itself as a query", (train, train[:1]))


def _lw_hints(case, got, expected):
    train, queries = (np.asarray(a, np.float64) for a in case.args)
    g = np.asarray(got, np.float64)
    e = np.asarray(expected, np.float64)
    if g.shape != e.shape:
        return None
    if np.allclose(g, e ** 2, rtol=1e-4):
        return "that is the squared distance: take the square root, √((x − μ)ᵀ Σ⁻¹ (x − μ))."
    n, p = train.shape
    mu = train.mean(0)
    d = queries - mu
    try:
        for cov, says in ((np.cov(train, rowvar=False), "np.cov divides by n − 1 and does not "
                           "shrink"),
                          (np.cov(train, rowvar=False, bias=True), "that is the plain sample "
                           "covariance S")):
            q = np.sqrt(np.einsum("np,pq,nq->n", d, np.linalg.pinv(cov), d).clip(0))
            if np.allclose(g, q, rtol=1e-4):
                return (f"{says}: Ledoit-Wolf shrinks S towards (tr S/p)·I, "
                        "Σ = (1 − ρ)S + ρ(tr S/p)I (sklearn.covariance.ledoit_wolf or "
                        "adkit.models.gaussian.ledoit_wolf).")
    except np.linalg.LinAlgError:
        pass
    if np.allclose(g, np.sqrt(((queries - mu) ** 2).sum(1))):
        return "that is the Euclidean distance to the mean: weigh it by Σ⁻¹."
    return None


def _lw_solution(train, queries):
    from sklearn.covariance import ledoit_wolf
    mu = train.mean(0)
    cov, _ = ledoit_wolf(train)
    d = queries - mu
    return np.sqrt(np.einsum("np,pq,nq->n", d, np.linalg.inv(cov), d))


def _lw_squared(train, queries):
    from sklearn.covariance import ledoit_wolf
    d = queries - train.mean(0)
    return np.einsum("np,pq,nq->n", d, np.linalg.inv(ledoit_wolf(train)[0]), d)


def _lw_no_shrinkage(train, queries):
    d = queries - train.mean(0)
    prec = np.linalg.pinv(np.cov(train, rowvar=False))
    return np.sqrt(np.einsum("np,pq,nq->n", d, prec, d).clip(0))


register(Exercise(
    "04.mahalanobis_lw",
    title="The Mahalanobis distance with a Ledoit-Wolf covariance",
    statement="""The Gaussian detector (Rippel et al. 2021) fits a mean μ and a covariance Σ
    to the features of the normal images and scores a feature x by its Mahalanobis distance
    √((x − μ)ᵀ Σ⁻¹ (x − μ)). With few images the sample covariance S = XᵀX/n (X centred)
    is singular or badly conditioned, so Σ is the Ledoit-Wolf estimate, shrunk towards a
    multiple of the identity: Σ = (1 − ρ)S + ρ·(tr S/p)·I, with the shrinkage ρ chosen from
    the data (sklearn.covariance.ledoit_wolf computes Σ; adkit.models.gaussian.ledoit_wolf is
    the same estimator). Write a function that takes the training samples (n × p) and the
    queries (m × p) and returns the m distances.""",
    signature="my_mahalanobis(train, queries) -> distances",
    reference=_lw_reference, cases=_lw_cases, hints=[_lw_hints], solution=_lw_solution,
    atol=1e-6, rtol=1e-6,
    mistakes=[
        Mistake("the squared distance", _lw_squared, "square root"),
        Mistake("no shrinkage (np.cov)", _lw_no_shrinkage, "Ledoit-Wolf shrinks"),
    ]))
