"""One chain of the autophagous Gaussian loop, on sufficient statistics.

Every generation costs ``O(d^3)`` whatever ``n_r`` and ``n_s`` (SPEC section 1).
Three random streams feed a chain: ``rng_real`` draws the real data and
``rng_syn`` the synthetic data (kernel generator states, :mod:`ess.kernels.random`),
so that configurations run in lockstep (several ``n_s`` for one chain) see
exactly the same real data: common random numbers; ``rng_mix``, a NumPy
``Generator``, draws the split of the synthetic samples over past models
(``memory > 1`` only).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ess.config import JIT
from ess.kernels.distance import METRIC_W2, _distance_terms, _sym_eigvals
from ess.kernels.layout import (
    HALVES,
    Q_DIST,
    Q_MEAN_DEV,
    Q_TR_SIGMA,
    Q_TR_SIGMA_SQ,
    QUANTITIES,
    REC_DIAGNOSTICS,
    REC_DIST,
    REC_FIELDS,
    REC_FROB_DEV,
    REC_LOG_DET,
    REC_MEAN_DEV,
    REC_MIN_EIG,
    REC_MU0,
    REC_TR_SIGMA,
    REC_TR_SIGMA_SQ,
)
from ess.kernels.random import _chi2_consts
from ess.kernels.sampling import _chol_upper, _draw_group, _group_d1, _pool_into
from ess.kernels.warm import (
    WARM_FIELDS,
    WARM_MU_SD,
    WARM_NU,
    WARM_SCALE,
    _warm_draw,
    _warm_draw_d1,
)

LOOP_FULLY_SYNTHETIC = 0
LOOP_AUGMENTATION = 1
LOOP_FRESH = 2


@njit(**JIT)
def _split_synthetic(rng, ns, n_avail, idx, cnt, tmp):
    """Multinomial split of ``ns`` samples over ``n_avail`` equally likely past models.

    Sequential binomials when ``ns >= n_avail`` (one per model), else ``ns``
    uniform model draws counted after sorting, so the cost is ``O(min(ns,
    n_avail))`` either way.

    Returns
    -------
    int
        Number of groups ``g``; ``idx[:g]`` are model offsets (0 = newest) and
        ``cnt[:g]`` their sample counts.
    """
    g = 0
    if ns == 0:
        return 0
    if ns >= n_avail:
        remaining = ns
        for j in range(n_avail):
            if remaining == 0:
                break
            if j == n_avail - 1:
                kj = remaining
            else:
                kj = rng.binomial(remaining, 1.0 / (n_avail - j))
            remaining -= kj
            if kj > 0:
                idx[g] = j
                cnt[g] = kj
                g += 1
        return g
    for i in range(ns):
        tmp[i] = rng.integers(0, n_avail)
    tmp[:ns].sort()
    for i in range(ns):
        if g > 0 and idx[g - 1] == tmp[i]:
            cnt[g - 1] += 1
        else:
            idx[g] = tmp[i]
            cnt[g] = 1
            g += 1
    return g


@njit(**JIT)
def _split_buffers(n_s_values, K):
    """Work space of :func:`_split_synthetic`: at most ``min(max n_s, K)`` groups."""
    size = min(n_s_values.max(), K) + 1
    return (np.empty(size, dtype=np.int64), np.empty(size, dtype=np.int64),
            np.empty(size, dtype=np.int64))


@njit(**JIT)
def _sum_sq(S):
    """Sum of the squared entries: ``tr S^2`` for a symmetric ``S``."""
    acc = 0.0
    for i in range(S.shape[0]):
        for j in range(S.shape[1]):
            acc += S[i, j] * S[i, j]
    return acc


@njit(**JIT)
def _sigma_of(L):
    """``L L^T`` for a lower-triangular ``L``: ``Sigma_r`` from its Cholesky factor."""
    d = L.shape[0]
    S = np.empty((d, d))
    for i in range(d):
        for j in range(i + 1):
            acc = 0.0
            for c in range(j + 1):
                acc += L[i, c] * L[j, c]
            S[i, j] = acc
            S[j, i] = acc
    return S


@njit(**JIT)
def _frob_dev(Sig, SR):
    """``||Sigma - Sigma_r||_F``."""
    d = Sig.shape[0]
    fro = 0.0
    for i in range(d):
        for j in range(d):
            e = Sig[i, j] - SR[i, j]
            fro += e * e
    return np.sqrt(fro)


@njit(**JIT)
def _log_det_chol(U):
    """``log det Sigma`` from the upper Cholesky factor ``U`` of ``Sigma``
    (:func:`ess.kernels.sampling._chol_upper`): twice the sum of the logarithms of
    its pivots, ``-inf`` when one is zero (singular to working precision)."""
    ld = 0.0
    for i in range(U.shape[0]):
        if U[i, i] > 0.0:
            ld += 2.0 * np.log(U[i, i])
        else:
            return -np.inf
    return ld


@njit(**JIT)
def _min_eig(Sig, W, ew):
    """The smallest eigenvalue of ``Sigma`` (``d >= 2``) by
    :func:`ess.kernels.distance._sym_eigvals` on a copy (``W``, ``ew`` work space)."""
    d = Sig.shape[0]
    for i in range(d):
        for j in range(d):
            W[i, j] = Sig[i, j]
    _sym_eigvals(W, ew)
    lo = ew[0, 0]
    for i in range(1, d):
        if ew[0, i] < lo:
            lo = ew[0, i]
    return lo


@njit(**JIT)
def _smallest_eig(Sig, sr_identity, W2, W, ew):
    """The smallest eigenvalue of ``Sigma``, right after
    :func:`ess.kernels.distance._distance_terms` computed its distance with ``W2`` as
    second work space.

    With ``Sigma_r = I`` and ``d >= 3`` the distance's eigen-decomposition is that of
    ``Sigma`` itself, whose eigenvalues :func:`ess.kernels.distance._tr_sqrt_sym` leaves
    in ``W2[0]``: their minimum, no second decomposition. ``d = 1``: ``Sigma``; ``d =
    2``: the closed form ``m - sqrt(((a - c) / 2)^2 + b^2)`` with ``m`` the mean of the
    diagonal. Otherwise (another ``Sigma_r``, whose distance decomposes ``L_r^T Sigma
    L_r``) :func:`_min_eig` of a copy in ``W`` (``ew`` work space). Accurate to a few
    units of rounding relative to ``||Sigma||`` in every case.
    """
    d = Sig.shape[0]
    if d == 1:
        return Sig[0, 0]
    if d == 2:
        h = 0.5 * (Sig[0, 0] - Sig[1, 1])
        return 0.5 * (Sig[0, 0] + Sig[1, 1]) - np.sqrt(h * h + Sig[0, 1] * Sig[1, 0])
    if sr_identity:
        lo = W2[0, 0]
        for i in range(1, d):
            if W2[0, i] < lo:
                lo = W2[0, i]
        return lo
    return _min_eig(Sig, W, ew)


@njit(**JIT)
def _diagnostics_from(Sig, SR, U, lo, rec):
    """The trajectory path's diagnostics of a model covariance, into ``rec``, from its
    upper Cholesky factor ``U`` (:func:`ess.kernels.sampling._chol_upper`, the one the
    chain keeps for its next batch) and its smallest eigenvalue ``lo``
    (:func:`_smallest_eig`).

    ``rec[REC_LOG_DET] = log det Sigma`` (:func:`_log_det_chol` of ``U``; ``-inf``
    when a pivot is zero to working precision: a singular or collapsed ``Sigma``),
    ``rec[REC_FROB_DEV] = ||Sigma - Sigma_r||_F`` and ``rec[REC_MIN_EIG] = lo``. For
    ``d = 1`` they are ``log sigma``, ``|sigma - sigma_r|`` and ``sigma``, as
    :func:`_diagnostics_d1` computes them.
    """
    d = Sig.shape[0]
    rec[REC_MIN_EIG] = lo
    if d == 1:
        s = Sig[0, 0]
        rec[REC_LOG_DET] = np.log(s) if s > 0.0 else -np.inf
        rec[REC_FROB_DEV] = abs(s - SR[0, 0])
        return
    rec[REC_FROB_DEV] = _frob_dev(Sig, SR)
    rec[REC_LOG_DET] = _log_det_chol(U)


@njit(**JIT)
def _diagnostics(Sig, SR, rec, W, ew):
    """:func:`_diagnostics_from` of a covariance alone: its factor in ``W`` and its
    smallest eigenvalue by :func:`_min_eig` (``ew`` work space; for ``d <= 2``
    :func:`_smallest_eig`'s closed forms), for checks of the diagnostics.

    Parameters
    ----------
    Sig, SR : ndarray, shape (d, d)
        The model covariance and ``Sigma_r`` (:func:`_sigma_of`).
    rec : ndarray, shape (REC_FIELDS,)
        One record (:mod:`ess.kernels.layout`).
    W : ndarray, shape (d, d)
        Work space.
    ew : ndarray, shape (2, d)
        Work space.
    """
    d = Sig.shape[0]
    lo = _smallest_eig(Sig, False, W, W, ew) if d <= 2 else _min_eig(Sig, W, ew)
    _chol_upper(Sig, W)
    _diagnostics_from(Sig, SR, W, lo, rec)


@njit(inline="always", **JIT)
def _diagnostics_d1(sig, sr2, traj, v, r):
    """:func:`_diagnostics` for ``d = 1`` on scalars (``sr2 = sigma_r^2``)."""
    traj[v, r, REC_LOG_DET] = np.log(sig) if sig > 0.0 else -np.inf
    traj[v, r, REC_FROB_DEV] = abs(sig - sr2)
    traj[v, r, REC_MIN_EIG] = sig


@njit(**JIT)
def _upper_of(L):
    """``L^T`` as a new row-major array: the factor :func:`_draw_group` takes."""
    d = L.shape[0]
    U = np.empty((d, d))
    for i in range(d):
        for j in range(d):
            U[i, j] = L[j, i]
    return U


@njit(**JIT)
def _run_chain(rng_real, rng_syn, rng_mix, loop, n_ini, n_r, n_s_values, lam, memory, mle,
               metric, mu_r, L_r, sr_identity, n_gen, rec_from, rec_every, traj, warm):
    """Run one chain of the loop for every ``n_s`` in ``n_s_values`` in lockstep.

    Generation 1 is fit on ``n_ini`` real samples; generation ``t >= 2`` on the
    loop's real part (none, the fixed first set, or ``n_r`` fresh samples) plus
    ``n_s`` synthetic samples from ``N(mu, lam Sigma)`` of the last model, or of
    models drawn uniformly among the last ``memory`` ones (a multinomial split).

    Parameters
    ----------
    rng_real, rng_syn : ndarray of uint64, shape (4,)
        Generator states (:mod:`ess.kernels.random`) of the real and of the
        synthetic data, advanced in place.
    rng_mix : numpy.random.Generator
        Stream of the multinomial split over past models (``memory > 1``).
    loop : int
        ``LOOP_FULLY_SYNTHETIC``, ``LOOP_AUGMENTATION`` or ``LOOP_FRESH``.
    n_ini, n_r : int
        Size of the first real set and of each fresh real set.
    n_s_values : ndarray of int64, shape (V,)
        Synthetic sample sizes run in lockstep on the same real data.
    lam : float
        Sampling bias in ``[0, 1]``.
    memory : int
        Number of past models synthetic data come from (``>= 1``); pass
        ``n_gen`` for "all".
    mle : bool
        Covariance divisor ``n`` (else ``n - 1``).
    metric : int
        Distance metric code.
    mu_r, L_r : ndarray
        Reference mean and Cholesky factor of ``Sigma_r``.
    sr_identity : bool
        ``Sigma_r`` is the identity.
    n_gen : int
        Number of generations, counting the first.
    rec_from, rec_every : int
        Generations ``t = rec_from, rec_from + rec_every, ... < n_gen`` (0-based,
        0 is the first model) are recorded; the distance, which needs an
        eigen-decomposition for ``d >= 3``, is computed only for them.
    traj : ndarray, shape (V, n_rec, REC_FIELDS) or (V, n_rec, REC_DIAGNOSTICS)
        Output: per recorded generation ``dist``, ``|mu - mu_r|^2``, ``tr Sigma``,
        ``tr Sigma^2`` and the first coordinate of ``mu`` (the fields ``REC_*`` of
        :mod:`ess.kernels.layout`); when ``REC_FIELDS`` wide, also the diagnostics
        of :func:`_diagnostics` (the trajectory path).
    warm : ndarray, shape (V, WARM_FIELDS) or (0, WARM_FIELDS)
        With one row per configuration (fresh loop only): each configuration's
        first model is a warm start drawn from ``rng_syn``
        (:func:`ess.kernels.warm._warm_draw`) instead of the fit on ``n_ini``
        real samples; with no rows, the cold start.
    """
    d = mu_r.shape[0]
    diag = traj.shape[2] > REC_DIAGNOSTICS
    SR = _sigma_of(L_r) if diag else np.empty((0, 0))
    ew = np.empty((2, d))
    V = n_s_values.shape[0]
    K = memory
    tr_sr = 0.0
    for i in range(d):
        for j in range(i + 1):
            tr_sr += L_r[i, j] * L_r[i, j]
    sq_lam = np.sqrt(lam)
    U_r = _upper_of(L_r)
    ring_mu = np.empty((V, K, d))
    ring_U = np.empty((V, K, d, d))
    idx, cnt, tmp = _split_buffers(n_s_values, K)
    mu = np.empty(d)
    Sig = np.empty((d, d))
    real_m = np.empty(d)
    real_S = np.empty((d, d))
    first_m = np.empty(d)
    first_S = np.empty((d, d))
    g_m = np.empty(d)
    g_S = np.empty((d, d))
    Uw = np.empty((d, d))
    A = np.empty((d, d))
    B = np.empty((d, d))

    is_warm = warm.shape[0] == V and loop == LOOP_FRESH
    dist = msq = tr = tr2 = lo = 0.0
    if not is_warm:
        _draw_group(rng_real, mu_r, U_r, n_ini, first_m, first_S, A, B, sr_identity)
        q = n_ini if mle else n_ini - 1
        for i in range(d):
            mu[i] = first_m[i]
            for j in range(d):
                Sig[i, j] = first_S[i, j] / q
    for v in range(V):
        if is_warm:   # each configuration its own start, near its own stationary law
            _warm_draw(rng_syn, warm[v, WARM_MU_SD], warm[v, WARM_SCALE], warm[v, WARM_NU],
                       mu_r, mu, Sig, A)
        if rec_from == 0 and (is_warm or v == 0):
            dist, msq, tr = _distance_terms(mu, Sig, mu_r, L_r, sr_identity, tr_sr, metric,
                                            A, B)
            tr2 = _sum_sq(Sig)
            if diag:
                lo = _smallest_eig(Sig, sr_identity, B, A, ew)
        if is_warm or v == 0:
            _chol_upper(Sig, Uw)
        if rec_from == 0:
            traj[v, 0, REC_DIST] = dist
            traj[v, 0, REC_MEAN_DEV] = msq
            traj[v, 0, REC_TR_SIGMA] = tr
            traj[v, 0, REC_TR_SIGMA_SQ] = tr2
            traj[v, 0, REC_MU0] = mu[0]
            if diag:
                _diagnostics_from(Sig, SR, Uw, lo, traj[v, 0])
        for i in range(d):
            ring_mu[v, 0, i] = mu[i]
            for j in range(d):
                ring_U[v, 0, i, j] = sq_lam * Uw[i, j]

    newest = 0                     # ring slot of the newest model
    r = 1 if rec_from == 0 else 0  # records written
    next_rec = rec_every if rec_from == 0 else rec_from
    for t in range(1, n_gen):
        if loop == LOOP_FRESH:
            _draw_group(rng_real, mu_r, U_r, n_r, real_m, real_S, A, B, sr_identity)
        n_avail = min(t, K)
        cur = newest + 1 if newest + 1 < K else 0   # slot of this generation's model
        rec = t == next_rec
        for v in range(V):
            ns = n_s_values[v]
            # Real part first.
            if loop == LOOP_FRESH:
                n_cur = n_r
                mu[:] = real_m
                Sig[:, :] = real_S
            elif loop == LOOP_AUGMENTATION:
                n_cur = n_ini
                mu[:] = first_m
                Sig[:, :] = first_S
            else:
                n_cur = 0
            # Synthetic part: a multinomial split of ns over the available models.
            n_groups = _split_synthetic(rng_mix, ns, n_avail, idx, cnt, tmp)
            for gi in range(n_groups):
                kj = cnt[gi]
                slot = newest - idx[gi]
                if slot < 0:
                    slot += K
                _draw_group(rng_syn, ring_mu[v, slot], ring_U[v, slot], kj, g_m, g_S, A, B)
                n_cur = _pool_into(n_cur, mu, Sig, kj, g_m, g_S)
            q = n_cur if mle else n_cur - 1
            for i in range(d):
                for j in range(d):
                    Sig[i, j] /= q
            _chol_upper(Sig, Uw)
            if rec:
                dist, msq, tr = _distance_terms(mu, Sig, mu_r, L_r, sr_identity, tr_sr, metric,
                                                A, B)
                traj[v, r, REC_DIST] = dist
                traj[v, r, REC_MEAN_DEV] = msq
                traj[v, r, REC_TR_SIGMA] = tr
                traj[v, r, REC_TR_SIGMA_SQ] = _sum_sq(Sig)
                traj[v, r, REC_MU0] = mu[0]
                if diag:
                    _diagnostics_from(Sig, SR, Uw, _smallest_eig(Sig, sr_identity, B, A, ew),
                                      traj[v, r])
            for i in range(d):
                ring_mu[v, cur, i] = mu[i]
                for j in range(d):
                    ring_U[v, cur, i, j] = sq_lam * Uw[i, j]
        newest = cur
        if rec:
            r += 1
            next_rec += rec_every


@njit(**JIT)
def _workspace_d1(n_s_values, memory):
    """Work space of :func:`_run_chain_d1`, allocated once per chunk of chains.

    Returns ring buffers of the last ``memory`` models' means and scales, the
    buffers of :func:`_split_synthetic`, and per config the last synthetic group
    size with its constants ``(1/sqrt(k), chi-square constants of k - 1)``.
    """
    V = n_s_values.shape[0]
    idx, cnt, tmp = _split_buffers(n_s_values, memory)
    return (np.empty((V, memory)), np.empty((V, memory)), idx, cnt, tmp,
            np.zeros(V, dtype=np.int64), np.zeros((V, 3)))


@njit(**JIT)
def _run_chain_d1(rng_real, rng_syn, rng_mix, loop, n_ini, n_r, n_s_values, lam, memory, mle,
                  metric, mu_r, L_r, sr_identity, n_gen, rec_from, rec_every, traj, ws, warm):
    """:func:`_run_chain` for ``d = 1``, on scalars.

    Same model, same random variates in the same order and the same arithmetic as
    the general kernel (the tests compare the two), without its ``d x d`` loops;
    the constants of the synthetic group sizes are computed once per size and
    the work space ``ws`` (:func:`_workspace_d1`) is reused across chains, so a
    short chain costs no allocation.

    The body is inlined twice, once with ``memory = 1`` as a constant: the
    compiler then drops the ring buffer and the split, which takes a third off
    the time of a generation in the common case.
    """
    if memory == 1:
        _chain_d1_body(rng_real, rng_syn, rng_mix, loop, n_ini, n_r, n_s_values, lam, 1, mle,
                       metric, mu_r, L_r, sr_identity, n_gen, rec_from, rec_every, traj, ws,
                       warm)
    else:
        _chain_d1_body(rng_real, rng_syn, rng_mix, loop, n_ini, n_r, n_s_values, lam, memory,
                       mle, metric, mu_r, L_r, sr_identity, n_gen, rec_from, rec_every, traj,
                       ws, warm)


@njit(inline="always", **JIT)
def _chain_d1_body(rng_real, rng_syn, rng_mix, loop, n_ini, n_r, n_s_values, lam, memory, mle,
                   metric, mu_r, L_r, sr_identity, n_gen, rec_from, rec_every, traj, ws, warm):
    """The body of :func:`_run_chain_d1`."""
    V = n_s_values.shape[0]
    K = memory
    q_off = 0 if mle else 1      # covariance divisor n - q_off
    mr = mu_r[0]
    sr = L_r[0, 0]
    tr_sr = sr * sr
    sq_lam = np.sqrt(lam)
    diag = traj.shape[2] > REC_DIAGNOSTICS
    ring_mu, ring_s, idx, cnt, tmp, last_k, kconst = ws
    is_warm = warm.shape[0] == V and loop == LOOP_FRESH
    first_m = first_S = sig = 0.0
    if not is_warm:
        dd, c = _chi2_consts(n_ini - 1)
        first_m, first_S = _group_d1(rng_real, mr, sr, n_ini, 1.0 / np.sqrt(n_ini), dd, c)
        sig = first_S / (n_ini - q_off)
    root = np.sqrt(sig) if sig > 0.0 else 0.0
    for v in range(V):
        if is_warm:   # each configuration its own start (see _run_chain)
            first_m, sig = _warm_draw_d1(rng_syn, warm[v, WARM_MU_SD], warm[v, WARM_SCALE],
                                         warm[v, WARM_NU], mr)
            root = np.sqrt(sig) if sig > 0.0 else 0.0
        if rec_from == 0:
            dist, msq = _dist_d1(first_m, sig, root, mr, sr, sr_identity, tr_sr, metric)
            traj[v, 0, REC_DIST] = dist
            traj[v, 0, REC_MEAN_DEV] = msq
            traj[v, 0, REC_TR_SIGMA] = sig
            traj[v, 0, REC_TR_SIGMA_SQ] = sig * sig
            traj[v, 0, REC_MU0] = first_m
            if diag:
                _diagnostics_d1(sig, tr_sr, traj, v, 0)
        ring_mu[v, 0] = first_m
        ring_s[v, 0] = sq_lam * root
    inv_r = 1.0 / np.sqrt(n_r)
    dd_r, c_r = _chi2_consts(n_r - 1)
    real_m = 0.0
    real_S = 0.0
    newest = 0                     # ring slot of the newest model
    r = 1 if rec_from == 0 else 0  # records written
    next_rec = rec_every if rec_from == 0 else rec_from
    for t in range(1, n_gen):
        if loop == LOOP_FRESH:
            real_m, real_S = _group_d1(rng_real, mr, sr, n_r, inv_r, dd_r, c_r)
        n_avail = min(t, K)
        cur = newest + 1 if newest + 1 < K else 0   # slot of this generation's model
        rec = t == next_rec
        for v in range(V):
            if loop == LOOP_FRESH:
                n_cur = n_r
                mu = real_m
                S = real_S
            elif loop == LOOP_AUGMENTATION:
                n_cur = n_ini
                mu = first_m
                S = first_S
            else:
                n_cur = 0
                mu = 0.0
                S = 0.0
            if n_avail == 1:    # memory 1, or the first generation: no split to draw
                n_groups = 1 if n_s_values[v] > 0 else 0
                idx[0] = 0
                cnt[0] = n_s_values[v]
            else:
                n_groups = _split_synthetic(rng_mix, n_s_values[v], n_avail, idx, cnt, tmp)
            for gi in range(n_groups):
                kj = cnt[gi]
                if kj != last_k[v]:    # constants of the last group size (fixed for memory 1)
                    last_k[v] = kj
                    kconst[v, 0] = 1.0 / np.sqrt(kj)
                    kconst[v, 1], kconst[v, 2] = _chi2_consts(kj - 1)
                slot = newest - idx[gi]
                if slot < 0:
                    slot += K
                g_m, g_S = _group_d1(rng_syn, ring_mu[v, slot], ring_s[v, slot], kj,
                                     kconst[v, 0], kconst[v, 1], kconst[v, 2])
                if n_cur == 0:
                    mu = g_m
                    S = g_S
                    n_cur = kj
                else:
                    n = n_cur + kj
                    di = mu - g_m
                    S += g_S + n_cur * kj / n * di * di
                    mu = (n_cur * mu + kj * g_m) / n
                    n_cur = n
            sig = S / (n_cur - q_off)
            root = np.sqrt(sig) if sig > 0.0 else 0.0
            if rec:
                dist, msq = _dist_d1(mu, sig, root, mr, sr, sr_identity, tr_sr, metric)
                traj[v, r, REC_DIST] = dist
                traj[v, r, REC_MEAN_DEV] = msq
                traj[v, r, REC_TR_SIGMA] = sig
                traj[v, r, REC_TR_SIGMA_SQ] = sig * sig
                traj[v, r, REC_MU0] = mu
                if diag:
                    _diagnostics_d1(sig, tr_sr, traj, v, r)
            ring_mu[v, cur] = mu
            ring_s[v, cur] = sq_lam * root
        newest = cur
        if rec:
            r += 1
            next_rec += rec_every


@njit(inline="always", **JIT)
def _dist_d1(mu, sig, root, mr, sr, sr_identity, tr_sr, metric):
    """Distance of ``N(mu, sig)`` to ``N(mr, sr^2)`` and ``(mu - mr)^2``, as
    :func:`ess.kernels.distance._distance_terms` computes them for ``d = 1``;
    ``root = sqrt(sig)`` (zero for ``sig = 0``), reused when ``sr = 1``."""
    msq = (mu - mr) ** 2
    ts = root if sr_identity else np.sqrt(max(sr * sig * sr, 0.0))
    w2sq = msq + sig + tr_sr - 2.0 * ts
    if w2sq < 0.0:
        w2sq = 0.0
    if metric == METRIC_W2:
        return np.sqrt(w2sq), msq
    return w2sq, msq


@njit(**JIT)
def _chain(rng_real, rng_syn, rng_mix, loop, n_ini, n_r, n_s_values, lam, memory, mle,
           metric, mu_r, L_r, sr_identity, n_gen, rec_from, rec_every, traj, ws, warm):
    """One chain: the scalar kernel for ``d = 1`` (with its work space ``ws``),
    the general one otherwise; ``warm`` as :func:`_run_chain` takes it."""
    if mu_r.shape[0] == 1:
        _run_chain_d1(rng_real, rng_syn, rng_mix, loop, n_ini, n_r, n_s_values, lam, memory,
                      mle, metric, mu_r, L_r, sr_identity, n_gen, rec_from, rec_every, traj, ws,
                      warm)
    else:
        _run_chain(rng_real, rng_syn, rng_mix, loop, n_ini, n_r, n_s_values, lam, memory,
                   mle, metric, mu_r, L_r, sr_identity, n_gen, rec_from, rec_every, traj, warm)


@njit(**JIT)
def _limit_chunk(rng_real, rng_syn, rng_mix, n_chains, loop, n_ini, n_r, n_s_values, lam, memory,
                 mle, metric, mu_r, L_r, sr_identity, burn_in, window, every, warm):
    """Per-chain time averages over the kept window, for the limit ``WD``.

    Each chain runs ``burn_in + window`` generations; the first ``burn_in`` are
    dropped (their distances are never computed) and every ``every``-th
    generation of the kept window is recorded, ``window / every`` of them (an
    even number), split into two equal halves so that drift between them can be
    checked.

    Returns
    -------
    ndarray, shape (n_chains, V, QUANTITIES, HALVES)
        ``[chain, config, quantity, half]`` with quantities ``dist``,
        ``|mu - mu_r|^2``, ``tr Sigma`` and ``tr Sigma^2`` (``Q_*`` of
        :mod:`ess.kernels.layout`).
    """
    V = n_s_values.shape[0]
    n_gen = burn_in + window
    half = window // every // HALVES
    traj = np.empty((V, HALVES * half, REC_DIAGNOSTICS))   # no diagnostics here
    ws = _workspace_d1(n_s_values, memory)
    out = np.empty((n_chains, V, QUANTITIES, HALVES))
    for c in range(n_chains):
        _chain(rng_real, rng_syn, rng_mix, loop, n_ini, n_r, n_s_values, lam, memory, mle,
               metric, mu_r, L_r, sr_identity, n_gen, burn_in, every, traj, ws, warm)
        _window_means(traj, half, out[c])
    return out


@njit(**JIT)
def _window_means(traj, half, out):
    """``out[v, k, h]``: the mean of record field ``k`` over half ``h`` (``half``
    records each) of config ``v``'s kept records in ``traj``."""
    for v in range(traj.shape[0]):
        for k in range(QUANTITIES):     # quantity k is record field k
            for h in range(HALVES):
                s = 0.0
                start = h * half
                for t in range(start, start + half):
                    s += traj[v, t, k]
                out[v, k, h] = s / half


@njit(**JIT)
def _limit_chunk_d1(rng_real, rng_syn, rng_mix, n_chains, loop, n_ini, n_r, n_s_values, lam,
                    memory, mle, metric, mu_r, L_r, sr_identity, burn_in, window, every, warm):
    """:func:`_limit_chunk` for ``d = 1`` only: the same numbers, from the scalar kernel
    :func:`_run_chain_d1` alone.

    Its compiled code holds none of the ``d x d`` kernels, so a new process loads a
    library under a third the size of :func:`_limit_chunk`'s from Numba's cache (0.32
    against 1.1 MB: start-up of a ``d = 1`` answer, ``benchmarks/startup.py``).
    """
    V = n_s_values.shape[0]
    n_gen = burn_in + window
    half = window // every // HALVES
    traj = np.empty((V, HALVES * half, REC_DIAGNOSTICS))
    ws = _workspace_d1(n_s_values, memory)
    out = np.empty((n_chains, V, QUANTITIES, HALVES))
    for c in range(n_chains):
        _run_chain_d1(rng_real, rng_syn, rng_mix, loop, n_ini, n_r, n_s_values, lam, memory,
                      mle, metric, mu_r, L_r, sr_identity, n_gen, burn_in, every, traj, ws,
                      warm)
        _window_means(traj, half, out[c])
    return out


@njit(**JIT)
def _trajectory_chunk(rng_real, rng_syn, rng_mix, n_chains, loop, n_ini, n_r, n_s, lam, memory,
                      mle, metric, mu_r, L_r, sr_identity, n_gen):
    """Whole trajectories of ``n_chains`` chains.

    Returns
    -------
    ndarray, shape (n_chains, n_gen, REC_FIELDS)
        Per generation ``dist``, ``|mu - mu_r|^2``, ``tr Sigma``, ``tr Sigma^2``,
        ``mu[0]`` and the diagnostics ``log det Sigma``, ``||Sigma - Sigma_r||_F``
        and the smallest eigenvalue of ``Sigma`` (``REC_*`` of
        :mod:`ess.kernels.layout`).
    """
    n_s_values = np.empty(1, dtype=np.int64)
    n_s_values[0] = n_s
    traj = np.empty((1, n_gen, REC_FIELDS))
    ws = _workspace_d1(n_s_values, memory)
    cold = np.empty((0, WARM_FIELDS))
    out = np.empty((n_chains, n_gen, REC_FIELDS))
    for c in range(n_chains):
        _chain(rng_real, rng_syn, rng_mix, loop, n_ini, n_r, n_s_values, lam, memory, mle,
               metric, mu_r, L_r, sr_identity, n_gen, 0, 1, traj, ws, cold)
        out[c] = traj[0]
    return out


@njit(**JIT)
def _reference_chunk(rng, n_samples, n, mle, metric, mu_r, L_r, sr_identity):
    """Distances of ``n_samples`` independent fits on ``n`` real samples.

    This is the reference curve's Monte Carlo: ``f(n) = E dist(G(n), P_r)``.

    Returns
    -------
    ndarray, shape (n_samples, QUANTITIES)
        ``dist``, ``|m - mu_r|^2``, ``tr Sigma_hat`` and ``tr Sigma_hat^2`` of each fit
        (``Q_*`` of :mod:`ess.kernels.layout`).
    """
    d = mu_r.shape[0]
    tr_sr = 0.0
    for i in range(d):
        for j in range(i + 1):
            tr_sr += L_r[i, j] * L_r[i, j]
    q = n if mle else n - 1
    U_r = _upper_of(L_r)
    m = np.empty(d)
    S = np.empty((d, d))
    A = np.empty((d, d))
    B = np.empty((d, d))
    out = np.empty((n_samples, QUANTITIES))
    for s in range(n_samples):
        _draw_group(rng, mu_r, U_r, n, m, S, A, B, sr_identity)
        for i in range(d):
            for j in range(d):
                S[i, j] /= q
        dist, msq, tr = _distance_terms(m, S, mu_r, L_r, sr_identity, tr_sr, metric, A, B)
        out[s, Q_DIST] = dist
        out[s, Q_MEAN_DEV] = msq
        out[s, Q_TR_SIGMA] = tr
        out[s, Q_TR_SIGMA_SQ] = _sum_sq(S)
    return out
