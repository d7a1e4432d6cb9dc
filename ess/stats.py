"""Statistics of Monte Carlo means: control-variate means and Student-t quantiles.

No Numba here: these functions run once per round of chains, on per-chain
results (:mod:`ess.chains` produces them, :mod:`ess.solve` and
:mod:`ess.reference` call these).
"""

from __future__ import annotations

import functools
import math

import numpy as np


@functools.lru_cache(maxsize=4096)
def t975(dof: int) -> float:
    """97.5% quantile of Student's t with ``dof`` degrees of freedom.

    Below :data:`T_SERIES_DOF` degrees of freedom, Newton's method on the exact
    distribution function of the t distribution for an integer ``dof`` (the
    finite sums of Abramowitz and Stegun 26.7.3-4), from the normal quantile,
    where every step approaches the root from below; from there the
    Cornish-Fisher expansion to ``dof^-4`` (A&S 26.7.5), whose error falls like
    ``dof^-5``: 1.2e-14 relative at 500. Both agree with SciPy's ``stdtrit`` to
    1e-13 relative (``tests/test_startup.py``); at most a few milliseconds a call,
    and the values are kept (an estimate asks for the same few ``dof`` round after
    round: at ``(d, n_r, n_s, lam) = (1, 100, 200, 0.9)``, 256 chains, the suite's time
    to a 1% ``n_e`` fell from 1.33 to 0.66-0.80 ms with them kept, one loaded run).

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
    SciPy's ``stdtrit`` did this before; importing ``scipy.special`` took 0.15 to
    0.35 s of a new ``ess estimate`` process, more than all of ess's own modules.
    An earlier table to six decimals up to 30 degrees of freedom and a shorter
    Cornish-Fisher expansion above were off by up to 2.2e-7 relative.
    """
    if dof < 1:
        return math.inf
    dof = int(dof)
    if dof >= T_SERIES_DOF:
        return _t_cornish_fisher(dof)
    t = _Z975
    for _ in range(50):      # quadratic convergence: under ten steps for dof >= 1
        step = (_t_central(t, dof) - 0.95) / (2.0 * _t_density(t, dof))
        t -= step
        if abs(step) <= 1e-15 * t:   # the step is at rounding level: t is the root
            break
    return t


#: Degrees of freedom from which :func:`t975` uses the Cornish-Fisher expansion.
T_SERIES_DOF = 500
#: The standard normal's 97.5% quantile.
_Z975 = 1.959963984540054


def _t_central(t: float, dof: int) -> float:
    """``P(|T| < t)`` for Student's t with an integer ``dof`` (A&S 26.7.3-4)."""
    theta = math.atan(t / math.sqrt(dof))
    c2 = math.cos(theta) ** 2
    if dof % 2 == 0:       # sin(theta) (1 + c2/2 + (1 3)/(2 4) c2^2 + ...), dof/2 terms
        term = total = 1.0
        for k in range(1, dof // 2):
            term *= (2 * k - 1) / (2 * k) * c2
            total += term
        return math.sin(theta) * total
    if dof == 1:
        return 2.0 * theta / math.pi
    term = total = 1.0     # (2/pi)(theta + sin cos (1 + (2/3) c2 + (2 4)/(3 5) c2^2 + ...))
    for k in range(1, (dof - 1) // 2):
        term *= (2 * k) / (2 * k + 1) * c2
        total += term
    return 2.0 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)


def _t_density(t: float, dof: int) -> float:
    """Density of Student's t with ``dof`` degrees of freedom at ``t``."""
    log_c = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)
    return math.exp(log_c - (dof + 1) / 2 * math.log1p(t * t / dof))


def _t_cornish_fisher(dof: int) -> float:
    """:func:`t975` for large ``dof``: ``z + g1/dof + g2/dof^2 + g3/dof^3 + g4/dof^4``."""
    z = _Z975
    z2 = z * z
    g1 = z * (z2 + 1) / 4
    g2 = z * ((5 * z2 + 16) * z2 + 3) / 96
    g3 = z * (((3 * z2 + 19) * z2 + 17) * z2 - 15) / 384
    g4 = z * ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) / 92160
    v = float(dof)
    return z + (g1 + (g2 + (g3 + g4 / v) / v) / v) / v


#: Rows beyond the number of control variates that :func:`cv_mean` needs to fit their
#: slopes (with fewer, it returns the plain mean).
CV_MIN_EXTRA = 8
#: Working memory of :func:`cv_mean`, in copies of its ``N x (p + 1)`` input, rounded
#: up: 3.75 measured (``tracemalloc`` peak, ``N = 2^17``, ``p = 3``).
CV_MEAN_COPIES = 4


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


def _moments(rows: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """Count, column means and centred cross-products ``sum (r - m)(r - m)^T`` of
    ``rows`` (an einsum: no BLAS, whose rounding would depend on its threads)."""
    m = rows.mean(axis=0)
    c = rows - m
    return rows.shape[0], m, np.einsum("ij,ik->jk", c, c)


class RunningCVMean:
    """A control-variate mean of rows that arrive in batches, in bounded memory.

    Each row is ``(y, x_1 .. x_p)``: the value whose mean is wanted, then the
    control variates. Up to ``keep_rows`` rows are kept and :meth:`result` is
    :func:`cv_mean` on them, exactly. Past that the rows are dropped and only the
    count, the means and the centred cross-products are kept, merged batch by
    batch (Chan, Golub and LeVeque 1979), in the order the batches arrive, so the
    result does not depend on how many threads produced them. From these moments
    :meth:`result` gives the same estimate as :func:`cv_mean` (the intercept of
    the least-squares fit, up to rounding) and the ordinary least-squares standard
    error of the intercept, ``s^2 (1/N + u^T u)``, where :func:`cv_mean` weighs each
    squared residual by its own ``(g_i / (1 - h_i))^2`` (HC3). The two differ by
    relative terms of order ``N^-1/2`` (the products ``N g_i - 1`` of size ``N^-1/2``
    that heteroscedastic residuals do not average out; leverages of order ``p / N``):
    0.16% of the standard error at ``N = 2 10^5`` rows whose noise grows with a
    control variate, the order of the standard error's own sampling error. Below
    ``keep_rows`` (:data:`ess.reference.KEEP_ROWS`, ``2^17``), where HC3 matters,
    the rows are kept.

    Memory: at most ``keep_rows + k`` rows of ``p + 1`` floats after a batch of
    ``k``, and while :meth:`result` runs on them one more copy for their
    concatenation and :data:`CV_MEAN_COPIES` for :func:`cv_mean`; the moments are
    ``(p + 1)^2`` floats.

    Parameters
    ----------
    p : int
        Number of control variates.
    keep_rows : int
        Most rows kept for the exact :func:`cv_mean`.
    """

    def __init__(self, p: int, keep_rows: int) -> None:
        self.p = p
        self.keep_rows = keep_rows
        self.n = 0
        self._mean = np.zeros(p + 1)
        self._cross = np.zeros((p + 1, p + 1))
        self._rows: list[np.ndarray] | None = []

    def add(self, rows: np.ndarray) -> None:
        """Fold a batch of rows, shape ``(k, p + 1)``, into the running moments."""
        rows = np.asarray(rows, dtype=float)
        if rows.shape[0] == 0:
            return
        k, m, c = _moments(rows)
        n = self.n + k
        delta = m - self._mean
        self._cross = self._cross + c + np.multiply.outer(delta, delta) * (self.n * k / n)
        self._mean = self._mean + delta * (k / n)
        self.n = n
        if self._rows is not None:
            self._rows.append(rows.copy())
            if n > self.keep_rows:
                self._rows = None

    def result(self, mean_X: np.ndarray) -> tuple[float, float, int]:
        """Estimate, standard error and its degrees of freedom, as :func:`cv_mean`.

        Parameters
        ----------
        mean_X : ndarray, shape (p,)
            The exactly known means of the control variates.
        """
        if self._rows is not None:
            data = np.concatenate(self._rows, axis=0)
            return cv_mean(data[:, 0], data[:, 1:], mean_X)
        N = self.n
        Sxx, Sxy, Syy = self._cross[1:, 1:], self._cross[1:, 0], float(self._cross[0, 0])
        norm = np.sqrt(np.diag(Sxx))
        cols = norm > 0.0
        ybar = float(self._mean[0])
        if not np.any(cols):
            return ybar, math.sqrt(Syy / (N - 1) / N), N - 1
        n_c = norm[cols]
        w, V = np.linalg.eigh(Sxx[np.ix_(cols, cols)] / np.multiply.outer(n_c, n_c))
        keep = w > w[-1] * 1e-12
        V = V[:, keep] / np.sqrt(w[keep])           # T = Z V: orthonormal coordinates
        b = np.einsum("jk,j->k", V, Sxy[cols] / n_c)
        u = np.einsum("j,jk->k", (self._mean[1:] - mean_X)[cols] / n_c, V)
        est = ybar - float(np.sum(u * b))
        dof = N - int(np.sum(keep)) - 1
        rss = max(Syy - float(np.sum(b * b)), 0.0)
        return est, math.sqrt(rss / dof * (1.0 / N + float(np.sum(u * u)))), dof
