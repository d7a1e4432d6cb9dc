"""Exact moments of the Gaussian loop and the ``d = 1`` reference curve (SPEC section 4).

These are the facts the Monte Carlo is tested against, and the known means of
the control variates that make the Monte Carlo cheaper.
"""

from __future__ import annotations

import math

import numpy as np


def divisor(n: int, cov_estimator: str) -> int:
    """Covariance divisor ``q``: ``n - 1`` (unbiased) or ``n`` (MLE)."""
    return n - 1 if cov_estimator == "unbiased" else n


def fresh_stationary_moments(n_r: int, n_s: int, lam: float, cov_estimator: str,
                             tr_sigma_r: float) -> tuple[float, float]:
    """Stationary ``E|mu - mu_r|^2`` and ``E tr Sigma`` of the fresh loop, ``memory = 1``.

    Solves the fixed point of SPEC section 4 written for traces (the same
    derivation holds for any ``Sigma_r``, with ``tr Sigma_r`` for ``d``)::

        a = n_r/n^2 t + (n_s lam/n^2) c + (n_s^2/n^2) a
        c = (n_r - 1 + n_s/n)/q t + ((n_s - 1 + n_r/n) lam/q) c + (n_r n_s/(n q)) a

    Parameters
    ----------
    n_r, n_s : int
        Real and synthetic sample sizes per generation.
    lam : float
        Sampling bias.
    cov_estimator : str
        ``"unbiased"`` or ``"mle"``.
    tr_sigma_r : float
        ``tr Sigma_r`` (``d`` for the identity).

    Returns
    -------
    (float, float)
        ``E|mu - mu_r|^2`` and ``E tr Sigma`` at stationarity.
    """
    n = n_r + n_s
    q = divisor(n, cov_estimator)
    t = tr_sigma_r
    M = np.array([
        [1.0 - n_s**2 / n**2, -n_s * lam / n**2],
        [-n_r * n_s / (n * q), 1.0 - (n_s - 1 + n_r / n) * lam / q],
    ])
    rhs = np.array([n_r / n**2 * t, (n_r - 1 + n_s / n) / q * t])
    a, c = np.linalg.solve(M, rhs)
    return float(a), float(c)


def fresh_moment_step(a: float, c: float, n_r: int, n_s: int, lam: float,
                      cov_estimator: str, tr_sigma_r: float) -> tuple[float, float]:
    """One generation of the (``E|mu - mu_r|^2``, ``E tr Sigma``) recursion, ``memory = 1``."""
    n = n_r + n_s
    q = divisor(n, cov_estimator)
    t = tr_sigma_r
    a2 = n_r / n**2 * t + n_s * lam / n**2 * c + n_s**2 / n**2 * a
    c2 = ((n_r - 1 + n_s / n) / q * t + (n_s - 1 + n_r / n) * lam / q * c
          + n_r * n_s / (n * q) * a)
    return a2, c2


def fully_synthetic_trace_factor(n_s: int, lam: float, cov_estimator: str) -> float:
    """Per-generation factor of ``E tr Sigma_t``, fully synthetic loop: ``(n_s - 1) lam / q``."""
    return (n_s - 1) * lam / divisor(n_s, cov_estimator)


def reference_linear_moments(n: int, cov_estimator: str, tr_sigma_r: float) -> tuple[float, float]:
    """``E|m - mu_r|^2 = tr Sigma_r / n`` and ``E tr Sigma_hat = ((n - 1)/q) tr Sigma_r``."""
    return tr_sigma_r / n, (n - 1) / divisor(n, cov_estimator) * tr_sigma_r


def _mean_s_d1(n: int, cov_estimator: str) -> float:
    """``E s`` with ``q s^2 ~ chi2(n - 1)``: ``sqrt(2/q) Gamma(n/2) / Gamma((n-1)/2)``."""
    q = divisor(n, cov_estimator)
    return math.sqrt(2.0 / q) * math.exp(math.lgamma(n / 2) - math.lgamma((n - 1) / 2))


def reference_d1(n: int, metric: str, cov_estimator: str) -> float:
    """Exact reference curve ``f(n)`` for ``d = 1``, ``P_r = N(0, 1)``.

    ``f(n) = E g(m, s)`` with ``m ~ N(0, 1/n)``, ``q s^2 ~ chi2(n - 1)``
    independent and ``g = m^2 + (s - 1)^2`` (``w2sq``, closed form through the
    mean of a chi distribution) or ``sqrt(g)`` (``w2``, by quadrature).
    """
    q = divisor(n, cov_estimator)
    if metric == "w2sq":
        return 1.0 / n + (n - 1) / q - 2.0 * _mean_s_d1(n, cov_estimator) + 1.0
    from scipy import integrate, stats

    k = n - 1
    sd_m = 1.0 / math.sqrt(n)

    def inner(s: float) -> float:
        # E_m sqrt(m^2 + b^2), m ~ N(0, sd_m^2), b = s - 1, by quadrature over m >= 0.
        b2 = (s - 1.0) ** 2
        val, _ = integrate.quad(
            lambda m: math.sqrt(m * m + b2) * math.exp(-0.5 * (m / sd_m) ** 2),
            0.0, 40.0 * sd_m, limit=200, epsabs=1e-14, epsrel=1e-12)
        return 2.0 * val / (sd_m * math.sqrt(2.0 * math.pi))

    chi = stats.chi(k, scale=1.0 / math.sqrt(q))
    lo, hi = chi.ppf(1e-14), chi.isf(1e-14)
    val, _ = integrate.quad(lambda s: inner(s) * chi.pdf(s), lo, hi,
                            points=[1.0] if lo < 1.0 < hi else None,
                            limit=400, epsabs=1e-13, epsrel=1e-10)
    return float(val)


def mixing_rate(n_r: int, n_s: int, memory: int | str, lam: float = 1.0,
                cov_estimator: str = "unbiased") -> float:
    """Rate per generation at which the fresh or augmentation loop's expected
    distance forgets its start (the slowest mode it sees).

    With ``memory = 1`` the mean's autocorrelation is ``rho = n_s / (n_r + n_s)``
    (SPEC section 3), but the expected distance never sees that mode: the loop
    and its start are symmetric under reflecting ``mu`` about ``mu_r`` and the
    distance is even in ``mu - mu_r``, so ``E dist`` forgets its start at the
    rate of the second moments, the spectral radius of the 2x2 recursion of
    SPEC section 4 (at least ``rho^2``), which is returned. With ``memory = K`` the mean follows
    ``mu_t = (n_r/n) r_t + (rho/K) sum_{j=1..K} mu_{t-j} + noise``, whose slowest
    mode is the root ``r`` in ``(0, 1)`` of ``rho (1 - r^K) = K r^K (1 - r)``
    (found by bisection without negative powers, so any ``K`` is safe).
    ``memory = "all"`` has no geometric rate (1.0).
    """
    n = n_r + n_s
    rho = n_s / n
    if memory == "all":
        return 1.0
    if rho == 0.0:
        return 0.0
    if memory == 1:
        q = divisor(n, cov_estimator)
        a, b = n_s**2 / n**2, n_s * lam / n**2
        c, e = n_r * n_s / (n * q), (n_s - 1 + n_r / n) * lam / q
        # Non-negative 2x2 matrix [[a, b], [c, e]]: real eigenvalues, the larger is
        # the spectral radius.
        return float(0.5 * (a + e) + math.sqrt(0.25 * (a - e) ** 2 + b * c))
    K = int(memory)

    def h(r: float) -> float:
        rk = r**K
        return rho * (1.0 - rk) - K * rk * (1.0 - r)

    lo, hi = 0.0, 1.0 - 1e-15   # h(0) = rho > 0; h < 0 just below 1 since rho < 1
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if h(mid) > 0.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)
