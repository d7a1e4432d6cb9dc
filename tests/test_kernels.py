"""Kernels against their slow twins: exact where random numbers can be shared."""

import numpy as np
import pytest

from ess.chains import chunk_rngs
from ess.kernels.distance import METRIC_W2, METRIC_W2SQ, _distance_terms, _tr_sqrt_psd
from ess.kernels.layout import REC_FIELDS
from ess.kernels.random import seed_state
from ess.kernels.sampling import (
    ROWS_MIN_D,
    _bartlett_scatter,
    _chol_upper,
    _draw_group,
    _pool_into,
)
from ess.kernels.warm import WARM_FIELDS
from tests import naive


def _random_spd(rng, d, rank=None):
    rank = d if rank is None else rank
    G = rng.standard_normal((d, rank))
    return G @ G.T + (1e-3 * np.eye(d) if rank == d else 0.0)


@pytest.mark.parametrize("d,rank", [(1, 1), (2, 2), (3, 1), (5, 5), (6, 3), (4, 0)])
def test_chol_upper_reconstructs_semidefinite_matrices(d, rank):
    rng = np.random.default_rng(d * 10 + rank)
    A = _random_spd(rng, d, rank) if rank else np.zeros((d, d))
    U = np.full((d, d), np.nan)
    _chol_upper(A, U)
    assert np.all(np.tril(U, -1) == 0.0)
    assert np.all(np.isfinite(U))
    np.testing.assert_allclose(U.T @ U, A, atol=1e-10 * max(1.0, np.abs(A).max()))


def test_chol_upper_is_the_textbook_factor_bit_for_bit():
    """The row-oriented factor equals the transpose of the column-by-column
    (Cholesky-Banachiewicz) factor of the slow twin exactly, and reads only the
    lower triangle."""
    rng = np.random.default_rng(5)
    for d in (2, 3, 7, 30, ROWS_MIN_D, 97):     # both forms of the loops
        A = _random_spd(rng, d) / d
        U = np.empty((d, d))
        _chol_upper(np.tril(A) + np.triu(np.full((d, d), np.nan), 1), U)
        assert np.array_equal(U, naive.cholesky_lower(A).T)


@pytest.mark.parametrize("d", [2, 5, ROWS_MIN_D, 70])
def test_bartlett_scatter_is_the_triple_loop_bit_for_bit(d):
    """Both forms of the Wishart product (dot products below ``ROWS_MIN_D``,
    rows from there) give the plain triple loop's bits, and the identity
    shortcut gives what multiplying by the identity gives."""
    rng = np.random.default_rng(d)
    A = np.tril(rng.standard_normal((d, d))) + np.diag(rng.uniform(1, 3, d))
    U = np.linalg.cholesky(_random_spd(rng, d) / d).T.copy()
    S, B = np.empty((d, d)), np.empty((d, d))
    _bartlett_scatter(A.copy(), U, False, B, S)
    assert np.array_equal(S, naive.bartlett_scatter(A, U))
    _bartlett_scatter(A.copy(), np.eye(d), True, B, S)
    assert np.array_equal(S, naive.bartlett_scatter(A, np.eye(d)))


def test_chol_upper_of_tiny_collapsed_covariance():
    A = 1e-300 * np.array([[2.0, 1.0], [1.0, 1.0]])
    U = np.empty((2, 2))
    _chol_upper(A, U)
    np.testing.assert_allclose(U.T @ U, A, rtol=1e-10)


@pytest.mark.parametrize("d", [1, 2, 3, 6])
def test_distance_matches_sqrtm(d):
    rng = np.random.default_rng(d)
    for _ in range(5):
        S = _random_spd(rng, d) / d
        Sr = _random_spd(rng, d) / d
        mu, mu_r = rng.standard_normal(d), rng.standard_normal(d)
        Lr = np.linalg.cholesky(Sr)
        W1, W2 = np.empty((d, d)), np.empty((d, d))
        trsr = float(np.trace(Sr))
        want = naive.w2sq(mu, S, mu_r, Sr)
        got, msq, tr = _distance_terms(mu, S, mu_r, Lr, False, trsr, METRIC_W2SQ, W1, W2)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12)
        assert msq == pytest.approx(np.sum((mu - mu_r) ** 2))
        assert tr == pytest.approx(np.trace(S))
        got2, _, _ = _distance_terms(mu, S, mu_r, Lr, False, trsr, METRIC_W2, W1, W2)
        assert got2 == pytest.approx(np.sqrt(want), rel=1e-9)
        # identity shortcut
        wi = naive.w2sq(mu, S, mu_r, np.eye(d))
        gi, _, _ = _distance_terms(mu, S, mu_r, np.eye(d), True, float(d), METRIC_W2SQ, W1, W2)
        assert gi == pytest.approx(wi, rel=1e-9, abs=1e-12)


def test_tr_sqrt_of_singular_matrix():
    v = np.array([1.0, 2.0, 2.0])
    M = np.outer(v, v)
    assert _tr_sqrt_psd(M) == pytest.approx(3.0, rel=1e-7)
    assert _tr_sqrt_psd(np.zeros((3, 3))) == 0.0
    assert _tr_sqrt_psd(M[:2, :2]) == pytest.approx(np.sqrt(5.0), rel=1e-12)


@pytest.mark.parametrize("d", [1, 3])
def test_pool_matches_concatenated_samples(d):
    rng = np.random.default_rng(7)
    xa, xb = rng.standard_normal((5, d)), rng.standard_normal((9, d)) + 2
    def stats(x):
        m = x.mean(0)
        return m, (x - m).T @ (x - m)
    a, Sa = stats(xa)
    b, Sb = stats(xb)
    n = _pool_into(5, a, Sa, 9, b, Sb)
    m, S = stats(np.concatenate([xa, xb]))
    assert n == 14
    np.testing.assert_allclose(a, m, rtol=1e-12)
    np.testing.assert_allclose(Sa, S, rtol=1e-12)


@pytest.mark.parametrize("d,k", [(1, 1), (1, 5), (3, 2), (3, 3), (3, 4), (4, 20)])
def test_draw_group_moments(d, k):
    """Mean and scatter of the sufficient-statistic draw: E S = (k-1) Sigma,
    Var S_ij = (k-1)(Sigma_ij^2 + Sigma_ii Sigma_jj) (Wishart), within 5 standard errors."""
    rng = np.random.default_rng(100 + 10 * d + k)
    Sigma = _random_spd(rng, d) / d
    U = np.linalg.cholesky(Sigma).T.copy()
    m = rng.standard_normal(d)
    R = 40000
    means = np.empty((R, d))
    scat = np.empty((R, d, d))
    A, B = np.empty((d, d)), np.empty((d, d))
    g = seed_state(np.random.SeedSequence(1))
    for r in range(R):
        _draw_group(g, m, U, k, means[r], scat[r], A, B)
    se_m = np.sqrt(np.diag(Sigma) / k / R)
    assert np.all(np.abs(means.mean(0) - m) < 5 * se_m)
    np.testing.assert_allclose(np.cov(means, rowvar=False).reshape(d, d), Sigma / k,
                               atol=5 * np.sqrt(2.0 / R) * np.abs(Sigma).max() / k)
    var_S = (k - 1) * (Sigma**2 + np.outer(np.diag(Sigma), np.diag(Sigma)))
    se_S = np.sqrt(np.maximum(var_S, 1e-300) / R)
    assert np.all(np.abs(scat.mean(0) - (k - 1) * Sigma) <= 5 * se_S + 1e-12)
    if k > 1:
        assert np.all(np.abs(scat.var(0) - var_S) < 0.1 * var_S + 1e-12)


@pytest.mark.parametrize("d", [3, 4, 7, 20, 64, 101])
def test_symmetric_eigenvalues_match_lapack(d):
    from ess.kernels.distance import _sym_eigvals

    rng = np.random.default_rng(d)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    graded = (Q * np.logspace(-10, 0, d)) @ Q.T
    block = np.zeros((d, d))
    block[:2, :2] = [[2.0, 1.0], [1.0, 2.0]]
    block[2:, 2:] = _random_spd(rng, d - 2)
    mats = [_random_spd(rng, d), _random_spd(rng, d, d // 2), np.zeros((d, d)),
            _random_spd(rng, d) - 2.0 * np.eye(d), np.diag(np.arange(d, dtype=float)),
            (graded + graded.T) / 2, np.ones((d, d)), block, np.eye(d) + 1e-9 * graded,
            1e-280 * _random_spd(rng, d), 1e250 * _random_spd(rng, d)]
    for A in mats:
        w = np.empty((2, d))
        _sym_eigvals(A.copy(), w)
        ref = np.linalg.eigvalsh(A)
        np.testing.assert_allclose(np.sort(w[0]), ref, rtol=0,
                                   atol=1e-13 * d * np.abs(ref).max())


CHAIN_CASES = [
    # loop, n_ini, n_r, n_s values, lam, memory, mle, metric, mu_r, sd_r, identity
    (2, 100, 100, [200, 0], 0.9, 1, False, 0, 0.0, 1.0, True),
    (2, 5, 7, [3], 0.0, 3, True, 1, 0.5, 1.7, False),
    (1, 10, 10, [30], 0.8, 2, False, 0, 0.0, 1.0, True),
    (0, 10, 10, [5], 1.0, 1, False, 0, -1.0, 0.3, False),
    (2, 3, 2, [1, 50], 0.7, 40, False, 0, 0.0, 1.0, True),
]


#: Warm starts ``(mu_sd, scale, nu)`` per configuration (:mod:`ess.kernels.warm`):
#: Bartlett with a real ``nu`` (>= d + 1 = 2) and a rounded one below.
WARM_ROWS = ([(0.1, 0.011, 90.5), (0.05, 0.5, 1.4)], [(0.3, 0.2, 5.25), (0.2, 0.3, 3.0)])


@pytest.mark.parametrize("warm", [None, *WARM_ROWS])
@pytest.mark.parametrize("case", CHAIN_CASES)
def test_scalar_d1_chain_is_identical_to_the_general_kernel(case, warm):
    """The d = 1 fast path draws the same variates and does the same arithmetic, from
    the cold start and from warm starts (which only the fresh loop takes)."""
    from ess.kernels.loops import _run_chain, _run_chain_d1, _workspace_d1

    loop, n_ini, n_r, ns, lam, mem, mle, metric, mu, sd, ident = case
    ns = np.array(ns, dtype=np.int64)
    w = (np.empty((0, WARM_FIELDS)) if warm is None
         else np.array(warm[:len(ns)]))

    def d1(*args):
        _run_chain_d1(*args, _workspace_d1(args[6], args[8]), w)

    def general(*args):
        _run_chain(*args, w)

    T = 60
    a, b = np.empty((len(ns), T, REC_FIELDS)), np.empty((len(ns), T, REC_FIELDS))
    for fn, out in ((general, a), (d1, b)):
        fn(*chunk_rngs(1, 0, 0, True), loop, n_ini, n_r, ns, lam,
           min(mem, T), mle, metric, np.array([mu]), np.array([[sd]]), ident, T, 0, 1, out)
    assert np.array_equal(a, b)
    # Recording only generations 7, 10, 13, ... changes nothing else.
    for fn in (general, d1):
        part = np.full((len(ns), len(range(7, T, 3)), REC_FIELDS), np.nan)
        fn(*chunk_rngs(1, 0, 0, True), loop, n_ini, n_r, ns, lam,
           min(mem, T), mle, metric, np.array([mu]), np.array([[sd]]), ident, T, 7, 3, part)
        assert np.array_equal(part, a[:, 7::3])
