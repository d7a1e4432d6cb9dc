"""The BLAS/LAPACK path of the kernels (from ``d = LAPACK_MIN_D``): its pieces against
the plain loops and NumPy at any ``d``, whole chains against the sample-level twin in
distribution, and the same numbers for any ``n_jobs`` and BLAS thread count.

Statistical comparisons: means within 4.5 standard errors (Welch) and a two-sample
Kolmogorov-Smirnov test at level 1e-3, fixed seeds, as in ``test_paths.py``.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

import ess
from ess.blas import single_thread
from ess.chains import TRAJ_DIST, TRAJ_MEAN_DEV, TRAJ_TR_SIGMA
from ess.config import LAPACK_MIN_D
from ess.kernels import lapack
from ess.kernels.distance import _distance_terms
from ess.kernels.random import _normal_call, seed_state
from ess.kernels.sampling import _chol_upper, _draw_group, _draw_group_blas
from tests import naive


def _spd(rng, d, rank=None):
    G = rng.standard_normal((d, rank or d))
    return G @ G.T / d


@pytest.mark.parametrize("d", [1, 2, 5, 64, 65, 130, 200])
def test_blocked_cholesky_factors_semidefinite_matrices(d):
    """``U^T U = A`` with zeros below the diagonal, for full and half rank; the
    textbook factor (NumPy's) up to rounding for a well-conditioned ``A``; the zero
    matrix gives 0."""
    rng = np.random.default_rng(d)
    for rank in (d, max(1, d // 2)):
        A = _spd(rng, d, rank)
        U = np.full((d, d), np.nan)
        lapack._chol_upper_blocked(A, U, A.diagonal().max() * 1e-13 * d, 64)
        assert np.all(np.tril(U, -1) == 0)
        np.testing.assert_allclose(U.T @ U, A, rtol=0, atol=1e-12 * np.abs(A).max())
    A = _spd(rng, d) + np.eye(d)     # condition number below about 5
    lapack._chol_upper_blocked(A, U, A.diagonal().max() * 1e-13 * d, 64)
    np.testing.assert_allclose(U, np.linalg.cholesky(A).T, rtol=1e-12, atol=1e-13)
    U = np.full((d, d), np.nan)
    lapack._chol_upper_blocked(np.zeros((d, d)), U, 0.0, 64)
    assert np.all(U == 0)


def test_cholesky_switches_to_blocks_at_lapack_min_d():
    """``_chol_upper`` is the blocked factor from ``LAPACK_MIN_D`` on, and handles a
    collapsed (rank-one) covariance there too."""
    rng = np.random.default_rng(1)
    d = LAPACK_MIN_D
    A = _spd(rng, d)
    U, V = np.empty((d, d)), np.empty((d, d))
    _chol_upper(A, U)
    lapack._chol_upper_blocked(A, V, A.diagonal().max() * 1e-13 * d, lapack.CHOL_BLOCK)
    assert np.array_equal(U, V)
    v = rng.standard_normal(d)
    _chol_upper(np.outer(v, v), U)
    np.testing.assert_allclose(U.T @ U, np.outer(v, v), atol=1e-12 * v @ v)


@pytest.mark.parametrize("d", [3, 20, 60])
@pytest.mark.parametrize("identity", [False, True])
def test_blas_group_draw_is_the_loop_draw(d, identity):
    """Same generator state, same inputs: the BLAS draw uses the same variates in the
    same order as the loops (same final state), the same mean bit for bit, and the
    same scatter up to rounding; for the Bartlett (k - 1 >= d) and the Gaussian-matrix
    (k - 1 < d) forms and a single sample."""
    rng = np.random.default_rng(d)
    U = np.eye(d) if identity else np.linalg.cholesky(_spd(rng, d) + np.eye(d)).T.copy()
    m = rng.standard_normal(d)
    for k in (1, 2, max(2, d // 2), d + 1, 3 * d):
        a, b = seed_state(np.random.SeedSequence(k)), seed_state(np.random.SeedSequence(k))
        mean_a, S_a, A, B = np.empty(d), np.empty((d, d)), np.empty((d, d)), np.empty((d, d))
        _draw_group(a, m, U, k, mean_a, S_a, A, B, identity)      # the loops (d < switch)
        mean_b, S_b, W = np.empty(d), np.empty((d, d)), np.full((d, d), np.nan)
        for i in range(d):
            W[0, i] = _normal_call(b)
        _draw_group_blas(b, m, U, k, mean_b, S_b, W, identity)
        assert np.array_equal(a, b), k
        assert np.array_equal(mean_a, mean_b), k
        np.testing.assert_allclose(S_b, S_a, rtol=1e-12, atol=1e-12 * np.abs(S_a).max())
        assert np.array_equal(S_b, S_b.T)


@pytest.mark.parametrize("d", [3, 20, 130])
def test_lapack_eigenvalues_match_numpy(d):
    """Hard matrices (from ``test_kernels``): graded, singular, zero, tiny, huge."""
    rng = np.random.default_rng(d)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    graded = (Q * np.logspace(-10, 0, d)) @ Q.T
    mats = [_spd(rng, d), _spd(rng, d, d // 2), np.zeros((d, d)), _spd(rng, d) - 2 * np.eye(d),
            (graded + graded.T) / 2, np.ones((d, d)), 1e-280 * _spd(rng, d),
            1e250 * _spd(rng, d)]
    for A in mats:
        w = np.empty(d)
        lapack._sym_eigvals_lapack(A.copy(), w)
        ref = np.linalg.eigvalsh(A)
        np.testing.assert_allclose(np.sort(w), ref, rtol=0, atol=1e-13 * d * np.abs(ref).max())


@pytest.mark.parametrize("d", [LAPACK_MIN_D, 150])
def test_large_d_distance_matches_sqrtm(d):
    """The distance on the LAPACK path against SciPy's matrix square roots, for the
    identity and a general ``Sigma_r``, a full-rank and a singular fit.

    Full rank: within 1e-9 relative. Rank ``r < d``: both sides compute each of the
    ``d - r`` zero eigenvalues of ``M = Sigma_r^{1/2} Sigma Sigma_r^{1/2}`` to within
    about ``eps d |M|``, whose square roots (up to ``sqrt(eps d |M|)`` each, twice in
    the distance) bound the difference."""
    rng = np.random.default_rng(d)
    eps = np.finfo(float).eps
    for Sr in (np.eye(d), _spd(rng, d) + 0.1 * np.eye(d)):
        L_r = np.linalg.cholesky(Sr)
        for rank in (d, d // 3):
            S = _spd(rng, d, rank)
            mu, mu_r = rng.standard_normal(d), rng.standard_normal(d)
            W1, W2 = np.empty((d, d)), np.empty((d, d))
            ident = bool(np.array_equal(Sr, np.eye(d)))
            got, msq, tr = _distance_terms(mu, S, mu_r, L_r, ident, np.trace(Sr), 0, W1, W2)
            want = naive.w2sq(mu, S, mu_r, Sr)
            norm = np.linalg.norm(L_r.T @ S @ L_r, 2)
            assert got == pytest.approx(want, rel=1e-9,
                                        abs=4 * (d - rank) * np.sqrt(eps * d * norm))
            assert msq == pytest.approx(np.sum((mu - mu_r) ** 2)) and tr == pytest.approx(
                np.trace(S))


# loop, d, n_ini, n_r, n_s, lam, sigma_r (None: identity; "random": a random SPD matrix)
CASES = [
    ("fresh", LAPACK_MIN_D, 30, 30, 50, 0.8, None),        # n < d: singular fits, G G^T draws
    ("fresh", LAPACK_MIN_D + 2, 300, 300, 300, 0.9, "random"),   # Bartlett draws, Sigma_r != I
    ("fully-synthetic", LAPACK_MIN_D, 200, 200, 150, 1.0, None),  # collapsing
]
R = 150
N_GEN = 3


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-d{c[1]}-ns{c[4]}" for c in CASES])
def test_large_d_chains_agree_with_the_sample_level_twin(case):
    loop, d, n_ini, n_r, n_s, lam, sigma = case
    Sr = np.eye(d)
    if sigma == "random":
        Sr = _spd(np.random.default_rng(9), d) + 0.5 * np.eye(d)
    _, fast = ess.simulate(d=d, n_r=n_r, n_s=n_s, lam=lam, n_ini=n_ini, loop=loop,
                           sigma_r=None if sigma is None else Sr, seed=4, chains=R,
                           generations=N_GEN, n_jobs=2, return_trajectories=True)
    rng = np.random.default_rng(12)
    with single_thread():    # NumPy's BLAS threads would fight the machine's other work
        slow = np.array([naive.chain(rng, loop, n_ini, n_r, n_s, lam, 1, False, np.zeros(d),
                                     Sr, N_GEN) for _ in range(R)])
    for t in range(N_GEN):
        for q in (TRAJ_DIST, TRAJ_MEAN_DEV, TRAJ_TR_SIGMA):
            a, b = fast[:, t, q], slow[:, t, q]
            se = np.sqrt(a.var(ddof=1) / R + b.var(ddof=1) / R)
            assert abs(a.mean() - b.mean()) <= 4.5 * se + 1e-12, (t, q, a.mean(), b.mean(), se)
    assert stats.ks_2samp(fast[:, -1, TRAJ_DIST], slow[:, -1, TRAJ_DIST]).pvalue > 1e-3


def test_large_d_reference_curve_matches_sample_level_fits():
    """``f(n)`` at ``d = LAPACK_MIN_D`` against the mean distance of fits on ``n``
    samples drawn one by one (4.5 combined standard errors); decreasing in ``n``."""
    d, n, R2 = LAPACK_MIN_D, 200, 60
    c = ess.reference_curve([100, n, 400], d=d, rel_precision=0.05)
    assert c.f[0] > c.f[1] > c.f[2]
    assert c.f_se[1] < 0.002 * c.f[1]
    rng = np.random.default_rng(3)
    vals = []
    with single_thread():
        for _ in range(R2):
            mu, S = naive.fit(rng.standard_normal((n, d)), False)
            vals.append(naive.w2sq(mu, S, np.zeros(d), np.eye(d)))
    se = np.hypot(np.std(vals, ddof=1) / np.sqrt(R2), c.f_se[1])
    assert abs(np.mean(vals) - c.f[1]) <= 4.5 * se


#: A large-d estimate and a simulate, printed as JSON (times left out).
LARGE_D_RUN = f"""
import json, ess
e = ess.estimate(d={LAPACK_MIN_D}, n_r=60, n_s=90, lam=0.9, rel_precision=0.1, store=False,
                 n_jobs={{jobs}}).to_dict()
e.pop("seconds")
s = ess.simulate(d={LAPACK_MIN_D}, n_r=60, n_s=90, lam=0.9, chains=4, generations=3,
                 sigma_r=[1.0 + (i % 3) for i in range({LAPACK_MIN_D})], n_jobs={{jobs}})
print(json.dumps([e, s.rows]))
"""


def test_large_d_numbers_do_not_depend_on_jobs_or_blas_threads(tmp_path):
    """Bit for bit: one BLAS thread or two (``OPENBLAS_NUM_THREADS``, the BLAS that
    SciPy ships and the kernels call), ``n_jobs`` 1 or 2."""
    out = []
    for threads, jobs in (("1", 1), ("2", 2), ("2", 1)):
        env = dict(os.environ, OPENBLAS_NUM_THREADS=threads, OMP_NUM_THREADS=threads,
                   ESS_CACHE_DIR=str(tmp_path / threads),   # the reference curve afresh
                   NUMBA_CACHE_DIR=str(ess.config.kernel_cache_root()))   # not the kernels
        run = subprocess.run([sys.executable, "-c", LARGE_D_RUN.format(jobs=jobs)], env=env,
                             capture_output=True, text=True, timeout=600, check=True)
        out.append(json.loads(run.stdout))
    assert out[0] == out[1] == out[2]


def test_serve_accepts_max_d_up_to_2048():
    """`ess serve --max-d` takes every d the package computes (its parser and the service's
    limits), and refuses one more (tests/test_service.py)."""
    from ess.cli import build_parser
    from ess.limits import Limits

    args = build_parser().parse_args(["serve", "--max-d", str(ess.config.MAX_D)])
    assert ess.config.MAX_D == 2048
    assert Limits(max_d=args.max_d).checked().max_d == 2048
    with pytest.raises(ess.ParameterError, match="max_d"):
        Limits(max_d="2049").checked()
