r"""A contrario segmentation on the tree of upper level sets of a χ² map (U-Flow).

Under the background model, the latent variable of a normalizing flow is white
Gaussian noise: at each position of scale s, :math:`z_s(x) \sim \mathcal N(0, I_C)`,
so :math:`\|z_s(x)\|^2 = \sum_c z_{s,c}(x)^2` follows a :math:`\chi^2_C` law.
Candidate anomalies are the connected components of the upper level sets
:math:`\{x : \|z_s(x)\|^2 \ge \lambda\}` (4-connectivity): nested, they form a tree
(the *max-tree*, built by :func:`skimage.morphology.max_tree`).

**PFA of a region.** A region :math:`R` at level :math:`\lambda` holds pixels that
all have :math:`\|z\|^2 \ge \lambda`. With independent pixels and the Chernoff bound
of the :math:`\chi^2_C` tail, :math:`P(\chi^2_C \ge C t) \le (t e^{1-t})^{C/2}`
(for :math:`t = \lambda / C > 1`),

.. math::

    \log_{10} \mathrm{PFA}(R) = |R| \cdot \left(-\frac{C}{2}\right)
        \frac{t - 1 - \ln t}{\ln 10}, \qquad t = \min_{x \in R} \|z(x)\|^2 / C,

set to 0 (PFA ≤ 1) when :math:`t \le 1`, where the bound does not hold.

**Tree simplification** (Tailanian, Pardo & Musé, "U-Flow: a U-shaped normalizing
flow for anomaly detection with unsupervised threshold", JMIV 2024, Procedures 1
and 2), iterated until nothing changes:

- *PFA prune*: in each branch made of a leaf and its ancestors that have a single
  child, keep only the most significant node (lowest PFA; the lowest node on ties);
- *PFA merge*: when all children of a node are leaves and the node is at least as
  significant as each of them, the children are removed (the node becomes a leaf).

The leaves of the final tree are the selected regions; each pixel of a selected
region gets the region's log NFA, other pixels get :math:`\log_{10} N_{tests}`
(PFA = 1: no detection).

**Number of tests.** Every 4-connected region (a polyomino) of every size at every
position of every scale is a possible test. The number of fixed polyominoes of size
:math:`r` is about :math:`\alpha \beta^r / r` (α = 0.316915, β = 4.062570, Jensen
2001), so :math:`N_{tests} = \sum_s N_s \sum_{r=1}^{N_s} \alpha \beta^r / r` with
:math:`N_s` the number of pixels of scale s; :math:`\log \mathrm{NFA} = \log_{10}
N_{tests} + \log_{10} \mathrm{PFA}` and a region is detected when
:math:`\log \mathrm{NFA} < \log_{10} \varepsilon` (ε = 1: on average at most about
one false detection per image).

The maps of all scales are upsampled to the image size (nearest: each pixel takes the
value of the latent cell it falls in) and merged by the pixelwise minimum.

The tree pass is a single bottom-up sweep over the max-tree that gives the same
fixed point as alternating the two procedures (a subtree's simplification only
depends on what lies below it, except for the leaf branch that goes on upward).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..checks import check_array
from ..params import Boolean, Integral, Interval, Real, Tuple, check_param

__all__ = ["tree_log_nfa", "polyomino_tests", "chi2_region_log_pfa", "level_set_tree",
           "LevelSetTree", "ALPHA", "BETA"]

#: constants of the asymptotic count of fixed polyominoes, α β^r / r (Jensen, 2001)
ALPHA = 0.316915
BETA = 4.062570
_LN10 = np.log(10.0)
#: the largest map a count of tests covers (4096 x 4096 cells)
MAX_PIXELS = 2 ** 24
#: the number of latent channels C of a χ² map
_CHANNELS = Interval(Integral, 1, 100000, what="a number of channels C (an int >= 1)")


def chi2_region_log_pfa(area, min_chi2, channels: int) -> np.ndarray:
    """log10 PFA of regions of ``area`` pixels whose smallest ‖z‖² is ``min_chi2``.

    Chernoff bound of the χ²_C tail raised to the region size:
    ``area * (-C/2) * (t - 1 - ln t) / ln 10`` with ``t = min_chi2 / C``; 0 for t ≤ 1.
    """
    c = float(check_param(channels, _CHANNELS, "channels", "chi2_region_log_pfa"))
    t = check_array(min_chi2, "min_chi2", allow_empty=True,
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


@dataclass
class LevelSetTree:
    """The simplified tree of one χ² map (see :func:`level_set_tree`).

    Attributes
    ----------
    parent : int (H*W,)
        skimage max-tree parent of each pixel (flat index).
    nodes : int (K,)
        Canonical pixels (one per node of the tree, parents before children).
    node_parent : int (K,)
        Parent node of each node (flat pixel index of its canonical pixel).
    level : float (K,)
        ‖z‖² level of each node: the minimum over its region.
    area : int (K,)
        Number of pixels of each node's region.
    log_pfa : float (K,)
        log10 PFA of each node (Chernoff bound, 0 for t ≤ 1).
    selected : int (M,)
        Canonical pixels of the selected regions (leaves of the simplified tree).
    labels : int (H, W)
        Index into ``selected`` of the region each pixel belongs to, −1 for none.
    log_pfa_map : float (H, W)
        log10 PFA of each pixel's selected region, 0 elsewhere.
    """

    parent: np.ndarray
    nodes: np.ndarray
    node_parent: np.ndarray
    level: np.ndarray
    area: np.ndarray
    log_pfa: np.ndarray
    selected: np.ndarray
    labels: np.ndarray
    log_pfa_map: np.ndarray


def _check_map(chi2) -> np.ndarray:
    a = check_array(chi2, "a χ² map", finite=False, allow_empty=True)
    if a.ndim != 2:
        raise ValueError(f"a χ² map must be 2-D (H, W), got shape {a.shape}: pass one "
                         "map of one image per scale (sum over channels of z²).")
    if a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError("a χ² map must hold finite numbers (Σ_c z², non-negative), "
                         f"got {'no values' if a.size == 0 else 'NaN or infinities'}.")
    if a.min() < 0:
        raise ValueError(f"a χ² map is a sum of squares, it cannot be negative "
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


def level_set_tree(chi2, channels: int) -> LevelSetTree:
    r"""Build the max-tree of a χ² map, score its nodes and simplify it (prune + merge).

    Parameters
    ----------
    chi2 : float (H, W)
        :math:`\|z(x)\|^2 = \sum_c z_c(x)^2` of one image at one scale.
    channels : int
        C, the number of latent channels (degrees of freedom of the χ² law).
    """
    img = _check_map(chi2)
    channels = check_param(channels, _CHANNELS, "channels", "level_set_tree")
    if min(img.shape) < 3:
        return _small_map_tree(img, int(channels))
    return _level_set_tree(img, int(channels))


def _small_map_tree(img: np.ndarray, c: int) -> LevelSetTree:
    """scikit-image's max-tree needs at least 3 pixels per side: pad the map with a
    level below all others (one extra root region holding only padding), build the
    tree, then drop the padding root and map the indices back."""
    h, w = img.shape
    hp, wp = max(h, 3), max(w, 3)
    pad = np.full((hp, wp), -1.0)
    pad[:h, :w] = img
    t = _level_set_tree(pad, c)
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
                        level=t.level[inner], area=t.area[inner], log_pfa=t.log_pfa[inner],
                        selected=remap(selected), labels=t.labels[:h, :w].copy(),
                        log_pfa_map=t.log_pfa_map[:h, :w].copy())


def _level_set_tree(img: np.ndarray, c: int) -> LevelSetTree:
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
    log_pfa = chi2_region_log_pfa(area[nodes], flat[nodes], c)

    # bottom-up sweep: each node is either a collapsed leaf branch ("chain", carrying its
    # best node) or an unsimplifiable subtree ("tree")
    lp = np.zeros(n)
    lp[nodes] = log_pfa
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
    log_pfa_sel = lp[selected]
    lpm = np.where(lab >= 0, log_pfa_sel[np.maximum(lab, 0)] if selected.size else 0.0, 0.0)
    return LevelSetTree(parent=par, nodes=nodes, node_parent=node_par, level=flat[nodes],
                        area=area[nodes], log_pfa=log_pfa, selected=selected,
                        labels=lab.reshape(h, w), log_pfa_map=lpm.reshape(h, w))


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


def tree_log_nfa(chi2_maps, channels, shape=None, log_n_tests: float | None = None,
                 return_scales: bool = False, upsample: str = "nearest"):
    r"""Per-pixel log10 NFA of one image from its χ² maps at every scale (U-Flow).

    Parameters
    ----------
    chi2_maps : float (H_s, W_s) or a list of them
        :math:`\sum_c z_{s,c}^2` of one image, one map per scale.
    channels : int or list of int
        Latent channels C_s of each scale (χ² degrees of freedom).
    shape : (H, W), optional
        Output size (the image size); default: the largest map's size.
    log_n_tests : float, optional
        log10 N_tests; default :func:`polyomino_tests` of the maps' sizes.
    return_scales : bool
        Also return the list of each scale's :class:`LevelSetTree`.
    upsample : {"nearest", "bilinear"}, default "nearest"
        How each scale's log NFA map is brought to the image size before the
        pixelwise minimum (nearest: a pixel belongs to the cell it falls in).

    Returns
    -------
    float32 (H, W)
        :math:`\min_s` upsampled :math:`(\log_{10} N_{tests} + \log_{10}\mathrm{PFA})`;
        pixels with a value below :math:`\log_{10}\varepsilon` are detections.
    """
    if isinstance(chi2_maps, np.ndarray):
        if chi2_maps.ndim != 2:
            raise ValueError(
                f"chi2_maps must be one 2-D map (H, W) or a list of them (one per scale), "
                f"got an array of shape {chi2_maps.shape}: pass [m for m in maps].")
        chi2_maps = [chi2_maps]
    if not isinstance(chi2_maps, (list, tuple)):
        raise TypeError(f"tree_log_nfa: chi2_maps must be a 2-D map or a list of them (one "
                        f"per scale), got {type(chi2_maps).__name__}.")
    chi2_maps = [_check_map(m) for m in chi2_maps]
    if isinstance(channels, (numbers.Integral, np.integer)) and not isinstance(channels, bool):
        channels = [int(channels)] * len(chi2_maps)
    channels = list(check_param(channels, Tuple(_CHANNELS), "channels", "tree_log_nfa"))
    shape = check_param(shape, [None, Tuple(Interval(Integral, 1, 2 ** 15), length=2)],
                        "shape", "tree_log_nfa")
    log_n_tests = check_param(log_n_tests, [None, Interval(Real)], "log_n_tests",
                              "tree_log_nfa")
    check_param(return_scales, Boolean(), "return_scales", "tree_log_nfa")
    if len(channels) != len(chi2_maps):
        raise ValueError(f"got {len(chi2_maps)} χ² maps but {len(channels)} channel counts: "
                         "give one C per scale.")
    if shape is None:
        shape = max((m.shape for m in chi2_maps), key=lambda s: s[0] * s[1])
    shape = tuple(int(v) for v in shape)
    if upsample not in ("nearest", "bilinear"):
        raise ValueError(f"upsample must be 'nearest' or 'bilinear', got {upsample!r}.")
    if log_n_tests is None:
        log_n_tests = polyomino_tests([m.shape for m in chi2_maps])
    out = None
    trees = []
    for m, c in zip(chi2_maps, channels):
        t = level_set_tree(m, c)
        trees.append(t)
        up = _upsample(log_n_tests + t.log_pfa_map, shape, upsample)
        out = up if out is None else np.minimum(out, up)
    out = out.astype(np.float32)
    return (out, trees) if return_scales else out
