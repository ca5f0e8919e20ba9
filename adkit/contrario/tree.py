r"""A contrario segmentation on the tree of upper level sets of a statistic map (U-Flow).

Under the background model H0 each cell x of a map holds a statistic :math:`U(x)`
with a known (or estimated) survival function :math:`S(\lambda) = P(U \ge \lambda)`;
for the white latent of a normalizing flow, :math:`z_s(x) \sim \mathcal N(0, I_C)`, so
:math:`U = \|z_s(x)\|^2 = \sum_c z_{s,c}(x)^2` follows a :math:`\chi^2_C` law.
Candidate anomalies are the connected components of the upper level sets
:math:`\{x : U(x) \ge \lambda\}` (4-connectivity): nested, they form a tree (the
*max-tree*, built by :func:`skimage.morphology.max_tree`).

**PFA of a region.** A region R at level :math:`\lambda_R = \min_{x \in R} U(x)` has all
its cells at or above :math:`\lambda_R`. The statistic :math:`\min_{x \in R} U(x)` of
independent cells has the survival function :math:`S(\lambda)^{|R|}`, so

.. math::

    \mathrm{PFA}(R) = S(\lambda_R)^{|R|},

exactly (a valid p-value for each fixed R). With correlated cells, R weighs as
:math:`r_{\mathrm{eff}} = 1 + (|R| - 1)/\kappa` independent cells
(:func:`adkit.contrario.null.effective_cells`). The χ²_C tail is computed exactly
in log space (:func:`chi2_log_sf`, the regularized upper incomplete gamma function
:math:`Q(C/2, \lambda/2)`); the paper bounds it by Chernoff,
:math:`P(\chi^2_C \ge C t) \le (t e^{1-t})^{C/2}` for t > 1
(:func:`chi2_region_log_pfa`), which gives up about :math:`\tfrac12\ln(\pi C)` nats
of evidence per cell.

**Number of tests.** Every 4-connected region (a polyomino) at every position of every
scale is a possible test. The number of fixed polyominoes of r cells is about
:math:`A(r) = \alpha\beta^r/r` (α = 0.316915, β = 4.062570, Jensen 2001 [2]; it is
above the exact count for every r, checked by enumeration in the tests).
Two ways to spend the budget ε over them (both give, by the union bound, at most ε
false detections per image on average under H0, whatever the dependence between
tests):

- the paper's (:class:`AllSizesChi2Test`): one count for all regions,
  :math:`N_{tests} = \sum_s N_s \sum_{r=1}^{N_s} A(r) \approx \beta^{N}`, so
  :math:`\log \mathrm{NFA}(R) = \log_{10} N_{tests} + \log_{10} \mathrm{PFA}(R)`. The
  count is dominated by regions as large as the whole map: a region of r cells must
  gather about :math:`N \ln\beta \approx 1.4 N` nats, whatever r;
- per size (:class:`PerSizeTest`, the default of :class:`adkit.models.UFlow`): the
  budget is split evenly over the L scales, the :math:`N_s` positions and the
  :math:`N_s` region sizes of a scale, and within a size over its :math:`A(r)` shapes,

  .. math::

      \log_{10}\mathrm{NFA}(R) = \log_{10}\big(L\,N_s^2\,A(|R|)\big)
          + r_{\mathrm{eff}}(R)\,\log_{10} S(\lambda_R),

  so a region of r cells pays :math:`r\ln\beta + 2\ln N_s + \ln L` nats: about
  :math:`\ln\beta \approx 1.40` nats per cell (a per-cell tail below 1/β ≈ 0.25 on
  average) instead of :math:`1.4 N / r`. This departs from the paper (which counts
  all sizes for every region); the guarantee is the same.

Both are union bounds: at most ε false detections, and on U-Flow's latents far fewer
(0–0.08 per normal image at ε = 1), since nested and overlapping regions are far from
independent tests. The *measured* count (:func:`measured_shift`, ``PerSizeTest(shift=δ)``)
takes :math:`N_{\mathrm{eff}} = 10^{-\delta} L N_s^2 A(|R|)`, with δ such that normal
images the model did not see have on average ε = 1 false region: an estimate of the
expected count, not a bound (a count over n images is measured to 1/n).

A region is detected when :math:`\log\mathrm{NFA} < \log_{10}\varepsilon` (ε = 1: on
average at most about one false detection per image).

**Tree simplification** (Tailanian, Pardo & Musé, "U-Flow: a U-shaped normalizing
flow for anomaly detection with unsupervised threshold", JMIV 2024 [1], Procedures 1
and 2), iterated until nothing changes, on the log NFA of the nodes (with the paper's
single count this is the same as on the PFA):

- *PFA prune*: in each branch made of a leaf and its ancestors that have a single
  child, keep only the most significant node (lowest NFA; the lowest node on ties);
- *PFA merge*: when all children of a node are leaves and the node is at least as
  significant as each of them, the children are removed (the node becomes a leaf).

The leaves of the final tree are the selected regions; each pixel of a selected
region gets the region's log NFA, other pixels get the log NFA of the whole map at
PFA = 1 (no detection at any reasonable ε; the paper's :math:`\log_{10} N_{tests}`).
The maps of all tested scales are upsampled to the image size (nearest: each pixel
takes the value of the latent cell it falls in) and merged by the pixelwise minimum
(a pixel is detected when a region of any scale containing it is). Or each region is
drawn at the pixel level on the bilinearly upsampled statistic
(:func:`level_refined_map`): the pixels near R above the middle of the levels of R
and of its parent in the tree.

The tree pass is a single bottom-up sweep over the max-tree that gives the same
fixed point as alternating the two procedures (a subtree's simplification only
depends on what lies below it, except for the leaf branch that goes on upward).

References
----------
.. [1] M. Tailanian, Á. Pardo, P. Musé, "U-Flow: A U-shaped Normalizing Flow for
   Anomaly Detection with Unsupervised Threshold", J. Math. Imaging Vis. 2024.
.. [2] I. Jensen, "Enumerations of lattice animals and trees", J. Stat. Phys. 102
   (2001).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..checks import check_array
from ..params import Boolean, Integral, Interval, Real, Tuple, check_param

__all__ = ["tree_log_nfa", "polyomino_tests", "polyomino_log_count", "chi2_region_log_pfa",
           "chi2_log_sf", "AllSizesChi2Test", "PerSizeTest", "level_set_tree",
           "LevelSetTree", "level_refined_map", "measured_shift", "ALPHA", "BETA"]

#: constants of the asymptotic count of fixed polyominoes, α β^r / r (Jensen, 2001)
ALPHA = 0.316915
BETA = 4.062570
_LN10 = np.log(10.0)
#: the largest map a count of tests covers (4096 x 4096 cells)
MAX_PIXELS = 2 ** 24
#: the number of latent channels C of a χ² map
_CHANNELS = Interval(Integral, 1, 100000, what="a number of channels C (an int >= 1)")


def chi2_region_log_pfa(area, min_chi2, channels: int) -> np.ndarray:
    """The paper's log10 PFA of regions of ``area`` cells whose smallest ‖z‖² is ``min_chi2``.

    Chernoff bound of the χ²_C tail raised to the region size:
    ``area * (-C/2) * (t - 1 - ln t) / ln 10`` with ``t = min_chi2 / C``; 0 for t ≤ 1
    (where the bound does not hold; the authors' code leaves t < 1 unclamped, which
    makes any large region at a low level significant). An upper bound of
    ``area * chi2_log_sf(min_chi2, C)``.
    """
    c = float(check_param(channels, _CHANNELS, "channels", "chi2_region_log_pfa"))
    t = check_array(min_chi2, "min_chi2", allow_empty=True, finite=False,
                    owner="chi2_region_log_pfa") / c
    area = check_array(area, "area", allow_empty=True, owner="chi2_region_log_pfa")
    with np.errstate(divide="ignore", invalid="ignore"):
        per_pixel = np.where(t > 1, -0.5 * c * (t - 1 - np.log(np.where(t > 0, t, 1))) / _LN10,
                             0.0)
    return np.asarray(area, dtype=np.float64) * per_pixel


def polyomino_tests(sizes) -> float:
    r"""log10 of the number of tests, :math:`\sum_s N_s \sum_{r=1}^{N_s} \alpha\beta^r/r`.

    Parameters
    ----------
    sizes : int, (H, W) tuple, or a list of them
        Number of pixels N_s of each scale (or each scale's shape).

    Returns
    -------
    float
        log10 N_tests (the count itself overflows a float beyond ~500 pixels).
        Computed in log space with a log-sum-exp over r (the last terms dominate).
    """
    one = [Interval(Integral, 1, MAX_PIXELS, what=f"a number of pixels in [1, {MAX_PIXELS}]"),
           Tuple(Interval(Integral, 1, MAX_PIXELS), length=2)]
    if isinstance(sizes, (numbers.Integral, np.integer)) or (
            isinstance(sizes, tuple) and len(sizes) == 2
            and all(isinstance(v, (numbers.Integral, np.integer)) for v in sizes)):
        sizes = [sizes]
    if not isinstance(sizes, (list, tuple)):
        raise TypeError(f"polyomino_tests: sizes must be a number of pixels, an (H, W) "
                        f"shape or a list of them, got {type(sizes).__name__}.")
    ln_terms = []
    for s in sizes:
        s = check_param(s, one, "sizes[i]", "polyomino_tests")
        n = int(np.prod(s)) if isinstance(s, tuple) else int(s)
        if n < 1 or n > MAX_PIXELS:
            raise ValueError(f"polyomino_tests: each scale must have 1 to {MAX_PIXELS} "
                             f"pixels, got {s!r}.")
        r = np.arange(1, n + 1, dtype=np.float64)
        a = r * np.log(BETA) - np.log(r)
        ln_inner = a.max() + np.log(np.sum(np.exp(a - a.max())))
        ln_terms.append(np.log(n) + np.log(ALPHA) + ln_inner)
    if not ln_terms:
        raise ValueError("sizes is empty: give the number of pixels of each scale.")
    ln_terms = np.asarray(ln_terms)
    m = ln_terms.max()
    return float((m + np.log(np.sum(np.exp(ln_terms - m)))) / _LN10)


def chi2_log_sf(x, dof) -> np.ndarray:
    r"""Exact :math:`\log_{10} P(\chi^2_{dof} \ge x)`, finite far in the tail.

    The regularized upper incomplete gamma function :math:`Q(k/2, x/2)`
    (:func:`scipy.special.gammaincc`) where it is above 1e-300; beyond, where it
    underflows, the log of the upper one of the bounds
    :math:`\frac{x^{a-1}e^{-x}}{\Gamma(a)}` and
    :math:`\frac{x^{a-1}e^{-x}}{\Gamma(a)}\frac{x}{x - a + 1}` of Q(a, x)
    (a = dof/2, in the variable x/2 > a − 1; the first is the lower bound for a ≥ 1,
    the upper one for a < 1): within 0.1 (log10) of the exact value where Q
    underflows, closer further out. 0 for x ≤ 0.
    """
    from scipy import special
    k = float(dof)
    if not k > 0:
        raise ValueError(f"dof must be positive (the number of latent channels C), got {dof!r}.")
    a = 0.5 * k
    x = np.asarray(x, dtype=np.float64)
    h = 0.5 * np.maximum(x, 0.0)
    q = special.gammaincc(a, h)
    out = np.zeros(np.shape(x))
    ok = q > 1e-300
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(ok, np.log(np.where(ok, q, 1.0)), out)
        hb = np.where(ok, a + 1.0, h)   # only used where q underflows (there h > a)
        bound = ((a - 1) * np.log(hb) - hb - special.gammaln(a)
                 + np.log(np.maximum(1.0, hb / (hb - a + 1))))
    out = np.where(ok, out, bound)
    return out / _LN10


def polyomino_log_count(r) -> np.ndarray:
    r""":math:`\log_{10} A(r) = \log_{10}(\alpha \beta^r / r)`: the (asymptotic)
    number of fixed polyominoes of r cells, i.e. of the 4-connected shapes of r cells
    up to translation (Jensen 2001). Above the exact count for every r (1.29 vs 1 at
    r = 1, 38 851 vs 36 446 at r = 10)."""
    r = np.asarray(r, dtype=np.float64)
    if np.any(r < 1):
        raise ValueError("a region has at least one cell (r >= 1).")
    return (np.log(ALPHA) + r * np.log(BETA) - np.log(r)) / _LN10


@dataclass(frozen=True)
class AllSizesChi2Test:
    r"""The paper's region test: χ²_C cells, Chernoff bound, one count for all regions.

    ``test(area, level)`` is :math:`\log_{10} N_{tests} + |R| \cdot`
    Chernoff log10 tail at ``level`` (:func:`chi2_region_log_pfa`), with
    ``log_n_tests`` from :func:`polyomino_tests` of every tested scale.
    """

    channels: int
    log_n_tests: float

    def __call__(self, area, level) -> np.ndarray:
        return self.log_n_tests + chi2_region_log_pfa(area, level, self.channels)


@dataclass(frozen=True)
class PerSizeTest:
    r"""Region test with the number of tests counted per region size (module docstring).

    ``test(area, level)`` is
    :math:`\log_{10}(L N^2 A(r)) + r_{\mathrm{eff}} \log_{10} S(\lambda)` with
    r = ``area``, :math:`r_{\mathrm{eff}} = 1 + (r - 1)/\kappa`, N = ``n_cells``
    (cells of the map), L = ``n_scales`` (maps tested for the same image) and
    ``log10_sf`` the log10 survival function of one cell's statistic under H0
    (``shift`` δ, when set, is subtracted: the measured number of tests,
    :func:`measured_shift`):
    ``lambda x: chi2_log_sf(x, C)`` for white latents, or
    :meth:`adkit.contrario.null.CellBackground.log10_sf` for a law estimated on
    normal images.
    """

    log10_sf: object
    n_cells: int
    kappa: float = 1.0
    n_scales: int = 1
    #: log10 of how many times the union bound over-counts the tests, measured on
    #: normal images (:func:`measured_shift`); 0: the union bound itself
    shift: float = 0.0

    def __post_init__(self):
        if not callable(self.log10_sf):
            raise TypeError("log10_sf must be a function: level -> log10 P(U >= level).")
        if int(self.n_cells) < 1 or int(self.n_scales) < 1:
            raise ValueError(f"n_cells and n_scales must be >= 1, got {self.n_cells}, "
                             f"{self.n_scales}.")
        if not self.kappa >= 1:
            raise ValueError(f"kappa (cells per independent cell) must be >= 1, got "
                             f"{self.kappa!r}.")

    def __call__(self, area, level) -> np.ndarray:
        r = np.asarray(area, dtype=np.float64)
        r_eff = 1.0 + (r - 1.0) / float(self.kappa)
        offset = (np.log10(float(self.n_scales)) + 2.0 * np.log10(float(self.n_cells))
                  - float(self.shift))
        return offset + polyomino_log_count(r) + r_eff * np.asarray(self.log10_sf(level),
                                                                   dtype=np.float64)


def _as_test(test, shape):
    """An int C is the paper's χ²_C test with the count of this one map."""
    if callable(test):
        return test
    if isinstance(test, (int, np.integer)) and not isinstance(test, bool):
        c = check_param(test, _CHANNELS, "channels", "level_set_tree")
        return AllSizesChi2Test(int(c), polyomino_tests(tuple(shape)))
    raise TypeError(f"a region test must be an int C (the paper's χ²_C test) or a callable "
                    f"(area, level) -> log10 NFA such as PerSizeTest, got {test!r}.")


@dataclass
class LevelSetTree:
    """The simplified tree of one statistic map (see :func:`level_set_tree`).

    Attributes
    ----------
    parent : int (H*W,)
        skimage max-tree parent of each pixel (flat index).
    nodes : int (K,)
        Canonical pixels (one per node of the tree, parents before children).
    node_parent : int (K,)
        Parent node of each node (flat pixel index of its canonical pixel).
    level : float (K,)
        Level of each node (e.g. ‖z‖²): the minimum over its region.
    area : int (K,)
        Number of pixels of each node's region.
    log_nfa : float (K,)
        log10 NFA of each node from the region test: the criterion of prune / merge.
    selected : int (M,)
        Canonical pixels of the selected regions (leaves of the simplified tree).
    labels : int (H, W)
        Index into ``selected`` of the region each pixel belongs to, −1 for none.
    log_nfa_map : float (H, W)
        log10 NFA of each pixel's selected region; elsewhere the log NFA of the whole
        map at PFA = 1 (``test(H*W, -inf)``: never detected at a reasonable ε).
    fill : float
        That value of the pixels outside every selected region.
    """

    parent: np.ndarray
    nodes: np.ndarray
    node_parent: np.ndarray
    level: np.ndarray
    area: np.ndarray
    log_nfa: np.ndarray
    selected: np.ndarray
    labels: np.ndarray
    log_nfa_map: np.ndarray
    fill: float = float("nan")


def _check_map(chi2) -> np.ndarray:
    a = check_array(chi2, "a statistic map", finite=False, allow_empty=True)
    if a.ndim != 2:
        raise ValueError(f"a statistic map must be 2-D (H, W), got shape {a.shape}: pass one "
                         "map of one image per scale (e.g. the sum over channels of z²).")
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError("a statistic map must hold finite numbers (e.g. Σ_c z², non-negative), "
                         f"got {'no values' if a.size == 0 else 'NaN or infinities'}.")
    if a.min() < 0:
        raise ValueError(f"a statistic map (Σ_c z², a sum of squares) cannot be negative "
                         f"(min {a.min():.3g}).")
    return np.ascontiguousarray(a, dtype=np.float64)


def _areas(flat, par, trav, par_l) -> np.ndarray:
    """Area of each max-tree node (at its canonical pixel)."""
    try:  # scikit-image's compiled helper (private: fall back to a plain loop)
        from skimage.morphology import _max_tree
        return np.asarray(_max_tree._compute_area(flat, par, trav), dtype=np.int64)
    except Exception:  # pragma: no cover - depends on the scikit-image version
        area_l = [1] * flat.size
        for p in trav[:0:-1].tolist():
            area_l[par_l[p]] += area_l[p]
        return np.asarray(area_l, dtype=np.int64)


def level_set_tree(stat, test) -> LevelSetTree:
    r"""Build the max-tree of a statistic map, score its nodes and simplify it (prune + merge).

    Parameters
    ----------
    stat : float (H, W)
        The statistic of one image at one scale, e.g. :math:`\|z(x)\|^2 =
        \sum_c z_c(x)^2`; high = anomalous.
    test : int or callable
        The region test, ``test(area, level) -> log10 NFA`` of regions of ``area``
        cells whose smallest value is ``level`` (:class:`PerSizeTest`,
        :class:`AllSizesChi2Test`). An int C is the paper's test for this map alone
        (χ²_C Chernoff bound, ``log10 N_tests = polyomino_tests(stat.shape)``).
    """
    img = _check_map(stat)
    test = _as_test(test, img.shape)
    if min(img.shape) < 3:
        return _small_map_tree(img, test)
    return _level_set_tree(img, test)


def _small_map_tree(img: np.ndarray, test) -> LevelSetTree:
    """scikit-image's max-tree needs at least 3 pixels per side: pad the map with a
    level below all others (one extra root region holding only padding), build the
    tree, then drop the padding root and map the indices back."""
    h, w = img.shape
    hp, wp = max(h, 3), max(w, 3)
    pad = np.full((hp, wp), -1.0)
    pad[:h, :w] = img
    t = _level_set_tree(pad, test, n_cells=h * w)
    keep = np.zeros(hp * wp, bool)
    keep.reshape(hp, wp)[:h, :w] = True

    def remap(idx):
        r, q = np.divmod(np.asarray(idx, np.int64), wp)
        return r * w + q

    inner = keep[t.nodes]                     # drops the padding root (and nothing else)
    nodes = remap(t.nodes[inner])
    node_parent = t.node_parent[inner]
    top = nodes[0]                            # parents before children: the new root
    node_parent = np.where(keep[node_parent], remap(node_parent), top)
    parent = t.parent[keep]
    parent = np.where(keep[parent], remap(parent), top)
    selected = t.selected[keep[t.selected]]
    return LevelSetTree(parent=parent, nodes=nodes, node_parent=node_parent,
                        level=t.level[inner], area=t.area[inner], log_nfa=t.log_nfa[inner],
                        selected=remap(selected), labels=t.labels[:h, :w].copy(),
                        log_nfa_map=t.log_nfa_map[:h, :w].copy(), fill=t.fill)


def _level_set_tree(img: np.ndarray, test, n_cells: int | None = None) -> LevelSetTree:
    from skimage.morphology import max_tree
    h, w = img.shape
    parent, trav = max_tree(img, connectivity=1)
    par = parent.ravel().astype(np.int64)
    flat = img.ravel()
    trav = trav.astype(np.int64)
    n = flat.size
    root = int(trav[0])

    # area of each node: accumulate pixels into parents, children before parents
    par_l = par.tolist()
    area = _areas(flat, par, trav, par_l)

    canon = np.ones(n, dtype=bool)
    canon[trav[1:]] = flat[par[trav[1:]]] != flat[trav[1:]]
    canon[root] = True
    nodes = trav[canon[trav]]                       # parents before children
    node_par = par[nodes].copy()
    node_par[nodes == root] = root
    log_nfa = np.asarray(test(area[nodes], flat[nodes]), dtype=np.float64)
    if log_nfa.shape != nodes.shape or np.isnan(log_nfa).any():
        raise ValueError("the region test must return one log10 NFA per region (no NaN).")
    # the whole map at PFA = 1: the value of pixels outside every selected region
    n_map = n if n_cells is None else int(n_cells)
    fill = float(np.asarray(test(np.array([n_map]), np.array([-np.inf])),
                            dtype=np.float64).ravel()[0])

    # bottom-up sweep: each node is either a collapsed leaf branch ("chain", carrying its
    # best node) or an unsimplifiable subtree ("tree")
    lp = np.zeros(n)
    lp[nodes] = log_nfa
    nchild = np.bincount(node_par[nodes != root], minlength=n).tolist()
    lp_l = lp.tolist()
    INF = float("inf")
    child_min = [INF] * n
    child_arg = [-1] * n
    n_tree_child = [0] * n
    is_chain = [False] * n
    best = [0.0] * n
    best_arg = [-1] * n
    for v in nodes[::-1].tolist():
        k = nchild[v]
        lv = lp_l[v]
        if k == 0:
            chain, b, ba = True, lv, v
        elif n_tree_child[v]:
            chain, b, ba = False, 0.0, -1
        elif k == 1:  # extends its child's leaf branch: keep the branch's best node
            if lv < child_min[v]:
                chain, b, ba = True, lv, v
            else:
                chain, b, ba = True, child_min[v], child_arg[v]
        elif lv <= child_min[v]:  # merge: all children are leaves, parent as significant
            chain, b, ba = True, lv, v
        else:
            chain, b, ba = False, 0.0, -1
        is_chain[v], best[v], best_arg[v] = chain, b, ba
        if v == root:
            continue
        p = par_l[v]
        if chain:
            if b < child_min[p]:
                child_min[p], child_arg[p] = b, ba
        else:
            n_tree_child[p] += 1

    is_chain_a = np.asarray(is_chain)
    best_arg_a = np.asarray(best_arg)
    final = is_chain_a[nodes] & ((nodes == root) | ~is_chain_a[node_par])
    selected = best_arg_a[nodes[final]]

    # paint: each pixel takes the label of its nearest selected ancestor (pointer jumping)
    mark = np.full(n, -1, dtype=np.int64)
    mark[selected] = np.arange(selected.size)
    jump = par.copy()
    jump[mark >= 0] = np.flatnonzero(mark >= 0)
    jump[root] = root
    found = mark >= 0
    for _ in range(64):
        nxt = jump[jump]
        if np.array_equal(nxt, jump):
            break
        jump = np.where(found, jump, nxt)
    lab = np.where(found, mark, mark[jump])
    log_nfa_sel = lp[selected]
    lpm = np.where(lab >= 0, log_nfa_sel[np.maximum(lab, 0)] if selected.size else fill, fill)
    return LevelSetTree(parent=par, nodes=nodes, node_parent=node_par, level=flat[nodes],
                        area=area[nodes], log_nfa=log_nfa, selected=selected,
                        labels=lab.reshape(h, w), log_nfa_map=lpm.reshape(h, w), fill=fill)


def level_refined_map(tree: LevelSetTree, stat, shape, frac: float = 0.5) -> np.ndarray:
    r"""The selected regions of ``tree`` drawn at the pixel level (``upsample="level"``).

    A selected region R of the cell map is the connected component, at any level in
    :math:`(\lambda_{p}, \lambda_R]`, of the upper level set that holds it
    (:math:`\lambda_R`: its lowest cell; :math:`\lambda_p`: the level of its parent in
    the max-tree, where it joins a larger region; every cell next to R is at most
    :math:`\lambda_p`). The statistic is upsampled bilinearly to the image and R is drawn
    as the pixels near R (within half a cell) of its upper level set at the middle
    level :math:`\lambda_p + f(\lambda_R - \lambda_p)` (f = ``frac``): a region's
    outline follows the map between cell centres instead of the cells' squares (a
    single cell that stands out becomes a blob about its centre; a region whose
    neighbours are nearly as high spreads a little beyond its cells). Each pixel
    takes the lowest log NFA of the regions drawn over it; other pixels the value
    of the whole map at PFA = 1, as in :attr:`LevelSetTree.log_nfa_map`.
    """
    from scipy import ndimage
    from skimage.transform import resize
    s = _check_map(stat)
    shape = tuple(int(v) for v in shape)
    out = np.full(shape, float(tree.fill))
    if tree.selected.size == 0:
        return out
    up = resize(s, shape, order=1, mode="edge", anti_aliasing=False, preserve_range=True)
    lab = resize(tree.labels.astype(np.float64), shape, order=0, mode="edge",
                 anti_aliasing=False, preserve_range=True).astype(np.int64)
    flat = s.ravel()
    where = {int(p): i for i, p in enumerate(tree.nodes.tolist())}
    reach = max(1, int(np.ceil(0.5 * max(shape[0] / s.shape[0], shape[1] / s.shape[1]))))
    for k, p in enumerate(tree.selected.tolist()):
        i = where[int(p)]
        par = int(tree.node_parent[i])
        lam = float(tree.level[i])
        mid = -np.inf if par == p else flat[par] + frac * (lam - flat[par])
        near = ndimage.binary_dilation(lab == k, iterations=reach)
        keep = near & (up >= mid)
        out[keep] = np.minimum(out[keep], float(tree.log_nfa[i]))
    return out


def measured_shift(log_nfa_maps, eps: float = 1.0) -> float:
    r"""δ such that ``log_nfa_maps - δ < log10 eps`` has on average ``eps`` false
    regions (8-connected) per map: the maps of normal images the model did not
    see, one per image (N, H, W). The largest δ (bisection to 1e-3) whose count is at
    most ``eps``, searched in [−20, 20]; with it a union-bound test
    (:class:`PerSizeTest`) counts :math:`10^{-\delta}` times its number of tests.
    """
    from scipy import ndimage
    m = np.asarray(log_nfa_maps, dtype=np.float64)
    if m.ndim == 2:
        m = m[None]
    le = np.log10(float(eps))
    eight = np.ones((3, 3), bool)

    def regions_per_map(mask):
        return sum(ndimage.label(x, eight)[1] for x in mask) / len(mask)

    lo, hi = -20.0, 20.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if regions_per_map(m - mid < le) > eps:
            hi = mid
        else:
            lo = mid
    return float(lo)


def _upsample(a: np.ndarray, shape, mode: str = "nearest") -> np.ndarray:
    """Resize one scale's map to the image size.

    ``"nearest"``: every image pixel takes the value of the latent cell it falls in, so
    a detection is exactly the union of the cells of its selected region.
    ``"bilinear"``: smooth, but between a cell of a very significant region (log NFA
    of −500, say) and a background cell (+150) the zero crossing lies almost a whole
    cell outside the region, which inflates coarse detections.
    """
    if tuple(a.shape) == tuple(shape):
        return a
    from skimage.transform import resize
    order = 0 if mode == "nearest" else 1
    return resize(a, shape, order=order, mode="edge", anti_aliasing=False,
                  preserve_range=True)


def tree_log_nfa(stat_maps, tests, shape=None, log_n_tests: float | None = None,
                 return_scales: bool = False, upsample: str = "nearest"):
    r"""Per-pixel log10 NFA of one image from its statistic maps at every tested scale.

    Parameters
    ----------
    stat_maps : float (H_s, W_s) or a list of them
        The statistic of one image, one map per scale, e.g.
        :math:`\sum_c z_{s,c}^2` (U-Flow's latents).
    tests : int, callable, or a list of them (one per scale)
        Region test of each scale, ``test(area, level) -> log10 NFA``
        (:class:`PerSizeTest`, :class:`AllSizesChi2Test`). An int C_s is the paper's
        test, χ²_{C_s} cells with the Chernoff bound and one count of all polyominoes
        of every tested scale.
    shape : (H, W), optional
        Output size (the image size); default: the largest map's size.
    log_n_tests : float, optional
        For int tests only: log10 N_tests; default :func:`polyomino_tests` of the
        maps' sizes.
    return_scales : bool
        Also return the list of each scale's :class:`LevelSetTree`.
    upsample : {"nearest", "bilinear", "level"}, default "nearest"
        How each scale's log NFA map is brought to the image size before the
        pixelwise minimum (nearest: a pixel belongs to the cell it falls in;
        ``"level"``: each region drawn on the bilinear statistic,
        :func:`level_refined_map`).

    Returns
    -------
    float32 (H, W)
        :math:`\min_s` of the upsampled log NFA maps
        (:attr:`LevelSetTree.log_nfa_map`); pixels with a value below
        :math:`\log_{10}\varepsilon` are detections.
    """
    if isinstance(stat_maps, np.ndarray):
        if stat_maps.ndim != 2:
            raise ValueError(
                f"stat_maps must be one 2-D map (H, W) or a list of them (one per scale), "
                f"got an array of shape {stat_maps.shape}: pass [m for m in maps].")
        stat_maps = [stat_maps]
    if not isinstance(stat_maps, (list, tuple)):
        raise TypeError(f"tree_log_nfa: stat_maps must be a 2-D map or a list of them (one "
                        f"per scale), got {type(stat_maps).__name__}.")
    stat_maps = [_check_map(m) for m in stat_maps]
    if callable(tests) or isinstance(tests, (int, np.integer)):
        tests = [tests] * len(stat_maps)
    tests = list(tests)
    shape = check_param(shape, [None, Tuple(Interval(Integral, 1, 2 ** 15), length=2)],
                        "shape", "tree_log_nfa")
    log_n_tests = check_param(log_n_tests, [None, Interval(Real)], "log_n_tests",
                              "tree_log_nfa")
    check_param(return_scales, Boolean(), "return_scales", "tree_log_nfa")
    if len(tests) != len(stat_maps):
        raise ValueError(f"got {len(stat_maps)} statistic maps but {len(tests)} region tests "
                         "(or channel counts): give one per scale.")
    if shape is None:
        shape = max((m.shape for m in stat_maps), key=lambda s: s[0] * s[1])
    shape = tuple(int(v) for v in shape)
    if upsample not in ("nearest", "bilinear", "level"):
        raise ValueError(f"upsample must be 'nearest', 'bilinear' or 'level', got "
                         f"{upsample!r}.")
    if any(not callable(t) for t in tests):
        if log_n_tests is None:
            log_n_tests = polyomino_tests([m.shape for m in stat_maps])
        tests = [t if callable(t) else AllSizesChi2Test(_as_test(t, (1, 1)).channels,
                                                          float(log_n_tests))
                 for t in tests]
    out = None
    trees = []
    for m, test in zip(stat_maps, tests):
        t = level_set_tree(m, test)
        trees.append(t)
        up = (level_refined_map(t, m, shape) if upsample == "level"
              else _upsample(t.log_nfa_map, shape, upsample))
        out = up if out is None else np.minimum(out, up)
    out = out.astype(np.float32)
    return (out, trees) if return_scales else out
