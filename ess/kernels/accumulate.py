"""The accumulate loops (SPEC section 1): the training set keeps every batch so far.

Generation 1 is fit on ``n_ini`` real samples, as in every loop. From
generation 2 on, the *pool* is that real set plus every synthetic batch made so
far (``n_s`` samples from each of ``G^1 .. G^{t-1}``, each sample from
``N(mu, lam Sigma)`` of its model; with ``memory = K`` a multinomial split over
the last ``K`` models, as in :mod:`ess.kernels.loops`). Then:

* ``accumulate``: ``G^t`` is fit on the whole pool. The pool enters the fit only
  through its size, mean and scatter, which are pooled with each new batch's
  sufficient statistics (:func:`ess.kernels.sampling._pool_into`): exact, and
  ``O(d^3)`` per generation whatever the pool's size
  (:func:`_run_chain_accumulate`).
* ``accumulate-subsample``: ``G^t`` is fit on a uniform subsample, without
  replacement, of ``min(n_r + n_s, pool size)`` samples of the pool. This path
  is **sample level** (:func:`_run_chain_subsample`): it keeps every sample of
  the pool. No exact sufficient-statistics path exists: a sample chosen at
  generation ``t`` was (or was not) chosen at earlier generations, whose models
  it shaped, so the samples of a batch are not exchangeable given the chain's
  history; the sums over a subsample would need the statistics of every cell of
  the partition of the pool by the set of generations that chose each sample,
  and those cells multiply as ``2^t``. The pool costs ``(n_ini + (T - 1) n_s) d``
  doubles per chain of ``T`` generations (refused beyond the memory limit in
  :func:`ess.plan.check_pool_memory`); a generation costs ``O((n_r + 2 n_s) d^2)``.

Random streams: ``rng_real`` draws the first real set (the same variates as the
other loops' first generation, so loops compared with one seed start from the
same real data: common random numbers) and, in ``accumulate-subsample``, the
subsamples; ``rng_syn`` the synthetic data; ``rng_mix`` the split over past
models (``memory > 1``).

Records are whole trajectories (there is no stationary limit to average over):
every generation, all :data:`ess.kernels.layout.REC_FIELDS` fields, diagnostics
included.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ess.config import JIT
from ess.kernels.distance import _distance_terms
from ess.kernels.layout import (
    REC_DIST,
    REC_FIELDS,
    REC_MEAN_DEV,
    REC_MU0,
    REC_TR_SIGMA,
    REC_TR_SIGMA_SQ,
)
from ess.kernels.loops import (
    _diagnostics_from,
    _sigma_of,
    _smallest_eig,
    _split_buffers,
    _split_synthetic,
    _sum_sq,
    _upper_of,
)
from ess.kernels.random import _next_u64, _normal
from ess.kernels.sampling import _chol_upper, _draw_group, _pool_into

LOOP_ACCUMULATE = 3
LOOP_ACCUMULATE_SUBSAMPLE = 4


@njit(**JIT)
def _record(rec, mu, Sig, U, mu_r, L_r, SR, sr_identity, tr_sr, metric, A, B, ew):
    """Every record field (:mod:`ess.kernels.layout`) of the model ``N(mu, Sig)``,
    diagnostics included, as :func:`ess.kernels.loops._run_chain` records them.

    ``U`` is the upper Cholesky factor of ``Sig`` (the one the chain keeps for its
    next batch), whose pivots give ``log det``. With ``Sigma_r = I`` and ``d >= 3`` the
    distance's eigen-decomposition also gives the smallest eigenvalue
    (:func:`ess.kernels.loops._smallest_eig`): at ``d = 10`` a second one would be
    half a generation's work. ``A``, ``B`` and ``ew`` are work space.
    """
    dist, msq, tr = _distance_terms(mu, Sig, mu_r, L_r, sr_identity, tr_sr, metric, A, B)
    rec[REC_DIST] = dist
    rec[REC_MEAN_DEV] = msq
    rec[REC_TR_SIGMA] = tr
    rec[REC_TR_SIGMA_SQ] = _sum_sq(Sig)
    rec[REC_MU0] = mu[0]
    _diagnostics_from(Sig, SR, U, _smallest_eig(Sig, sr_identity, B, A, ew), rec)


@njit(**JIT)
def _run_chain_accumulate(rng_real, rng_syn, rng_mix, n_ini, n_s, lam, memory, mle, metric,
                          mu_r, L_r, sr_identity, n_gen, traj):
    """One chain of the ``accumulate`` loop on sufficient statistics.

    The pool's size ``N``, mean and scatter are kept; each generation's batch
    is drawn as groups (:func:`ess.kernels.sampling._draw_group`, one per past
    model of the split) and pooled in. ``G^t`` is ``N(mean, scatter / q)`` with
    ``q = N - 1`` (or ``N``, MLE). At generation 2 the pool is the first real set
    plus one batch, the augmentation loop's training set: with the same random
    streams the two loops agree there bit for bit.

    Parameters
    ----------
    rng_real, rng_syn : ndarray of uint64, shape (4,)
        Generator states of the real and of the synthetic data.
    rng_mix : numpy.random.Generator
        Stream of the split over past models (``memory > 1``).
    n_ini, n_s : int
        Size of the real set (generation 1's training set) and of each batch.
    lam : float
        Sampling bias.
    memory : int
        Past models the batches come from (``n_gen`` for "all").
    mle : bool
        Covariance divisor ``N`` (else ``N - 1``).
    metric : int
        Distance metric code.
    mu_r, L_r : ndarray
        Reference mean and Cholesky factor of ``Sigma_r``.
    sr_identity : bool
        ``Sigma_r`` is the identity.
    n_gen : int
        Generations, counting the first.
    traj : ndarray, shape (n_gen, REC_FIELDS)
        Output: every generation's record.
    """
    d = mu_r.shape[0]
    K = memory
    tr_sr = 0.0
    for i in range(d):
        for j in range(i + 1):
            tr_sr += L_r[i, j] * L_r[i, j]
    SR = _sigma_of(L_r)
    sq_lam = np.sqrt(lam)
    U_r = _upper_of(L_r)
    ring_mu = np.empty((K, d))
    ring_U = np.empty((K, d, d))
    ns = np.empty(1, dtype=np.int64)
    ns[0] = n_s
    idx, cnt, tmp = _split_buffers(ns, K)
    pool_m = np.empty(d)
    pool_S = np.empty((d, d))
    Sig = np.empty((d, d))
    g_m = np.empty(d)
    g_S = np.empty((d, d))
    Uw = np.empty((d, d))
    A = np.empty((d, d))
    B = np.empty((d, d))
    ew = np.empty((2, d))

    _draw_group(rng_real, mu_r, U_r, n_ini, pool_m, pool_S, A, B, sr_identity)
    n_pool = n_ini
    newest = K - 1     # ring slot of the newest model (none yet)
    for t in range(n_gen):
        if t > 0:
            n_groups = _split_synthetic(rng_mix, n_s, min(t, K), idx, cnt, tmp)
            for gi in range(n_groups):
                slot = newest - idx[gi]
                if slot < 0:
                    slot += K
                _draw_group(rng_syn, ring_mu[slot], ring_U[slot], cnt[gi], g_m, g_S, A, B)
                n_pool = _pool_into(n_pool, pool_m, pool_S, cnt[gi], g_m, g_S)
        q = n_pool if mle else n_pool - 1
        for i in range(d):
            for j in range(d):
                Sig[i, j] = pool_S[i, j] / q
        _chol_upper(Sig, Uw)
        _record(traj[t], pool_m, Sig, Uw, mu_r, L_r, SR, sr_identity, tr_sr, metric, A, B, ew)
        newest = newest + 1 if newest + 1 < K else 0
        for i in range(d):
            ring_mu[newest, i] = pool_m[i]
            for j in range(d):
                ring_U[newest, i, j] = sq_lam * Uw[i, j]


@njit(**JIT)
def _randint(st, k):
    """A uniform integer in ``[0, k)``, ``k >= 1``, exactly: a 64-bit output of the
    generator, redrawn while it falls in the incomplete last block of ``k``
    (at most ``2^64 mod k`` of the ``2^64`` values; rare)."""
    uk = np.uint64(k)
    floor = (np.uint64(0) - uk) % uk       # 2^64 mod k: values below it are redrawn
    while True:
        r = _next_u64(st)
        if r >= floor:
            return np.int64(r % uk)


@njit(**JIT)
def _draw_samples(rng, m, U, identity, k, X, start, z):
    """``k`` samples of ``N(m, U^T U)`` into rows ``start .. start + k - 1`` of ``X``:
    ``x = m + U^T z`` with ``z ~ N(0, I)``, accumulated row by row of ``U``
    (``U`` upper triangular, may be singular; skipped when ``identity``)."""
    d = m.shape[0]
    for s in range(start, start + k):
        for i in range(d):
            z[i] = _normal(rng)
        x = X[s]
        for i in range(d):
            x[i] = m[i]
        if identity:
            for i in range(d):
                x[i] += z[i]
        else:
            for j in range(d):
                zj = z[j]
                row = U[j]
                for i in range(j, d):
                    x[i] += zj * row[i]


@njit(**JIT)
def _fit_rows(X, rows, m, mu, S, c, mle):
    """Sample mean and covariance of the rows ``X[rows[:m]]`` (divisor ``m - 1``,
    or ``m`` for the MLE), two passes: the mean, then the scatter of the
    deviations (lower triangle by rows, mirrored); ``c`` is work space."""
    d = X.shape[1]
    for i in range(d):
        mu[i] = 0.0
    for s in range(m):
        x = X[rows[s]]
        for i in range(d):
            mu[i] += x[i]
    for i in range(d):
        mu[i] /= m
    for i in range(d):
        for j in range(d):
            S[i, j] = 0.0
    for s in range(m):
        x = X[rows[s]]
        for i in range(d):
            c[i] = x[i] - mu[i]
        for i in range(d):
            ci = c[i]
            Si = S[i]
            for j in range(i + 1):
                Si[j] += ci * c[j]
    q = m if mle else m - 1
    for i in range(d):
        for j in range(i + 1):
            v = S[i, j] / q
            S[i, j] = v
            S[j, i] = v


@njit(**JIT)
def _run_chain_subsample(rng_real, rng_syn, rng_mix, n_ini, n_r, n_s, lam, memory, mle, metric,
                         mu_r, L_r, sr_identity, n_gen, traj, X, perm):
    """One chain of the ``accumulate-subsample`` loop, sample by sample.

    Generation 1 is fit on the ``n_ini`` real samples. Each later generation
    appends its batch to the pool ``X`` and fits on ``m = min(n_r + n_s, N)`` of
    the ``N`` pool samples chosen uniformly without replacement: a partial
    Fisher-Yates shuffle of the first ``m`` entries of ``perm``, which always
    holds a permutation of the pool's row numbers (so the first ``m`` after the
    shuffle are a uniform ``m``-subset whatever order earlier shuffles left).
    When ``m = N`` the whole pool is used and no random number is drawn.

    Parameters
    ----------
    rng_real, rng_syn, rng_mix, n_ini, lam, memory, mle, metric, mu_r, L_r, sr_identity, n_gen
        As in :func:`_run_chain_accumulate`; ``rng_real`` also draws the subsamples.
    n_r, n_s : int
        The fit's size ``n_r + n_s`` (at most the pool) and each batch's size.
    traj : ndarray, shape (n_gen, REC_FIELDS)
        Output: every generation's record.
    X : ndarray, shape (>= n_ini + (n_gen - 1) n_s, d)
        Work space: the pool.
    perm : ndarray of int64, shape (>= n_ini + (n_gen - 1) n_s,)
        Work space: the pool's row numbers.
    """
    d = mu_r.shape[0]
    K = memory
    m_fit = n_r + n_s
    tr_sr = 0.0
    for i in range(d):
        for j in range(i + 1):
            tr_sr += L_r[i, j] * L_r[i, j]
    SR = _sigma_of(L_r)
    sq_lam = np.sqrt(lam)
    U_r = _upper_of(L_r)
    ring_mu = np.empty((K, d))
    ring_U = np.empty((K, d, d))
    ns = np.empty(1, dtype=np.int64)
    ns[0] = n_s
    idx, cnt, tmp = _split_buffers(ns, K)
    mu = np.empty(d)
    Sig = np.empty((d, d))
    Uw = np.empty((d, d))
    A = np.empty((d, d))
    B = np.empty((d, d))
    ew = np.empty((2, d))
    z = np.empty(d)

    _draw_samples(rng_real, mu_r, U_r, sr_identity, n_ini, X, 0, z)
    N = n_ini
    for i in range(N):
        perm[i] = i
    newest = K - 1
    for t in range(n_gen):
        m = N
        if t > 0:
            n_groups = _split_synthetic(rng_mix, n_s, min(t, K), idx, cnt, tmp)
            for gi in range(n_groups):
                slot = newest - idx[gi]
                if slot < 0:
                    slot += K
                _draw_samples(rng_syn, ring_mu[slot], ring_U[slot], False, cnt[gi], X, N, z)
                for s in range(N, N + cnt[gi]):
                    perm[s] = s
                N += cnt[gi]
            m = min(m_fit, N)
            if m < N:
                for i in range(m):
                    j = i + _randint(rng_real, N - i)
                    tmp_i = perm[i]
                    perm[i] = perm[j]
                    perm[j] = tmp_i
        _fit_rows(X, perm, m, mu, Sig, z, mle)
        _chol_upper(Sig, Uw)
        _record(traj[t], mu, Sig, Uw, mu_r, L_r, SR, sr_identity, tr_sr, metric, A, B, ew)
        newest = newest + 1 if newest + 1 < K else 0
        for i in range(d):
            ring_mu[newest, i] = mu[i]
            for j in range(d):
                ring_U[newest, i, j] = sq_lam * Uw[i, j]


@njit(**JIT)
def _accumulate_chunk(rng_real, rng_syn, rng_mix, n_chains, loop, n_ini, n_r, n_s, lam, memory,
                      mle, metric, mu_r, L_r, sr_identity, n_gen):
    """Whole trajectories of ``n_chains`` chains of an accumulate loop.

    ``loop`` is ``LOOP_ACCUMULATE`` (:func:`_run_chain_accumulate`) or
    ``LOOP_ACCUMULATE_SUBSAMPLE`` (:func:`_run_chain_subsample`, whose pool is
    allocated once per chunk and reused by its chains).

    Returns
    -------
    ndarray, shape (n_chains, n_gen, REC_FIELDS)
        Every generation's record (fields ``REC_*`` of :mod:`ess.kernels.layout`).
    """
    d = mu_r.shape[0]
    out = np.empty((n_chains, n_gen, REC_FIELDS))
    if loop == LOOP_ACCUMULATE:
        for c in range(n_chains):
            _run_chain_accumulate(rng_real, rng_syn, rng_mix, n_ini, n_s, lam, memory, mle,
                                  metric, mu_r, L_r, sr_identity, n_gen, out[c])
        return out
    size = n_ini + (n_gen - 1) * n_s
    X = np.empty((size, d))
    perm = np.empty(size, dtype=np.int64)
    for c in range(n_chains):
        _run_chain_subsample(rng_real, rng_syn, rng_mix, n_ini, n_r, n_s, lam, memory, mle,
                             metric, mu_r, L_r, sr_identity, n_gen, out[c], X, perm)
    return out
