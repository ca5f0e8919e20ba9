"""Tests of the a contrario tree NFA of U-Flow (adkit.contrario.tree)."""
import numpy as np
import pytest
from scipy import ndimage, stats

from adkit.contrario.null import CellBackground
from adkit.contrario.tree import (ALPHA, BETA, AllSizesChi2Test, PerSizeTest, chi2_log_sf,
                                  chi2_region_log_pfa, level_refined_map, level_set_tree,
                                  measured_shift, polyomino_log_count, polyomino_tests,
                                  tree_log_nfa)


def test_chernoff_bound_by_hand():
    c = 16
    # t = 10: 9 pixels · (−8)(10 − 1 − ln 10)/ln 10
    want = 9 * (-c / 2) * (10 - 1 - np.log(10)) / np.log(10)
    assert chi2_region_log_pfa(9, 10 * c, c) == pytest.approx(want, rel=1e-12)
    # clamped to 0 where t <= 1 (the bound does not hold)
    assert chi2_region_log_pfa(100, 0.5 * c, c) == 0.0
    assert chi2_region_log_pfa(100, c, c) == 0.0
    # it is an upper bound of the exact chi2 tail
    for t in (1.5, 3.0, 8.0):
        exact = stats.chi2.logsf(t * c, c) / np.log(10)
        assert chi2_region_log_pfa(1, t * c, c) >= exact
        assert chi2_region_log_pfa(1, t * c, c) >= chi2_log_sf(t * c, c)


@pytest.mark.parametrize("dof", [1, 4, 59, 160])
def test_exact_chi2_tail_matches_scipy_and_stays_finite(dof):
    x = np.concatenate([[0.0, -3.0], np.geomspace(0.01, 60, 200) * dof])
    got = chi2_log_sf(x, dof)
    want = stats.chi2.logsf(x, dof) / np.log(10)
    ok = np.isfinite(want) & (want > -290)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-9, atol=1e-12)
    assert got[0] == 0.0 and got[1] == 0.0
    # far tail (scipy's log underflows to -inf): finite, decreasing, and the upper of
    # the two bounds x^(a-1)e^-x/Γ(a) and that · x/(x-a+1) of Q(a, x) (variable x/2)
    far = np.geomspace(2000, 20000, 50) * (1 + dof / 10)
    v = chi2_log_sf(far, dof)
    assert np.all(np.isfinite(v)) and np.all(np.diff(v) < 0)
    from scipy import special
    a, h = dof / 2, far / 2
    b1 = ((a - 1) * np.log(h) - h - special.gammaln(a)) / np.log(10)
    b2 = b1 + np.log10(h / (h - a + 1))
    np.testing.assert_allclose(v, np.maximum(b1, b2), rtol=1e-12)
    assert np.all(np.abs(b2 - b1) < 0.1)              # the exact value lies in between


def _fixed_polyominoes(r_max):
    """Brute force: the number of fixed polyominoes of each size up to r_max (shapes of
    4-connected cells up to translation), grown cell by cell and deduplicated."""
    counts, level = [], {((0, 0),)}
    for r in range(1, r_max + 1):
        counts.append(len(level))
        nxt = set()
        for shape in level:
            cells = set(shape)
            for y, x in shape:
                for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
                    c = (y + dy, x + dx)
                    if c not in cells:
                        new = cells | {c}
                        my = min(p[0] for p in new); mx = min(p[1] for p in new)
                        nxt.add(tuple(sorted((p[0] - my, p[1] - mx) for p in new)))
        level = nxt
    return counts


def test_polyomino_count_is_above_the_exact_count():
    exact = _fixed_polyominoes(8)
    assert exact[:6] == [1, 2, 6, 19, 63, 216]          # OEIS A001168
    approx = 10 ** polyomino_log_count(np.arange(1, 9))
    assert np.all(approx >= exact) and np.all(approx <= 1.31 * np.asarray(exact))
    with pytest.raises(ValueError, match="one cell"):
        polyomino_log_count(0)


def test_connected_regions_of_a_grid_are_at_most_positions_times_shapes():
    # every 4-connected subset of a 4×4 grid, by size: the union bound of the per-size
    # count needs #regions(r) <= N · A(r)
    h = w = 4
    codes = np.arange(2 ** (h * w))
    masks = ((codes[:, None] >> np.arange(h * w)) & 1).astype(bool).reshape(-1, h, w)
    struct = np.zeros((3, 3, 3), bool)
    struct[1] = ndimage.generate_binary_structure(2, 1)      # no link between masks
    lab, _ = ndimage.label(masks, structure=struct)
    flat = lab.reshape(len(masks), -1)
    hi = flat.max(1)
    lo = np.where(flat > 0, flat, np.iinfo(flat.dtype).max).min(1)
    connected = (hi > 0) & (hi == lo)
    sizes = masks.reshape(len(masks), -1).sum(1)[connected]
    per_size = np.bincount(sizes, minlength=h * w + 1)[1:]
    assert per_size[0] == 16 and per_size[1] == 24       # cells, dominoes
    bound = h * w * 10 ** polyomino_log_count(np.arange(1, h * w + 1))
    assert np.all(per_size <= bound)


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
    assert tree.log_nfa_map.min() == pytest.approx(polyomino_tests((8, 8)) + want)
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


def test_per_size_test_by_hand():
    c = 16
    m = np.full((8, 8), 0.5 * c)
    m[2:5, 2:5] = 10 * c
    test = PerSizeTest(lambda x: chi2_log_sf(x, c), 64, kappa=2.0, n_scales=3)
    want = (np.log10(3 * 64 ** 2) + np.log10(ALPHA * BETA ** 9 / 9)
            + (1 + 8 / 2.0) * chi2_log_sf(10 * c, c))
    assert test(9, 10 * c) == pytest.approx(want, rel=1e-12)
    tree = level_set_tree(m, test)
    assert np.array_equal(tree.labels >= 0, m > c)
    assert tree.log_nfa_map[3, 3] == pytest.approx(want)
    # outside every selected region: the whole map at PFA = 1
    assert tree.log_nfa_map[0, 0] == pytest.approx(np.log10(3 * 64 ** 2)
                                                   + polyomino_log_count(64))
    # the paper's count of the same map is much larger than the per-size one of 9 cells
    assert polyomino_tests((8, 8)) > test(9, 0.0) + 20
    with pytest.raises(ValueError, match="kappa"):
        PerSizeTest(lambda x: x, 64, kappa=0.5)
    with pytest.raises(TypeError, match="function"):
        PerSizeTest(3.0, 64)


def _count_false_regions(test, maps, log_eps):
    out = np.zeros(len(log_eps))
    for m in maps:
        lnfa = tree_log_nfa(m, test)
        out += [ndimage.label(lnfa < le)[1] for le in log_eps]
    return out / len(maps)


def _ar1_chi2(rng, rho, c, n, count):
    """χ²_c maps whose channels are separable AR(1) Gaussian fields (lag-1 corr rho)."""
    x = rng.standard_normal((count, c, n, n))
    for ax in (2, 3):
        x = np.moveaxis(x, ax, 0).copy()
        for i in range(1, n):
            x[i] = rho * x[i - 1] + np.sqrt(1 - rho ** 2) * x[i]
        x = np.moveaxis(x, 0, ax)
    return (x ** 2).sum(1)


def test_per_size_nfa_keeps_its_promise_on_noise():
    # E[false detections per map] <= ε under H0: i.i.d. χ²_8 cells, the exact tail
    rng = np.random.default_rng(0)
    c, n = 8, 16
    maps = (rng.standard_normal((150, c, n, n)) ** 2).sum(1)
    test = PerSizeTest(lambda x: chi2_log_sf(x, c), n * n)
    fa = _count_false_regions(test, maps, [0, 1, 2, 3])
    assert np.all(fa <= 10.0 ** np.arange(4))         # measured 0.03, 0.13, 0.8, 5.4
    assert fa[3] > 0                                   # and it does fire below ε = 1e3


def test_correlated_cells_need_kappa():
    # cells correlated like neighbouring latents (χ² lag-1 corr ≈ 0.35): with κ = 1
    # the test over-detects, with κ estimated on other normal maps it keeps ε
    rng = np.random.default_rng(1)
    c, n = 8, 16
    bg = CellBackground.fit(_ar1_chi2(rng, 0.6, c, n, 24), per_position=False)
    assert 2.5 < bg.kappa < 7
    maps = _ar1_chi2(rng, 0.6, c, n, 150)
    indep = _count_false_regions(PerSizeTest(bg.log10_sf, n * n), maps, [-1])
    corr = _count_false_regions(PerSizeTest(bg.log10_sf, n * n, kappa=bg.kappa), maps,
                                [-1, 0, 1])
    assert indep[0] > 2 * 0.1                         # measured 0.42 at ε = 0.1
    assert np.all(corr <= [0.1, 1.0, 10.0])           # measured 0, 0, 0.02


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
    # the same with explicit tests: one per scale
    tests = [AllSizesChi2Test(c, log_n), AllSizesChi2Test(c, log_n)]
    np.testing.assert_array_equal(tree_log_nfa([fine, coarse], tests, shape=(32, 32)), out)


def test_clear_errors():
    with pytest.raises(ValueError, match="2-D"):
        tree_log_nfa(np.ones((2, 4, 4)), 3)
    with pytest.raises(ValueError, match="negative"):
        tree_log_nfa(-np.ones((4, 4)), 3)
    with pytest.raises(ValueError, match="region tests"):
        tree_log_nfa([np.ones((4, 4)), np.ones((2, 2))], [3])
    with pytest.raises(ValueError, match="channels"):
        chi2_region_log_pfa(1, 2.0, 0)
    with pytest.raises(ValueError, match="channels"):
        level_set_tree(np.ones((4, 4)), 0)
    with pytest.raises(TypeError, match="region test"):
        level_set_tree(np.ones((4, 4)), "chi2")
    with pytest.raises(ValueError, match="one log10 NFA per region"):
        level_set_tree(np.ones((4, 4)), lambda a, l: np.zeros(1) * np.nan)


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
@pytest.mark.parametrize("kind", ["paper", "per-size"])
def test_single_sweep_equals_iterated_prune_and_merge(seed, kind):
    rng = np.random.default_rng(seed)
    c = 4
    # quantized values: plateaus, nested regions, siblings, single-child chains
    m = np.round(rng.gamma(2.0, 2.0, (9, 11)) * 2) / 2 * c / 2
    m[2:5, 3:7] += 6 * c
    test = c if kind == "paper" else PerSizeTest(lambda x: chi2_log_sf(x, c), m.size, 1.7)
    tree = level_set_tree(m, test)
    want = _naive_prune_merge(tree.nodes, tree.node_parent, tree.log_nfa)
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


def test_level_drawing_follows_the_map_between_cell_centres():
    c = 8
    coarse = np.full((4, 4), 0.5 * c)
    coarse[1, 2] = 200 * c                          # one cell that stands out
    near = tree_log_nfa(coarse, c, shape=(32, 32))
    level = tree_log_nfa(coarse, c, shape=(32, 32), upsample="level")
    blob = level < 0
    # a blob about the cell's centre, inside the cell, not its 8x8 square
    assert 0 < blob.sum() < (near < 0).sum() == 64
    assert blob[12, 20] and not (blob & ~(near < 0)).any()
    assert level[blob].max() == pytest.approx(near[near < 0].max())   # same log NFA
    assert level[~blob].min() == pytest.approx(near[~(near < 0)].min())
    # a region whose neighbour is nearly as high spreads a little beyond its cells
    two = np.full((4, 4), 0.5 * c)
    two[1, 1:3] = 200 * c
    two[1, 3] = 150 * c
    t = level_set_tree(two, c)
    drawn = level_refined_map(t, two, (32, 32)) < 0
    cells = np.kron(t.labels >= 0, np.ones((8, 8), bool))
    assert (drawn & ~cells).any() or drawn.sum() < cells.sum()
    # nothing selected: the whole map keeps its no-detection value
    flat = level_set_tree(np.full((4, 4), 0.5 * c), c)
    assert np.all(level_refined_map(flat, np.full((4, 4), 0.5 * c), (8, 8)) == flat.fill)


def test_measured_shift_gives_one_false_region_per_map():
    rng = np.random.default_rng(3)
    c, n = 8, 16
    maps = (rng.standard_normal((60, c, n, n)) ** 2).sum(1)
    test = PerSizeTest(lambda x: chi2_log_sf(x, c), n * n)
    ln = np.stack([tree_log_nfa(m, test) for m in maps])
    from adkit import metrics
    d = measured_shift(ln[:30])
    assert d > 1                          # the union bound over-counts: measured 2.23
    assert metrics.false_alarms_per_image(ln[30:] < 0) < 1 / 3   # measured 0
    fa = metrics.false_alarms_per_image(ln[30:] - d < 0)   # on other maps
    assert 1 / 3 <= fa <= 3               # measured 1.33
    shifted = PerSizeTest(lambda x: chi2_log_sf(x, c), n * n, shift=d)
    np.testing.assert_allclose(tree_log_nfa(maps[0], shifted), ln[0] - d, atol=1e-4)


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (1, 5), (2, 7)])
def test_maps_smaller_than_3_pixels_per_side(shape):
    # scikit-image's max-tree needs 3 pixels per side; coarse latents can be smaller
    c = 4
    m = np.full(shape, 0.5 * c)
    m.flat[-1] = 50 * c
    tree = level_set_tree(m, c)
    assert tree.labels.shape == shape and tree.area[0] == m.size
    assert np.array_equal(tree.labels >= 0, m > c)
    assert tree.log_nfa_map.flat[-1] == pytest.approx(
        polyomino_tests(shape) + chi2_region_log_pfa(1, 50 * c, c))
    assert set(tree.selected.tolist()) <= set(range(m.size))
    # the per-size test: the fill is the whole (small) map at PFA = 1, not the padding
    t = level_set_tree(m, PerSizeTest(lambda x: chi2_log_sf(x, c), m.size))
    assert np.array_equal(t.labels >= 0, m > c)
    fill = 2 * np.log10(m.size) + polyomino_log_count(m.size)
    np.testing.assert_allclose(t.log_nfa_map[t.labels < 0], fill, rtol=1e-12)
