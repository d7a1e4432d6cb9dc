"""Limits, effective sample sizes and thresholds (contract section 3), fixed seeds."""

import math

import pytest

import ess
import ess.solve
from ess.request import estimate_request


def _agree(r1, r2, k=4.0):
    return abs(r1.wd - r2.wd) <= k * math.hypot(r1.wd_se, r2.wd_se)


def _monte_carlo(**kw):
    """The limit estimated by chains even at ``n_s = 0``, where :func:`ess.estimate`
    answers exactly without them: the fresh loop at ``n_s = 0`` is a fit on ``n_r``
    real samples every generation, so its limit is exactly ``f(n_r)``, an exact fact
    the chains are checked against."""
    q = estimate_request(**kw)
    return ess.solve.estimate_limit(q.params, q.seed, q.rel_precision, q.max_chains, 2)


def test_limit_does_not_depend_on_n_ini():
    """Starts from 2, 50 and 5000 real samples agree within 4 standard errors of
    their difference (independent seeds)."""
    rs = [ess.estimate(d=2, n_r=50, n_s=100, lam=0.9, n_ini=n_ini, seed=s)
          for s, n_ini in enumerate((2, 50, 5000))]
    for r in rs:
        assert r.converged and r.precision_reached
    for i in range(3):
        for j in range(i + 1, 3):
            assert _agree(rs[i], rs[j]), (rs[i].wd, rs[j].wd)


@pytest.mark.parametrize("d,metric,cov", [(1, "w2sq", "unbiased"), (1, "w2", "unbiased"),
                                          (1, "w2sq", "mle"), (3, "w2", "mle"),
                                          (2, "w2sq", "unbiased")])
def test_chains_at_zero_synthetic_find_n_e_equal_to_n_r(d, metric, cov):
    r = _monte_carlo(d=d, n_r=60, n_s=0, metric=metric, cov_estimator=cov, seed=2)
    assert r.chains > 0
    lo, hi = r.n_e_over_n_r_ci
    assert lo <= 1.0 <= hi
    assert hi - lo < 0.025


def test_chains_at_zero_synthetic_with_a_non_identity_sigma_r_find_n_e_equal_to_n_r():
    r = _monte_carlo(d=2, n_r=40, n_s=0, sigma_r=[[2.0, 0.5], [0.5, 0.3]], mu_r=[1.0, -1.0],
                     seed=4)
    assert r.n_e_over_n_r_ci[0] <= 1.0 <= r.n_e_over_n_r_ci[1]


def test_modest_unbiased_synthetic_data_helps():
    r = ess.estimate(d=1, n_r=100, n_s=200, lam=1.0)
    assert r.n_e_over_n_r_ci[0] > 1.0
    assert r.precision_reached and r.converged
    assert r.n_e_rel_halfwidth <= 0.01


def test_too_much_biased_synthetic_data_hurts():
    r = ess.estimate(d=1, n_r=100, n_s=400, lam=0.7)
    assert r.n_e_over_n_r_ci[1] < 1.0


def test_threshold_falls_as_bias_grows():
    res = [ess.threshold(d=1, n_r=100, lam=lam) for lam in (0.9, 0.7, 0.5)]
    stars = [r.n_s_star for r in res]
    assert all(s is not None and s > 0 for s in stars)
    for a, b in zip(res, res[1:]):
        assert a.n_s_star_ci[0] > b.n_s_star_ci[1], (a.n_s_star_ci, b.n_s_star_ci)


def test_threshold_at_large_n_r_is_not_fooled_by_noise_near_zero():
    """At n_r = 1000 the excess of n_e/n_r over 1 near n_s = 0 is inside the noise;
    the search must still find the fall past the peak, hundreds of samples out."""
    r = ess.threshold(d=1, n_r=1000, lam=0.9)
    assert r.n_s_star is not None and r.n_s_star > 200
    lo, hi = r.n_s_star_ci
    assert lo <= r.n_s_star <= hi
    scan = {s["n_s"]: s for s in r.scan}
    below = [s for n, s in scan.items() if n <= r.n_s_star // 2]
    above = [s for n, s in scan.items() if n >= 2 * r.n_s_star]
    assert any(s["excess_ci"][1] < 0 for s in below)
    assert all(s["excess_ci"][0] > 0 for s in above)
    # the threshold is consistent with direct estimates on either side
    left = ess.estimate(d=1, n_r=1000, n_s=max(1, lo // 2), lam=0.9, seed=1)
    right = ess.estimate(d=1, n_r=1000, n_s=2 * hi, lam=0.9, seed=1)
    assert left.n_e_over_n_r_ci[1] > 1.0 and right.n_e_over_n_r_ci[1] < 1.0


def test_no_threshold_up_to_the_cap_for_unbiased_sampling():
    r = ess.threshold(d=1, n_r=50, lam=1.0, cap=2000)
    assert r.n_s_star is None and r.cap == 2000
    assert "no threshold" in r.note


def test_strong_bias_still_admits_a_few_samples():
    """Even samples at the mode (lam = 0) help the mean a little: a handful are
    admissible at n_r = 100, far fewer than at lam = 0.5."""
    r = ess.threshold(d=2, n_r=100, lam=0.0, cap=100)
    assert r.n_s_star is not None and 1 <= r.n_s_star < 20


def _fake_excess(monkeypatch, fn):
    def call(self, n_s):
        if n_s == 0:
            return 0.0, 0.0, 0.0, True
        est, se = fn(n_s)
        self.cache[n_s] = (est, se, 1.96 * se, True)
        return self.cache[n_s]
    monkeypatch.setattr(ess.solve._ExcessEvaluator, "__call__", call)


def test_search_reports_zero_when_nothing_is_admissible(monkeypatch):
    _fake_excess(monkeypatch, lambda n: (1.0 + n, 0.1))
    r = ess.threshold(d=1, n_r=100, lam=0.5)
    assert r.n_s_star == 0 and r.n_s_star_ci == (0, 0)


def test_search_ignores_undecided_noise_near_zero(monkeypatch):
    """Excess slightly positive but within noise at small n_s, clearly negative in
    the middle, decisively positive past 500: the answer is 499, not 0."""
    def fn(n):
        if n < 20:
            return 0.01, 1.0
        return (n - 499.5) * 1e-3, 1e-4
    _fake_excess(monkeypatch, fn)
    r = ess.threshold(d=1, n_r=100, lam=0.5, cap=5000)
    assert r.n_s_star == 499
    assert r.n_s_star_ci[0] <= 499 <= r.n_s_star_ci[1]


def test_metrics_and_estimators_each_give_one_at_zero_and_differ_elsewhere():
    """Each (metric, estimator) pair has its own curve: at n_s = 0 the chains find
    n_e / n_r = 1 (within 4 standard errors) for every pair, and at n_s = 100 the pairs'
    limits differ by more than their intervals (the estimators differ in Sigma's
    scale, the metrics in kind)."""
    out = {}
    for metric in ("w2sq", "w2"):
        for cov in ("unbiased", "mle"):
            zero = _monte_carlo(d=2, n_r=50, n_s=0, metric=metric, cov_estimator=cov, seed=3)
            # within 4 standard errors (the 95% half-width is 1.96 of them)
            assert abs(zero.n_e_over_n_r - 1.0) <= 2 * zero.n_e_rel_halfwidth, (metric, cov)
            out[metric, cov] = ess.estimate(d=2, n_r=50, n_s=100, lam=0.9, metric=metric,
                                            cov_estimator=cov, seed=3, store=False)
            assert out[metric, cov].precision_reached
    for a, b in ((("w2sq", "unbiased"), ("w2sq", "mle")), (("w2", "unbiased"), ("w2", "mle")),
                 (("w2sq", "unbiased"), ("w2", "unbiased"))):
        assert not _agree(out[a], out[b]), (a, b, out[a].wd, out[b].wd)


def test_other_loops_and_memory_run():
    r = ess.estimate(d=2, n_r=30, n_s=30, lam=0.8, loop="augmentation", rel_precision=0.05)
    assert r.n_e is not None and r.wd > 0
    r = ess.estimate(d=2, n_r=30, n_s=30, lam=0.8, memory=3, rel_precision=0.05)
    assert r.converged and r.n_e is not None
    r0 = _monte_carlo(d=1, n_r=30, n_s=0, memory=3, rel_precision=0.02)
    assert abs(r0.n_e_over_n_r - 1) <= 2 * r0.n_e_rel_halfwidth * r0.n_e_over_n_r  # ~4 se
    r = ess.estimate(d=3, n_r=5, n_s=20, lam=0.0, rel_precision=0.05)
    assert math.isfinite(r.wd)


def test_n_e_below_two_is_reported_plainly():
    r = ess.estimate(d=1, n_r=2, n_s=5000, lam=0.3, rel_precision=0.05)
    assert r.n_e is None and "n_e < 2" in r.note


def test_budget_exhaustion_is_reported():
    # memory = 2 has no exactly known control-variate means: 512 chains give about 1.4%
    r = ess.estimate(d=1, n_r=100, n_s=200, lam=0.9, rel_precision=0.003, max_chains=512,
                     memory=2)
    assert not r.precision_reached and "max_chains" in r.note


def test_translation_and_scale_invariance_of_n_e():
    """n_e does not depend on mu_r or on the units of Sigma_r; WD scales with them."""
    base = ess.estimate(d=2, n_r=40, n_s=80, lam=0.9, seed=5)
    moved = ess.estimate(d=2, n_r=40, n_s=80, lam=0.9, seed=5, mu_r=[1e17, -3.0])
    scaled = ess.estimate(d=2, n_r=40, n_s=80, lam=0.9, seed=5, sigma_r=[1e-40, 1e-40])
    assert moved.n_e == base.n_e and scaled.n_e == base.n_e
    assert scaled.wd == pytest.approx(base.wd * 1e-40, rel=1e-12)
    w2 = ess.estimate(d=2, n_r=40, n_s=80, lam=0.9, seed=5, metric="w2", sigma_r=[4.0, 4.0])
    w2_unit = ess.estimate(d=2, n_r=40, n_s=80, lam=0.9, seed=5, metric="w2")
    assert w2.wd == pytest.approx(2.0 * w2_unit.wd, rel=1e-12)


def test_memory_longer_than_the_chains_is_safe():
    """memory = 5000 exceeds every chain's length: the ring buffer holds the whole
    chain (no allocation of 5000 models) and the estimate reaches its precision."""
    r = ess.estimate(d=1, n_r=100, n_s=10, memory=5000, rel_precision=0.05, store=False)
    assert r.n_e is not None and r.precision_reached and r.converged


def test_guidance_and_lam_together_are_refused():
    with pytest.raises(ValueError, match="guidance and lam exclude each other"):
        ess.estimate(lam=0.5, guidance=1.0)


def test_table_validates_every_cell_before_computing():
    with pytest.raises(ValueError, match="n_s"):
        ess.table(n_r=[50], n_s=[0, 10, 10**9], lam=[1.0])
    with pytest.raises(ValueError, match="repeat"):
        ess.table(n_r=[50], n_s=[0], lam=[1.0, 1.0])


def test_threshold_only_bounded_above_says_so(monkeypatch):
    """Below the fall the excess is never decisively negative (within noise of 0):
    the interval starts at 0 and the note says the threshold is only bounded above."""
    def fn(n):
        return (n - 299.5) * 1e-3, 1.0 if n < 300 else 1e-4
    _fake_excess(monkeypatch, fn)
    r = ess.threshold(d=1, n_r=100, lam=0.5, cap=5000)
    assert r.n_s_star == 299
    assert r.n_s_star_ci[0] == 0 and "only bounded above" in r.note


def test_threshold_at_huge_n_r_is_resolved():
    """n_r = 1e6: the paired excess is tiny next to f(n_r), yet common random numbers
    resolve a threshold: a bounded interval, above 0, that brackets it."""
    r = ess.threshold(d=1, n_r=1_000_000, lam=0.9, cap=2_000_000, store=False)
    lo, hi = r.n_s_star_ci
    assert 0 < lo <= r.n_s_star <= hi < r.cap and "only bounded above" not in r.note


@pytest.mark.slow
def test_interval_coverage_against_the_exact_limit_at_zero_synthetic():
    """At n_s = 0 the limit is exactly f(n_r), known in closed form for d = 1 (contract
    section 4). Over 60 seeds the 95% interval of WD must cover it at least 51 times:
    P(Binomial(60, 0.95) <= 50) < 0.2%, so a fixed-seed failure means bad coverage."""
    from ess.analytic import reference_d1

    exact = reference_d1(50, "w2sq", "unbiased")
    hits = 0
    for seed in range(60):
        r = _monte_carlo(d=1, n_r=50, n_s=0, seed=seed, rel_precision=0.02)
        hits += r.wd_ci[0] <= exact <= r.wd_ci[1]
    assert hits >= 51, hits
