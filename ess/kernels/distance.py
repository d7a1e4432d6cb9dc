"""Distances between a fitted Gaussian and the reference (SPEC section 2)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ess.config import JIT

METRIC_W2SQ = 0
METRIC_W2 = 1


@njit(**JIT)
def _sym_eigvals(a, dd, e):
    """Eigenvalues of a symmetric matrix, without LAPACK.

    Householder reduction to tridiagonal form followed by the implicit QL
    algorithm with Wilkinson shifts (``tred2``/``tqli`` of Numerical Recipes,
    eigenvalues only). Written here so that the result does not depend on the
    BLAS library or its thread count, and so that small matrices avoid the
    LAPACK call overhead. The matrix is first scaled to a largest entry of 1,
    so the plane rotations can use ``sqrt(f^2 + g^2)`` without over- or
    underflow instead of the much slower ``hypot``.

    Parameters
    ----------
    a : ndarray, shape (n, n)
        Symmetric matrix; destroyed.
    dd : ndarray, shape (n,)
        Output: the eigenvalues (unsorted).
    e : ndarray, shape (n,)
        Work space.
    """
    n = a.shape[0]
    amax = 0.0
    for i in range(n):
        for j in range(n):
            if abs(a[i, j]) > amax:
                amax = abs(a[i, j])
    if amax == 0.0:
        dd[:] = 0.0
        return
    inv = 1.0 / amax
    for i in range(n):
        for j in range(n):
            a[i, j] *= inv
    for i in range(n - 1, 0, -1):
        lo = i - 1
        h = 0.0
        if lo > 0:
            scale = 0.0
            for k in range(lo + 1):
                scale += abs(a[i, k])
            if scale == 0.0:
                e[i] = a[i, lo]
            else:
                for k in range(lo + 1):
                    a[i, k] /= scale
                    h += a[i, k] * a[i, k]
                f = a[i, lo]
                g = -np.sqrt(h) if f >= 0.0 else np.sqrt(h)
                e[i] = scale * g
                h -= f * g
                a[i, lo] = f - g
                f = 0.0
                for j in range(lo + 1):
                    g = 0.0
                    for k in range(j + 1):
                        g += a[j, k] * a[i, k]
                    for k in range(j + 1, lo + 1):
                        g += a[k, j] * a[i, k]
                    e[j] = g / h
                    f += e[j] * a[i, j]
                hh = f / (h + h)
                for j in range(lo + 1):
                    f = a[i, j]
                    g = e[j] - hh * f
                    e[j] = g
                    for k in range(j + 1):
                        a[j, k] -= f * e[k] + g * a[i, k]
        else:
            e[i] = a[i, lo]
    for i in range(n):
        dd[i] = a[i, i]
    # QL with implicit shifts on the tridiagonal (dd, e).
    for i in range(1, n):
        e[i - 1] = e[i]
    e[n - 1] = 0.0
    eps = 2.220446049250313e-16
    for lo in range(n):
        it = 0
        while True:
            m = lo
            while m < n - 1:
                s = abs(dd[m]) + abs(dd[m + 1])
                if abs(e[m]) <= eps * s:
                    break
                m += 1
            if m == lo:
                break
            it += 1
            if it > 60:
                break
            g = (dd[lo + 1] - dd[lo]) / (2.0 * e[lo])
            if abs(g) > 1.0:
                r = abs(g) * np.sqrt(1.0 + (1.0 / g) * (1.0 / g))
            else:
                r = np.sqrt(1.0 + g * g)
            g = dd[m] - dd[lo] + e[lo] / (g + (r if g >= 0.0 else -r))
            s = 1.0
            c = 1.0
            p = 0.0
            underflow = False
            i = m - 1
            while i >= lo:
                f = s * e[i]
                b = c * e[i]
                r = np.sqrt(f * f + g * g)
                e[i + 1] = r
                if r == 0.0:
                    dd[i + 1] -= p
                    e[m] = 0.0
                    underflow = True
                    break
                s = f / r
                c = g / r
                g = dd[i + 1] - p
                r = (dd[i] - g) * s + 2.0 * c * b
                p = s * r
                dd[i + 1] = g + p
                g = c * r - b
                i -= 1
            if underflow:
                continue
            dd[lo] -= p
            e[lo] = g
            e[m] = 0.0
    for i in range(n):
        dd[i] *= amax


@njit(**JIT)
def _tr_sqrt_psd(M):
    """Trace of the square root of a symmetric positive semi-definite matrix.

    Closed forms for ``d = 1`` and ``d = 2`` (``tr sqrt(M) = sqrt(tr M +
    2 sqrt(det M))``), eigenvalues otherwise; eigenvalues that rounding makes
    slightly negative count as zero.
    """
    d = M.shape[0]
    if d == 1:
        return np.sqrt(max(M[0, 0], 0.0))
    if d == 2:
        det = M[0, 0] * M[1, 1] - M[0, 1] * M[1, 0]
        tr = M[0, 0] + M[1, 1]
        return np.sqrt(max(tr + 2.0 * np.sqrt(max(det, 0.0)), 0.0))
    a = M.copy()
    ev = np.empty(d)
    e = np.empty(d)
    _sym_eigvals(a, ev, e)
    s = 0.0
    for i in range(d):
        if ev[i] > 0.0:
            s += np.sqrt(ev[i])
    return s


@njit(**JIT)
def _distance_terms(mu, Sigma, mu_r, L_r, sr_identity, tr_sr, metric, W1, W2):
    """Distance of ``N(mu, Sigma)`` to ``N(mu_r, L_r L_r^T)`` and its linear parts.

    ``w2sq = |mu - mu_r|^2 + tr Sigma + tr Sigma_r - 2 tr((Sigma_r^{1/2} Sigma
    Sigma_r^{1/2})^{1/2})``; the last trace equals ``tr sqrt(L_r^T Sigma L_r)``
    because both matrices have the eigenvalues of ``Sigma_r Sigma``.

    Parameters
    ----------
    mu, Sigma : ndarray
        The fitted model.
    mu_r, L_r : ndarray
        Reference mean and lower Cholesky factor of ``Sigma_r``.
    sr_identity : bool
        ``Sigma_r = I`` (skips the congruence).
    tr_sr : float
        ``tr Sigma_r``.
    metric : int
        ``METRIC_W2SQ`` or ``METRIC_W2``.
    W1, W2 : ndarray, shape (d, d)
        Work space.

    Returns
    -------
    dist : float
        The distance in the requested metric.
    mean_sq : float
        ``|mu - mu_r|^2``.
    trace : float
        ``tr Sigma``.
    """
    d = mu.shape[0]
    mean_sq = 0.0
    for i in range(d):
        mean_sq += (mu[i] - mu_r[i]) ** 2
    trace = 0.0
    for i in range(d):
        trace += Sigma[i, i]
    if sr_identity:
        ts = _tr_sqrt_psd(Sigma)
    else:
        # W1 = Sigma L_r ; W2 = L_r^T W1
        for i in range(d):
            for j in range(d):
                acc = 0.0
                for c in range(j, d):
                    acc += Sigma[i, c] * L_r[c, j]
                W1[i, j] = acc
        for i in range(d):
            for j in range(d):
                acc = 0.0
                for c in range(i, d):
                    acc += L_r[c, i] * W1[c, j]
                W2[i, j] = acc
        for i in range(d):
            for j in range(i):
                s = 0.5 * (W2[i, j] + W2[j, i])
                W2[i, j] = s
                W2[j, i] = s
        ts = _tr_sqrt_psd(W2)
    w2sq = mean_sq + trace + tr_sr - 2.0 * ts
    if w2sq < 0.0:
        w2sq = 0.0
    if metric == METRIC_W2:
        return np.sqrt(w2sq), mean_sq, trace
    return w2sq, mean_sq, trace
