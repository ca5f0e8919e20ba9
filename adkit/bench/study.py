"""Seed studies: one method behind several normalization variants, over several seeds.

A lesson that claims "step X helps" shows it on a setting where the answer is not
saturated and over several draws of the data, as a mean and a spread, not as one number
of one draw. :func:`seed_study` computes that table in this process (no subprocess, so a
notebook can call it); :data:`adkit.bench.settings.NOTEBOOK_SETTINGS` names the settings
of each lesson. :func:`feature_study` and :class:`FeatureRuns` share backbone features
between the settings of a deep-feature detector, :func:`compare_study` repeats
:func:`adkit.bench.compare` over draws, :func:`threshold_study` the a contrario threshold
against the oracle.
"""
from __future__ import annotations

import numpy as np

__all__ = ["seed_study", "feature_study", "FeatureRuns", "compare_study", "threshold_study",
           "summarize_study", "auroc_against_eps"]

#: the metrics a study reports by default (all from :func:`adkit.metrics.evaluate`)
METRICS = ("image_auroc", "pixel_auroc", "aupro", "false_alarms_per_good_image")


def _steps(spec, variant: str, progress: bool = True):
    """Fresh transforms from a list of step names (``adkit.bench.STEPS``) or
    ``(name, {keyword: value})`` pairs; ``progress=False`` hides their bars."""
    from .. import normalize
    from . import STEPS
    out = []
    for item in spec:
        name, kw = (item, {}) if isinstance(item, str) else item
        if name not in STEPS:
            raise ValueError(f"variant {variant!r}: unknown step {name!r}; choose from "
                             f"{sorted(STEPS)} (or give (name, {{keyword: value}}) pairs).")
        cls = getattr(normalize, STEPS[name])
        kw = dict(kw)
        if not progress and "progress" in cls._param_names():
            kw.setdefault("progress", False)
        out.append(cls(**kw))
    return out


def _check_seeds(seeds) -> list[int]:
    """The seeds of a study as ints: at least 2, distinct."""
    seeds = [int(s) for s in seeds]
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds={seeds}: give at least 2 distinct seeds, so that a spread "
                         "between draws can be measured.")
    return seeds


def _keyword_variants(variants, params, example: str) -> dict:
    """``{name: params merged with the variant's keywords}`` of a study whose variants
    are ``{name: {keyword: value}}`` (checked: a non-empty dict)."""
    if not isinstance(variants, dict) or not variants:
        raise ValueError("variants must be a non-empty dict {name: {keyword: value}}, e.g. "
                         f"{example}.")
    return {name: {**(params or {}), **dict(kw or {})} for name, kw in variants.items()}


def _variant(spec, name: str, method: str, params):
    """(method, params, steps) of one variant of :func:`seed_study`."""
    if isinstance(spec, dict):
        unknown = set(spec) - {"method", "params", "steps"}
        if unknown:
            raise ValueError(f"variant {name!r}: unknown key(s) {sorted(unknown)}; a dict "
                             "variant takes 'method', 'params' and 'steps'.")
        return (spec.get("method", method), spec.get("params", params),
                list(spec.get("steps", [])))
    return method, params, list(spec)


def seed_study(variants: dict, *, method: str = "reference", data: str = "synthetic/pill",
               seeds=(0, 1, 2), params: dict | None = None, eps: float = 1.0,
               metrics=METRICS, keep_results: bool = False, progress: bool = True,
               test_knobs: dict | None = None, reuse: dict | None = None, **load_kw):
    """Fit and evaluate ``method`` behind each normalization variant, on ``len(seeds)``
    draws of the data; one row per (variant, seed).

    For every seed the data are drawn once, ``adkit.data.load(data, seed=seed,
    **load_kw)``, and every variant is fitted on the same training images and
    evaluated on the same test images (:func:`adkit.metrics.evaluate` at ``eps``), so the
    variants differ only by their normalization.

    Parameters
    ----------
    variants : dict
        ``{name: steps}``; ``steps`` is a list of step names of ``adkit.bench.STEPS``
        (``"midway"``, ``"align"``, ``"background"``, ``"n2n"``), each optionally as a
        ``(name, {keyword: value})`` pair, e.g. ``("background", {"gray_range": (0, 0.4)})``;
        ``[]`` is the bare detector. Fresh transforms are built for every seed. A variant
        may also be a dict ``{"method": ..., "params": {...}, "steps": [...]}`` to compare
        *methods* on the same draws (each key optional, defaulting to ``method``,
        ``params`` and ``[]``), e.g. the per-pixel reference against self-similarity with
        and without N2N (Artola et al.'s Table 2).
    method : str
        CLI name of the detector (``adkit.models.METHODS``), built with ``params``.
    data : str
        Name of an embedded dataset; ``load_kw`` are its knobs (``n_train``, ``size``,
        ``pose``, ``speckles``, ``defect_contrast``...).
    seeds : sequence of int
        At least 2, so that a spread can be measured.
    metrics : sequence of str
        Columns of :func:`adkit.metrics.evaluate` to keep.
    test_knobs : dict, optional
        Knobs that differ for the test split, e.g. ``{"dust": 2.0}`` with ``dust=False``:
        training images without dust, test images with twice the default dust (Son et
        al.'s background anomalies). The test split is then
        ``adkit.data.load(data, seed=seed, **{**load_kw, **test_knobs})[1]``: the same
        draw (each knob has its own random stream), only those knobs changed.
    keep_results : bool
        Also return the results, ``{(variant, seed): AnomalyResult}`` (to draw their maps
        without fitting again; the test split of a seed is ``adkit.data.load(data,
        seed=seed, **load_kw)[1]``).
    reuse : dict or None
        ``{(variant, seed): AnomalyResult}``: predictions already made on the test split
        of that seed by that variant's detector fitted on its training split (e.g. the
        models a lesson trained above, with the same settings): evaluated as they are,
        not fitted again. Each key must name a variant and a seed of the study.

    Returns
    -------
    pandas.DataFrame with columns ``variant``, ``seed`` and ``metrics`` (summarize it with
    :func:`summarize_study`); with ``keep_results``, the pair (table, results).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from .. import data as D
    from .. import metrics as M
    from ..models import Pipeline
    from . import make_detector
    if not isinstance(variants, dict) or not variants:
        raise ValueError("variants must be a non-empty dict {name: [step, ...]}, e.g. "
                         "{'none': [], 'midway + align': ['midway', 'align']}.")
    seeds = _check_seeds(seeds)
    specs = {name: _variant(spec, name, method, params) for name, spec in variants.items()}
    for name, (_, _, steps) in specs.items():    # check every variant before the long work
        _steps(steps, name)
    reuse = dict(reuse or {})
    bad = [k for k in reuse if not (isinstance(k, tuple) and len(k) == 2
                                    and k[0] in variants and k[1] in seeds)]
    if bad:
        raise ValueError(f"reuse keys {bad} are not (variant, seed) pairs of this study "
                         f"(variants {list(variants)}, seeds {seeds}).")
    rows, results = [], {}
    jobs = [(s, v) for s in seeds for v in variants]
    bar = tqdm(jobs, desc="seed study", disable=not progress)
    loaded = {}
    for seed, name in bar:
        if seed not in loaded:
            train, test = D.load(data, seed=seed, **load_kw)
            if test_knobs:
                test = D.load(data, seed=seed, **{**load_kw, **test_knobs})[1]
            loaded = {seed: (train, test)}
        train, test = loaded[seed]
        if (name, seed) in reuse:
            res = reuse[(name, seed)]
        else:
            v_method, v_params, v_steps = specs[name]
            steps = _steps(v_steps, name, progress=False)
            det = make_detector(v_method, v_params, progress=False)
            if steps:
                det = Pipeline(steps, det)
            res = det.fit(train).predict(test)
        if keep_results:
            results[(name, seed)] = res
        quality = M.evaluate(res, test, eps=eps)
        missing = [m for m in metrics if m not in quality]
        if missing:
            raise ValueError(f"unknown metric(s) {missing}; evaluate gives {sorted(quality)}.")
        rows.append({"variant": name, "seed": seed, **{m: quality[m] for m in metrics}})
    table = pd.DataFrame(rows)
    return (table, results) if keep_results else table


#: the metrics :class:`FeatureRuns` computes, each from the result and the test split
RUN_METRICS = ("image_auroc", "pixel_auroc", "aupro")


class FeatureRuns:
    """Deep-feature detectors (``"gaussian"``, ``"knn"``) fitted on backbone features
    extracted once per dataset, for many settings.

    Comparing ten covariance, stage or score settings of one detector on five datasets
    should cost five backbone passes, not fifty. ``FeatureRuns`` keeps, per dataset and
    per (backbone, padding, device), the feature maps of its training and test images;
    a detector that needs a stage not extracted yet triggers one new extraction of all
    the stages asked so far (a superset serves every detector, see
    :meth:`adkit.models.base.FeatureDetector.features`).

    Parameters
    ----------
    datasets : dict
        ``{name: (train, test)}``, splits of equal image size within each pair.
    progress : bool
        Progress bars of the feature extraction.

    Examples
    --------
    >>> runs = FeatureRuns({"pill": adkit.data.load("synthetic/pill", size=128)})
    >>> runs.scores("pill", "gaussian", pca="plain")          # doctest: +SKIP
    {'image_auroc': 0.91, 'pixel_auroc': 0.97, 'fit_s': 0.8, 'predict_s': 0.3}
    """

    def __init__(self, datasets: dict, *, progress: bool = False):
        if not isinstance(datasets, dict) or not datasets:
            raise ValueError("datasets must be a non-empty dict {name: (train, test)}, e.g. "
                             "{'pill': adkit.data.load('synthetic/pill')}.")
        for name, pair in datasets.items():
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise ValueError(f"datasets[{name!r}] must be a (train, test) pair of splits, "
                                 f"got {type(pair).__name__}.")
        self.datasets = dict(datasets)
        self.progress = bool(progress)
        self._cache = {}

    def _dataset(self, dataset):
        if dataset not in self.datasets:
            raise ValueError(f"unknown dataset {dataset!r}; choose from {list(self.datasets)}.")
        return self.datasets[dataset]

    @staticmethod
    def detector(method: str = "gaussian", **params):
        """A fresh, unfitted detector of ``method`` with ``params`` (checked)."""
        from ..models.base import FeatureDetector
        from . import make_detector
        det = make_detector(method, params, progress=False)
        if not isinstance(det, FeatureDetector):
            raise ValueError(f"method {method!r} is not a deep-feature detector: FeatureRuns "
                             "shares backbone features between settings of 'gaussian' or "
                             "'knn'.")
        return det

    def features(self, dataset, detector) -> tuple[dict, dict]:
        """The feature maps (train, test) of ``dataset`` that ``detector`` reads,
        extracted on the first request."""
        train, test = self._dataset(dataset)
        key = (dataset, detector.backbone, int(getattr(detector, "pad", 0)), detector.device)
        need = set(detector.feature_strides())
        have = self._cache.get(key)
        if have is None or not need <= set(have[0]):
            strides = tuple(sorted(need | (set(have[0]) if have else set())))
            extractor = type(detector)(**{**detector.get_params(), "progress": self.progress})
            have = (extractor.features(train.images, strides=strides),
                    extractor.features(test.images, strides=strides))
            self._cache[key] = have
        return have

    def run(self, dataset, method: str = "gaussian", *, metrics=("image_auroc", "pixel_auroc"),
            **params) -> dict:
        """Fit ``method`` with ``params`` on the training features of ``dataset`` (a key
        of ``datasets``), predict its test features.

        Returns ``{"detector", "result", <metrics>, "fit_s", "predict_s"}``: the fitted
        detector, its :class:`~adkit.models.base.AnomalyResult`, each of ``metrics``
        (:data:`RUN_METRICS`) and the seconds of fit and predict (features excluded);
        for a kNN detector also ``"bank_size"``, the entries of its memory bank.
        """
        import time

        from .. import metrics as M
        unknown = [m for m in metrics if m not in RUN_METRICS]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; choose from {list(RUN_METRICS)}.")
        det = self.detector(method, **params)
        f_train, f_test = self.features(dataset, det)
        train, test = self._dataset(dataset)
        t0 = time.perf_counter()
        det.fit_features(f_train, train.images.shape[1:3])
        t1 = time.perf_counter()
        res = det.predict_features(f_test)
        t2 = time.perf_counter()
        out = {"detector": det, "result": res}
        for m in metrics:
            out[m] = (M.image_auroc(test.labels, res.scores) if m == "image_auroc" else
                      M.pixel_auroc(test.masks, res.maps) if m == "pixel_auroc" else
                      M.aupro(test.masks, res.maps))
        if getattr(det, "bank_", None) is not None:      # kNN: the memory bank's size
            out["bank_size"] = int(len(det.bank_))
        out.update(fit_s=t1 - t0, predict_s=t2 - t1)
        return out

    def scores(self, dataset, method: str = "gaussian", **params) -> dict:
        """:meth:`run` without the detector and the result: the numbers only (what
        :func:`adkit.widgets.settings_explorer` prints)."""
        out = self.run(dataset, method, **params)
        del out["detector"], out["result"]
        return out

    def table(self, method: str, variants: dict, *, params: dict | None = None,
              metrics=("image_auroc",), datasets=None):
        """Each of ``metrics`` per (variant, dataset), and its mean over the datasets.

        ``variants`` is ``{label: {keyword: value}}``, each merged over ``params``;
        ``datasets`` the keys to run on (default all). Returns a DataFrame with one
        column per dataset and ``"mean"``, one row per variant (one metric) or per
        (variant, metric).
        """
        import pandas as pd
        builds = _keyword_variants(variants, params, "{'b=3': {'b': 3}, 'b=9': {'b': 9}}")
        metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
        datasets = list(self.datasets) if datasets is None else list(datasets)
        rows = {}
        for label, kw in builds.items():
            got = {d: self.run(d, method, metrics=metrics, **kw) for d in datasets}
            for m in metrics:
                rows[(label, m)] = {d: got[d][m] for d in datasets}
        table = pd.DataFrame.from_dict(rows, orient="index")[datasets]
        table.index = pd.MultiIndex.from_tuples(table.index, names=["variant", "metric"])
        table["mean"] = table.mean(axis=1)
        return table.droplevel("metric") if len(metrics) == 1 else table


def feature_study(variants: dict, *, method: str = "gaussian", data: str = "synthetic/pill",
                  seeds=(0, 1, 2), params: dict | None = None, eps: float = 1.0,
                  metrics=("image_auroc", "pixel_auroc", "aupro"),
                  keep_results: bool = False, progress: bool = True, **load_kw):
    """:func:`seed_study` for the settings of one deep-feature detector (``"gaussian"``
    or ``"knn"``), with the backbone run once per draw.

    ``variants`` is ``{name: {keyword: value}}``, each merged over ``params``. Every
    variant is fitted with ``fit_features`` on the features of the draw's training images
    and applied with ``predict_features``; the features of a draw are extracted once for
    all variants (:class:`FeatureRuns`), so comparing five score or covariance settings
    costs about one backbone pass per draw instead of five. The rows, their order and
    ``keep_results`` are those of :func:`seed_study`.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from .. import data as D
    from .. import metrics as M
    builds = _keyword_variants(variants, params, "{'OPCA': {}, 'plain PCA': {'pca': 'plain'}}")
    seeds = _check_seeds(seeds)
    for kw in builds.values():             # every variant is checked before the long work
        FeatureRuns.detector(method, **kw)
    rows, results = [], {}
    for seed in tqdm(seeds, desc="feature study", disable=not progress):
        train, test = D.load(data, seed=seed, **load_kw)
        runs = FeatureRuns({seed: (train, test)})
        for name, kw in builds.items():
            res = runs.run(seed, method, metrics=(), **kw)["result"]
            if keep_results:
                results[(name, seed)] = res
            quality = M.evaluate(res, test, eps=eps)
            rows.append({"variant": name, "seed": seed, **{m: quality[m] for m in metrics}})
    table = pd.DataFrame(rows)
    return (table, results) if keep_results else table


def compare_study(methods, *, data: str = "synthetic/pill", seeds=(0, 1, 2), steps=(),
                  params: dict | None = None, calibrate=True, holdout: float = 0.2,
                  eps: float = 1.0, reuse: dict | None = None, progress: bool = True,
                  **load_kw):
    """:func:`adkit.bench.compare` on ``len(seeds)`` draws of the data: every method,
    bare and behind its normalization, fitted, calibrated and evaluated on each draw.

    ``methods``, ``steps``, ``params``, ``calibrate``, ``holdout`` and ``eps`` are
    those of :func:`~adkit.bench.compare`; the draw of a seed is ``adkit.data.load(data,
    seed=seed, **load_kw)`` (the detectors keep the seeds of ``params``: only the
    images change). ``reuse`` is ``{seed: rows}``, the rows ``compare`` already returned
    on that draw with the same settings (a lesson's first table), kept as they are.

    Returns a DataFrame with columns ``variant`` (``"method"`` or ``"method + steps"``),
    ``seed`` and every column of ``compare``'s rows; :func:`summarize_study` gives its
    mean and spread.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from .. import data as D
    from . import compare
    seeds = _check_seeds(seeds)
    reuse = dict(reuse or {})
    bad = [k for k in reuse if k not in seeds]
    if bad:
        raise ValueError(f"reuse names seeds {bad} that are not in seeds={seeds}.")
    table = []
    for seed in tqdm(seeds, desc="compare study", disable=not progress):
        if seed in reuse:
            rows = reuse[seed]
        else:
            train, test = D.load(data, seed=seed, **load_kw)
            _, rows = compare(methods, train, test, steps=steps, params=params,
                              calibrate=calibrate, eps=eps, holdout=holdout, progress=False)
        for row in rows:
            name = row["method"] if row["preprocessing"] == "none" else \
                f"{row['method']} + {row['preprocessing']}"
            table.append({"variant": name, "seed": seed, **row})
    return pd.DataFrame(table)


def threshold_study(variants: dict, *, method: str = "uflow", data: str = "synthetic/pill",
                    seeds=(0, 1, 2), params: dict | None = None,
                    log_eps=tuple(range(-10, 41, 2)), report_eps=(0.1,), cache: bool = True,
                    progress: bool = True, **load_kw):
    """The automatic a contrario threshold against the oracle
    (:func:`adkit.metrics.nfa_threshold_study`), for each variant of ``method`` on each
    draw of the data (U-Flow's Fig. 7 and its mIoU table, over several draws).

    ``variants`` is ``{name: {keyword: value}}``, each merged over ``params``, e.g.
    ``{nfa: {"nfa": nfa} for nfa in ("measured", "held-out", "paper")}``. Each detector
    is fitted with :func:`adkit.memo.cached_fit` when ``cache`` (a lesson that trains the
    same model twice, or runs again, loads it). ``log_eps`` is the grid of log10 ε of the
    curves, ``report_eps`` the values of ε whose mIoU is also a column.

    Returns
    -------
    rows : pandas.DataFrame
        One row per (variant, seed): ``variant``, ``seed`` and every scalar of the study
        (``miou_auto``, ``miou_oracle``, their ``_defective`` versions, ``defects_hit``,
        ``false_alarms_eps1``, ``miou_auto_eps<ε>``); :func:`summarize_study` gives their
        mean and spread.
    studies : dict
        ``{(variant, seed): study}``, the whole dicts with their curves, what
        :func:`adkit.viz.plot_threshold_study` draws.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from .. import data as D
    from .. import metrics as M
    from ..memo import cached_fit
    from . import make_detector
    builds = _keyword_variants(variants, params,
                               "{'measured': {'nfa': 'measured'}, 'paper': {'nfa': 'paper'}}")
    seeds = _check_seeds(seeds)
    for kw in builds.values():             # every variant is checked before the long work
        make_detector(method, kw, progress=False)
    found = {}
    bar = tqdm(total=len(builds) * len(seeds), desc="threshold study", disable=not progress)
    for seed in seeds:                     # each draw is made once, for every variant
        train, test = D.load(data, seed=seed, **load_kw)
        for name, kw in builds.items():
            det = make_detector(method, kw, progress=False)
            det = cached_fit(det, train) if cache else det.fit(train)
            found[(name, seed)] = M.nfa_threshold_study(det.predict(test), test,
                                                        log_eps=log_eps, report_eps=report_eps)
            bar.update()
    bar.close()
    studies = {(name, seed): found[(name, seed)] for name in builds for seed in seeds}
    rows = [{"variant": name, "seed": seed, **{k: v for k, v in st.items() if np.ndim(v) == 0}}
            for (name, seed), st in studies.items()]
    return pd.DataFrame(rows), studies


def summarize_study(rows, metrics=None):
    """Mean and standard deviation (over seeds, ``ddof=1``) of each metric of a
    :func:`seed_study` (or :func:`feature_study`, :func:`compare_study`) table, one row
    per variant in the order of the study.

    ``metrics`` defaults to every numeric column but ``seed``. Returns a DataFrame with
    a column pair (metric, ``"mean"`` / ``"std"``) per metric.
    """
    metrics = [c for c in rows.select_dtypes("number").columns if c != "seed"] \
        if metrics is None else list(metrics)
    order = list(dict.fromkeys(rows["variant"]))
    out = rows.groupby("variant", sort=False)[metrics].agg(["mean", "std"])
    return out.loc[order]


def _has_residuals(res) -> bool:
    return any(k.startswith("residual_s") for k in res.extras)


def auroc_against_eps(results: dict, tests: dict, eps_grid, n_votes: int = 2):
    """Image AUROC of self-similarity results against the NFA threshold ε (Artola et
    al.'s Fig. 5), from the residuals the results keep (no new patch search).

    The image score of :class:`adkit.models.SelfSimilarity` is built from the pixels that
    ε detects (:func:`adkit.models.selfsim.rethreshold`), so it changes with ε: a tiny ε
    keeps only the surest detections, a large one lets the noise in.

    Parameters
    ----------
    results : dict
        ``{(variant, seed): AnomalyResult}``, e.g. from ``seed_study(...,
        keep_results=True)``; results without self-similarity residuals (another method)
        keep their scores for every ε.
    tests : dict
        ``{seed: Split}``, the test split of each seed (its ``labels``).
    eps_grid : sequence of float
        The thresholds ε.

    Returns
    -------
    pandas.DataFrame with columns ``variant``, ``seed``, ``eps``, ``image_auroc``.
    """
    import pandas as pd

    from ..metrics import image_auroc
    from ..models.selfsim import rethreshold
    rows = []
    for (name, seed), res in results.items():
        labels = tests[seed].labels
        for eps in eps_grid:
            r = rethreshold(res, float(eps), n_votes) if _has_residuals(res) else res
            rows.append({"variant": name, "seed": seed, "eps": float(eps),
                         "image_auroc": image_auroc(labels, r.scores)})
    return pd.DataFrame(rows)
