"""Statistics of Monte Carlo means: control-variate means and Student-t quantiles.

No Numba here: these functions run once per round of chains, on per-chain
results (:mod:`ess.chains` produces them, :mod:`ess.solve` and
:mod:`ess.reference` call these).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import stdtrit

#: Probability of the upper quantile of a two-sided 95% interval.
_UPPER = 0.975


def t975(dof: int) -> float:
    """97.5% quantile of Student's t with ``dof`` degrees of freedom.

    SciPy's ``stdtrit`` (the inverse of the t distribution function).

    Parameters
    ----------
    dof : int
        Degrees of freedom; below 1 the quantile is infinite.

    Returns
    -------
    float
        ``t`` with ``P(T <= t) = 0.975``: a 95% interval is ``est +- t975(dof) * se``.

    Notes
    -----
    This replaced a table to six decimals up to 30 degrees of freedom and a
    Cornish-Fisher expansion above, whose values were off by up to 2.2e-7
    relative. The price is the import of ``scipy.special``: SciPy's linear algebra
    is imported on the estimate path anyway (Numba loads it with the kernels),
    ``scipy.special`` was not. Measured on the project's 2-core machine, in a
    process that had imported ``ess`` and ``scipy.linalg``: 34 to 61 ms (5 runs,
    median 43 ms), against 1.0 to 1.5 s for a whole new ``ess estimate --d 1
    --n-s 10 --no-store`` (about 0.5 s of it imports): some 4%, accepted for exact
    quantiles and no table to maintain.
    """
    if dof < 1:
        return math.inf
    return float(stdtrit(dof, _UPPER))


#: Rows beyond the number of control variates that :func:`cv_mean` needs to fit their
#: slopes (with fewer, it returns the plain mean).
CV_MIN_EXTRA = 8


def cv_mean(y: np.ndarray, X: np.ndarray | None = None,
            mean_X: np.ndarray | None = None) -> tuple[float, float, int]:
    """Mean of ``y`` and its standard error, with optional control variates.

    With control variates ``X`` (shape ``(N, p)``) of known means ``mean_X``
    the estimate is the intercept ``a`` of the least-squares fit
    ``y ~ a + (X - mean_X) b``, that is ``mean(y) - (mean(X) - mean_X) . b``.
    Its standard error is the heteroscedasticity-consistent HC3 one
    (MacKinnon and White 1985; Long and Ervin 2000): each squared residual is
    weighted by ``1 / (1 - h_i)^2`` with ``h_i`` its leverage. The window averages
    of the distance and of the moments are skewed, and the spread of the
    residuals grows with the moments, so the textbook formula with
    ``s^2 (A'A)^{-1}`` (or its average over ``X``, Lavenberg and Welch) is too
    small with a few dozen chains: over 400 seeds of :func:`ess.estimate` at five
    settings from ``d = 1`` to 10, its 95% intervals held the limit (known to
    within 1.5% of their half-width) 92.0 to 94.8% of the time, HC3's 94.0 to
    97.0%. Intervals are Student-t with ``N - p - 1`` degrees of freedom.

    Parameters
    ----------
    y : ndarray, shape (N,)
        The per-chain values whose mean is wanted.
    X : ndarray, shape (N, p), optional
        Control variates of the same chains. Without them, or with fewer than
        ``p + 8`` rows, the plain mean and its standard error are returned.
    mean_X : ndarray, shape (p,), optional
        The exactly known means of the columns of ``X``.

    Returns
    -------
    (float, float, int)
        Estimate, standard error, and the degrees of freedom of the standard
        error (for Student-t intervals: ``t975(dof) * se``).
    """
    y = np.asarray(y, dtype=float)
    N = y.shape[0]
    if X is None or X.shape[1] == 0 or N < X.shape[1] + CV_MIN_EXTRA:
        return float(y.mean()), float(y.std(ddof=1) / math.sqrt(N)), N - 1
    # Orthonormal, centred coordinates T of the control variates (columns without
    # spread, or dependent on the others, dropped), then y = a + T b. Every sum is an
    # einsum or np.sum (no BLAS: its rounding would depend on its thread count), and
    # the only factorisation is that of a p x p matrix.
    ybar = float(y.mean())
    yc = y - ybar
    Xc = X - X.mean(axis=0)
    norm = np.sqrt(np.einsum("ij,ij->j", Xc, Xc))
    cols = norm > 0.0
    Z = Xc[:, cols] / norm[cols]
    w, V = np.linalg.eigh(np.einsum("ij,ik->jk", Z, Z))
    keep = w > w[-1] * 1e-12
    if not np.any(keep):
        return ybar, float(y.std(ddof=1) / math.sqrt(N)), N - 1
    V = V[:, keep] / np.sqrt(w[keep])
    T = np.einsum("ij,jk->ik", Z, V)
    b = np.einsum("ij,i->j", T, yc)
    resid = yc - np.einsum("ij,j->i", T, b)
    u = np.einsum("j,jk->k", (X.mean(axis=0) - mean_X)[cols] / norm[cols], V)
    est = ybar - float(np.sum(u * b))
    g = 1.0 / N - np.einsum("ij,j->i", T, u)     # the estimate is sum(g * y)
    lev = 1.0 / N + np.einsum("ij,ij->i", T, T)
    var = float(np.sum((g * resid / (1.0 - lev)) ** 2))
    return est, math.sqrt(var), N - int(np.sum(keep)) - 1
