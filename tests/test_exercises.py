"""The self-checking exercises (adkit.exercises): for every registered exercise the library's
reference and a student-style solution pass, and every typical mistake fails with a report
that names it; the report itself says what differs in a student's words."""
import doctest
import json

import numpy as np
import pytest

import adkit.exercises as ex
from adkit.exercises import Case, Exercise, Mistake, compare

IDS = ex.list()


def test_every_lesson_has_exercises_and_ids_follow_the_convention():
    assert {int(i[:2]) for i in IDS} == set(range(8))
    for lesson in range(8):                       # the issue: two to four per lesson
        assert 2 <= len(ex.list(lesson=lesson)) <= 4, ex.list(lesson=lesson)
    for i in IDS:
        e = ex.get(i)
        assert ex.ID_PATTERN.fullmatch(i) and e.lesson == int(i[:2])
        assert len(e.statement) > 80 and e.function_name.startswith("my_")
        assert e.id in e.text() and e.id in e._repr_html_()


@pytest.mark.parametrize("exercise_id", IDS)
def test_the_reference_and_a_student_solution_pass(exercise_id):
    e = ex.get(exercise_id)
    assert e.solution is not None, f"{exercise_id} has no student-style solution"
    for seed in (0, 1, 2):                 # other seeds, other cases: still no near-tie
        result = e.check(e.solution, seed=seed)
        assert result.passed, str(result)
        if e.reference is not None:        # the library itself, wrapped as a student's
            assert e.check(e.reference, seed=seed).passed
    assert result.summary().startswith("✓") and "all" in result.summary()
    cases = e.make_cases(seed=0)
    assert len(cases) >= 3, "a check needs several cases, edge cases among them"
    assert [c.name for c in e.make_cases(seed=0)] == [c.name for c in cases]   # seeded


@pytest.mark.parametrize("exercise_id", IDS)
def test_typical_mistakes_fail_with_a_helpful_message(exercise_id):
    e = ex.get(exercise_id)
    assert e.mistakes, f"{exercise_id} lists no typical mistake"
    for m, seed in [(m, seed) for m in e.mistakes for seed in (0, 1)]:
        result = e.check(m.fn, seed=seed)
        report = str(result)
        assert not result.passed, f"{exercise_id}: the mistake {m.what!r} passes"
        assert m.says.lower() in report.lower(), \
            f"{exercise_id}: for {m.what!r} the report does not say {m.says!r}:\n{report}"
        assert "hint:" in report, f"{exercise_id}: no hint for {m.what!r}:\n{report}"
        with pytest.raises(AssertionError, match=e.id):
            result.assert_passed()


@pytest.mark.parametrize("exercise_id", IDS)
def test_a_stub_shows_not_written_yet_and_never_raises(exercise_id):
    def stub(*args, **kwargs):
        raise NotImplementedError

    result = ex.check(exercise_id, stub)
    assert not result.passed and result.not_written
    assert "not written yet" in str(result) and "not written yet" in result._repr_html_()


# -- the messages, on the worked examples of lessons 00 and 01 ---------------------------------
def test_auroc_by_counting_pairs_and_its_mistakes():
    def my_auroc(labels, scores):                    # the solution a student writes
        pos = scores[labels == 1]
        neg = scores[labels == 0]
        return ((pos[:, None] > neg).sum() + 0.5 * (pos[:, None] == neg).sum()) / \
            (len(pos) * len(neg))

    assert ex.check("00.image_auroc", my_auroc).passed

    def reversed_auroc(labels, scores):
        return 1 - my_auroc(labels, scores)

    report = str(ex.check("00.image_auroc", reversed_auroc))
    assert "1 − AUROC" in report and "✗ 1. 20 images" in report
    assert "expected 0.958333, got 0.0416667" in report

    def unnormalized(labels, scores):
        return my_auroc(labels, scores) * len(labels)

    assert "between 0 and 1" in str(ex.check("00.image_auroc", unnormalized))


def test_false_alarms_count_regions_not_pixels():
    from scipy import ndimage

    def four_connected(detections, labels):
        return np.mean([ndimage.label(d)[1] for d in detections[labels == 0]])

    result = ex.check("00.false_alarms", four_connected)
    corner = [c for c in result.cases if c.name == "pixels that touch only by a corner"]
    assert not corner[0].passed and "8-connectivity" in str(result)


def test_midway_hints_name_the_mistake():
    def pixel_average(u, v):
        m = (u + v) / 2
        return m, m

    report = str(ex.check("01.midway_two_images", pixel_average))
    assert "averaged the images pixel by pixel" in report
    assert "u2: values differ: largest difference" in report
    assert "called with u = float32 array (12, 16, 3), v = float32 array (12, 16, 3)" in report

    def one_image(u, v):
        return ex.get("01.midway_two_images").solution(u, v)[0]

    report = str(ex.check("01.midway_two_images", one_image))
    assert "a tuple of 2 values (u2, v2)" in report


def test_warp_point_recognises_swapped_parameters():
    def row_major(p, x, y):
        a = np.array([[1 + p[0], p[1], p[4]], [p[2], 1 + p[3], p[5]]])
        return tuple(a @ [x, y, 1])

    result = ex.check("01.warp_point", row_major)
    assert not result.passed and "p2 and p3 are swapped" in str(result)
    assert result.cases[0].passed                      # the identity cannot tell


# -- the report, for any exercise ---------------------------------------------------------------
def test_gaussian_noise_takes_the_papers_values_as_variances():
    """Lesson 06: the paper's noise levels are variances; the former convention (the value
    as a standard deviation) fails with the hint to take its square root."""
    e = ex.get("06.gaussian_noise")
    grey = np.full((64, 64, 3), 0.5, np.float32)
    noisy = e.reference(grey, 0.01, 0)                  # std 0.1: hardly anything clipped
    assert np.std(noisy - grey) == pytest.approx(0.1, rel=0.05)

    def my_noise(image, variance, seed):
        n = np.random.default_rng(seed).standard_normal(image.shape)
        return np.clip(image + variance ** 0.5 * n, 0, 1)

    def std_convention(image, sigma, seed):             # adkit's convention before issue 13
        n = np.random.default_rng(seed).standard_normal(image.shape)
        return np.clip(image + sigma * n, 0, 1)

    assert ex.check("06.gaussian_noise", my_noise).passed
    report = str(ex.check("06.gaussian_noise", std_convention))
    assert "✗" in report and "np.sqrt(variance)" in report and "variance as its" in report


def test_lessons_02_to_07_second_exercises_name_the_slip():
    """The exercises added for lessons 02, 03, 04, 06 and 07 against wrong solutions that are
    not among their listed mistakes: each fails, and the report names what is wrong."""
    from scipy import ndimage

    def no_clip(image, others, y, x, p, r):           # a window that runs off the image
        q = image[y:y + p, x:x + p]
        d = {(j, y2, x2): np.sum((others[j, y2:y2 + p, x2:x2 + p] - q) ** 2)
             for j in range(len(others)) for y2 in range(y - r, y + r + 1)
             for x2 in range(x - r, x + r + 1)}
        return min(d, key=d.get)

    report = str(ex.check("02.nearest_patch", no_clip))
    assert "✗ 2. a query at the top border" in report and "clipped to the image" in report

    def swapped(image, others, y, x, p, r):
        j, y2, x2 = ex.get("02.nearest_patch").solution(image, others, y, x, p, r)
        return j, x2, y2

    assert "y2 and x2 are swapped" in str(ex.check("02.nearest_patch", swapped))

    def at_most(log_nfas, eps, n_votes):
        return (log_nfas <= np.log10(eps)).sum(0) >= n_votes

    result = ex.check("03.vote_map", at_most)
    assert not result.passed and [c.passed for c in result.cases] == [True] * 4 + [False]
    assert "strictly below ε" in str(result)

    def one_median(r):                                # one median / MAD for all channels
        m = np.median(r)
        return np.abs((r - m) / (1.4826 * np.median(np.abs(r - m)))).max(-1)

    assert "take them per channel" in str(ex.check("03.robust_statistic", one_median))

    def weight_only(s_star, dists):
        from scipy.special import logsumexp
        return 1 - np.exp(s_star - logsumexp(dists, axis=1))

    assert "multiply it by s*" in str(ex.check("04.patchcore_score", weight_only))

    def euclidean(train, queries):
        return np.sqrt(((queries - train.mean(0)) ** 2).sum(1))

    assert "weigh it by Σ⁻¹" in str(ex.check("04.mahalanobis_lw", euclidean))

    def spread_one(h, w, seed, n_drops, size):        # centres scattered by 1 px, not by r
        rng = np.random.default_rng(seed)
        side = min(h, w)
        r = max(1.0, rng.uniform(*size) * side)
        m = min(3 * r, side / 2)
        cx, cy = rng.uniform(m, w - m), rng.uniform(m, h - m)
        yy, xx = np.mgrid[:h, :w]
        mask = np.zeros((h, w), bool)
        for _ in range(n_drops):
            dx, dy = rng.normal(cx, 1.0), rng.normal(cy, 1.0)
            mask |= (xx - dx) ** 2 + (yy - dy) ** 2 <= r * r
        return mask

    assert "rng.normal(cx, r)" in str(ex.check("06.drops_mask", spread_one))

    def four_connected(masks, pred):
        overlaps = []
        for m, p in zip(masks, pred):
            lab, n = ndimage.label(m)
            overlaps += [p[lab == k].mean() for k in range(1, n + 1)]
        return float(np.mean(overlaps))

    def no_minus_inf(levels, F, eps):                  # the lowest level instead of −∞
        return float(levels[np.flatnonzero(F < eps)[0]])

    assert "t_ε = −∞" in str(ex.check("07.threshold_for_eps", no_minus_inf))

    result = ex.check("07.per_region_overlap", four_connected)
    corner = [c for c in result.cases if "corner" in c.name]
    assert not corner[0].passed and "4-connected regions" in str(result)
    assert ex.get("07.per_region_overlap").reference(
        *ex.get("07.per_region_overlap").make_cases()[1].args) == pytest.approx(0.5)  # (1 + 0)/2


def _toy(**kw):
    """A small exercise over np.cumsum (an ordinary library function) for the framework."""
    def cases(rng):
        yield Case("five numbers", (rng.random(5),))
        yield Case("a 2×3 array", (rng.random((2, 3)).astype(np.float32),),
                   hint="flatten first: cumsum of all values in raster order.")
    return Exercise("99.toy", title="Cumulative sums", statement="x " * 50,
                    signature="my_cumsum(x) -> sums", reference=lambda x: np.cumsum(x),
                    cases=cases, **kw)


def test_the_report_says_shape_dtype_exception_none_and_mutation():
    toy = _toy()
    assert toy.check(lambda x: np.cumsum(x)).passed

    shape = str(toy.check(lambda x: np.cumsum(x, axis=-1)))
    assert "wrong shape: expected (6,), got (2, 3)" in shape
    assert "the same number of values: reshape to (6,)" in shape
    assert "flatten first" in shape                              # the case's hint

    dtype = str(toy.check(lambda x: np.cumsum(x) > 0))
    assert "wrong dtype: expected floats" in dtype and "got booleans (bool)" in dtype

    def raises(x):
        y = x.ravel()
        return y[10]

    text = str(toy.check(raises))
    assert "it raised IndexError at line 3 of raises `return y[10]`" in text

    def forgot_return(x):
        np.cumsum(x)

    assert "is None: did you forget the `return` line?" in str(toy.check(forgot_return))

    def in_place(x):
        x[...] = np.cumsum(x).reshape(x.shape)
        return x.ravel()

    result = toy.check(in_place)
    assert result.passed and "changed its input x in place" in str(result)

    values = str(toy.check(lambda x: np.cumsum(x) + np.arange(np.size(x)) * 1e-3))
    assert "values differ: largest difference 0.004 at index (4)" in values
    assert "4 of 5 values are off by more than 1e-06" in values

    nan = str(toy.check(lambda x: np.cumsum(x) * np.nan))
    assert "NaN value(s) where numbers are expected" in nan

    lists = toy.check(lambda x: list(np.cumsum(x)))
    assert lists.passed and "a numpy array is expected" in str(lists)

    f64 = toy.check(lambda x: np.cumsum(x, dtype=np.float64))
    assert f64.passed and "is float64; adkit gives float32" in str(f64)
    strict = _toy(dtype="same").check(lambda x: np.cumsum(x, dtype=np.float64))
    assert not strict.passed and "expected float32, got float64" in str(strict)

    assert "pass the function itself, my_cumsum without parentheses" in \
        toy.check(np.zeros(3)).summary()


def test_compare_numbers_tuples_and_integers():
    assert compare(0.5, 0.5 + 1e-9)[0] is None
    assert "expected 0.5, got 0.6" in compare(0.5, 0.6)[0]
    assert compare(3, np.int64(3))[0] is None and "expected 3, got 4" in compare(3, 4)[0]
    problem, notes = compare(3, 3.0)
    assert problem is None and "an integer is expected" in notes[0]
    assert "expected the integer 3" in compare(3, 3.5)[0]
    assert "expected one number" in compare(1.0, "one")[0]
    assert compare((1.0, np.ones(2)), [1.0, np.ones(2)])[0] is None
    assert "expected a tuple of 2 values (a, b)" in compare((1.0, 2.0), 1.0, names=("a", "b"))[0]
    assert "b: expected 2, got 3" in compare((1.0, 2.0), (1.0, 3.0), names=("a", "b"))[0]
    problem, notes = compare(2.0, np.array([2.0]))
    assert problem is None and "one number is expected" in notes[0]
    masks = compare(np.eye(3, dtype=bool), ~np.eye(3, dtype=bool))[0]
    assert "9 of 9 values differ; the first at index (0, 0): expected True, got False" in masks


def test_the_library_refusing_an_input_means_the_student_must_refuse_it_too():
    def cases(rng):
        yield Case("a negative side", (-1,))
    refuse = Exercise("99.refuse", title="t", statement="s", signature="my_f(n)",
                      reference=lambda n: np.zeros(n), cases=cases)
    assert refuse.check(lambda n: np.zeros(n)).passed
    report = str(refuse.check(lambda n: np.zeros(abs(n))))
    assert "adkit raises ValueError for this input" in report


def test_a_hint_that_fails_says_nothing_and_html_escapes():
    def broken(case, got, expected):
        raise RuntimeError("boom")

    toy = _toy(hints=[broken])
    result = toy.check(lambda x: np.cumsum(x) + 1)
    assert not result.passed and "boom" not in str(result)
    html = _toy().check(lambda x: "<b>")._repr_html_()
    assert "&lt;b&gt;" in html and "'<b>'" not in html


def test_get_list_and_register():
    assert ex.get("01.midway_two_images").function_name == "my_midway"
    with pytest.raises(KeyError, match="did you mean '01.midway_two_images'"):
        ex.get("01.midway_two_image")
    assert ex.list(lesson=1) == [i for i in IDS if i.startswith("01.")]
    with pytest.raises(ValueError, match="two digits of the lesson"):
        _toy().__class__("1.bad", title="t", statement="s", signature="f(x)", cases=list)
    with pytest.raises(ValueError, match="two exercises have the id"):
        ex.register(Exercise("00.iou", title="another", statement="s", signature="f(x)",
                             cases=list))
    assert isinstance(ex.get("00.iou").mistakes[0], Mistake)


def test_the_package_docstring_example_runs():
    assert doctest.testmod(ex, optionflags=doctest.ELLIPSIS).failed == 0


def test_the_notebook_convention_runs_under_nbval(tmp_path):
    """A lesson's exercise cells as the docstring describes them: the stub cell and the hidden
    solution cell both run; the solution cell fails the notebook when the solution is wrong."""
    import subprocess
    import sys

    def notebook(solution_body):
        cells = [
            {"cell_type": "code", "metadata": {"tags": ["exercise"]}, "outputs": [],
             "execution_count": None,
             "source": "import adkit.exercises\n\ndef my_gamma(eps, n_tests):\n"
                       "    raise NotImplementedError\n\n"
                       "adkit.exercises.check('03.gamma_eps', my_gamma)"},
            {"cell_type": "code", "outputs": [], "execution_count": None,
             "metadata": {"tags": ["solution", "hide-input"], "jupyter": {"source_hidden": True}},
             "source": "# Solution\nimport numpy as np\nfrom scipy.special import erfcinv\n\n"
                       f"def my_gamma(eps, n_tests):\n{solution_body}\n\n"
                       "adkit.exercises.check('03.gamma_eps', my_gamma).assert_passed()"},
        ]
        return {"cells": cells, "metadata": {"kernelspec": {"name": "python3",
                                                            "display_name": "Python 3"}},
                "nbformat": 4, "nbformat_minor": 5}

    right = "    p = eps / n_tests\n    return 0.0 if p >= 1 else float(np.sqrt(2) * erfcinv(p))"
    wrong = "    return float(np.sqrt(2) * erfcinv(eps))"
    runs = {}
    for name, body in (("right", right), ("wrong", wrong)):
        path = tmp_path / f"{name}.ipynb"
        path.write_text(json.dumps(notebook(body)))
        runs[name] = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                     "--nbval-lax", "--nbval-current-env", str(path)],
                                    capture_output=True, text=True, cwd=tmp_path)
    assert runs["right"].returncode == 0, runs["right"].stdout[-2000:]
    assert runs["wrong"].returncode != 0
    assert "divide ε by the number of tests" in runs["wrong"].stdout


def test_lesson05_exercises_and_their_notebook_cells():
    """Lesson 05 (U-Flow): the paper's Chernoff PFA, adkit's per-size NFA and the held-out
    law; a right answer passes, the typical slips get their hint, and each exercise has its
    stub and its hidden solution cell in notebooks/05_uflow.ipynb."""
    from pathlib import Path
    assert ex.list(lesson=5) == ["05.held_out_log_sf", "05.per_size_log_nfa",
                                 "05.region_log_pfa"]

    def right(area, log_sf, n_cells, kappa):
        return float(np.log10(n_cells ** 2 * 0.316915 * 4.062570 ** area / area)
                     + (1 + (area - 1) / kappa) * log_sf)

    def forgot_kappa(area, log_sf, n_cells, kappa):
        return float(np.log10(n_cells ** 2 * 0.316915 * 4.062570 ** area / area)
                     + area * log_sf)

    assert ex.check("05.per_size_log_nfa", right).passed
    report = str(ex.check("05.per_size_log_nfa", forgot_kappa))
    assert "r_eff = 1 + (r − 1)/κ" in report and "κ = 4" in report

    def strict(sample, x):                  # > instead of >=: misses the ties
        return np.log10((1 + np.array([np.sum(sample > v) for v in x])) / (len(sample) + 1))
    report = str(ex.check("05.held_out_log_sf", strict))
    assert "ties count" in report and "sample >= x" in report

    nb = json.loads((Path(__file__).resolve().parent.parent / "notebooks" / "05_uflow.ipynb")
                    .read_text(encoding="utf-8"))
    cells = [("".join(c["source"]), c["metadata"].get("tags", [])) for c in nb["cells"]
             if c["cell_type"] == "code"]
    for i in ex.list(lesson=5):
        stub = [s for s, t in cells if t == ["exercise"] and f'"{i}"' in s]
        sol = [s for s, t in cells if t == ["solution", "hide-input"] and f'"{i}"' in s]
        assert len(stub) == 1 and "NotImplementedError" in stub[0], i
        assert len(sol) == 1 and sol[0].rstrip().endswith(".assert_passed()"), i


def _src(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _tags(cell):
    return cell["metadata"].get("tags", [])


def _notebooks_with_exercises():
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
    return [p for p in sorted(root.glob("[0-9][0-9]_*.ipynb"))
            if any("exercise" in _tags(c) for c in json.loads(p.read_text())["cells"])]


def test_lessons_00_and_01_have_their_exercises():
    names = [p.name[:2] for p in _notebooks_with_exercises()]
    assert {"00", "01"} <= set(names)


@pytest.mark.parametrize("path", _notebooks_with_exercises(), ids=lambda p: p.name)
def test_a_lesson_with_exercises_has_every_exercise_of_its_lesson_in_the_convention(path):
    """Once a lesson has exercise cells, each exercise of its module has a stub cell (tagged
    ``exercise``, never checked by nbval) and a collapsed solution cell that asserts."""
    cells = json.loads(path.read_text())["cells"]
    src = _src
    stubs = [c for c in cells if "exercise" in _tags(c)]
    lesson = int(path.name[:2])
    solutions = [c for c in cells if "solution" in _tags(c)]
    for id_ in ex.list(lesson=lesson):
        stub = [c for c in stubs if f'check("{id_}"' in src(c)]
        assert len(stub) == 1, f"{path.name}: no (or several) exercise cells for {id_}"
        assert "NotImplementedError" in src(stub[0]) and "NBVAL_CHECK_OUTPUT" not in src(stub[0])
        sol = [c for c in solutions if f'check("{id_}"' in src(c)]
        assert len(sol) == 1, f"{path.name}: no (or several) solution cells for {id_}"
        assert sol[0]["metadata"]["tags"] == ["solution", "hide-input"]
        assert sol[0]["metadata"]["jupyter"] == {"source_hidden": True}
        assert src(sol[0]).rstrip().endswith(".assert_passed()")
