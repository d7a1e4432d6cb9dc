"""The sufficient-statistic path and the sample-level path agree in distribution.

For each configuration, ``R`` independent chains of each path are compared at
every generation: means of ``dist``, ``|mu - mu_r|^2``, ``tr Sigma`` within
4.5 standard errors (Welch), and a two-sample Kolmogorov-Smirnov test of
``dist`` at the last generation at level 1e-3. Fixed seeds.
"""

import numpy as np
import pytest
from scipy import stats

import ess
from ess.chains import TRAJ_DIST, TRAJ_MEAN_DEV, TRAJ_TR_SIGMA
from tests import naive

#: Statistical comparisons over many chains: `make test-fast` skips them.
pytestmark = pytest.mark.slow

CASES = [
    # loop, d, n_ini, n_r, n_s, lam, memory, cov_estimator, sigma_r
    ("fresh", 1, 5, 5, 10, 0.9, 1, "unbiased", None),
    ("fresh", 3, 2, 2, 2, 1.0, 1, "unbiased", None),          # n < d
    ("fresh", 4, 3, 3, 1, 0.0, 1, "unbiased", None),          # lam = 0, n < d
    ("fresh", 2, 40, 4, 6, 0.7, 1, "mle", [[2.0, 0.6], [0.6, 0.5]]),
    ("fully-synthetic", 2, 6, 6, 3, 0.8, 1, "unbiased", None),
    ("augmentation", 2, 4, 4, 6, 1.0, 2, "unbiased", None),
    ("fresh", 2, 3, 3, 5, 0.9, "all", "unbiased", None),
]
R = 1500
N_GEN = 4


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-d{c[1]}-ns{c[4]}-lam{c[5]}-mem{c[6]}"
                                             for c in CASES])
def test_sample_level_and_sufficient_statistics_agree(case):
    loop, d, n_ini, n_r, n_s, lam, memory, cov, sigma_r = case
    _, fast = ess.simulate(d=d, n_r=n_r, n_s=n_s, lam=lam, n_ini=n_ini, loop=loop,
                           memory=memory, cov_estimator=cov, sigma_r=sigma_r, seed=3, chains=R,
                           generations=N_GEN, n_jobs=2, return_trajectories=True)
    rng = np.random.default_rng(11)
    Sr = np.eye(d) if sigma_r is None else np.asarray(sigma_r)
    slow = np.array([naive.chain(rng, loop, n_ini, n_r, n_s, lam, memory, cov == "mle",
                                 np.zeros(d), Sr, N_GEN) for _ in range(R)])
    for t in range(N_GEN):
        for q in (TRAJ_DIST, TRAJ_MEAN_DEV, TRAJ_TR_SIGMA):
            a, b = fast[:, t, q], slow[:, t, q]
            se = np.sqrt(a.var(ddof=1) / R + b.var(ddof=1) / R)
            assert abs(a.mean() - b.mean()) <= 4.5 * se + 1e-12, (t, q, a.mean(), b.mean(), se)
    p = stats.ks_2samp(fast[:, -1, TRAJ_DIST], slow[:, -1, TRAJ_DIST]).pvalue
    assert p > 1e-3


ACCUMULATE_CASES = [
    # loop, d, n_ini, n_r, n_s, lam, memory, cov_estimator, sigma_r
    ("accumulate", 1, 5, 5, 4, 0.8, 1, "unbiased", None),
    ("accumulate", 3, 6, 6, 3, 1.0, 2, "mle", [[2.0, 0.6, 0.0], [0.6, 0.5, 0.1],
                                                [0.0, 0.1, 1.0]]),
    ("accumulate", 2, 4, 4, 2, 0.0, 1, "unbiased", None),               # lam = 0
    ("accumulate-subsample", 1, 6, 3, 3, 1.0, 1, "mle", None),
    ("accumulate-subsample", 2, 4, 4, 3, 0.9, 1, "unbiased", [[2.0, 0.6], [0.6, 0.5]]),
    ("accumulate-subsample", 3, 8, 4, 4, 0.7, 2, "unbiased", None),
]
ACC_GEN = 6


@pytest.mark.parametrize("case", ACCUMULATE_CASES,
                         ids=[f"{c[0]}-d{c[1]}-ns{c[4]}-lam{c[5]}-mem{c[6]}"
                              for c in ACCUMULATE_CASES])
def test_accumulate_loops_agree_with_their_sample_level_twin(case):
    """The accumulate loops' kernels (sufficient statistics for ``accumulate``, the
    kernel's own pool for ``accumulate-subsample``) against tests/naive.py, which keeps
    every sample in a list and fits with ``np.cov``: at each of 6 generations (the
    subsample cases subsample from generation 3 or 4 on), the means of the distance,
    ``|mu - mu_r|^2``, ``tr Sigma`` and the diagnostics (``log det Sigma``, ``||Sigma -
    Sigma_r||_F``, smallest eigenvalue) within 4.5 standard errors (Welch), and a
    two-sample Kolmogorov-Smirnov test of the distance and of ``log det Sigma`` at the
    last generation at level 1e-3. Fixed seeds."""
    from ess.chains import TRAJ_FROB_DEV, TRAJ_LOG_DET, TRAJ_MIN_EIG

    loop, d, n_ini, n_r, n_s, lam, memory, cov, sigma_r = case
    _, fast = ess.simulate(d=d, n_r=n_r, n_s=n_s, lam=lam, n_ini=n_ini, loop=loop,
                           memory=memory, cov_estimator=cov, sigma_r=sigma_r, seed=3, chains=R,
                           generations=ACC_GEN, n_jobs=2, return_trajectories=True)
    rng = np.random.default_rng(12)
    Sr = np.eye(d) if sigma_r is None else np.asarray(sigma_r)
    slow = np.array([naive.chain(rng, loop, n_ini, n_r, n_s, lam, memory, cov == "mle",
                                 np.zeros(d), Sr, ACC_GEN) for _ in range(R)])
    for t in range(ACC_GEN):
        for q in (TRAJ_DIST, TRAJ_MEAN_DEV, TRAJ_TR_SIGMA, TRAJ_LOG_DET, TRAJ_FROB_DEV,
                  TRAJ_MIN_EIG):
            a, b = fast[:, t, q], slow[:, t, q]
            assert np.all(np.isfinite(a)) and np.all(np.isfinite(b)), (t, q)
            se = np.sqrt(a.var(ddof=1) / R + b.var(ddof=1) / R)
            assert abs(a.mean() - b.mean()) <= 4.5 * se + 1e-12, (t, q, a.mean(), b.mean(), se)
    for q in (TRAJ_DIST, TRAJ_LOG_DET):
        assert stats.ks_2samp(fast[:, -1, q], slow[:, -1, q]).pvalue > 1e-3, q
