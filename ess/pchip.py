"""Monotone piecewise-cubic Hermite interpolation (Fritsch and Carlson).

A small re-implementation of the algorithm of ``scipy.interpolate.PchipInterpolator``
(the tests compare the two: values within 1e-12, derivatives within 1e-9), kept
because of what that import costs. Every estimate inverts the reference curve,
so a new process would import ``scipy.interpolate``, which brings 248 modules
that nothing else on the estimate path loads (``scipy.optimize``,
``scipy.sparse``, ``scipy.spatial``, ``scipy.fft``; ``scipy.special`` brings 25).
Measured on the project's 2-core machine, in a process that had imported
``ess`` and ``scipy.linalg`` (which Numba loads with the kernels): 172 to 223 ms
(3 runs), and 119 to 203 ms (5 runs) even after ``scipy.special``, against 1.0
to 1.5 s for a whole new ``ess estimate --d 1 --n-s 10 --no-store`` (about 0.5 s
of it imports): 10 to 20% of a short estimate, for 40 lines of arithmetic.
"""

from __future__ import annotations

import numpy as np


def _slopes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    h = np.diff(x)
    delta = np.diff(y) / h
    n = x.shape[0]
    m = np.zeros(n)
    if n == 2:
        m[:] = delta[0]
        return m
    for k in range(1, n - 1):
        if delta[k - 1] * delta[k] > 0:
            w1 = 2 * h[k] + h[k - 1]
            w2 = h[k] + 2 * h[k - 1]
            m[k] = (w1 + w2) / (w1 / delta[k - 1] + w2 / delta[k])
    for k, (h0, h1, d0, d1) in ((0, (h[0], h[1], delta[0], delta[1])),
                                (n - 1, (h[-1], h[-2], delta[-1], delta[-2]))):
        e = ((2 * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
        if np.sign(e) != np.sign(d0):
            e = 0.0
        elif np.sign(d0) != np.sign(d1) and abs(e) > abs(3 * d0):
            e = 3 * d0
        m[k] = e
    return m


def pchip(x: np.ndarray, y: np.ndarray, t: float) -> tuple[float, float]:
    """Value and derivative at ``t`` of the PCHIP interpolant of ``(x, y)``.

    Parameters
    ----------
    x : ndarray
        Strictly increasing abscissae (at least two).
    y : ndarray
        Ordinates.
    t : float
        Point in ``[x[0], x[-1]]``.

    Returns
    -------
    (float, float)
        The interpolant and its derivative at ``t``.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    m = _slopes(x, y)
    k = int(np.clip(np.searchsorted(x, t) - 1, 0, x.shape[0] - 2))
    h = x[k + 1] - x[k]
    s = (t - x[k]) / h
    h00 = 2 * s**3 - 3 * s**2 + 1
    h10 = s**3 - 2 * s**2 + s
    h01 = -2 * s**3 + 3 * s**2
    h11 = s**3 - s**2
    val = h00 * y[k] + h10 * h * m[k] + h01 * y[k + 1] + h11 * h * m[k + 1]
    d00 = (6 * s**2 - 6 * s) / h
    d10 = 3 * s**2 - 4 * s + 1
    d01 = (-6 * s**2 + 6 * s) / h
    d11 = 3 * s**2 - 2 * s
    der = d00 * y[k] + d10 * m[k] + d01 * y[k + 1] + d11 * m[k + 1]
    return float(val), float(der)
