"""The loop's statistics against the exact facts of SPEC section 4 (fixed seeds).

Tolerances are stated in standard errors estimated from independent chains.
"""

import numpy as np
import pytest

import ess
from ess.analytic import (
    divisor,
    fresh_moment_step,
    fresh_second_moment_matrix,
    fresh_stationary_moments,
    fresh_stationary_second_moments,
    fully_synthetic_trace_factor,
)
from ess.chains import TRAJ_MEAN_DEV, TRAJ_MU0, TRAJ_TR_SIGMA
from ess.kernels.layout import Q_TR_SIGMA_SQ

#: Statistical comparisons over many chains: `make test-fast` skips them.
pytestmark = pytest.mark.slow

FRESH_CASES = [
    # d, n_r, n_s, lam, cov_estimator
    (1, 10, 20, 0.9, "unbiased"),
    (1, 5, 50, 1.0, "unbiased"),
    (3, 20, 10, 0.5, "unbiased"),
    (5, 4, 8, 0.0, "unbiased"),
    (2, 30, 60, 0.8, "mle"),
    (10, 50, 100, 1.0, "unbiased"),
]


def test_stationary_moments_solve_the_recursion():
    for d, n_r, n_s, lam, cov in FRESH_CASES:
        a, c = fresh_stationary_moments(n_r, n_s, lam, cov, float(d))
        a2, c2 = fresh_moment_step(a, c, n_r, n_s, lam, cov, float(d))
        assert a2 == pytest.approx(a, rel=1e-12) and c2 == pytest.approx(c, rel=1e-12)
    # SPEC's per-dimension form, written out for one case
    n_r, n_s, lam = 10, 20, 0.9
    n, q = 30, 29
    a, c = fresh_stationary_moments(n_r, n_s, lam, "unbiased", 1.0)
    assert a == pytest.approx(n_r / n**2 + n_s * lam / n**2 * c + n_s**2 / n**2 * a)
    assert c == pytest.approx((n_r - 1 + n_s / n) / q + (n_s - 1 + n_r / n) * lam / q * c
                              + n_r * n_s / (n * q) * a)


@pytest.mark.parametrize("case", FRESH_CASES, ids=[str(c) for c in FRESH_CASES])
def test_fresh_loop_stationary_moments(case):
    """Per-chain averages over generations 100..399 (burn-in far past the mixing
    time) of ``|mu|^2`` and ``tr Sigma`` match SPEC section 4 (times ``d``) within 4 s.e."""
    d, n_r, n_s, lam, cov = case
    _, traj = ess.simulate(d=d, n_r=n_r, n_s=n_s, lam=lam, cov_estimator=cov, seed=5,
                           chains=400, generations=400, return_trajectories=True)
    rho = n_s / (n_r + n_s)
    assert rho**100 < 1e-3
    a, c = fresh_stationary_moments(n_r, n_s, lam, cov, float(d))
    for q, want in ((TRAJ_MEAN_DEV, a), (TRAJ_TR_SIGMA, c)):
        per_chain = traj[:, 100:, q].mean(axis=1)
        se = per_chain.std(ddof=1) / np.sqrt(per_chain.size)
        assert abs(per_chain.mean() - want) <= 4 * se, (q, per_chain.mean(), want, se)


def test_second_moment_recursion_contains_the_first_and_its_fixed_point():
    for d, n_r, n_s, lam, cov in FRESH_CASES + [(4, 20, 1, 0.6, "unbiased")]:
        z = fresh_stationary_second_moments(d, n_r, n_s, lam, cov)
        np.testing.assert_allclose(z[1:3], fresh_stationary_moments(n_r, n_s, lam, cov, d),
                                   rtol=1e-12)
        np.testing.assert_allclose(fresh_second_moment_matrix(d, n_r, n_s, lam, cov) @ z, z,
                                   rtol=1e-12)
        # the moments of a distribution: tr S^2 <= (tr S)^2 <= d tr S^2, |mu|^4 >= (|mu|^2)^2
        assert z[3] <= z[4] * (1 + 1e-12) and z[4] <= d * z[3] * (1 + 1e-12)
        assert z[7] >= z[1] ** 2


@pytest.mark.parametrize("cov", ["unbiased", "mle"])
def test_second_moments_without_synthetic_data(cov):
    """n_s = 0: every generation is a fit on n_r real samples, S = W / q with
    W ~ Wishart(n_r - 1, I) independent of mu ~ N(0, I / n_r)."""
    d, n_r = 3, 12
    k, q = n_r - 1, divisor(n_r, cov)
    z = fresh_stationary_second_moments(d, n_r, 0, 0.7, cov)
    want = [1.0, d / n_r, d * k / q, (k * (k + 1) * d + k * d * d) / q**2,
            (2 * k * d + k * k * d * d) / q**2, d * k / (q * n_r), d / n_r * d * k / q,
            (d * d + 2 * d) / n_r**2]
    np.testing.assert_allclose(z, want, rtol=1e-12)


@pytest.mark.parametrize("case", FRESH_CASES, ids=[str(c) for c in FRESH_CASES])
def test_fresh_loop_stationary_tr_sigma_squared(case):
    """The kernels' per-chain averages of ``tr Sigma^2`` over generations 101..400
    match the exact stationary value (the known mean of a control variate) within 4 s.e."""
    from ess.chains import LimitPlan, chunk_size, limit_chunks
    from ess.params import loop_params

    d, n_r, n_s, lam, cov = case
    p = loop_params(d=d, n_r=n_r, n_s=n_s, lam=lam, cov_estimator=cov)
    chunks = -(-400 // chunk_size(d))
    data = limit_chunks(LimitPlan(p, (n_s,), 100, 300, 3), 0, chunks, 2)
    per_chain = data[:, 0, Q_TR_SIGMA_SQ, :].mean(axis=-1)
    want = fresh_stationary_second_moments(d, n_r, n_s, lam, cov)[3]
    se = per_chain.std(ddof=1) / np.sqrt(per_chain.size)
    assert per_chain.size >= 300
    assert abs(per_chain.mean() - want) <= 4 * se, (per_chain.mean(), want, se)


@pytest.mark.parametrize("d,n_s,lam,cov", [(1, 10, 1.0, "unbiased"), (3, 5, 0.7, "unbiased"),
                                           (2, 8, 0.9, "mle")])
def test_fully_synthetic_martingale_and_trace_decay(d, n_s, lam, cov):
    n_ini, T, R = 20, 12, 20000
    _, traj = ess.simulate(d=d, n_r=n_ini, n_s=n_s, lam=lam, loop="fully-synthetic", seed=9,
                           cov_estimator=cov, chains=R, generations=T, mu_r=np.full(d, 0.5),
                           return_trajectories=True)
    mu0 = traj[:, :, TRAJ_MU0]
    # Martingale: E mu_t = mu_r, and increments are uncorrelated with the past.
    for t in range(1, T):
        inc = mu0[:, t] - mu0[:, t - 1]
        se = inc.std(ddof=1) / np.sqrt(R)
        assert abs(inc.mean()) <= 4 * se
        prod = inc * (mu0[:, t - 1] - 0.5)
        assert abs(prod.mean()) <= 4 * prod.std(ddof=1) / np.sqrt(R)
    # E tr Sigma_t = ((n_s - 1) lam / q)^(t - 1) E tr Sigma_1, E tr Sigma_1 = d (n_ini - 1)/q_ini.
    factor = fully_synthetic_trace_factor(n_s, lam, cov)
    start = d * (n_ini - 1) / divisor(n_ini, cov)
    for t in range(T):
        tr = traj[:, t, TRAJ_TR_SIGMA]
        want = start * factor**t
        assert abs(tr.mean() - want) <= 4 * tr.std(ddof=1) / np.sqrt(R), (t, tr.mean(), want)


def test_fully_synthetic_covariance_collapses_even_unbiased():
    _, traj = ess.simulate(d=2, n_r=20, n_s=10, lam=1.0, loop="fully-synthetic", seed=1,
                           chains=200, generations=2000, return_trajectories=True)
    tr = traj[:, -1, TRAJ_TR_SIGMA]
    assert np.all(np.isfinite(tr))
    assert np.median(tr) < 1e-20
    assert traj[:, 0, TRAJ_TR_SIGMA].min() > 1e-3
