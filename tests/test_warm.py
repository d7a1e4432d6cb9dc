"""Warm starts (issue 13): the draw, its moments, and limits that do not depend on it.

Fixed seeds; tolerances are stated in standard errors.
"""

import math

import numpy as np
import pytest
from scipy import stats

import ess
import ess.solve
from ess import plan as planning
from ess.analytic import fresh_stationary_second_moments
from ess.chains import chunk_rngs
from ess.kernels.layout import REC_FIELDS, REC_MEAN_DEV, REC_TR_SIGMA, REC_TR_SIGMA_SQ
from ess.kernels.loops import LOOP_FRESH, _run_chain
from ess.kernels.warm import WARM_FIELDS
from ess.request import estimate_request


def _starts(d, warm_rows, n, seed=0):
    """``|mu|^2``, ``tr Sigma`` and ``tr Sigma^2`` of ``n`` warm starts drawn by the kernel
    (generation 0 of a chain), one configuration per row of ``warm_rows``."""
    warm = np.array(warm_rows, dtype=float).reshape(-1, WARM_FIELDS)
    ns = np.zeros(len(warm), dtype=np.int64) + 10
    out = np.empty((n, len(warm), 3))
    traj = np.empty((len(warm), 1, REC_FIELDS))
    for i in range(n):
        _run_chain(*chunk_rngs(seed, 0, i), LOOP_FRESH, 10, 10, ns, 1.0, 1, False, 0,
                   np.zeros(d), np.eye(d), True, 1, 0, 1, traj, warm)
        out[i] = traj[:, 0, [REC_MEAN_DEV, REC_TR_SIGMA, REC_TR_SIGMA_SQ]]
    return out


@pytest.mark.parametrize("d,nu", [(2, 7.3), (5, 5.6), (10, 40.25), (10, 4.0), (1, 1.4)])
def test_the_kernels_warm_draw_against_its_naive_twin(d, nu):
    """``mu = s z`` and ``Sigma = g W``, ``W ~ Wishart(I_d, nu)`` (Bartlett with a real
    ``nu`` from ``d + 1`` on, ``G G^T`` with ``round(nu)`` columns below): the kernel's
    2000 draws have the exact means of ``|mu|^2``, ``tr Sigma`` and ``tr Sigma^2``
    within 4 standard errors, and the law of ``tr Sigma`` and ``|mu|^2`` of SciPy's
    draws (Kolmogorov-Smirnov p > 0.001)."""
    s, g, n = 0.3, 0.7, 2000
    k = nu if nu >= d + 1 else round(nu)
    got = _starts(d, [(s, g, nu)], n)[:, 0]
    exact = [d * s * s, g * k * d, g * g * k * (k + d + 1) * d]
    for j in range(3):
        se = got[:, j].std(ddof=1) / math.sqrt(n)
        assert abs(got[:, j].mean() - exact[j]) <= 4 * se, (j, got[:, j].mean(), exact[j])
    rng = np.random.default_rng(1)
    if k >= d:
        W = stats.wishart(df=k, scale=np.eye(d)).rvs(size=n, random_state=rng).reshape(n, d, d)
    else:
        G = rng.standard_normal((n, d, int(k)))
        W = G @ G.transpose(0, 2, 1)
    tr = g * np.trace(W, axis1=1, axis2=2)
    mu2 = s * s * rng.chisquare(d, size=n)
    assert stats.ks_2samp(got[:, 1], tr).pvalue > 1e-3
    assert stats.ks_2samp(got[:, 0], mu2).pvalue > 1e-3


@pytest.mark.parametrize("d,n_r,n_s,lam,cov", [(1, 100, 200, 0.9, "unbiased"),
                                               (10, 20, 200, 1.0, "mle"),
                                               (100, 100, 7500, 0.85, "unbiased"),
                                               (3, 5, 0, 0.5, "unbiased")])
def test_warm_starts_match_the_stationary_moments(d, n_r, n_s, lam, cov):
    """The warm law's ``E|mu - mu_r|^2``, ``E tr Sigma`` and ``E tr Sigma^2`` are the
    exact stationary ones; at ``n_s = 0`` it is the reference fit's law itself
    (``mu ~ N(mu_r, I / n_r)``, ``q Sigma ~ Wishart(I, n_r - 1)``)."""
    p = estimate_request(d=d, n_r=n_r, n_s=n_s, lam=lam, cov_estimator=cov).params
    (s, g, nu), = planning.warm_start(p, (n_s,))
    z = fresh_stationary_second_moments(d, n_r, n_s, lam, cov)
    assert d * s * s == pytest.approx(z[1], rel=1e-12)
    assert g * nu * d == pytest.approx(z[2], rel=1e-12)
    assert g * g * nu * (nu + d + 1) * d == pytest.approx(z[3], rel=1e-10)
    if n_s == 0:
        q = n_r - 1 if cov == "unbiased" else n_r
        assert nu == pytest.approx(n_r - 1, rel=1e-10) and g == pytest.approx(1 / q, rel=1e-10)
        assert s * s == pytest.approx(1 / n_r, rel=1e-12)


def test_warm_starts_only_where_the_moments_are_known():
    """Memory K > 1, the augmentation loop and another Sigma_r start cold (the fit on
    n_ini real samples); so does a setting where the cold start is the closer one."""
    def plan(**kw):
        p = estimate_request(**kw).params
        return planning.limit_plan(p, (p.n_s,), 0.01, seed=0)

    assert plan(d=3, n_r=50, n_s=100, lam=0.9).warm
    assert not plan(d=3, n_r=50, n_s=100, lam=0.9, memory=2).warm
    assert not plan(d=3, n_r=50, n_s=100, lam=0.9, loop="augmentation").warm
    assert not plan(d=3, n_r=50, n_s=100, lam=0.9, sigma_r=[1.0, 2.0, 3.0]).warm
    assert plan(d=3, n_r=50, n_s=100, lam=0.9, sigma_r=[2.0, 2.0, 2.0]).warm  # 2 I is I
    assert not plan(d=10, n_r=5, n_s=2, lam=1.0).warm    # warm bound 11.6 > n / n_ini = 1.4
    # the threshold's paired configuration gets its own start, the reference fit's law
    p = estimate_request(d=3, n_r=50, n_s=100, lam=0.9).params
    pair = planning.limit_plan(p, (100, 0), 0.01, seed=0)
    assert len(pair.warm) == 2 and pair.warm[1][2] == pytest.approx(49.0)


def test_the_warm_burn_in_is_shorter_and_sized_by_the_measured_bound():
    p = estimate_request(d=100, n_r=100, n_s=7500, lam=0.85).params
    warm, cold = (planning.limit_plan(p, (p.n_s,), 0.01, 0, start=s) for s in ("auto", "cold"))
    assert warm.warm and not cold.warm
    assert cold.burn_in == 390          # the 390 generations of burn-in
    assert warm.burn_in < cold.burn_in / 5
    rate = ess.analytic.fresh_second_order_rate(100, 100, 7500, 0.85, "unbiased")
    bound = planning.warm_excess(p)
    assert bound * rate ** warm.burn_in <= 0.01 / 4 < bound * rate ** (warm.burn_in - 1)


def test_warm_estimates_do_not_see_n_ini_and_cold_ones_agree_across_it():
    """Warm-started chains never draw the first real set: the same numbers for any
    n_ini. Cold-started ones (memory 2) from 2, 100 and 5000 real samples agree within
    4 standard errors of their difference (independent seeds)."""
    a = ess.estimate(d=3, n_r=50, n_s=100, lam=0.9, n_ini=2, store=False)
    b = ess.estimate(d=3, n_r=50, n_s=100, lam=0.9, n_ini=5000, store=False)
    assert a.wd == b.wd and a.n_e == b.n_e
    rs = [ess.estimate(d=2, n_r=50, n_s=100, lam=0.9, n_ini=n_ini, seed=s, memory=2,
                       store=False) for s, n_ini in enumerate((2, 100, 5000))]
    for r in rs:
        assert r.converged and r.precision_reached
    for i in range(3):
        for j in range(i + 1, 3):
            diff = abs(rs[i].wd - rs[j].wd)
            assert diff <= 4 * math.hypot(rs[i].wd_se, rs[j].wd_se), (rs[i].wd, rs[j].wd)


#: Settings of the warm-against-cold comparison: d in {1, 10, 100}, n_s / n_r from 0.5
#: to 100, lam from 0.5 to 1, among them the warm start's worst cases (lam = 1, n_s
#: >> n_r: a warm excess of 1.8% at d = 1, 26% at d = 10 and d = 100).
WARM_VS_COLD = [
    pytest.param(1, 100, 50, 0.5, id="d1-half-lam0.5"),
    pytest.param(1, 20, 2000, 1.0, id="d1-x100-lam1"),
    pytest.param(10, 100, 1000, 0.9, id="d10-x10-lam0.9"),
    pytest.param(10, 10, 1000, 1.0, id="d10-x100-lam1"),
    pytest.param(100, 200, 100, 0.5, marks=pytest.mark.slow, id="d100-half-lam0.5"),
    pytest.param(100, 100, 900, 0.8, marks=pytest.mark.slow, id="d100-x9-lam0.8"),
    pytest.param(100, 100, 1000, 1.0, marks=pytest.mark.slow, id="d100-x10-lam1"),
    pytest.param(100, 100, 10_000, 0.7, marks=pytest.mark.slow, id="d100-x100-lam0.7"),
]
#: z of the comparison: the two-sided 95% interval of the difference, Bonferroni
#: corrected for the eight settings (0.05 / 8 two-sided).
Z_WARM_VS_COLD = stats.norm.isf(0.05 / 8 / 2)


@pytest.mark.parametrize("d,n_r,n_s,lam", WARM_VS_COLD)
def test_warm_limits_agree_with_cold_ones_burnt_in_far_longer(d, n_r, n_s, lam):
    """The warm-started limit and a cold-started one (the fit on n_ini = n_r real
    samples) with three times its own burn-in agree within their combined 95%
    interval (Bonferroni over the settings: 2.73 standard errors of the difference),
    each estimated to 0.5% on n_e (independent seeds)."""
    q = estimate_request(d=d, n_r=n_r, n_s=n_s, lam=lam, rel_precision=0.005)
    warm = ess.solve.estimate_limit(q.params, 1, q.rel_precision, q.max_chains, 2)
    cold = ess.solve.estimate_limit(q.params, 2, q.rel_precision, q.max_chains, 2,
                                    start="cold", burn_in_factor=3.0, max_work=1e11)
    cold_plan = planning.limit_plan(q.params, (n_s,), q.rel_precision, 2, start="cold")
    assert cold.burn_in == math.ceil(3.0 * cold_plan.burn_in) > warm.burn_in
    assert warm.precision_reached and cold.precision_reached
    assert warm.converged and cold.converged
    diff = warm.wd - cold.wd
    assert abs(diff) <= Z_WARM_VS_COLD * math.hypot(warm.wd_se, cold.wd_se), \
        (warm.wd, cold.wd, diff / math.hypot(warm.wd_se, cold.wd_se))


@pytest.mark.parametrize("d", [1, 10])
def test_interval_coverage_with_synthetic_data_holds_with_warm_starts(d):
    """At (n_r, n_s, lam) = (100, 200, 0.9), warm-started estimates to 1% from 60 seeds:
    their 95% intervals of WD hold the limit (from two cold-started estimates to 0.1%,
    burnt in three times longer: its own error is under a tenth of the intervals'
    half-width) at least 51 times. P(Binomial(60, 0.95) <= 50) < 0.2%."""
    q = estimate_request(d=d, n_r=100, n_s=200, lam=0.9, rel_precision=0.001)
    ref = [ess.solve.estimate_limit(q.params, 1000 + s, q.rel_precision, q.max_chains, 2,
                                    start="cold", burn_in_factor=3.0) for s in range(2)]
    truth = sum(r.wd for r in ref) / 2
    q = estimate_request(d=d, n_r=100, n_s=200, lam=0.9, rel_precision=0.01)
    hits = 0
    for seed in range(60):
        r = ess.solve.estimate_limit(q.params, seed, q.rel_precision, q.max_chains, 2)
        assert r.burn_in < ref[0].burn_in
        hits += r.wd_ci[0] <= truth <= r.wd_ci[1]
    assert hits >= 51, hits


def test_first_rounds_are_a_few_chains_where_fixed_slopes_apply():
    """From d = 20, where the fixed-slope control variate applies (w2sq, the exact
    means known), an estimate's first round is 4 chains and a threshold evaluation's 6;
    elsewhere the 12 (16 for pairs) whose slopes can be fitted."""
    def p(**kw):
        return estimate_request(**kw).params

    big = p(d=100, n_r=100, n_s=900, lam=0.8)
    assert planning.first_round_chunks(big, 1) == 4 and planning.first_round_chunks(big, 2) == 6
    assert planning.first_round_chunks(p(d=10, n_r=100, n_s=200), 1) == planning.pilot_chunks(10)
    for other in (p(d=30, n_r=100, n_s=200, memory=2), p(d=30, n_r=100, n_s=200, metric="w2")):
        assert planning.first_round_chunks(other, 1) == planning.pilot_chunks(30)
    c = fresh_stationary_second_moments(100, 100, 900, 0.8, "unbiased")[2] / 100
    np.testing.assert_allclose(planning.fixed_cv_weights(big, 900),
                               [1.0, 1.0 - 1.5 / math.sqrt(c), 0.25 / c**1.5], rtol=1e-14)
    r = ess.estimate(d=100, n_r=100, n_s=900, lam=0.8, store=False)
    assert r.chains == 4 and r.precision_reached


@pytest.mark.slow
def test_interval_coverage_of_four_chain_estimates_at_d_100():
    """At (d, n_r, n_s, lam) = (100, 100, 900, 0.8) an estimate to 1% is 4 warm chains
    with the fixed slopes (a Student-t interval on 3 degrees of freedom): over 60 seeds
    its 95% interval of WD holds the limit (two cold-started estimates to 0.05%, burnt in
    three times longer) at least 51 times. P(Binomial(60, 0.95) <= 50) < 0.2%."""
    q = estimate_request(d=100, n_r=100, n_s=900, lam=0.8, rel_precision=0.0005)
    ref = [ess.solve.estimate_limit(q.params, 1000 + s, q.rel_precision, q.max_chains, 2,
                                    start="cold", burn_in_factor=3.0) for s in range(2)]
    truth = sum(r.wd for r in ref) / 2
    q = estimate_request(d=100, n_r=100, n_s=900, lam=0.8, rel_precision=0.01)
    hits = 0
    for seed in range(60):
        r = ess.solve.estimate_limit(q.params, seed, q.rel_precision, q.max_chains, 2)
        hits += r.wd_ci[0] <= truth <= r.wd_ci[1]
    assert r.chains == 4 and hits >= 51, hits


def test_a_threshold_from_few_chain_evaluations_agrees_with_estimates_beside_it():
    """At d = 30 the threshold's evaluations start with 6 chains (fixed slopes): its
    interval still brackets the fall of n_e / n_r below 1, as direct estimates (other
    seeds) on either side of it show."""
    r = ess.threshold(d=30, n_r=100, lam=0.7, rel_precision=0.02, store=False)
    lo, hi = r.n_s_star_ci
    assert r.n_s_star is not None and 0 < lo <= r.n_s_star <= hi < r.cap
    left = ess.estimate(d=30, n_r=100, n_s=max(1, lo // 2), lam=0.7, seed=1, store=False)
    right = ess.estimate(d=30, n_r=100, n_s=2 * hi, lam=0.7, seed=1, store=False)
    assert left.n_e_over_n_r_ci[0] > 1.0 and right.n_e_over_n_r_ci[1] < 1.0
