"""The Python interface a notebook user touches: requests, results, defaults, names."""

import dataclasses
import doctest
import inspect

import numpy as np
import pytest

import ess
from ess import api, defaults, solve
from ess import plan as planning
from ess.params import ParameterError
from ess.request import estimate_request, simulate_request, threshold_request


def test_results_are_frozen_with_named_intervals_and_a_short_repr():
    r = ess.estimate(n_r=50, n_s=100, lam=0.9, rel_precision=0.05, store=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.n_e = 1.0
    assert isinstance(r.n_e_ci, ess.Interval)
    assert r.n_e_ci.low == r.n_e_ci[0] < r.n_e < r.n_e_ci.high == r.n_e_ci[1]
    text = repr(r)
    assert text.startswith("EstimateResult(fresh, d=1, n_r=50, n_s=100, lam=0.9")
    assert len(text) < 160 and r.verdict in text


def test_n_s_zero_is_the_reference_fit_exactly():
    """At n_s = 0 every generation is a fit on n_r real samples: n_e = n_r exactly, with
    a degenerate interval, no chains, and the limit equal to the curve's f(n_r)."""
    for loop in ("fresh", "augmentation"):
        r = ess.estimate(n_r=80, n_s=0, lam=0.7, loop=loop, store=False)
        assert r.n_e == 80.0 and tuple(r.n_e_ci) == (80.0, 80.0)
        assert r.n_e_over_n_r == 1.0 and r.verdict == "no synthetic data"
        assert r.chains == 0 and r.precision_reached
        assert r.wd == ess.reference_curve([80]).f[0]


def test_table_to_frame_has_one_row_per_cell_and_the_interval_columns():
    t = ess.table(n_r=[50], n_s=[0, 50], lam=[1.0, 0.8], rel_precision=0.05, store=False)
    assert isinstance(t, ess.TableResult) and len(t) == 4
    df = t.to_frame()
    assert list(df.columns) == list(ess.EstimateResult.COLUMNS)
    assert list(zip(df["n_s"], df["lam"])) == [(0, 1.0), (0, 0.8), (50, 1.0), (50, 0.8)]
    assert (df["n_e_ci_low"] <= df["n_e"]).all() and (df["n_e"] <= df["n_e_ci_high"]).all()
    assert list(df["n_e"]) == [r.n_e for r in t]


def test_threshold_grid_and_reference_curve_have_labelled_columns():
    g = ess.threshold_grid(n_r=[50], lam=[0.6, 0.8], rel_precision=0.1, store=False)
    df = g.to_frame()
    assert list(df.columns) == list(ess.ThresholdResult.COLUMNS)
    assert list(df["lam"]) == [0.6, 0.8] and list(df["n_s_star"]) == [r.n_s_star for r in g]
    c = ess.reference_curve([4, 16])
    assert list(c.to_frame().columns) == ["n", "f", "f_se"] and c.n == (4, 16)


def test_arguments_after_the_first_few_are_keyword_only():
    for fn, positional in ((ess.estimate, 4), (ess.threshold, 3), (ess.simulate, 4),
                           (ess.table, 4), (ess.threshold_grid, 3)):
        params = list(inspect.signature(fn).parameters.values())
        kinds = [p.kind for p in params]
        assert kinds[:positional] == [inspect.Parameter.POSITIONAL_OR_KEYWORD] * positional
        assert all(k in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD)
                   for k in kinds[positional:]), fn.__name__


def test_defaults_come_from_one_place():
    sig = inspect.signature(ess.estimate).parameters
    assert sig["n_r"].default == defaults.N_R and sig["n_s"].default == defaults.N_S
    assert inspect.signature(ess.simulate).parameters["n_s"].default == defaults.N_S
    assert inspect.signature(ess.table).parameters["n_r"].default == defaults.TABLE_N_R
    assert inspect.signature(ess.threshold_grid).parameters["n_r"].default == \
        defaults.HEATMAP_N_R
    assert threshold_request().params.lam == defaults.THRESHOLD_LAM
    assert estimate_request().params.d == defaults.D


def test_request_key_ignores_jobs_and_names_everything_else():
    a = estimate_request(n_r=50, n_s=20, lam=0.9, n_jobs=1)
    b = estimate_request(n_r=50, n_s=20, lam=0.9, n_jobs=2)
    assert a.key() == b.key() and a.with_jobs(2) == b
    assert estimate_request(n_r=50, n_s=20, lam=0.9, seed=1).key() != a.key()
    t = threshold_request(n_r=50, lam=0.9, cap=300)
    assert t.key()["cap"] == 300 and t.cap_wanted == 300


@pytest.mark.parametrize("kwargs, name", [
    (dict(n_r=1), "n_r"), (dict(n_s=-1), "n_s"), (dict(lam=1.5), "lam"),
    (dict(lam=0.5, guidance=1.0), "guidance"), (dict(loop="nope"), "loop"),
    (dict(loop="fully-synthetic"), "loop"), (dict(memory=0), "memory"),
    (dict(metric="kl"), "metric"), (dict(cov_estimator="x"), "cov_estimator"),
    (dict(seed=-1), "seed"), (dict(rel_precision=0), "rel_precision"),
    (dict(rel_precision=1e-5), "rel_precision"), (dict(max_chains=0), "max_chains"),
    (dict(n_jobs=0), "n_jobs"), (dict(d=2, sigma_r=[1, -4]), "sigma_r"),
    (dict(d=2, sigma_r=[1, 4, 0.5]), "sigma_r"), (dict(d=2, mu_r=[1.0]), "mu_r"),
    (dict(n_ini=5, loop="augmentation"), "n_ini"), (dict(d=0), "d"),
])
def test_a_bad_estimate_argument_is_named(kwargs, name):
    with pytest.raises(ParameterError) as e:
        ess.estimate(store=False, **kwargs)
    assert e.value.name == name and str(e.value).startswith(name)


def test_sigma_r_messages_name_the_entry_and_its_length_sets_d():
    with pytest.raises(ParameterError, match=r"diagonal entry 2 is -4"):
        estimate_request(d=2, sigma_r=[1, -4])
    with pytest.raises(ParameterError, match=r"got 3 diagonal entries for d = 2"):
        estimate_request(d=2, sigma_r=[1, 4, 0.5])
    with pytest.raises(ParameterError, match=r"diagonal entry \(2, 2\) is 0"):
        estimate_request(d=2, sigma_r=[[1, 0], [0, 0]])
    assert estimate_request(sigma_r=[1, 4, 0.5]).params.d == 3
    assert estimate_request(mu_r=[0, 0]).params.d == 2


def test_replace_is_the_fully_synthetic_loop():
    assert simulate_request(loop="replace", n_s=10).params.loop == "fully-synthetic"
    s1 = ess.simulate(loop="replace", n_s=10, chains=8, generations=5)
    s2 = ess.simulate(loop="fully-synthetic", n_s=10, chains=8, generations=5)
    assert s1.rows == s2.rows and s1.loop == "fully-synthetic"


def test_a_lowered_default_cap_is_kept_and_said():
    """With a work budget too small for the default cap 100 n_r, the request keeps the
    cap it wanted beside the one it got, and the search says that it was lowered, to
    what, and the budget the full cap needs (note, ``cap_lowered_from``,
    ``budget_note``)."""
    p = threshold_request(d=100, n_r=100, lam=0.95).params
    full = planning.search_work(p, 100 * 100, 0.01)
    t = threshold_request(d=100, n_r=100, lam=0.95, max_work=full / 3)
    assert t.cap_wanted == 100 * 100 and t.cap < t.cap_wanted and t.key()["cap"] == t.cap
    assert t.max_work == full / 3 and t.key()["max_work"] == full / 3
    # the cap found is the largest whose search's first rounds fit
    assert planning.search_work(p, t.cap, 0.01) <= full / 3 < planning.search_work(p, t.cap + 1,
                                                                                  0.01)
    q = threshold_request(n_r=50, lam=0.6, cap=40, rel_precision=0.1)
    r = solve.threshold_search(q.params, q.seed, q.rel_precision, q.max_chains, q.cap, 1,
                               cap_wanted=5000, max_work=1e6)
    assert "the cap was lowered from 5000 (100 n_r) to 40" in r.note
    assert "max_work = 1e+06" in r.note and "--max-work" in r.note
    assert r.cap_lowered_from == 5000 and r.to_dict()["cap_lowered_from"] == 5000
    assert r.budget_note and r.budget_note in r.note and r.to_dict()["max_work"] == 1e6
    plain = solve.threshold_search(q.params, q.seed, q.rel_precision, q.max_chains, q.cap, 1)
    assert "lowered" not in plain.note and plain.cap_lowered_from is None
    assert plain.budget_note == ""


def test_the_default_budget_admits_the_papers_grids():
    """With no budget given, every cell of the paper's Fig. 11 grid (d = 100, n_r
    100..1000, n_s 100..10^4, lam 0.7, 0.85, 1) is accepted at the default precision,
    and every threshold of its Fig. 12 (lam 0.1..0.9, n_r 100, 250, 1000) keeps its
    full cap 100 n_r."""
    for n_r in (100, 178, 316, 562, 1000):
        for n_s in (100, 316, 1000, 3162, 10_000):
            for lam in (0.7, 0.85, 1.0):
                estimate_request(d=100, n_r=n_r, n_s=n_s, lam=lam)
    for n_r in (100, 250, 1000):
        for lam in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
            t = threshold_request(d=100, n_r=n_r, lam=lam)
            assert t.cap == t.cap_wanted == 100 * n_r


def test_max_work_is_validated_with_its_range():
    for bad in (0, -1.0, 1e14, "lots", float("nan")):
        with pytest.raises(ess.ParameterError, match=r"max_work must be a number in "
                                                     r"\[1000, 1e\+13\]") as e:
            estimate_request(max_work=bad)
        assert e.value.name == "max_work"
    assert estimate_request(max_work="2e9").max_work == 2e9
    assert estimate_request().max_work == defaults.MAX_WORK


def test_a_request_over_the_budget_names_it_and_the_largest_n_s():
    with pytest.raises(ess.ParameterError) as e:
        estimate_request(d=100, n_r=100, n_s=10_000, lam=0.85, max_work=3e7)
    msg = str(e.value)
    assert e.value.name == "max_work"
    assert "(d, n_r, n_s, lam) = (100, 100, 10000, 0.85)" in msg
    assert "max_work = 3e+07" in msg and "--max-work" in msg
    largest = int(msg.split("the largest n_s within it is ")[1].split(";")[0])
    estimate_request(d=100, n_r=100, n_s=largest, lam=0.85, max_work=3e7)
    with pytest.raises(ess.ParameterError):
        estimate_request(d=100, n_r=100, n_s=largest + 1, lam=0.85, max_work=3e7)
    need = float(msg.split("to at least ")[1].split(" ")[0])
    estimate_request(d=100, n_r=100, n_s=10_000, lam=0.85, max_work=need * 1.01)


def test_a_grid_refused_before_computing_names_the_cell_and_the_flag():
    with pytest.raises(ess.ParameterError) as e:
        ess.table(d=100, n_r=[100], n_s=[100, 10_000], lam=[0.85], max_work=3e7, store=False)
    msg = str(e.value)
    assert msg.startswith("grid cell (n_r = 100, n_s = 10000, lam = 0.85): ")
    assert "--max-work" in msg and e.value.name == "max_work"
    with pytest.raises(ess.ParameterError, match=r"grid cell \(n_r = 1000, lam = 0.9\)"):
        ess.threshold_grid(d=100, n_r=[1000], lam=[0.9], cap=100_000, max_work=1e7,
                           store=False)


def test_simulate_to_frame_has_the_rows():
    s = ess.simulate(n_s=10, chains=16, generations=4)
    df = s.to_frame()
    assert len(df) == 4 and list(df["generation"]) == [1, 2, 3, 4]
    assert np.allclose(df["dist_mean"], [row["dist_mean"] for row in s.rows])


def test_docstring_examples_run():
    """Every public function has an Example in its docstring, and each runs and prints
    what it says."""
    for name in api.__all__:
        assert "Examples\n    --------\n    >>> " in getattr(api, name).__doc__, name
    failures, tried = doctest.testmod(api, optionflags=doctest.ELLIPSIS)
    assert tried >= 2 * len(api.__all__) and failures == 0
