"""Exact moments of the Gaussian loop and the ``d = 1`` reference curve (SPEC section 4).

These are the facts the Monte Carlo is tested against, and the known means of
the control variates that make the Monte Carlo cheaper.
"""

from __future__ import annotations

import functools
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


#: The moments tracked by :func:`fresh_second_moment_matrix`, in order.
SECOND_MOMENTS = ("1", "|mu|^2", "tr S", "tr S^2", "(tr S)^2", "mu' S mu", "|mu|^2 tr S",
                  "|mu|^4")


def _times(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Product of two polynomials ``u0 + u1 |mu|^2 + u2 tr S`` as a vector over
    :data:`SECOND_MOMENTS`."""
    out = np.zeros(8)
    out[0] = u[0] * v[0]
    out[1] = u[0] * v[1] + u[1] * v[0]
    out[2] = u[0] * v[2] + u[2] * v[0]
    out[7] = u[1] * v[1]
    out[6] = u[1] * v[2] + u[2] * v[1]
    out[4] = u[2] * v[2]
    return out


def _linear(c0: float = 0.0, mu2: float = 0.0, tr: float = 0.0) -> np.ndarray:
    """The polynomial ``c0 + mu2 |mu|^2 + tr tr S``, as :func:`_times` takes it."""
    return np.array([c0, mu2, tr])


def _poly(c0: float = 0.0, mu2: float = 0.0, tr: float = 0.0, tr2: float = 0.0,
          mSm: float = 0.0) -> np.ndarray:
    """A polynomial of the state as a vector over :data:`SECOND_MOMENTS`."""
    out = np.zeros(8)
    out[[0, 1, 2, 3, 5]] = c0, mu2, tr, tr2, mSm
    return out


def fresh_second_moment_matrix(d: int, n_r: int, n_s: int, lam: float,
                               cov_estimator: str) -> np.ndarray:
    """One generation of the fresh loop (``memory = 1``, ``P_r = N(0, I_d)``) on the
    expectations of the moments :data:`SECOND_MOMENTS` of the model ``(mu, S)``.

    Row ``i`` holds ``E[z_i' | mu, S]`` as a combination of the current moments ``z``
    (exact: Gaussian and Wishart moments are polynomial). With ``R = S_r + S_s + c
    delta delta^T`` the next scatter (``S_r ~ W(n_r - 1, I)``, ``S_s ~ W(n_s - 1, lam
    S)``, ``c = n_r n_s / n``, ``delta = m_r - m_s ~ N(-mu, V)``, ``V = I/n_r + lam
    S/n_s``) and ``mu' = (n_s/n) mu + e``, ``e ~ N(0, E)``, ``E = (n_r I + lam n_s
    S)/n^2``, ``Cov(e, eta) = K = (I - lam S)/n`` for ``eta = delta + mu``, it uses
    ``E[W^2] = k(k+1) Psi^2 + k tr(Psi) Psi`` and ``Var tr W = 2k tr Psi^2`` for ``W ~
    W(k, Psi)``, and Isserlis' theorem for the Gaussian parts.
    """
    n = n_r + n_s
    q = divisor(n, cov_estimator)
    kr, ks = n_r - 1, max(n_s - 1, 0)
    c = n_r * n_s / n
    al = n_s / n
    lam_s = lam / n_s if n_s else 0.0          # lam / n_s, no synthetic term for n_s = 0
    trV = _linear(d / n_r, 0.0, lam_s)
    trE = _linear(n_r * d / n**2, 0.0, lam * n_s / n**2)
    trK = _linear(d / n, 0.0, -lam / n)
    mu2 = _linear(0.0, 1.0)
    trS = _linear(0.0, 0.0, 1.0)
    one = _linear(1.0)
    Emu2n = al**2 * mu2 + trE                  # E|mu'|^2
    Edel2 = mu2 + trV                          # E|delta|^2
    trV2 = _poly(d / n_r**2, tr=2 * lam / (n_r * n_s) if n_s else 0.0,
                 tr2=lam**2 / n_s**2 if n_s else 0.0)
    trE2 = _poly(n_r**2 * d / n**4, tr=2 * n_r * lam * n_s / n**4, tr2=lam**2 * n_s**2 / n**4)
    trK2 = _poly(d / n**2, tr=-2 * lam / n**2, tr2=lam**2 / n**2)
    trVE = _poly(d / n**2, tr=(lam * n_s / n_r + (lam * n_r / n_s if n_s else 0.0)) / n**2,
                 tr2=lam**2 / n**2)
    mVm = _poly(mu2=1.0 / n_r, mSm=lam_s)
    mEm = _poly(mu2=n_r / n**2, mSm=lam * n_s / n**2)
    mKm = _poly(mu2=1.0 / n, mSm=-lam / n)
    Edel4 = _times(Edel2, Edel2) + 2 * trV2 + 4 * mVm
    dSd = _poly(mSm=1.0) + _poly(tr=1.0 / n_r, tr2=lam_s)  # E d'S d
    M = np.zeros((8, 8))
    M[0] = _poly(1.0)
    M[1] = _times(one, Emu2n)
    # E tr R = k_r d + k_s lam tr S + c E|delta|^2
    M[2] = _times(one, kr * d * one + ks * lam * trS + c * Edel2) / q
    # E tr R^2
    M[3] = (_poly(kr * (kr + 1) * d + kr * d * d)
            + _poly(tr2=ks * (ks + 1) * lam**2) + ks * lam**2 * _times(trS, trS)
            + c * c * Edel4 + 2 * kr * ks * lam * _times(one, trS)
            + 2 * c * kr * _times(one, Edel2)
            + 2 * c * ks * lam * dSd) / q**2
    # E (tr R)^2
    M[4] = (_poly(2 * kr * d + kr * kr * d * d)
            + _poly(tr2=2 * ks * lam**2) + ks * ks * lam**2 * _times(trS, trS)
            + c * c * Edel4 + 2 * kr * d * ks * lam * _times(one, trS)
            + 2 * c * kr * d * _times(one, Edel2) + 2 * c * ks * lam * _times(trS, Edel2)) / q**2
    # E mu'^T R mu' = k_r E|mu'|^2 + k_s lam E mu'^T S mu' + c E (delta . mu')^2
    EX = -al * mu2 + trK
    EX2 = _times(EX, EX) + mEm + al**2 * mVm - 2 * al * mKm + trVE + trK2
    mSm_next = al**2 * _poly(mSm=1.0) + _poly(tr=n_r / n**2, tr2=lam * n_s / n**2)
    M[5] = (kr * _times(one, Emu2n) + ks * lam * mSm_next + c * EX2) / q
    # E |mu'|^2 tr R
    cov12 = 2 * trK2 - 4 * al * mKm
    M[6] = (kr * d * _times(one, Emu2n) + ks * lam * _times(trS, Emu2n)
            + c * (_times(Emu2n, Edel2) + cov12)) / q
    # E |mu'|^4
    M[7] = _times(Emu2n, Emu2n) + 2 * trE2 + 4 * al**2 * mEm
    return M


@functools.lru_cache(maxsize=4096)
def fresh_stationary_second_moments(d: int, n_r: int, n_s: int, lam: float,
                                    cov_estimator: str) -> np.ndarray:
    """Stationary expectations of :data:`SECOND_MOMENTS` for the fresh loop,
    ``memory = 1``, ``P_r = N(0, I_d)``: the fixed point of
    :func:`fresh_second_moment_matrix` (its contraction factor is below 1 for every
    admissible ``n_r >= 2``, ``lam <= 1``).

    Kept per arguments (read-only): building the matrix takes about 0.1 ms, a
    tenth of a ``d = 1`` estimate, and a threshold search asks for the same
    ``n_s = 0`` moments at every evaluation.
    """
    M = fresh_second_moment_matrix(d, n_r, n_s, lam, cov_estimator)
    z = np.concatenate([[1.0], np.linalg.solve(np.eye(7) - M[1:, 1:], M[1:, 0])])
    z.flags.writeable = False
    return z


@functools.lru_cache(maxsize=4096)
def fresh_second_order_rate(d: int, n_r: int, n_s: int, lam: float, cov_estimator: str) -> float:
    """Rate per generation at which the fresh loop (``memory = 1``, ``P_r = N(0, I_d)``)
    forgets a start whose first-order moments are stationary.

    ``E|mu|^2`` and ``E tr Sigma`` follow their own 2x2 recursion (:func:`mixing_rate`):
    a start that matches them keeps them for ever, so what remains of the start decays
    with the second-order moments of :data:`SECOND_MOMENTS` (``tr Sigma^2``, ``(tr
    Sigma)^2``, ``mu' Sigma mu``, ``|mu|^2 tr Sigma``, ``|mu|^4``): the spectral radius
    of their block of :func:`fresh_second_moment_matrix`, about ``max(e^2, rho^2 e,
    rho^4)`` with ``rho = n_s / n`` and ``e`` the covariance's contraction (higher
    orders decay faster still). Measured at ``d = 100``, ``(n_r, n_s, lam) = (100,
    10^4, 1)``: a warm start's excess fell by 0.958 per generation over the first 50,
    against 0.981 here and 0.990 for :func:`mixing_rate`.
    """
    M = fresh_second_moment_matrix(d, n_r, n_s, lam, cov_estimator)
    return float(np.abs(np.linalg.eigvals(M[3:, 3:])).max())


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


def augmentation_moment_step(a: float, b: float, c: float, n_r: int, n_s: int, lam: float,
                             cov_estimator: str, tr_sigma_r: float) -> tuple[float, float, float]:
    """One generation of the augmentation loop's first moments, ``memory = 1``.

    The training set is the fixed real set (``n_r`` samples, mean ``m_0``, scatter
    ``S_0``) and ``n_s`` samples of ``N(mu, lam Sigma)``, the previous model (mean
    ``ybar = mu + e``, ``E|e|^2 = lam tr Sigma / n_s``; scatter ``S_y`` with
    ``E tr S_y = (n_s - 1) lam tr Sigma``). Since ``mu`` depends on ``m_0``, the cross
    moment ``b = E (m_0 - mu_r).(mu - mu_r)`` joins ``a = E|mu - mu_r|^2`` and
    ``c = E tr Sigma``; with ``n = n_r + n_s``, ``q`` the divisor of ``n`` and
    ``e_0 = E|m_0 - mu_r|^2 = tr Sigma_r / n_r``, pooling gives::

        a' = (n_r^2 e_0 + 2 n_r n_s b + n_s^2 a + n_s lam c) / n^2
        b' = (n_r e_0 + n_s b) / n
        c' = ((n_r - 1) tr Sigma_r + (n_s - 1) lam c
              + (n_r n_s / n)(e_0 - 2 b + a) + (n_r / n) lam c) / q

    the last line from ``S' = S_0 + S_y + (n_r n_s / n)(m_0 - ybar)(m_0 - ybar)^T``
    (the synthetic terms vanish at ``n_s = 0``). Generation 1 has
    ``a = b = e_0`` and ``c = ((n_r - 1)/q_{n_r}) tr Sigma_r``; the recursion
    converges (``b -> e_0``): the loop's limit is the expectation over the fixed
    real set.

    Returns
    -------
    (float, float, float)
        The next ``(a, b, c)``.
    """
    n = n_r + n_s
    q = divisor(n, cov_estimator)
    t = tr_sigma_r
    e0 = t / n_r
    syn = 1.0 if n_s > 0 else 0.0
    a2 = (n_r**2 * e0 + 2 * n_r * n_s * b + n_s**2 * a + n_s * lam * c) / n**2
    b2 = (n_r * e0 + n_s * b) / n
    c2 = ((n_r - 1) * t + syn * (n_s - 1) * lam * c + n_r * n_s / n * (e0 - 2 * b + a)
          + syn * n_r / n * lam * c) / q
    return a2, b2, c2


def accumulate_moment_step(a: float, c: float, pool: int, n_s: int, lam: float,
                           cov_estimator: str) -> tuple[float, float]:
    """One generation of the accumulate loop's first moments, ``memory = 1``.

    The model ``G^t`` is the fit on the whole pool of ``N = pool`` samples (mean
    ``mu``, scatter ``q_N Sigma``); the next batch, ``k = n_s`` samples of ``N(mu, lam
    Sigma)`` (mean ``mu + e``, ``E|e|^2 = lam tr Sigma / k``), joins it, ``N' = N + k``.
    Pooling gives ``mu' = mu + (k / N') e`` (a martingale) and the scatter
    ``q_N Sigma + S_B + (N k / N') e e^T`` with ``E tr S_B = (k - 1) lam tr Sigma``, so::

        a' = a + k lam c / N'^2
        c' = (q_N + lam (k - 1 + N / N')) c / q_{N'}

    with ``a = E|mu - mu_r|^2``, ``c = E tr Sigma`` and ``q_N`` the divisor of ``N``.
    Generation 1 (``N = n_ini``) has ``a = tr Sigma_r / n_ini`` and ``c =
    ((n_ini - 1)/q_{n_ini}) tr Sigma_r``. At ``lam = 1`` (unbiased divisor) the factor
    is ``1 - k / (N' (N' - 1))``, whose product over ``N' = n_ini + t k`` converges
    to a positive number: ``E tr Sigma_t`` stays away from 0 (no collapse); for
    ``lam < 1`` it is about ``1 - (1 - lam) k / N'``, and ``E tr Sigma_t`` falls like
    ``t^{-(1 - lam)}``.

    Returns
    -------
    (float, float)
        The next ``(a, c)``.
    """
    N, k = pool, n_s
    N2 = N + k
    if k == 0:
        return a, c
    a2 = a + k * lam * c / N2**2
    c2 = (divisor(N, cov_estimator) + lam * (k - 1 + N / N2)) * c / divisor(N2, cov_estimator)
    return a2, c2


def subsample_moments(p: float, g: float, pool: int, fit: int,
                      cov_estimator: str) -> tuple[float, float]:
    """``E|mu - mu_r|^2`` and ``E tr Sigma`` of a fit on ``fit`` of the ``pool`` samples
    of a pool, chosen uniformly without replacement, from the pool's moments ``p =
    E|P - mu_r|^2`` (``P`` the pool mean) and ``g = E tr C`` (``C`` the pool scatter).

    For a simple random sample without replacement of ``m`` from ``N`` (``V = tr C /
    (N - 1)``, the population variance): the subsample mean is ``P + delta`` with
    ``E[delta | pool] = 0``, ``E[|delta|^2 | pool] = (1 - m/N) V / m``, and the
    subsample scatter has ``E[tr S | pool] = (m - 1) V``. Hence::

        a = p + (1 - m/N) g / (m (N - 1))
        c = (m - 1) g / (q_m (N - 1))
    """
    N, m = pool, fit
    return (p + (1.0 - m / N) * g / (m * (N - 1)),
            (m - 1) * g / (divisor(m, cov_estimator) * (N - 1)))


def subsample_pool_step(p: float, g: float, pool: int, fit: int, n_s: int, lam: float,
                        cov_estimator: str) -> tuple[float, float]:
    """One generation of the ``accumulate-subsample`` pool's moments, ``memory = 1``.

    The model was fit on ``m = fit`` of the ``N = pool`` samples: ``mu = P + delta``
    and ``E tr Sigma = c`` (:func:`subsample_moments`). Its batch, ``k = n_s`` samples
    of ``N(mu, lam Sigma)`` with mean ``mu + e``, joins the pool, ``N' = N + k``:
    ``P' = P + (k / N')(delta + e)`` and ``C' = C + S_B + (N k / N')(delta + e)(delta +
    e)^T``, where ``delta`` and ``e`` have mean 0 given the pool and
    ``E|delta + e|^2 = (1 - m/N) g / (m (N - 1)) + lam c / k``. So::

        p' = p + (k / N')^2 E|delta + e|^2
        g' = g + (k - 1) lam c + (N k / N') E|delta + e|^2

    With ``m = N`` (no subsampling) this is :func:`accumulate_moment_step`.

    Returns
    -------
    (float, float)
        The next pool's ``(p, g)``.
    """
    N, m, k = pool, fit, n_s
    if k == 0:
        return p, g
    _, c = subsample_moments(p, g, N, m, cov_estimator)
    N2 = N + k
    dev = (1.0 - m / N) * g / (m * (N - 1)) + lam * c / k
    return p + (k / N2) ** 2 * dev, g + (k - 1) * lam * c + N * k / N2 * dev


def loop_first_moments(loop: str, n_ini: int, n_r: int, n_s: int, lam: float,
                       cov_estimator: str, tr_sigma_r: float,
                       generations: int) -> tuple[np.ndarray, np.ndarray]:
    """``E|mu_t - mu_r|^2`` and ``E tr Sigma_t``, ``t = 1 .. generations``, any loop kind,
    ``memory = 1``, any ``P_r`` (only ``tr Sigma_r`` enters).

    Both are exact: every loop's pair (with the auxiliary moments below) obeys a
    linear recursion from generation 1's ``(tr Sigma_r / n_ini, ((n_ini - 1) /
    q_{n_ini}) tr Sigma_r)``:

    * ``fresh``: :func:`fresh_moment_step` (contract section 4);
    * ``fully-synthetic``: ``a' = a + lam c / n_s``, ``c' = ((n_s - 1) lam / q) c``
      (:func:`fully_synthetic_trace_factor`);
    * ``augmentation``: :func:`augmentation_moment_step`, with the cross moment of
      the fixed real set's mean and the model's;
    * ``accumulate``: :func:`accumulate_moment_step` over the growing pool
      ``N_t = n_ini + (t - 1) n_s``;
    * ``accumulate-subsample``: the pool's mean and scatter moments
      (:func:`subsample_pool_step`), and the expectation over the subsample of
      ``min(n_r + n_s, N_t)`` from ``t = 2`` (:func:`subsample_moments`).

    Returns
    -------
    (ndarray, ndarray)
        ``a[t - 1] = E|mu_t - mu_r|^2`` and ``c[t - 1] = E tr Sigma_t``.
    """
    T = tr_sigma_r
    a = np.empty(generations)
    c = np.empty(generations)
    a[0] = T / n_ini
    c[0] = (n_ini - 1) / divisor(n_ini, cov_estimator) * T
    b = a[0]
    pool, p, g = n_ini, T / n_ini, (n_ini - 1) * T
    fit = n_ini
    for t in range(1, generations):
        if loop == "fresh":
            a[t], c[t] = fresh_moment_step(a[t - 1], c[t - 1], n_r, n_s, lam, cov_estimator, T)
        elif loop == "fully-synthetic":
            a[t] = a[t - 1] + lam * c[t - 1] / n_s
            c[t] = fully_synthetic_trace_factor(n_s, lam, cov_estimator) * c[t - 1]
        elif loop == "augmentation":
            a[t], b, c[t] = augmentation_moment_step(a[t - 1], b, c[t - 1], n_r, n_s, lam,
                                                     cov_estimator, T)
        elif loop == "accumulate":
            a[t], c[t] = accumulate_moment_step(a[t - 1], c[t - 1], pool, n_s, lam,
                                                cov_estimator)
            pool += n_s
        elif loop == "accumulate-subsample":
            p, g = subsample_pool_step(p, g, pool, fit, n_s, lam, cov_estimator)
            pool += n_s
            fit = min(n_r + n_s, pool)
            a[t], c[t] = subsample_moments(p, g, pool, fit, cov_estimator)
        else:
            raise ValueError(f"unknown loop {loop!r}")
    return a, c


def fully_synthetic_trace_factor(n_s: int, lam: float, cov_estimator: str) -> float:
    """Per-generation factor of ``E tr Sigma_t``, fully synthetic loop: ``(n_s - 1) lam / q``."""
    return (n_s - 1) * lam / divisor(n_s, cov_estimator)


def reference_linear_moments(n: int, cov_estimator: str, tr_sigma_r: float) -> tuple[float, float]:
    """``E|m - mu_r|^2 = tr Sigma_r / n`` and ``E tr Sigma_hat = ((n - 1)/q) tr Sigma_r``."""
    return tr_sigma_r / n, (n - 1) / divisor(n, cov_estimator) * tr_sigma_r


def reference_tr_sigma_sq(n: int, cov_estimator: str, tr_sigma_r: float,
                          tr_sigma_r_sq: float) -> float:
    """``E tr Sigma_hat^2`` of a fit on ``n`` samples: ``q Sigma_hat ~ W(n - 1, Sigma_r)``
    and ``E W^2 = k(k+1) Sigma_r^2 + k tr(Sigma_r) Sigma_r`` for ``W ~ W(k, Sigma_r)``."""
    k = n - 1
    return (k * (k + 1) * tr_sigma_r_sq + k * tr_sigma_r**2) / divisor(n, cov_estimator) ** 2


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
