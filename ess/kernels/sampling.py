"""Sufficient statistics of Gaussian samples (SPEC section 1).

For ``k`` iid samples of ``N(m, L L^T)`` the sample mean is ``m + L z / sqrt(k)``
with ``z ~ N(0, I)`` and the scatter is ``L W L^T`` with ``W ~ Wishart(I, k - 1)``
(Bartlett decomposition when ``k - 1 >= d``, else ``G G^T`` with ``G`` a
``d x (k - 1)`` standard normal matrix; zero when ``k = 1``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ess.config import JIT
from ess.kernels.random import _chi2, _chi2_call, _chi2_consts, _normal, _normal_call


@njit(**JIT)
def _chol_psd(A, L):
    """Lower Cholesky factor of a symmetric positive semi-definite matrix.

    A pivot that is zero up to rounding (relative to the largest diagonal entry)
    gives a zero column instead of a failure, so a collapsed or singular
    covariance (``lam = 0``, fully synthetic collapse) has the factor it should:
    ``L L^T = A`` up to rounding.

    Parameters
    ----------
    A : ndarray, shape (d, d)
        Symmetric positive semi-definite matrix (only the lower triangle is read).
    L : ndarray, shape (d, d)
        Output; overwritten with the lower-triangular factor.
    """
    d = A.shape[0]
    scale = 0.0
    for i in range(d):
        if A[i, i] > scale:
            scale = A[i, i]
    tol = scale * 1e-13 * d
    for j in range(d):
        for i in range(j):
            L[i, j] = 0.0
        s = A[j, j]
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if s <= tol:
            for i in range(j, d):
                L[i, j] = 0.0
            continue
        r = np.sqrt(s)
        L[j, j] = r
        for i in range(j + 1, d):
            t = A[i, j]
            for k in range(j):
                t -= L[i, k] * L[j, k]
            L[i, j] = t / r


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
def _draw_group(rng, m, L, k, mean_out, S_out, A, B):
    """Draw the sample mean and scatter of ``k`` iid samples of ``N(m, L L^T)``.

    Parameters
    ----------
    rng : ndarray of uint64, shape (4,)
        Generator state (:mod:`ess.kernels.random`), advanced in place.
    m : ndarray, shape (d,)
        Mean of the sampled distribution.
    L : ndarray, shape (d, d)
        Lower-triangular square root of its covariance (may be singular or zero).
    k : int
        Number of samples, ``k >= 1``.
    mean_out : ndarray, shape (d,)
        Output: the sample mean.
    S_out : ndarray, shape (d, d)
        Output: the scatter ``sum (x_i - xbar)(x_i - xbar)^T``.
    A, B : ndarray, shape (d, d)
        Work space.
    """
    d = m.shape[0]
    if d == 1:
        dd, c = _chi2_consts(k - 1)
        mean_out[0], S_out[0, 0] = _group_d1(rng, m[0], L[0, 0], k, 1.0 / np.sqrt(k), dd, c)
        return
    inv = 1.0 / np.sqrt(k)
    df = k - 1
    for i in range(d):
        A[0, i] = _normal_call(rng)
    for i in range(d):
        acc = 0.0
        for j in range(i + 1):
            acc += L[i, j] * A[0, j]
        mean_out[i] = m[i] + acc * inv
    if df == 0:
        S_out[:, :] = 0.0
        return
    if df >= d:
        # Bartlett: W = A A^T, A lower, A_ii^2 ~ chi2(df - i), A_ij ~ N(0, 1).
        for i in range(d):
            dd, c = _chi2_consts(df - i)
            A[i, i] = np.sqrt(_chi2_call(rng, df - i, dd, c))
            for j in range(i):
                A[i, j] = _normal_call(rng)
        # B = L A (lower times lower is lower).
        for i in range(d):
            for j in range(i + 1):
                acc = 0.0
                for c in range(j, i + 1):
                    acc += L[i, c] * A[c, j]
                B[i, j] = acc
        for i in range(d):
            for j in range(i + 1):
                acc = 0.0
                for c in range(j + 1):
                    acc += B[i, c] * B[j, c]
                S_out[i, j] = acc
                S_out[j, i] = acc
    else:
        # W = G G^T with G a d x df standard normal matrix.
        for i in range(d):
            for c in range(df):
                A[i, c] = _normal_call(rng)
        for i in range(d):
            for c in range(df):
                acc = 0.0
                for j in range(i + 1):
                    acc += L[i, j] * A[j, c]
                B[i, c] = acc
        for i in range(d):
            for j in range(i + 1):
                acc = 0.0
                for c in range(df):
                    acc += B[i, c] * B[j, c]
                S_out[i, j] = acc
                S_out[j, i] = acc


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
