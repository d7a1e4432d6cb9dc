"""Sufficient statistics of Gaussian samples (SPEC section 1).

For ``k`` iid samples of ``N(m, U^T U)`` the sample mean is ``m + U^T z / sqrt(k)``
with ``z ~ N(0, I)`` and the scatter is ``U^T W U`` with ``W ~ Wishart(I, k - 1)``
(Bartlett decomposition when ``k - 1 >= d``, else ``G G^T`` with ``G`` a
``d x (k - 1)`` standard normal matrix; zero when ``k = 1``).

Covariance factors are upper triangular and row-major (``U``, the transpose of
the lower Cholesky factor), so that from ``d =`` :data:`ROWS_MIN_D` on the
``O(d^3)`` loops run along contiguous rows, which the compiler vectorises, with
no sum reordered: the results are those of the plain triple loops bit for bit.

From ``d =`` :data:`ess.kernels.lapack.LAPACK_MIN_D` on, the factor and the
Wishart products are computed by BLAS instead (:mod:`ess.kernels.lapack`), from
the same random variates in the same order.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ess.config import JIT
from ess.kernels.lapack import CHOL_BLOCK, LAPACK_MIN_D, _chol_upper_blocked, _scatter_lapack
from ess.kernels.random import _chi2, _chi2_call, _chi2_consts, _normal, _normal_call

#: Dimension from which the ``O(d^3)`` loops run along rows (vectorised) rather
#: than as dot products. Updating a row in memory costs more than a dot product
#: kept in a register until rows are long: a whole generation (1 thread) with
#: the row forms took 1.2x the time of the dot forms at d = 16 and 30, 1.0x at
#: 50, 0.93x at 64 and 0.83x at 100.
ROWS_MIN_D = 56
#: Shortest row that :func:`_axpy` hands to the vectorised loop (a round guess, not tuned).
VECTOR_MIN = 12


@njit(inline="always", **JIT)
def _axpy(a, X, r, Y, s, lo, hi):
    """``Y[s, lo:hi] += a X[r, lo:hi]``, element by element.

    Long rows go to a loop from 0 over views, which the compiler vectorises
    (Numba's handling of negative indices keeps a loop that starts elsewhere
    scalar); short ones stay in a plain loop, whose set-up costs less. Each
    element gets one product and one sum either way (no fused multiply-add with
    ``fastmath`` off), so the result does not depend on the path or the vector
    width.
    """
    if hi - lo >= VECTOR_MIN:
        xs = X[r, lo:hi]
        ys = Y[s, lo:hi]
        for i in range(hi - lo):
            ys[i] += a * xs[i]
    else:
        for i in range(lo, hi):
            Y[s, i] += a * X[r, i]


@njit(**JIT)
def _chol_upper(A, U):
    """Upper Cholesky factor ``U`` (``A = U^T U``) of a symmetric positive
    semi-definite matrix: the transpose of the textbook lower factor.

    A pivot that is zero up to rounding (relative to the largest diagonal entry)
    gives a zero row instead of a failure, so a collapsed or singular
    covariance (``lam = 0``, fully synthetic collapse) has the factor it should:
    ``U^T U = A`` up to rounding.

    Every entry is ``(A_ij - sum_k U_ki U_kj) / U_ii`` with the sum taken in
    increasing ``k``, entry by entry for ``d <`` :data:`ROWS_MIN_D`; from there
    row ``k`` is finished and then subtracted from the trailing rows
    (vectorised), which performs the same operations in the same order, so
    both give the same bits. From ``d =`` :data:`LAPACK_MIN_D` on, by blocks with
    BLAS (:func:`ess.kernels.lapack._chol_upper_blocked`), the same up to rounding.

    Parameters
    ----------
    A : ndarray, shape (d, d)
        Symmetric positive semi-definite matrix (only the lower triangle is read).
    U : ndarray, shape (d, d)
        Output; overwritten with the upper-triangular factor (zeros below).
    """
    d = A.shape[0]
    scale = 0.0
    for i in range(d):
        if A[i, i] > scale:
            scale = A[i, i]
    tol = scale * 1e-13 * d
    if d >= LAPACK_MIN_D:
        _chol_upper_blocked(A, U, tol, CHOL_BLOCK)
        return
    if d < ROWS_MIN_D:
        for j in range(d):
            for i in range(j):
                U[j, i] = 0.0
            s = A[j, j]
            for k in range(j):
                s -= U[k, j] * U[k, j]
            if s <= tol:
                for i in range(j, d):
                    U[j, i] = 0.0
                continue
            r = np.sqrt(s)
            U[j, j] = r
            for i in range(j + 1, d):
                t = A[i, j]
                for k in range(j):
                    t -= U[k, i] * U[k, j]
                U[j, i] = t / r
        return
    for i in range(d):
        for j in range(i):
            U[i, j] = 0.0
        for j in range(i, d):
            U[i, j] = A[j, i]
    for k in range(d):
        s = U[k, k]
        if s <= tol:
            for j in range(k, d):
                U[k, j] = 0.0
            continue
        r = np.sqrt(s)
        U[k, k] = r
        row = U[k, k + 1:]
        for j in range(d - k - 1):
            row[j] /= r
        for i in range(k + 1, d):
            _axpy(-U[k, i], U, k, U, i, i, d)   # U[i, j] -= U[k, i] U[k, j], j >= i


@njit(inline="always", **JIT)
def _bartlett_scatter(A, U, identity, B, S):
    """``S = U^T A A^T U`` for lower-triangular ``A`` and upper ``U`` (skipped
    when ``identity``); ``B`` is work space.

    Each entry is a sum in a fixed order: ``C = U^T A`` with ``C_ij = sum_{c =
    j..i} U_ci A_cj``, then ``S_ij = sum_{c <= j} C_ic C_jc`` (``j <= i``,
    mirrored). Below :data:`ROWS_MIN_D` as dot products (``B = C``); from there
    ``B = C^T`` is built and used row by row (vectorised), in the same order.
    """
    d = A.shape[0]
    if d < ROWS_MIN_D:
        C = A if identity else B
        if not identity:
            for i in range(d):
                for j in range(i + 1):
                    acc = 0.0
                    for c in range(j, i + 1):
                        acc += U[c, i] * A[c, j]
                    C[i, j] = acc
        for i in range(d):
            for j in range(i + 1):
                acc = 0.0
                for c in range(j + 1):
                    acc += C[i, c] * C[j, c]
                S[i, j] = acc
                S[j, i] = acc
        return
    for j in range(d):
        for i in range(j, d):
            B[j, i] = 0.0
        if identity:
            for i in range(j, d):
                B[j, i] = A[i, j]
            continue
        for c in range(j, d):
            _axpy(A[c, j], U, c, B, j, c, d)
    for i in range(d):
        for j in range(i + 1):
            S[i, j] = 0.0
        for c in range(i + 1):
            _axpy(B[c, i], B, c, S, i, c, i + 1)
    for i in range(d):
        for j in range(i):
            S[j, i] = S[i, j]


@njit(inline="always", **JIT)
def _group_d1(rng, m, s, k, inv_sqrt_k, dd, c):
    """Mean and scatter of ``k`` samples of ``N(m, s^2)``: the ``d = 1`` case of
    :func:`_draw_group`, on scalars (``s^2 chi2(k - 1)``), with ``inv_sqrt_k =
    1 / sqrt(k)`` and the :func:`_chi2_consts` of ``k - 1`` precomputed."""
    mean = m + s * _normal(rng) * inv_sqrt_k
    if k == 1:
        return mean, 0.0
    return mean, s * s * _chi2(rng, k - 1, dd, c)


@njit(**JIT)
def _normals_into(rng, x, n):
    """``x[:n]`` standard normal variates, in order: :func:`ess.kernels.random._normal`
    inlined once in a loop, which at ``d = 10`` takes half the time of a call per
    variate (:func:`ess.kernels.random._normal_call`) with the same variates."""
    for i in range(n):
        x[i] = _normal(rng)


@njit(**JIT)
def _bartlett_variates(rng, A, df):
    """The lower-triangular Bartlett factor of ``Wishart(I, df)``, ``df >= d``, into
    ``A``: row by row, ``A_ii = sqrt(chi2(df - i))`` then ``A_ij ~ N(0, 1)`` for ``j <
    i``, the order :func:`_draw_group` has always drawn them in (the variates inlined
    here, as in :func:`_normals_into`)."""
    d = A.shape[0]
    for i in range(d):
        dd, c = _chi2_consts(df - i)
        A[i, i] = np.sqrt(_chi2(rng, df - i, dd, c))
        for j in range(i):
            A[i, j] = _normal(rng)


@njit(**JIT)
def _draw_group(rng, m, U, k, mean_out, S_out, A, B, identity=False):
    """Draw the sample mean and scatter of ``k`` iid samples of ``N(m, U^T U)``.

    Parameters
    ----------
    rng : ndarray of uint64, shape (4,)
        Generator state (:mod:`ess.kernels.random`), advanced in place.
    m : ndarray, shape (d,)
        Mean of the sampled distribution.
    U : ndarray, shape (d, d)
        Upper-triangular square root of its covariance, ``Sigma = U^T U`` (may
        be singular or zero; only the upper triangle is read), as
        :func:`_chol_upper` returns it.
    k : int
        Number of samples, ``k >= 1``.
    mean_out : ndarray, shape (d,)
        Output: the sample mean.
    S_out : ndarray, shape (d, d)
        Output: the scatter ``sum (x_i - xbar)(x_i - xbar)^T``.
    A, B : ndarray, shape (d, d)
        Work space.
    identity : bool
        ``U`` is the identity: the products with it are skipped (they would
        change no bit of the result).
    """
    d = m.shape[0]
    if d == 1:
        dd, c = _chi2_consts(k - 1)
        mean_out[0], S_out[0, 0] = _group_d1(rng, m[0], U[0, 0], k, 1.0 / np.sqrt(k), dd, c)
        return
    inv = 1.0 / np.sqrt(k)
    df = k - 1
    _normals_into(rng, A[0], d)
    if d >= LAPACK_MIN_D:
        _draw_group_blas(rng, m, U, k, mean_out, S_out, A, identity)
        return
    for i in range(d):     # mean = m + U^T z / sqrt(k)
        acc = A[0, i]
        if not identity:
            acc = 0.0
            for j in range(i + 1):
                acc += U[j, i] * A[0, j]
        mean_out[i] = m[i] + acc * inv
    if df == 0:
        S_out[:, :] = 0.0
        return
    if df >= d:
        # Bartlett: W = A A^T, A lower, A_ii^2 ~ chi2(df - i), A_ij ~ N(0, 1).
        _bartlett_variates(rng, A, df)
        _bartlett_scatter(A, U, identity, B, S_out)
    else:
        # W = G G^T with G a d x df standard normal matrix; C = U^T G.
        for i in range(d):
            _normals_into(rng, A[i], df)
        C = A if identity else B
        if not identity:
            for i in range(d):
                for c in range(df):
                    acc = 0.0
                    for j in range(i + 1):
                        acc += U[j, i] * A[j, c]
                    B[i, c] = acc
        for i in range(d):
            for j in range(i + 1):
                acc = 0.0
                for c in range(df):
                    acc += C[i, c] * C[j, c]
                S_out[i, j] = acc
                S_out[j, i] = acc


@njit(**JIT)
def _draw_group_blas(rng, m, U, k, mean_out, S_out, A, identity):
    """:func:`_draw_group` from ``d =`` :data:`LAPACK_MIN_D` on, with ``z`` drawn
    into ``A[0]``: the same variates in the same order, the mean by rows of ``U``,
    the scatter by BLAS (:func:`ess.kernels.lapack._scatter_lapack`)."""
    d = m.shape[0]
    inv = 1.0 / np.sqrt(k)
    df = k - 1
    if identity:
        for i in range(d):
            mean_out[i] = A[0, i]
    else:
        mean_out[:] = 0.0
        for j in range(d):    # U^T z, row j of U at a time (the same sums, in order)
            zj = A[0, j]
            row = U[j, j:]
            out = mean_out[j:]
            for i in range(d - j):
                out[i] += zj * row[i]
    for i in range(d):
        mean_out[i] = m[i] + mean_out[i] * inv
    if df == 0:
        S_out[:, :] = 0.0
        return
    if df >= d:
        for i in range(d):
            dd, c = _chi2_consts(df - i)
            A[i, i] = np.sqrt(_chi2_call(rng, df - i, dd, c))
            for j in range(i):
                A[i, j] = _normal_call(rng)
            for j in range(i + 1, d):
                A[i, j] = 0.0
        _scatter_lapack(A, d, U, identity, S_out)
    else:
        for i in range(d):
            for c in range(df):
                A[i, c] = _normal_call(rng)
        _scatter_lapack(A, df, U, identity, S_out)


@njit(**JIT)
def _pool_into(n_a, a, S_a, n_b, b, S_b):
    """Pool group ``b`` into group ``a`` in place (SPEC section 1).

    ``n = n_a + n_b``, mean ``(n_a a + n_b b) / n``, scatter
    ``S_a + S_b + (n_a n_b / n)(a - b)(a - b)^T``.

    Returns
    -------
    int
        The pooled count ``n``.
    """
    if n_b == 0:
        return n_a
    d = a.shape[0]
    if n_a == 0:
        for i in range(d):
            a[i] = b[i]
            for j in range(d):
                S_a[i, j] = S_b[i, j]
        return n_b
    n = n_a + n_b
    w = n_a * n_b / n
    for i in range(d):
        di = a[i] - b[i]
        for j in range(d):
            S_a[i, j] += S_b[i, j] + w * di * (a[j] - b[j])
    for i in range(d):
        a[i] = (n_a * a[i] + n_b * b[i]) / n
    return n
