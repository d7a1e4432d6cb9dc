"""Distances between a fitted Gaussian and the reference (SPEC section 2)."""

from __future__ import annotations

import numpy as np
from numba import njit

from ess.config import JIT

METRIC_W2SQ = 0
METRIC_W2 = 1


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
    ev = np.linalg.eigvalsh(M)
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
