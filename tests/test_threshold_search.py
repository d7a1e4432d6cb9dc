"""The threshold search's interpolating bisection (:func:`ess.plan.interpolate_int`)
against plain bisection and against brute-force scans of the same evaluations."""

import math

import numpy as np
import pytest

import ess
import ess.solve
from ess.plan import INTERPOLATION_SLACK, bisect_int, interpolate_int


def _counted(fn):
    seen = []

    def call(n):
        seen.append(n)
        return fn(n)
    return call, seen


@pytest.mark.parametrize("root", [0.5, 1.3, 7.5, 99.2, 123.9, 4095.5, 9998.7])
@pytest.mark.parametrize("shape", ["linear", "log", "cubic"])
def test_interpolation_finds_bisections_pair_on_monotone_values(root, shape):
    """For a monotone value (so a monotone predicate) the adjacent pair is unique:
    interpolation must find the very pair that bisection finds, in at most three times
    as many evaluations (the safeguard's bound; the cubic over [0, 10^4] is its worst
    case here, 24 evaluations against bisection's 14)."""
    lo, hi = 0, 10_000

    def value(n):
        if shape == "linear":
            return n - root
        if shape == "log":
            return math.log1p(n) - math.log1p(root)
        return (n - root) ** 3 + 1e-3 * (n - root)

    pred = lambda n: value(n) > 0   # noqa: E731
    value_c, seen = _counted(value)
    pair = interpolate_int(pred, value_c, lo, hi)
    assert pair == bisect_int(pred, lo, hi)
    steps_bisect = math.ceil(math.log2(hi - lo))
    assert len(seen) - 2 <= 3 * steps_bisect, len(seen)


def test_interpolation_is_much_cheaper_on_a_smooth_log_curve():
    """The threshold search's case: the excess is smooth in log n_s. A bracket of
    [256, 1024] with the root at 648.3 closes in at most 7 evaluations (bisection: 10)."""
    value = lambda n: math.log(n / 648.3) * (1.0 + 0.3 * math.log(n / 648.3))   # noqa: E731
    pred = lambda n: value(n) > 0   # noqa: E731
    value_c, seen = _counted(value)
    assert interpolate_int(pred, value_c, 256, 1024) == (648, 649)
    assert len(seen) - 2 <= 7, seen


@pytest.mark.parametrize("seed", range(20))
def test_noisy_values_still_give_an_adjacent_pair_within_bisections_plus_the_slack(seed):
    """Values with noise and jumps (a predicate that is not monotone): the answer is an
    adjacent pair with the predicate false then true, and the evaluations stay within
    bisection's plus INTERPOLATION_SLACK (the hard bound that the service's request
    budget counts on)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 30.0, 5001)
    jumps = np.cumsum(rng.choice([0.0, 0.0, 0.0, 50.0, -50.0], 5001))
    value = lambda n: float(n - 2500 + noise[n] + jumps[n])   # noqa: E731
    pred = lambda n: value(n) > 0   # noqa: E731
    lo, hi = 0, 5000
    if pred(lo) or not pred(hi):
        pytest.skip("this draw breaks the bracket")
    value_c, seen = _counted(value)
    a, b = interpolate_int(pred, value_c, lo, hi)
    assert b == a + 1 and not pred(a) and pred(b)
    assert len(seen) - 2 <= math.ceil(math.log2(hi - lo)) + INTERPOLATION_SLACK, len(seen)


def _search_with_evaluator(monkeypatch, **kw):
    """``ess.threshold`` with its :class:`ess.solve._ExcessEvaluator` kept, so that a
    test can evaluate the same (common random numbers, cached) excess anywhere."""
    kept = []
    init = ess.solve._ExcessEvaluator.__init__

    def keep(self, *a, **k):
        init(self, *a, **k)
        kept.append(self)
    monkeypatch.setattr(ess.solve._ExcessEvaluator, "__init__", keep)
    r = ess.threshold(**kw, store=False)
    return r, kept[-1]


@pytest.mark.parametrize("d,n_r,lam,seed", [(1, 20, 0.5, 0), (1, 50, 0.7, 3),
                                            (10, 20, 0.6, 1)])
def test_threshold_agrees_with_a_brute_force_scan(monkeypatch, d, n_r, lam, seed):
    """Every n_s from 1 to the search's first decisive fall evaluated with the search's
    own evaluator (the same seeds): the largest n_s whose excess is not above zero lies
    in the reported 95% interval, the answer is a sign change of the point estimate,
    and the interval's ends are ends of the scan's decisive runs: the lower end is
    decisively admissible and not above the scan's largest decisively admissible n_s
    below the answer; the upper end is not decisively inadmissible, the next is, and
    it is not above the scan's largest n_s that is not decisively inadmissible."""
    r, ev = _search_with_evaluator(monkeypatch, d=d, n_r=n_r, lam=lam, seed=seed,
                                   rel_precision=0.05)
    star = r.n_s_star
    lo, hi = r.n_s_star_ci
    assert star is not None and 0 < lo <= star <= hi
    fall = min(m for m in ev.cache if m > star and ev.decisively_inadmissible(m))
    scan = range(1, fall + 1)
    brute = max(n for n in scan if not ev.inadmissible(n))
    assert lo <= brute <= hi, (brute, r.n_s_star_ci)
    assert not ev.inadmissible(star) and ev.inadmissible(star + 1)
    assert ev.decisively_admissible(lo) and not ev.decisively_admissible(lo + 1)
    assert lo <= max(n for n in range(1, star + 1) if ev.decisively_admissible(n))
    assert not ev.decisively_inadmissible(hi) and ev.decisively_inadmissible(hi + 1)
    assert hi <= max(n for n in scan if not ev.decisively_inadmissible(n))
    # the scan's sign changes of the point estimate are few and near the answer
    flips = [n for n in range(1, fall) if ev.inadmissible(n) != ev.inadmissible(n + 1)]
    assert all(lo <= n <= hi for n in flips), (flips, r.n_s_star_ci)


def test_a_pinned_burn_in_is_a_floor_and_gives_the_bracket_one_plan(monkeypatch):
    """``min_burn_in`` only lengthens a plan's burn-in; a search pins it near its first
    guess of n_s* (``PIN_MARGIN`` times it), so that the evaluations around the answer
    share one plan, while an n_s beyond keeps its own longer burn-in."""
    from dataclasses import replace

    from ess.plan import limit_plan
    from ess.request import threshold_request

    p = threshold_request(d=100, n_r=100, lam=0.7).params
    own = {n: limit_plan(replace(p, n_s=n), (n, 0), 0.02, 0).burn_in for n in (600, 1200, 4096)}
    assert own[600] < own[1200] < own[4096]
    for n, b in own.items():
        floor = own[1200]
        assert limit_plan(replace(p, n_s=n), (n, 0), 0.02, 0,
                          min_burn_in=floor).burn_in == max(b, floor)
    r, ev = _search_with_evaluator(monkeypatch, d=100, n_r=100, lam=0.7, seed=0,
                                   rel_precision=0.02)
    lo, hi = r.n_s_star_ci
    burns = {ev.plan(n).burn_in for n in range(lo, hi + 2)}
    assert burns == {ev.min_burn_in}, burns
    # the scan's first decisive fall, 4096 (n_s* about 1200), keeps its longer burn-in
    assert ev.decisively_inadmissible(4096) and ev.plan(4096).burn_in > ev.min_burn_in
