"""Distances between a fitted Gaussian and the reference (SPEC section 2)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ess.config import JIT
from ess.kernels.lapack import (
    LAPACK_MIN_D,
    _sym_eigvals_lapack,
    _trmm_lower_right,
    _trmm_lt_left,
)
from ess.kernels.sampling import ROWS_MIN_D, _axpy

METRIC_W2SQ = 0
METRIC_W2 = 1


@njit(inline="always", **JIT)
def _reflector(a, w, k):
    """Step ``k`` of :func:`_tridiagonalize`: the Householder reflector ``I - tau v
    v^T`` that zeroes row ``k`` of ``a`` past ``k + 1``.

    Writes ``w[0, k]`` (the diagonal entry) and ``w[1, k]`` (the off-diagonal one), ``v``
    into ``w[1, k + 1:]`` (``v[0] = 1``) and zeros into ``w[0, k + 1:]`` (where ``p``
    accumulates). Returns ``tau``, or 0 when the row is already reduced (nothing to do).
    """
    n = a.shape[0]
    w[0, k] = a[k, k]
    alpha = a[k, k + 1]
    xnorm2 = 0.0
    for j in range(k + 2, n):
        xnorm2 += a[k, j] * a[k, j]
    if xnorm2 == 0.0:
        w[1, k] = alpha
        return 0.0
    beta = np.sqrt(alpha * alpha + xnorm2)
    if alpha > 0.0:
        beta = -beta
    scal = 1.0 / (alpha - beta)
    w[1, k] = beta
    lo = k + 1
    w[1, lo] = 1.0
    for j in range(lo + 1, n):
        w[1, j] = a[k, j] * scal
    for j in range(lo, n):
        w[0, j] = 0.0
    return (beta - alpha) / beta


@njit(inline="always", **JIT)
def _last_entries(a, w):
    """The last diagonal and off-diagonal entries, once every reflector is applied."""
    n = a.shape[0]
    if n >= 2:
        w[0, n - 2] = a[n - 2, n - 2]
        w[1, n - 2] = a[n - 2, n - 1]
    w[0, n - 1] = a[n - 1, n - 1]
    w[1, n - 1] = 0.0


@njit(inline="always", **JIT)
def _q_of_p(w, tau, lo, n):
    """``q = p - (tau / 2)(p . v) v`` in place of ``p`` in ``w[0, lo:n]`` (``v`` in
    ``w[1, lo:n]``): a step of :func:`_tridiagonalize`."""
    pv = 0.0
    for j in range(lo, n):
        pv += w[0, j] * w[1, j]
    _axpy(-0.5 * tau * pv, w, 1, w, 0, lo, n)


@njit(**JIT)
def _tridiagonalize(a, w):
    """Householder reduction of a symmetric matrix to tridiagonal form.

    At step ``k`` the reflector ``H = I - tau v v^T`` that zeroes row ``k`` past
    ``k + 1`` is applied to the trailing block as ``A <- A - v q^T - q v^T``
    with ``p = tau A v`` and ``q = p - (tau / 2)(p . v) v``. Only the upper
    triangle is read and updated (as LAPACK's ``dsytd2``): ``p`` by one pass over
    its rows (a dot product and an update per row), the rank-two update row by
    row from the diagonal; at ``d = 10`` that takes about two thirds of the time
    of the same steps on the whole matrix.

    Parameters
    ----------
    a : ndarray, shape (n, n)
        Symmetric matrix (its upper triangle is used); destroyed.
    w : ndarray, shape (2, n)
        Output: ``w[0]`` the diagonal, ``w[1, i]`` the off-diagonal between
        ``i`` and ``i + 1`` (``w[1, n - 1] = 0``). Until step ``k`` has written
        its entries, the tails ``w[0, k + 1:]`` and ``w[1, k + 1:]`` hold ``q``
        (first ``p``) and ``v``.
    """
    n = a.shape[0]
    for k in range(n - 2):
        tau = _reflector(a, w, k)
        if tau == 0.0:
            continue
        lo = k + 1
        for j in range(lo, n):               # p = tau A v from the upper triangle
            tv = tau * w[1, j]
            acc = a[j, j] * w[1, j]
            for i in range(j + 1, n):
                acc += a[j, i] * w[1, i]
                w[0, i] += tv * a[j, i]
            w[0, j] += tau * acc
        _q_of_p(w, tau, lo, n)
        for i in range(lo, n):               # A -= v q^T + q v^T, upper triangle
            vi = w[1, i]
            qi = w[0, i]
            for j in range(i, n):
                a[i, j] -= vi * w[0, j] + qi * w[1, j]
    _last_entries(a, w)


@njit(**JIT)
def _tridiagonalize_rows(a, w):
    """Householder reduction of a symmetric matrix to tridiagonal form, on whole rows.

    :func:`_tridiagonalize` from ``d =`` :data:`ess.kernels.sampling.ROWS_MIN_D` on.

    At step ``k`` the reflector ``H = I - tau v v^T`` that zeroes row ``k`` past
    ``k + 1`` is applied to the trailing block as ``A <- A - v q^T - q v^T``
    with ``p = tau A v`` and ``q = p - (tau / 2)(p . v) v``. The whole
    symmetric matrix is kept, so the product and the update both run along
    contiguous rows (vectorised by the compiler).

    Parameters
    ----------
    a, w : ndarray
        As for :func:`_tridiagonalize`, except that ``a`` holds both triangles.
    """
    n = a.shape[0]
    for k in range(n - 2):
        tau = _reflector(a, w, k)
        if tau == 0.0:
            continue
        lo = k + 1
        for j in range(lo, n):               # p = tau A v, row by row
            _axpy(tau * w[1, j], a, j, w, 0, lo, n)
        _q_of_p(w, tau, lo, n)
        for i in range(lo, n):               # A -= v q^T + q v^T
            _axpy(-w[1, i], w, 0, a, i, lo, n)
            _axpy(-w[0, i], w, 1, a, i, lo, n)
    _last_entries(a, w)


@njit(**JIT)
def _tridiagonal_eigvals(dd, e2):
    """Eigenvalues of a symmetric tridiagonal matrix by the rational QL algorithm.

    The Pal-Walker-Kahan variant of QL with implicit shifts, as in EISPACK's
    ``tqlrat``: it works on the squared off-diagonal and needs no square root
    per rotation. Accurate to a few units of rounding relative to the matrix's
    norm, which is what a trace of square roots needs.

    Parameters
    ----------
    dd : ndarray, shape (n,)
        The diagonal; overwritten with the eigenvalues (unsorted).
    e2 : ndarray, shape (n,)
        Squares of the off-diagonal, ``e2[i]`` between ``i`` and ``i + 1``, and
        ``e2[n - 1] = 0``; destroyed.
    """
    n = dd.shape[0]
    eps = 2.220446049250313e-16
    f = 0.0
    t = 0.0
    b = 0.0
    c = 0.0
    for lo in range(n):
        h = abs(dd[lo]) + np.sqrt(e2[lo])
        if t < h:
            t = h
            b = eps * t
            c = b * b
        for _ in range(60):
            m = lo
            while e2[m] > c:      # e2[n - 1] = 0 ends the search
                m += 1
            if m == lo:
                break
            # the shift, from the leading 2 x 2 block
            s = np.sqrt(e2[lo])
            g = dd[lo]
            p = (dd[lo + 1] - g) / (2.0 * s)
            r = abs(p) * np.sqrt(1.0 + 1.0 / (p * p)) if abs(p) > 1.0 else np.sqrt(1.0 + p * p)
            dd[lo] = s / (p + (r if p >= 0.0 else -r))
            h = g - dd[lo]
            for i in range(lo + 1, n):
                dd[i] -= h
            f += h
            # the rational QL sweep from m up to lo
            g = dd[m]
            if g == 0.0:
                g = b
            h = g
            s = 0.0
            for i in range(m - 1, lo - 1, -1):
                p = g * h
                r = p + e2[i]
                e2[i + 1] = s * r
                inv_r = 1.0 / r    # one division for two: off the critical path of g
                s = e2[i] * inv_r
                dd[i + 1] = h + s * (h + dd[i])
                g = dd[i] - e2[i] / g
                if g == 0.0:
                    g = b
                h = g * (p * inv_r)
            e2[lo] = s * g
            dd[lo] = h
            if h == 0.0 or abs(e2[lo]) <= abs(c / h):
                break
            e2[lo] *= h
            if e2[lo] == 0.0:
                break
        dd[lo] += f


@njit(**JIT)
def _sym_eigvals(a, w):
    """Eigenvalues of a symmetric matrix, without LAPACK.

    Householder tridiagonalisation (:func:`_tridiagonalize`) then rational QL
    (:func:`_tridiagonal_eigvals`). Written here so that the result does not
    depend on the BLAS library or its thread count, and so that small matrices
    avoid the LAPACK call overhead. The matrix is first scaled to a largest
    entry of 1, so no square or square root can over- or underflow.

    Parameters
    ----------
    a : ndarray, shape (n, n)
        Symmetric matrix, both triangles; destroyed.
    w : ndarray, shape (2, n)
        Work space; on return ``w[0]`` holds the eigenvalues (unsorted).
    """
    n = a.shape[0]
    amax = 0.0
    for i in range(n):
        for j in range(n):
            if abs(a[i, j]) > amax:
                amax = abs(a[i, j])
    if amax == 0.0:
        w[0, :] = 0.0
        return
    inv = 1.0 / amax
    for i in range(n):
        for j in range(n):
            a[i, j] *= inv
    if n < ROWS_MIN_D:
        _tridiagonalize(a, w)
    else:
        _tridiagonalize_rows(a, w)
    for i in range(n):
        w[1, i] *= w[1, i]
    _tridiagonal_eigvals(w[0], w[1])
    for i in range(n):
        w[0, i] *= amax


@njit(**JIT)
def _tr_sqrt_sym(a, w):
    """Trace of the square root of a symmetric positive semi-definite matrix
    ``a`` (both triangles; destroyed), with ``w`` of shape ``(2, n)`` as work space.

    Closed forms for ``d = 1`` and ``d = 2`` (``tr sqrt(M) = sqrt(tr M +
    2 sqrt(det M))``), eigenvalues otherwise (by LAPACK from ``d =``
    :data:`LAPACK_MIN_D` on); eigenvalues that rounding makes slightly negative
    count as zero. For ``d >= 3`` the eigenvalues are left in ``w[0]`` (the smallest
    eigenvalue of the trajectories' diagnostics is read there:
    :func:`ess.kernels.loops._smallest_eig`).
    """
    d = a.shape[0]
    if d == 1:
        return np.sqrt(max(a[0, 0], 0.0))
    if d == 2:
        det = a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0]
        tr = a[0, 0] + a[1, 1]
        return np.sqrt(max(tr + 2.0 * np.sqrt(max(det, 0.0)), 0.0))
    if d >= LAPACK_MIN_D:
        _sym_eigvals_lapack(a, w[0])
    else:
        _sym_eigvals(a, w)
    s = 0.0
    for i in range(d):
        if w[0, i] > 0.0:
            s += np.sqrt(w[0, i])
    return s


@njit(**JIT)
def _tr_sqrt_psd(M):
    """:func:`_tr_sqrt_sym` of ``M``, left intact (allocates its work space)."""
    return _tr_sqrt_sym(M.copy(), np.empty((2, M.shape[0])))


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
        for i in range(d):
            for j in range(d):
                W1[i, j] = Sigma[i, j]
        ts = _tr_sqrt_sym(W1, W2)
    elif d >= LAPACK_MIN_D:
        W2[:, :] = Sigma      # W2 = L_r^T Sigma L_r, by two triangular products
        _trmm_lower_right(L_r, W2)
        _trmm_lt_left(L_r, W2)
        for i in range(d):
            for j in range(i):
                s = 0.5 * (W2[i, j] + W2[j, i])
                W2[i, j] = s
                W2[j, i] = s
        ts = _tr_sqrt_sym(W2, W1)
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
        ts = _tr_sqrt_sym(W2, W1)
    w2sq = mean_sq + trace + tr_sr - 2.0 * ts
    if w2sq < 0.0:
        w2sq = 0.0
    if metric == METRIC_W2:
        return np.sqrt(w2sq), mean_sq, trace
    return w2sq, mean_sq, trace
