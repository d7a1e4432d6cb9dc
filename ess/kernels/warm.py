"""Warm starts: a chain's first model drawn near the loop's stationary law.

The limit ``WD`` does not depend on where the chains start (SPEC section 3). Where
the stationary moments are known exactly (fresh loop, ``memory = 1``, ``Sigma_r`` the
identity in the kernels' units; :func:`ess.analytic.fresh_stationary_second_moments`)
a chain can start from a state that matches them, so that its burn-in only has to
forget what the moments do not fix:

- ``mu = mu_r + s z`` with ``z ~ N(0, I_d)`` and ``s^2 = E|mu - mu_r|^2 / d``
  (the stationary covariance of ``mu`` is a multiple of ``Sigma_r``);
- ``Sigma = g W`` with ``W ~ Wishart(I_d, nu)``: ``E Sigma = g nu I`` and
  ``E tr Sigma^2 = g^2 nu (nu + d + 1) d``, so ``nu`` and ``g`` match ``E tr Sigma``
  and ``E tr Sigma^2`` (:func:`ess.plan.warm_start`). ``nu`` need not be an integer:
  from ``nu >= d + 1`` on, Bartlett's decomposition with ``A_ii^2 ~ chi2(nu - i)``
  (every degree of freedom at least 2, as :func:`ess.kernels.random._chi2` needs);
  below, ``nu`` is rounded to an integer ``k`` and ``W = G G^T`` with ``G`` a
  ``d x k`` standard normal matrix (``E tr Sigma^2`` is then matched to within the
  rounding).

The draws come from the chain's own synthetic stream (the real stream stays aligned
across configurations and across the ``n_s`` values of a threshold search: common
random numbers), so the start does not depend on the number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ess.config import JIT
from ess.kernels.random import _chi2_call, _chi2_consts, _normal_call

#: Columns of the ``warm`` array of :func:`_warm_draw`'s callers: per configuration the
#: scale ``s`` of the mean, the scale ``g`` of the covariance and the Wishart
#: degrees of freedom ``nu``.
WARM_MU_SD = 0
WARM_SCALE = 1
WARM_NU = 2
WARM_FIELDS = 3


@njit(**JIT)
def _warm_draw(rng, mu_sd, scale, nu, mu_r, mu_out, S_out, A):
    """Draw a warm start: ``mu = mu_r + mu_sd z`` and ``Sigma = scale W``, ``W ~ Wishart(I, nu)``.

    Parameters
    ----------
    rng : ndarray of uint64, shape (4,)
        Generator state (:mod:`ess.kernels.random`), advanced in place.
    mu_sd, scale, nu : float
        Scale of the mean, scale of the covariance and degrees of freedom (``nu > 0``).
    mu_r : ndarray, shape (d,)
        Reference mean.
    mu_out : ndarray, shape (d,)
        Output: the model's mean.
    S_out : ndarray, shape (d, d)
        Output: the model's covariance (symmetric, both triangles).
    A : ndarray, shape (d, d)
        Work space.
    """
    d = mu_r.shape[0]
    for i in range(d):
        mu_out[i] = mu_r[i] + mu_sd * _normal_call(rng)
    if nu >= d + 1.0:
        # Bartlett: W = A A^T, A lower, A_ii^2 ~ chi2(nu - i), A_ij ~ N(0, 1) below.
        for i in range(d):
            df = nu - i
            dd, c = _chi2_consts(df)
            A[i, i] = np.sqrt(_chi2_call(rng, df, dd, c))
            for j in range(i):
                A[i, j] = _normal_call(rng)
        for i in range(d):
            for j in range(i + 1):
                acc = 0.0
                for c in range(j + 1):
                    acc += A[i, c] * A[j, c]
                S_out[i, j] = scale * acc
                S_out[j, i] = scale * acc
        return
    # W = G G^T, G a d x k standard normal matrix (singular when k < d).
    k = max(1, int(np.floor(nu + 0.5)))
    G = np.empty((d, k))
    for i in range(d):
        for c in range(k):
            G[i, c] = _normal_call(rng)
    for i in range(d):
        for j in range(i + 1):
            acc = 0.0
            for c in range(k):
                acc += G[i, c] * G[j, c]
            S_out[i, j] = scale * acc
            S_out[j, i] = scale * acc


@njit(**JIT)
def _warm_draw_d1(rng, mu_sd, scale, nu, mu_r):
    """:func:`_warm_draw` for ``d = 1``: ``(mu_r + mu_sd z, scale chi2(nu))``, the same
    variates in the same order (``chi2(nu)`` for ``nu >= 2``, else ``chi2(k)`` with
    ``k = round(nu)``, as a sum of ``k`` squared normals)."""
    m = mu_r + mu_sd * _normal_call(rng)
    if nu >= 2.0:
        dd, c = _chi2_consts(nu)
        a = np.sqrt(_chi2_call(rng, nu, dd, c))
        return m, scale * (a * a)   # as Bartlett's A A^T in _warm_draw, bit for bit
    k = max(1, int(np.floor(nu + 0.5)))
    acc = 0.0
    for _ in range(k):
        z = _normal_call(rng)
        acc += z * z
    return m, scale * acc
