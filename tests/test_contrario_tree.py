"""Tests of the a contrario tree NFA of U-Flow (adkit.contrario.tree)."""
import numpy as np
import pytest

from adkit.contrario.tree import (ALPHA, BETA, chi2_region_log_pfa, level_set_tree,
                                  polyomino_tests, tree_log_nfa)


def test_chernoff_bound_by_hand():
    c = 16
    # t = 10: 9 pixels · (−8)(10 − 1 − ln 10)/ln 10
    want = 9 * (-c / 2) * (10 - 1 - np.log(10)) / np.log(10)
    assert chi2_region_log_pfa(9, 10 * c, c) == pytest.approx(want, rel=1e-12)
    # clamped to 0 where t <= 1 (the bound does not hold)
    assert chi2_region_log_pfa(100, 0.5 * c, c) == 0.0
    assert chi2_region_log_pfa(100, c, c) == 0.0
    # it is an upper bound of the exact chi2 tail
    from scipy import stats
    for t in (1.5, 3.0, 8.0):
        exact = stats.chi2.logsf(t * c, c) / np.log(10)
        assert chi2_region_log_pfa(1, t * c, c) >= exact


def test_polyomino_count_small_and_log_space():
    # one scale of 3 pixels: N_s · Σ_{r=1}^{3} α β^r / r
    direct = 3 * sum(ALPHA * BETA ** r / r for r in range(1, 4))
    assert polyomino_tests(3) == pytest.approx(np.log10(direct), rel=1e-12)
    # two scales add up
    two = 3 * sum(ALPHA * BETA ** r / r for r in range(1, 4)) + \
        5 * sum(ALPHA * BETA ** r / r for r in range(1, 6))
    assert polyomino_tests([3, (1, 5)]) == pytest.approx(np.log10(two), rel=1e-12)
    # large sizes stay finite (the count itself overflows): ≈ N log10 β
    v = polyomino_tests((256, 256))
    assert np.isfinite(v)
    n = 256 * 256
    assert v == pytest.approx(n * np.log10(BETA) + np.log10(ALPHA), rel=1e-4)


def test_hand_made_tree_selects_the_planted_block():
    c = 16
    m = np.full((8, 8), 0.5 * c)
    m[2:5, 2:5] = 10 * c
    tree = level_set_tree(m, c)
    assert tree.selected.size == 1
    assert np.array_equal(tree.labels >= 0, m > c)
    want = 9 * (-c / 2) * (10 - 1 - np.log(10)) / np.log(10)
    assert tree.log_pfa_map.min() == pytest.approx(want)
    lnfa = tree_log_nfa(m, c)
    assert lnfa[3, 3] == pytest.approx(polyomino_tests((8, 8)) + want, rel=1e-5)
    assert lnfa[0, 0] == pytest.approx(polyomino_tests((8, 8)), rel=1e-5)


def test_prune_keeps_most_significant_node_and_merge_replaces_leaves():
    c = 4
    # two bumps on a plateau: each bump alone is weak, the plateau (union) is stronger
    m = np.full((6, 12), 0.1)
    m[1:5, 1:11] = 6 * c         # plateau of 40 pixels at t = 6
    m[2, 3] = 7 * c              # tiny peak, 1 pixel at t = 7
    m[2, 8] = 7 * c
    tree = level_set_tree(m, c)
    # the peaks are leaves less significant than the plateau: merged into it
    assert tree.selected.size == 1
    assert np.array_equal(tree.labels >= 0, m >= 6 * c)
    # a strong large peak stays separate from its parent
    m2 = m.copy()
    m2[1:5, 6:11] = 40 * c
    tree2 = level_set_tree(m2, c)
    sel = tree2.labels >= 0
    assert sel[2, 8] and not sel[2, 2]


def test_planted_region_detected_and_noise_quiet():
    rng = np.random.default_rng(0)
    c = 16
    hits, false_images = [], 0
    for _ in range(10):
        z = rng.standard_normal((c, 32, 32))
        z[:, 10:16, 10:16] *= 4
        det = tree_log_nfa((z ** 2).sum(0), c) < 0
        hits.append(det[10:16, 10:16].mean())
        assert det[~np.pad(np.ones((8, 8), bool), ((9, 15), (9, 15)))].sum() == 0
        noise = rng.standard_normal((c, 32, 32))
        false_images += bool((tree_log_nfa((noise ** 2).sum(0), c) < 0).any())
    assert np.mean(hits) > 0.6
    assert false_images <= 1


def test_multiscale_min_and_shapes():
    c = 8
    fine = np.full((16, 16), 0.5 * c)
    coarse = np.full((8, 8), 0.5 * c)
    coarse[2:6, 2:6] = 30 * c
    out = tree_log_nfa([fine, coarse], [c, c], shape=(32, 32))
    assert out.shape == (32, 32) and out.dtype == np.float32
    log_n = polyomino_tests([(16, 16), (8, 8)])
    assert out[0, 0] == pytest.approx(log_n, rel=1e-5)
    assert out[12, 12] < 0


def test_clear_errors():
    with pytest.raises(ValueError, match="2-D"):
        tree_log_nfa(np.ones((2, 4, 4)), 3)
    with pytest.raises(ValueError, match="negative"):
        tree_log_nfa(-np.ones((4, 4)), 3)
    with pytest.raises(ValueError, match="channel counts"):
        tree_log_nfa([np.ones((4, 4)), np.ones((2, 2))], [3])
    with pytest.raises(ValueError, match="channels"):
        chi2_region_log_pfa(1, 2.0, 0)


def _naive_prune_merge(nodes, node_parent, log_pfa):
    """Reference: alternate PFA prune and PFA merge on an explicit tree until nothing
    changes; returns the set of leaves (canonical pixels)."""
    nodes = [int(n) for n in nodes]
    root = nodes[0]
    lp = {int(n): float(v) for n, v in zip(nodes, log_pfa)}
    parent = {int(n): int(p) for n, p in zip(nodes, node_parent)}
    parent[root] = None
    alive = set(nodes)

    def children():
        ch = {n: [] for n in alive}
        for n in alive:
            if parent[n] is not None:
                ch[parent[n]].append(n)
        return ch

    changed = True
    while changed:
        changed = False
        # prune: each leaf branch (leaf + ancestors with a single child) keeps its best node
        ch = children()
        for leaf in [n for n in alive if not ch[n]]:
            if leaf not in alive:
                continue
            branch = [leaf]
            while parent[branch[-1]] is not None and len(ch[parent[branch[-1]]]) == 1:
                branch.append(parent[branch[-1]])
            if len(branch) == 1:
                continue
            best = min(branch, key=lambda n: (lp[n], branch.index(n)))
            top_parent = parent[branch[-1]]
            for n in branch:
                if n != best:
                    alive.discard(n)
            parent[best] = top_parent
            changed = True
            ch = children()
        # merge: a node whose children are all leaves and that is at least as significant
        ch = children()
        for n in list(alive):
            kids = ch.get(n, [])
            if kids and all(not ch[k] for k in kids) and lp[n] <= min(lp[k] for k in kids):
                for k in kids:
                    alive.discard(k)
                changed = True
                ch = children()
    ch = children()
    return {n for n in alive if not ch[n]}


@pytest.mark.parametrize("seed", range(6))
def test_single_sweep_equals_iterated_prune_and_merge(seed):
    rng = np.random.default_rng(seed)
    c = 4
    # quantized values: plateaus, nested regions, siblings, single-child chains
    m = np.round(rng.gamma(2.0, 2.0, (9, 11)) * 2) / 2 * c / 2
    m[2:5, 3:7] += 6 * c
    tree = level_set_tree(m, c)
    want = _naive_prune_merge(tree.nodes, tree.node_parent, tree.log_pfa)
    assert set(int(s) for s in tree.selected) == want


def test_nearest_upsampling_keeps_detections_on_their_cells():
    c = 8
    coarse = np.full((4, 4), 0.5 * c)
    coarse[1, 2] = 200 * c
    out = tree_log_nfa(coarse, c, shape=(32, 32))
    assert np.array_equal(out < 0, np.kron(coarse > c, np.ones((8, 8))).astype(bool))
    smooth = tree_log_nfa(coarse, c, shape=(32, 32), upsample="bilinear")
    assert (smooth < 0).sum() > (out < 0).sum()  # bilinear spreads a strong cell
    with pytest.raises(ValueError, match="upsample"):
        tree_log_nfa(coarse, c, upsample="cubic")


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (1, 5), (2, 7)])
def test_maps_smaller_than_3_pixels_per_side(shape):
    # scikit-image's max-tree needs 3 pixels per side; coarse latents can be smaller
    c = 4
    m = np.full(shape, 0.5 * c)
    m.flat[-1] = 50 * c
    tree = level_set_tree(m, c)
    assert tree.labels.shape == shape and tree.area[0] == m.size
    assert np.array_equal(tree.labels >= 0, m > c)
    assert tree.log_pfa_map.flat[-1] == pytest.approx(chi2_region_log_pfa(1, 50 * c, c))
    assert set(tree.selected.tolist()) <= set(range(m.size))
