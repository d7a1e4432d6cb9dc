"""Slow, obviously correct twins of the kernels: draw every sample, fit, measure.

Nothing here is shared with the package's kernels: samples come from
``Generator.multivariate_normal``, fits from ``np.mean`` / ``np.cov`` and the
distance from ``scipy.linalg.sqrtm``.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.linalg import LinAlgWarning, sqrtm


def w2sq(mu, Sigma, mu_r, Sigma_r) -> float:
    """Squared 2-Wasserstein (Fréchet) distance by matrix square roots."""
    r = sqrtm(Sigma_r)
    with warnings.catch_warnings():   # singular Sigma (n < d, lam = 0) is expected here
        warnings.simplefilter("ignore", LinAlgWarning)
        cross = sqrtm(r @ Sigma @ r)
    val = np.sum((mu - mu_r) ** 2) + np.trace(Sigma + Sigma_r - 2 * np.real(cross))
    return float(max(val, 0.0))


def cholesky_lower(A: np.ndarray) -> np.ndarray:
    """The textbook Cholesky factor, entry by entry in plain Python floats:
    ``L[i, j] = (A[i, j] - sum_k L[i, k] L[j, k]) / L[j, j]``, the sum taken
    left to right (positive definite ``A``; reads the lower triangle)."""
    d = A.shape[0]
    L = [[0.0] * d for _ in range(d)]
    for j in range(d):
        s = float(A[j, j])
        for k in range(j):
            s -= L[j][k] * L[j][k]
        L[j][j] = s**0.5
        for i in range(j + 1, d):
            t = float(A[i, j])
            for k in range(j):
                t -= L[i][k] * L[j][k]
            L[i][j] = t / L[j][j]
    return np.array(L)


def bartlett_scatter(A: np.ndarray, U: np.ndarray) -> np.ndarray:
    """``U^T A A^T U`` for lower ``A`` and upper ``U`` by plain triple loops:
    ``C = U^T A`` then ``S = C C^T``, every sum taken left to right from 0."""
    d = A.shape[0]
    C = [[0.0] * d for _ in range(d)]
    for i in range(d):
        for j in range(i + 1):
            acc = 0.0
            for c in range(j, i + 1):
                acc += float(U[c, i]) * float(A[c, j])
            C[i][j] = acc
    S = np.zeros((d, d))
    for i in range(d):
        for j in range(i + 1):
            acc = 0.0
            for c in range(j + 1):
                acc += C[i][c] * C[j][c]
            S[i, j] = S[j, i] = acc
    return S


def fit(x: np.ndarray, mle: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sample mean and covariance (divisor n - 1, or n for the MLE) of rows of ``x``."""
    mu = x.mean(axis=0)
    if x.shape[0] == 1:
        return mu, np.zeros((x.shape[1], x.shape[1]))
    S = np.cov(x, rowvar=False, bias=mle).reshape(x.shape[1], x.shape[1])
    return mu, S


def sample(rng, mu, Sigma, k):
    """``k`` samples of ``N(mu, Sigma)`` (``Sigma`` may be singular)."""
    return rng.multivariate_normal(mu, Sigma, size=k, method="eigh")


def chain(rng, loop, n_ini, n_r, n_s, lam, memory, mle, mu_r, Sigma_r, n_gen, metric="w2sq"):
    """One chain of the loop at sample level.

    Rows ``(dist, |mu - mu_r|^2, tr Sigma, mu[0], log det Sigma, ||Sigma - Sigma_r||_F,
    smallest eigenvalue of Sigma)``, the columns of :func:`ess.chains.trajectories`.
    The accumulate loops keep the pool as a list of every sample drawn (the real set,
    then each generation's batch); ``accumulate-subsample`` fits on
    ``rng.choice(pool size, min(n_r + n_s, pool size), replace=False)`` of it.
    """
    out = np.empty((n_gen, 7))
    first = sample(rng, mu_r, Sigma_r, n_ini)
    models = [fit(first, mle)]
    pool = [first]
    for t in range(n_gen):
        if t > 0:
            parts = []
            if loop == "fresh":
                parts.append(sample(rng, mu_r, Sigma_r, n_r))
            elif loop == "augmentation":
                parts.append(first)
            K = len(models) if memory == "all" else min(memory, len(models))
            choice = rng.integers(0, K, size=n_s)   # each sample from a uniform past model
            batch = []
            for j in range(K):
                k = int(np.sum(choice == j))
                if k:
                    m, S = models[-1 - j]
                    batch.append(sample(rng, m, lam * S, k))
            if loop in ("accumulate", "accumulate-subsample"):
                pool.extend(batch)
                x = np.concatenate(pool)
                if loop == "accumulate-subsample":
                    keep = min(n_r + n_s, x.shape[0])
                    x = x[rng.choice(x.shape[0], size=keep, replace=False)]
                models.append(fit(x, mle))
            else:
                models.append(fit(np.concatenate(parts + batch), mle))
        mu, S = models[-1]
        dist = w2sq(mu, S, mu_r, Sigma_r)
        sign, logdet = np.linalg.slogdet(S)
        out[t] = (np.sqrt(dist) if metric == "w2" else dist, np.sum((mu - mu_r) ** 2),
                  np.trace(S), mu[0], logdet if sign > 0 else -np.inf,
                  np.linalg.norm(S - Sigma_r), np.linalg.eigvalsh(S).min())
    return out
