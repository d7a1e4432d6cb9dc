"""Rounds of chains: the parallel runner, the control-variate estimator and its
standard error, and the short first round of a limit (fixed seeds)."""

import functools
import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

import ess
from ess import chains, solve
from ess import plan as planning
from ess.chains import chunk_size, limit_chunks, run_parallel
from ess.kernels.layout import Q_DIST, Q_MEAN_DEV
from ess.progress import NULL_PROGRESS
from ess.request import estimate_request
from ess.stats import cv_mean, t975


# -- run_parallel ---------------------------------------------------------------------
def test_run_parallel_keeps_index_order_and_uses_the_calling_thread():
    def fn(i, names):
        names.add(threading.current_thread().name)
        time.sleep(0.002)   # releases the GIL, as the kernels do
        return np.full(1, i)

    for n_jobs in (1, 2, 3):
        names = set()
        out = run_parallel(functools.partial(fn, names=names), range(5, 25), n_jobs)
        assert [int(a[0]) for a in out] == list(range(5, 25))
        assert threading.current_thread().name in names
        assert len(names) <= n_jobs


def test_run_parallel_nested_in_a_pool_thread_does_not_wait_for_itself():
    """A helper queued behind the caller's own pool thread is cancelled, not awaited
    (it would wait forever); so is one queued behind another caller's long work."""
    def inner(i):
        return np.full(1, i)

    def outer(i):
        return np.concatenate(run_parallel(inner, range(3), 2))

    done = []
    t = threading.Thread(target=lambda: done.append(run_parallel(outer, range(4), 2)))
    t.start()
    t.join(timeout=30)
    assert not t.is_alive() and len(done[0]) == 4


@pytest.mark.parametrize("bad", [0, 7])
def test_run_parallel_raises_a_chunk_error_and_stops_taking_chunks(bad):
    """Whichever thread meets the error (the calling thread takes chunk 0 first),
    it reaches the caller and the remaining chunks are not started."""
    started = []

    def fn(i):
        started.append(i)
        if i == bad:
            raise RuntimeError(f"chunk {i}")
        return np.zeros(1)

    with pytest.raises(RuntimeError, match=f"chunk {bad}"):
        run_parallel(fn, range(200), 2)
    assert len(started) < 200


# -- cv_mean -----------------------------------------------------------------------------
def _hc3_textbook(y, X, mean_X):
    """HC3 written out: (A'A)^-1 A' diag(r_i^2 / (1 - h_ii)^2) A (A'A)^-1, entry [0, 0]."""
    A = np.column_stack([np.ones(len(y)), X - mean_X])
    inv = np.linalg.inv(A.T @ A)
    coef = inv @ A.T @ y
    r = y - A @ coef
    h = np.einsum("ij,jk,ik->i", A, inv, A)
    meat = A.T @ (A * (r * r / (1 - h) ** 2)[:, None])
    return coef[0], math.sqrt((inv @ meat @ inv)[0, 0])


def test_cv_mean_matches_the_textbook_hc3_formula():
    rng = np.random.default_rng(3)
    for N, p in [(16, 3), (40, 6), (300, 1)]:
        X = rng.chisquare(3, size=(N, p))
        y = 1.0 + X @ rng.normal(size=p) + 0.3 * X[:, 0] * rng.normal(size=N)
        mean_X = np.full(p, 3.0)
        est, se, dof = cv_mean(y, X, mean_X)
        e2, s2 = _hc3_textbook(y, X, mean_X)
        assert est == pytest.approx(e2, rel=1e-12) and se == pytest.approx(s2, rel=1e-10)
        assert dof == N - p - 1
    # too few rows for the slopes: the plain mean
    y = rng.normal(size=10)
    assert cv_mean(y, rng.normal(size=(10, 3)), np.zeros(3)) == cv_mean(y)


def test_cv_mean_drops_constant_and_repeated_control_variates():
    rng = np.random.default_rng(4)
    X = rng.chisquare(3, size=(40, 2))
    y = 2.0 + X @ [0.5, -1.0] + rng.normal(size=40)
    est, se, dof = cv_mean(y, X, np.array([3.0, 3.0]))
    for extra, mean in [(X[:, :1], 3.0), (np.full((40, 1), 7.0), 7.0)]:
        e2, s2, dof2 = cv_mean(y, np.hstack([X, extra]), np.array([3.0, 3.0, mean]))
        assert e2 == pytest.approx(est, rel=1e-9) and s2 == pytest.approx(se, rel=1e-9)
        assert dof2 == dof


def test_cv_mean_does_not_depend_on_blas_threads():
    """Results do not depend on the number of threads, BLAS's included: a million rows
    (a fine reference curve's size), with one BLAS thread and with two."""
    code = ("import numpy as np; from ess.stats import cv_mean; "
            "rng = np.random.default_rng(0); X = rng.chisquare(3, size=(10**6, 3)); "
            "y = 1 + X @ [0.3, -0.2, 0.01] + 0.1 * X[:, 0] * rng.normal(size=10**6); "
            "print(repr(cv_mean(y, X, np.array([3.0, 3.0, 3.0]))))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, env={**os.environ, "OPENBLAS_NUM_THREADS": str(t),
                                            "OMP_NUM_THREADS": str(t)}).stdout
            for t in (1, 2)}
    assert len(outs) == 1, outs


@pytest.mark.slow
def test_cv_intervals_cover_with_a_first_round_of_chains():
    """2000 groups of 28 chains (one first round at d = 3) from the kernels, three
    control variates: the 95% t intervals must hold the all-chain estimate in at
    least 93% of the groups. With 95% coverage, falling below 93% is 4 standard
    errors (0.49 points) away; the homoscedastic standard error this replaced
    held it 91.4% of the time here."""
    p = estimate_request(d=3, n_r=20, n_s=40, lam=0.9).params
    plan = planning.pilot_plan(planning.limit_plan(p, (p.n_s,), 0.01, seed=2024))
    N, groups = 28, 2000
    data = limit_chunks(plan, 0, N * groups // chunk_size(3), 2)
    y = data[:, 0, Q_DIST, :].mean(-1)
    X = data[:, 0, Q_MEAN_DEV:Q_MEAN_DEV + 3, :].mean(-1)
    known = solve._known_means(p, p.n_s)
    truth = cv_mean(y, X, known)[0]
    hits = 0
    for g in range(groups):
        rows = slice(g * N, (g + 1) * N)
        est, se, dof = cv_mean(y[rows], X[rows], known)
        hits += abs(est - truth) <= t975(dof) * se
    # and not wildly conservative either: above 98.5% is 4.4 standard errors away
    assert 0.93 * groups <= hits <= 0.985 * groups, hits / groups


# -- the first round of a limit ------------------------------------------------------------
def _plans(**kw):
    p = estimate_request(**kw).params
    main = planning.limit_plan(p, (p.n_s,), 0.01, seed=5)
    return main, planning.pilot_plan(main)


def test_pilot_plan_is_short_and_has_its_own_streams():
    main, short = _plans(d=10, n_r=100, n_s=200, lam=0.9)
    assert short.burn_in == main.burn_in and short.window < main.window
    assert short.window % (2 * short.every) == 0
    assert short.stream != main.stream
    a = limit_chunks(short, 0, 1, 1)
    b = limit_chunks(replace(short, stream=main.stream), 0, 1, 1)
    assert not np.array_equal(a, b)
    # memory "all" has no short round: its window average is the quantity itself
    main_all, short_all = _plans(d=1, n_r=100, n_s=20, memory="all")
    assert short_all is main_all


def _fake_excess(first, later, k):
    """An excess of ``first`` for the ``k`` chains of the first round, ``later`` after."""
    return lambda data: first if data.shape[0] <= k else later


@pytest.mark.parametrize("first,expect", [(0.9, "short"), (1.3, "short"), (6.0, "sized")])
def test_run_limit_chooses_the_cheaper_way_on(first, expect):
    """A first round within precision ends there; a little short goes on with short
    windows; far short starts over with the window that the first round's variance
    says is cheapest (:func:`ess.plan.sized_plan`), with as many chains as it predicts."""
    main, short = _plans(d=10, n_r=100, n_s=200, lam=0.9)
    cs = chunk_size(10)
    k = planning.pilot_chunks(10) * cs
    data, reached, plan, aside = solve.run_limit(main, 200_000, 1, 2, NULL_PROGRESS,
                                          _fake_excess(first, 0.5, k))
    assert reached
    need = k // cs * first**2 * 1.1
    fresh, chunks = planning.sized_plan(short, need, k // cs)
    if expect == "short":
        assert plan == short and fresh is short
    else:
        assert plan == fresh and fresh is not short and aside == k
        assert fresh.window > short.window and fresh.stream == chains.STREAM_LIMIT
        assert fresh.burn_in == short.burn_in and fresh.warm == short.warm
    if first <= 1.0:
        assert data.shape[0] == k
    elif expect == "short":
        assert data.shape[0] == math.ceil(need) * cs
        assert np.array_equal(data[:k], limit_chunks(short, 0, k // cs, 1))
    else:
        assert data.shape[0] == chunks * cs
        assert np.array_equal(data, limit_chunks(fresh, 0, chunks, 1))


def test_sized_plans_land_near_the_precision_and_cost_least():
    """The window a sized plan keeps makes the predicted cost least: a longer one
    where chains mix fast and the burn-in is long, the first round's when the records
    are so correlated that longer windows barely help; never fewer chains than a
    first round, and the variance model is that of an AR(1) series of the records."""
    assert planning.record_variance(1, 0.5) == 1.0
    assert planning.record_variance(8, 0.0) == pytest.approx(1 / 8)
    phi = 0.7
    direct = sum(phi ** abs(i - j) for i in range(6) for j in range(6)) / 36
    assert planning.record_variance(6, phi) == pytest.approx(direct)
    main, short = _plans(d=10, n_r=100, n_s=200, lam=0.9)
    fresh, chunks = planning.sized_plan(short, need=600.0, pilot=6)
    assert fresh.window > short.window and chunks >= 6
    f = planning.record_variance
    rho = ess.analytic.mixing_rate(100, 200, 1, 0.9) ** short.every

    def cost(w):
        return max(6, math.ceil(600 * f(w // short.every, rho) / f(short.window // short.every,
                                                                   rho))) * (short.burn_in + w)
    longest = max(planning.SIZED_MIN_LONGEST, planning.SIZED_WINDOW_PER_BURN_IN * short.burn_in)
    assert fresh.window <= longest
    assert cost(fresh.window) <= min(cost(w) for w in range(short.window + 2 * short.every,
                                                             longest + 1, 2 * short.every))
    # a little short: going on with the first round's plan is cheapest
    assert planning.sized_plan(short, need=7.0, pilot=6)[0] is short


def test_estimates_report_the_plan_they_used():
    # the control variates make the first round enough at d = 10
    r = ess.estimate(d=10, n_r=100, n_s=200, lam=0.9, seed=0)
    main, short = _plans(d=10, n_r=100, n_s=200, lam=0.9)
    first_round = planning.pilot_chunks(10) * chunk_size(10)
    assert r.precision_reached and r.generations == short.generations
    assert r.chains == first_round
    # the augmentation loop has no control variates: far short, it starts over with
    # the plan that the first round sized
    r = ess.estimate(d=1, n_r=100, n_s=200, lam=0.9, loop="augmentation", seed=1,
                     rel_precision=0.02)
    p = estimate_request(d=1, n_r=100, n_s=200, lam=0.9, loop="augmentation",
                         rel_precision=0.02).params
    first = planning.pilot_plan(planning.limit_plan(p, (p.n_s,), 0.02, seed=1))
    assert r.precision_reached
    assert r.generations > first.generations and r.burn_in == first.burn_in
    # out of chains after starting over: the note counts the set-aside first round
    r = ess.estimate(d=1, n_r=100, n_s=200, lam=0.9, loop="augmentation", seed=1,
                     rel_precision=0.005, max_chains=768)
    aside = planning.pilot_chunks(1) * chunk_size(1)
    assert not r.precision_reached and r.chains == 768 - aside
    assert f"max_chains = 768, counting a first round of {aside} shorter chains" in r.note


def test_chains_module_keeps_the_pilot_stream_apart():
    assert len({chains.STREAM_LIMIT, chains.STREAM_LIMIT_PILOT, chains.STREAM_TRAJECTORY,
                chains.STREAM_REFERENCE}) == 4


class _Counting:
    """A stand-in for ``limit_chunks`` that records the plans and chunks it was asked
    for and returns zeros (the excess is faked too)."""

    def __init__(self):
        self.calls = []

    def __call__(self, plan, a, b, n_jobs, progress):
        self.calls.append((plan, a, b))
        cs = chunk_size(plan.params.d)
        return np.zeros(((b - a) * cs, len(plan.n_s_values), 4, 2))

    def chains(self):
        return sum((b - a) * chunk_size(p.params.d) for p, a, b in self.calls)

    def work(self, n_values=1):
        return sum((b - a) * chunk_size(p.params.d)
                   * planning.chain_cost(p.params, p.generations, n_values)
                   for p, a, b in self.calls)


@pytest.mark.parametrize("max_chains", [12, 40, 200_000])
def test_a_fresh_start_counts_the_first_round_against_max_chains(monkeypatch, max_chains):
    main, short = _plans(d=10, n_r=100, n_s=200, lam=0.9)
    fake = _Counting()
    monkeypatch.setattr(solve, "limit_chunks", fake)
    k = 12
    data, reached, plan, aside = solve.run_limit(main, max_chains, 1, 1, NULL_PROGRESS,
                                          lambda data: 6.0 if data.shape[0] <= k else 0.5)
    assert fake.chains() <= max_chains
    if max_chains >= 2 * k:     # room for a first round of a sized plan
        assert plan != short and plan.window > short.window and plan.stream == main.stream
        assert fake.calls[1][0] == plan and aside == k
        assert data.shape[0] + aside == fake.chains()
    else:                       # none: the short plan goes on, as far as it may
        assert plan == short and not reached and aside == 0


def test_a_fresh_start_stays_within_the_work_budget(monkeypatch):
    main, short = _plans(d=10, n_r=100, n_s=200, lam=0.9)
    budget = 30 * planning.chain_cost(main.params, main.generations)   # 30 long chains
    for how in ("default", "max_work"):
        fake = _Counting()
        with monkeypatch.context() as m:
            m.setattr(solve, "limit_chunks", fake)
            if how == "default":
                m.setattr(solve.config, "MAX_WORK", budget)
            data, reached, plan, aside = solve.run_limit(
                main, 200_000, 1, 1, NULL_PROGRESS, lambda data: 6.0,
                max_work=budget if how == "max_work" else None)
        assert not reached
        assert fake.work() <= budget


def test_threshold_evaluations_never_start_over(monkeypatch):
    """Without ``restart`` (threshold evaluations: every n_s keeps the same streams)
    a first round far short goes on with its own plan."""
    main, short = _plans(d=10, n_r=100, n_s=200, lam=0.9)
    fake = _Counting()
    monkeypatch.setattr(solve, "limit_chunks", fake)
    data, reached, plan, aside = solve.run_limit(main, 200_000, 1, 1, NULL_PROGRESS,
                                          lambda data: 6.0 if data.shape[0] <= 12 else 0.5,
                                          restart=False)
    assert plan == short and all(p == short for p, _, _ in fake.calls)
