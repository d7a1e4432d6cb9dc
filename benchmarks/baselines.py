"""Two plain NumPy baselines of the fresh-data loop's chain averages, to compare speed with `ess`.

Both estimate the same thing as :func:`ess.estimate` (docs/contract.md, sections 1-3): the
fresh data loop with ``P_r = N(0, I_d)`` and ``memory = 1``, distance ``w2sq``; each chain is
run for ``burn_in + window`` generations (generation 1, fit on ``n_ini`` real samples, counts as
the first), the first ``burn_in`` models are dropped and the distance is averaged over
the next ``window``.

- :func:`persample_chain_average` is the paper-style loop: draw every sample, fit with
  ``np.mean`` / ``np.cov``, measure with ``scipy.linalg.sqrtm``; one chain, plain Python.
- :func:`vectorised_chain_averages` is the fastest NumPy we could write: sufficient
  statistics only (sample mean ``m + L z / sqrt(k)``, scatter ``L W L^T`` with a Bartlett
  Wishart ``W``), batched over chains with ``matmul`` and batched LAPACK, looping only over
  generations; ``d = 1`` is pure elementwise arithmetic on random numbers drawn in blocks.

Nothing here is shared with the package: it is an independent implementation.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import sqrtm

COV_ESTIMATORS = ("unbiased", "mle")


def _check(d: int, n_r: int, n_s: int, lam: float, n_ini: int, burn_in: int, window: int,
           cov_estimator: str) -> int:
    """Validate the loop parameters; return the covariance ``ddof`` (1 or 0)."""
    if d < 1:
        raise ValueError(f"d must be an integer >= 1, got {d}")
    if n_r < 2:
        raise ValueError(f"n_r must be an integer >= 2, got {n_r}")
    if n_s < 0:
        raise ValueError(f"n_s must be an integer >= 0, got {n_s}")
    if n_ini < 2:
        raise ValueError(f"n_ini must be an integer >= 2, got {n_ini}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be a number in [0, 1], got {lam}")
    if burn_in < 0:
        raise ValueError(f"burn_in must be an integer >= 0, got {burn_in}")
    if window < 1:
        raise ValueError(f"window must be an integer >= 1, got {window}")
    if cov_estimator not in COV_ESTIMATORS:
        raise ValueError(f"cov_estimator must be one of {COV_ESTIMATORS}, got {cov_estimator!r}")
    return 1 if cov_estimator == "unbiased" else 0


# --------------------------------------------------------------------------------------
# (a) Sample level, one chain at a time
# --------------------------------------------------------------------------------------

def _fit(x: np.ndarray, ddof: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample mean and covariance (``ddof`` 1 or 0) of the rows of ``x``."""
    d = x.shape[1]
    return x.mean(axis=0), np.cov(x, rowvar=False, ddof=ddof).reshape(d, d)


def _w2sq_standard(mu: np.ndarray, Sigma: np.ndarray) -> float:
    """Squared 2-Wasserstein distance of ``N(mu, Sigma)`` to ``N(0, I)``, by ``sqrtm``."""
    root = np.real(sqrtm(Sigma))
    return float(mu @ mu + np.trace(Sigma) + Sigma.shape[0] - 2.0 * np.trace(root))


def persample_chain_average(rng: np.random.Generator, d: int, n_r: int, n_s: int, lam: float,
                            n_ini: int, burn_in: int, window: int,
                            cov_estimator: str = "unbiased") -> float:
    """Window average of the distance along one chain of the fresh loop, sample by sample.

    Generation 1 fits ``np.mean`` and ``np.cov`` to ``n_ini`` samples of ``N(0, I_d)``;
    every generation ``t >= 2`` draws ``n_r`` fresh real samples and ``n_s`` synthetic
    samples of ``N(mu_{t-1}, lam Sigma_{t-1})`` (``mu + z L^T`` with ``L`` the
    ``eigh`` square root of ``lam Sigma``, negative eigenvalues clipped to 0),
    concatenates them and refits.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random number.
    d : int
        Dimension (``>= 1``).
    n_r, n_s : int
        Fresh real (``>= 2``) and synthetic (``>= 0``) samples per generation.
    lam : float
        Sampling bias in ``[0, 1]``.
    n_ini : int
        Real samples of generation 1 (``>= 2``).
    burn_in : int
        Models dropped at the start, generation 1 included (``>= 0``).
    window : int
        Models averaged after the burn-in (``>= 1``).
    cov_estimator : {"unbiased", "mle"}
        Covariance divisor ``n - 1`` or ``n``.

    Returns
    -------
    float
        Mean of the squared 2-Wasserstein distance to ``N(0, I_d)`` (computed with
        ``scipy.linalg.sqrtm``) over generations ``burn_in + 1 .. burn_in + window``.
    """
    ddof = _check(d, n_r, n_s, lam, n_ini, burn_in, window, cov_estimator)
    mu, Sigma = _fit(rng.standard_normal((n_ini, d)), ddof)
    total = 0.0
    for t in range(burn_in + window):
        if t > 0:
            real = rng.standard_normal((n_r, d))
            w, V = np.linalg.eigh(lam * Sigma)
            L = V * np.sqrt(np.clip(w, 0.0, None))
            syn = mu + rng.standard_normal((n_s, d)) @ L.T
            mu, Sigma = _fit(np.concatenate((real, syn)), ddof)
        if t >= burn_in:
            total += _w2sq_standard(mu, Sigma)
    return total / window


# --------------------------------------------------------------------------------------
# (b) Sufficient statistics, batched over chains
# --------------------------------------------------------------------------------------

def _wishart_factor(rng: np.random.Generator, n_chains: int, d: int, k: int,
                    lower: np.ndarray) -> np.ndarray | None:
    """A batch of ``B`` with ``B B^T ~ Wishart(I_d, k - 1)``, or None when ``k = 1``.

    Bartlett's lower-triangular ``A`` (``A_ii = sqrt(chi2(k - 1 - i))``, standard normal
    below the diagonal) when ``k - 1 >= d``, else a ``d x (k - 1)`` standard normal ``G``.
    ``lower`` is the strictly-lower-triangular 0/1 mask of shape ``(d, d)``.
    """
    if k <= 1:
        return None
    if k - 1 < d:
        return rng.standard_normal((n_chains, d, k - 1))
    A = rng.standard_normal((n_chains, d, d))
    A *= lower
    df = np.arange(k - 1, k - 1 - d, -1, dtype=float)
    A.reshape(n_chains, d * d)[:, :: d + 1] = np.sqrt(rng.chisquare(df, size=(n_chains, d)))
    return A


def _root(Sigma: np.ndarray) -> np.ndarray:
    """Batched ``L`` with ``L L^T = Sigma``: Cholesky, or ``eigh`` (clipped) if that fails."""
    try:
        return np.linalg.cholesky(Sigma)
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(Sigma)
        return V * np.sqrt(np.clip(w, 0.0, None))[:, None, :]


def _w2sq_standard_batch(mu: np.ndarray, Sigma: np.ndarray) -> np.ndarray:
    """Squared W2 distances of ``N(mu_c, Sigma_c)`` to ``N(0, I)``, batched on axis 0."""
    d = mu.shape[1]
    ev = np.linalg.eigvalsh(Sigma)
    tr_sqrt = np.sqrt(np.clip(ev, 0.0, None)).sum(axis=1)
    trace = np.einsum("cii->c", Sigma)
    return np.einsum("ci,ci->c", mu, mu) + trace + d - 2.0 * tr_sqrt


def _chains_1d(rng: np.random.Generator, n_chains: int, n_r: int, n_s: int, lam: float,
               n_ini: int, burn_in: int, window: int, ddof: int) -> np.ndarray:
    """``d = 1``: elementwise arithmetic only, random numbers drawn in blocks of generations."""
    n = n_r + n_s
    q = n - ddof
    c_pool = n_r * n_s / n
    mu = rng.standard_normal(n_chains) / np.sqrt(n_ini)
    var = rng.chisquare(n_ini - 1, size=n_chains) / (n_ini - ddof)
    acc = np.zeros(n_chains)
    if burn_in == 0:
        acc += mu * mu + var + 1.0 - 2.0 * np.sqrt(var)
    n_gen = burn_in + window
    block = max(1, min(n_gen - 1, (1 << 20) // n_chains))   # ~8 MB of normals per block
    inv_sqrt_r = 1.0 / np.sqrt(n_r)
    inv_sqrt_s = 1.0 / np.sqrt(n_s) if n_s > 0 else 0.0
    t = 1
    while t < n_gen:
        b = min(block, n_gen - t)
        z = rng.standard_normal((b, 2, n_chains))
        chi_r = rng.chisquare(n_r - 1, size=(b, n_chains))
        chi_s = rng.chisquare(n_s - 1, size=(b, n_chains)) if n_s > 1 else None
        for j in range(b):
            m_r = z[j, 0] * inv_sqrt_r
            if n_s == 0:
                mu = m_r
                var = chi_r[j] / q
            else:
                lv = lam * var
                m_s = mu + np.sqrt(lv) * z[j, 1] * inv_sqrt_s
                diff = m_r - m_s
                mu = (n_r * m_r + n_s * m_s) / n
                S = chi_r[j] + c_pool * diff * diff
                if chi_s is not None:
                    S += lv * chi_s[j]
                var = S / q
            if t + j >= burn_in:
                acc += mu * mu + var + 1.0 - 2.0 * np.sqrt(var)
        t += b
    return acc / window


def vectorised_chain_averages(rng: np.random.Generator, n_chains: int, d: int, n_r: int,
                              n_s: int, lam: float, n_ini: int, burn_in: int, window: int,
                              cov_estimator: str = "unbiased") -> np.ndarray:
    """Window averages of the distance for ``n_chains`` independent chains, batched.

    Works on sufficient statistics only: for ``k`` iid samples of ``N(m, L L^T)`` the
    sample mean is ``m + L z / sqrt(k)`` and the scatter ``L W L^T`` with
    ``W ~ Wishart(I, k - 1)`` (Bartlett, or ``G G^T`` when ``k - 1 < d``, zero when
    ``k = 1``); the real and synthetic groups are pooled exactly. The square root of
    ``lam Sigma`` is a batched Cholesky factor, with a batched ``eigh`` (eigenvalues
    clipped at 0) when some ``Sigma`` is singular; ``tr sqrt(Sigma)`` comes from a
    batched ``eigvalsh``. When both groups have Bartlett factors, the strict lower and
    strict upper triangles of one normal array give the two factors (half the normals).
    ``d = 1`` uses elementwise arithmetic only, on random numbers drawn in blocks.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of every random number.
    n_chains : int
        Number of independent chains (``>= 1``).
    d : int
        Dimension (``>= 1``).
    n_r, n_s : int
        Fresh real (``>= 2``) and synthetic (``>= 0``) samples per generation.
    lam : float
        Sampling bias in ``[0, 1]``.
    n_ini : int
        Real samples of generation 1 (``>= 2``).
    burn_in : int
        Models dropped at the start of each chain, generation 1 included (``>= 0``).
    window : int
        Models averaged after the burn-in (``>= 1``).
    cov_estimator : {"unbiased", "mle"}
        Covariance divisor ``n - 1`` or ``n``.

    Returns
    -------
    numpy.ndarray, shape (n_chains,)
        Per-chain mean of the squared 2-Wasserstein distance to ``N(0, I_d)`` over
        generations ``burn_in + 1 .. burn_in + window``.
    """
    ddof = _check(d, n_r, n_s, lam, n_ini, burn_in, window, cov_estimator)
    if n_chains < 1:
        raise ValueError(f"n_chains must be an integer >= 1, got {n_chains}")
    if d == 1:
        return _chains_1d(rng, n_chains, n_r, n_s, lam, n_ini, burn_in, window, ddof)

    C = n_chains
    n = n_r + n_s
    q = n - ddof
    c_pool = n_r * n_s / n
    sq_lam = np.sqrt(lam)
    lower = np.tril(np.ones((d, d)), -1)

    mu = rng.standard_normal((C, d)) / np.sqrt(n_ini)
    B = _wishart_factor(rng, C, d, n_ini, lower)
    Sigma = B @ B.transpose(0, 2, 1)
    Sigma /= n_ini - ddof
    acc = np.zeros(C)
    if burn_in == 0:
        acc += _w2sq_standard_batch(mu, Sigma)
    # When both groups use Bartlett factors, one normal array feeds both: its strict
    # lower triangle is the real group's, its strict upper triangle (transposed) the
    # synthetic group's, so only half as many normals are drawn.
    pair = n_s > 0 and n_r - 1 >= d and n_s - 1 >= d
    upper = lower.T.copy()
    df = np.concatenate((np.arange(n_r - 1, n_r - 1 - d, -1),
                         np.arange(n_s - 1, n_s - 1 - d, -1))).astype(float)
    inv_sqrt_r = 1.0 / np.sqrt(n_r)
    inv_sqrt_s = 1.0 / np.sqrt(n_s) if n_s > 0 else 0.0
    for t in range(1, burn_in + window):
        if pair:
            Z = rng.standard_normal((C, d, d))
            A_r = Z * lower
            U_s = np.multiply(Z, upper, out=Z)
            chi = np.sqrt(rng.chisquare(df, size=(C, 2 * d)))
            A_r.reshape(C, d * d)[:, :: d + 1] = chi[:, :d]
            U_s.reshape(C, d * d)[:, :: d + 1] = chi[:, d:]
            B_r, B_s = A_r, U_s.transpose(0, 2, 1)
        else:
            B_r = _wishart_factor(rng, C, d, n_r, lower)
            B_s = _wishart_factor(rng, C, d, n_s, lower) if n_s > 0 else None
        z = rng.standard_normal((C, d, 2))
        # Fresh real group from N(0, I).
        m_r = z[:, :, 0] * inv_sqrt_r
        S = B_r @ B_r.transpose(0, 2, 1)
        if n_s > 0:
            # Synthetic group from N(mu, lam Sigma), with L L^T = lam Sigma.
            L = _root(Sigma)
            L *= sq_lam
            m_s = (L @ z[:, :, 1:])[:, :, 0]
            m_s *= inv_sqrt_s
            m_s += mu
            if B_s is not None:
                LB = L @ B_s
                S += LB @ LB.transpose(0, 2, 1)
            diff = m_r - m_s
            S += c_pool * (diff[:, :, None] * diff[:, None, :])
            mu = (n_r * m_r + n_s * m_s) / n
        else:
            mu = m_r
        S /= q
        Sigma = S
        if t >= burn_in:
            acc += _w2sq_standard_batch(mu, Sigma)
    return acc / window
