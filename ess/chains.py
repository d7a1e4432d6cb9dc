"""Seeding, chunking and parallel execution of chains; adaptive stopping.

Work is split into chunks of a fixed number of chains that depends only on
``d``; chunk ``i`` draws from streams seeded by ``SeedSequence(seed,
spawn_key=(stream, i))``. The chunk count and seeds never depend on the number
of threads, so results are identical bit for bit on 1 job or 16. Chunks run in
a thread pool: the Numba kernels release the GIL.
"""

from __future__ import annotations

import functools
import itertools
import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ess import config
from ess.kernels.distance import METRIC_W2, METRIC_W2SQ
from ess.kernels.loops import (
    LOOP_AUGMENTATION,
    LOOP_FRESH,
    LOOP_FULLY_SYNTHETIC,
    _limit_chunk,
    _trajectory_chunk,
)
from ess.kernels.random import fix_state
from ess.params import LoopParams
from ess.progress import NULL_PROGRESS, Progress

STREAM_LIMIT = 0
STREAM_TRAJECTORY = 1
STREAM_REFERENCE = 2
#: The short-window first round of a limit (:func:`ess.solve.run_limit`).
STREAM_LIMIT_PILOT = 3

_LOOP_CODES = {"fully-synthetic": LOOP_FULLY_SYNTHETIC, "augmentation": LOOP_AUGMENTATION,
               "fresh": LOOP_FRESH}
_METRIC_CODES = {"w2sq": METRIC_W2SQ, "w2": METRIC_W2}


def chunk_size(d: int) -> int:
    """Chains per chunk: about the same work per chunk whatever ``d``, and enough
    of it (a few hundred microseconds) that seeding and dispatching a chunk,
    about 25 microseconds under the GIL, stay small beside it."""
    return max(1, 256 // (d * d))


def chunk_rngs(seed: int, stream: int, index: int, mix: bool = False
               ) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """The independent random streams of chunk ``index`` of ``stream``.

    Parameters
    ----------
    seed, stream, index : int
        The chunk's ``SeedSequence(seed, spawn_key=(stream, index))``.
    mix : bool
        Whether the kernels will draw multinomial splits over past models
        (``memory > 1``); otherwise a shared generator that is never drawn from
        is returned in its place, which saves creating one per chunk.

    Returns
    -------
    (ndarray, ndarray, numpy.random.Generator)
        Kernel generator states (``uint64[4]``, :mod:`ess.kernels.random`) of the
        real and of the synthetic data, taken from the sequence's first eight
        words, and the NumPy generator of the splits (a child of the sequence).
    """
    ss = np.random.SeedSequence(entropy=seed, spawn_key=(stream, index))
    words = ss.generate_state(8, dtype=np.uint64)
    real, syn = fix_state(words[:4].copy()), fix_state(words[4:].copy())
    if not mix:
        return real, syn, _UNUSED_MIX
    return real, syn, np.random.Generator(np.random.PCG64(ss.spawn(1)[0]))


#: Stand-in for the split generator of memory-1 chunks: the kernels never draw from it.
_UNUSED_MIX = np.random.Generator(np.random.PCG64(0))


def run_parallel(fn: Callable[[int], np.ndarray], indices: Sequence[int], n_jobs: int,
                 progress: Progress = NULL_PROGRESS) -> list[np.ndarray]:
    """Apply ``fn`` to every chunk index on ``n_jobs`` threads; results in index order."""
    progress.add_total(len(indices))

    def task(i: int) -> np.ndarray:
        progress.check()   # a cancelled computation skips the chunks not yet started
        out = fn(i)
        progress.update()
        return out

    n = len(indices)
    if n_jobs <= 1 or n <= 1:
        return [task(i) for i in indices]
    # The calling thread takes chunks too, from the same counter as n_jobs - 1 pool
    # threads: it starts at once, while waking a sleeping thread can take longer
    # than a chunk (on this project's 2-core virtual machine, a round of eight
    # 0.15 ms chunks took as long on two threads as on one when every chunk went
    # through the pool).
    out: list = [None] * n
    counter = itertools.count()   # next() on it is atomic under the GIL
    failed = threading.Event()

    def work() -> None:
        for j in counter:
            if j >= n or failed.is_set():
                return
            try:
                out[j] = task(indices[j])
            except BaseException:
                failed.set()
                raise

    helpers = [_pool(n_jobs - 1).submit(work) for _ in range(min(n_jobs, n) - 1)]
    try:
        work()
    finally:
        # A helper still queued (behind another caller's work in the shared pool) would
        # find the counter spent: cancel it rather than wait for its turn. Wait for
        # the others: no helper may outlive the call.
        helpers = [f for f in helpers if not f.cancel()]
        for f in helpers:
            f.exception()
    for f in helpers:
        f.result()          # re-raise a helper's error
    return out


@functools.cache
def _pool(n_workers: int) -> ThreadPoolExecutor:
    """A thread pool of ``n_workers`` threads, kept for the life of the process:
    starting threads for every round of chains would cost more than a short
    estimate's Monte Carlo."""
    return ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="ess-chains")


def kernel_memory(p: LoopParams, n_gen: int) -> int:
    """Ring-buffer length of the kernel: ``memory``, or ``n_gen`` for "all"."""
    return n_gen if p.memory == "all" else min(int(p.memory), n_gen)


@dataclass(frozen=True)
class LimitPlan:
    """What one chunk of the limit computation runs: fixed once chosen."""

    params: LoopParams
    n_s_values: tuple[int, ...]
    burn_in: int
    window: int
    seed: int
    every: int = 1
    stream: int = STREAM_LIMIT

    @property
    def generations(self) -> int:
        """Generations per chain, counting the first model."""
        return self.burn_in + self.window


def limit_chunks(plan: LimitPlan, start: int, stop: int, n_jobs: int,
                 progress: Progress = NULL_PROGRESS) -> np.ndarray:
    """Run chunks ``start .. stop - 1`` of a limit plan.

    Returns
    -------
    ndarray, shape (chains, V, 4, 2)
        Per-chain window averages (see :func:`ess.kernels.loops._limit_chunk`).
    """
    p = plan.params
    cs = chunk_size(p.d)
    ns = np.asarray(plan.n_s_values, dtype=np.int64)
    mem = kernel_memory(p, plan.generations)

    def one(i: int) -> np.ndarray:
        real, syn, mix = chunk_rngs(plan.seed, plan.stream, i, mem > 1)
        return _limit_chunk(real, syn, mix, cs, _LOOP_CODES[p.loop], p.n_ini, p.n_r, ns, p.lam,
                            mem, p.cov_estimator == "mle", _METRIC_CODES[p.metric],
                            np.zeros(p.d), p.L_r, p.sr_identity, plan.burn_in, plan.window,
                            plan.every)

    parts = run_parallel(one, range(start, stop), n_jobs, progress)
    return np.concatenate(parts, axis=0)


def trajectories(p: LoopParams, n_chains: int, n_gen: int, seed: int, n_jobs: int,
                 progress: Progress = NULL_PROGRESS) -> np.ndarray:
    """Whole trajectories of ``n_chains`` chains, shape ``(n_chains, n_gen, 4)``.

    In the user's units: ``dist``, ``|mu - mu_r|^2``, ``tr Sigma`` and ``mu[0]``
    (the kernels run with ``mu_r = 0`` and the normalised ``Sigma_r``).
    """
    cs = chunk_size(p.d)
    n_chunks = math.ceil(n_chains / cs)
    mem = kernel_memory(p, n_gen)

    def one(i: int) -> np.ndarray:
        real, syn, mix = chunk_rngs(seed, STREAM_TRAJECTORY, i, mem > 1)
        return _trajectory_chunk(real, syn, mix, cs, _LOOP_CODES[p.loop], p.n_ini, p.n_r, p.n_s,
                                 p.lam, mem, p.cov_estimator == "mle", _METRIC_CODES[p.metric],
                                 np.zeros(p.d), p.L_r, p.sr_identity, n_gen)

    parts = run_parallel(one, range(n_chunks), n_jobs, progress)
    out = np.concatenate(parts, axis=0)[:n_chains][:, :, [0, 1, 2, 4]]   # tr Sigma^2 not kept
    out[:, :, 0] *= p.dist_factor
    out[:, :, 1:3] *= p.scale
    out[:, :, 3] = out[:, :, 3] * math.sqrt(p.scale) + p.mu_r[0]
    return out


_T975 = (12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004,
         2.262157, 2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905,
         2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899,
         2.059539, 2.055529, 2.051831, 2.048407, 2.045230, 2.042272)


def t975(dof: int) -> float:
    """97.5% quantile of Student's t with ``dof`` degrees of freedom.

    Tabulated up to 30, then the Cornish-Fisher expansion in ``1/dof`` (error
    below 1e-6 there), so the estimate path does not import SciPy.
    """
    if dof < 1:
        return math.inf
    if dof <= 30:
        return _T975[dof - 1]
    z = config.Z95
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    v = float(dof)
    return z + g1 / v + g2 / v**2 + g3 / v**3 + g4 / v**4


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

    Returns
    -------
    (float, float, int)
        Estimate, standard error, and the degrees of freedom of the standard
        error (for Student-t intervals: ``t975(dof) * se``).
    """
    y = np.asarray(y, dtype=float)
    N = y.shape[0]
    if X is None or X.shape[1] == 0 or N < X.shape[1] + 8:
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


def adaptive(run: Callable[[int, int], np.ndarray], chains_per_chunk: int,
             pilot_chunks: int, max_chains: int,
             excess: Callable[[np.ndarray], float],
             data: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
    """Add chunks until ``excess(data) <= 1`` or the chain budget is spent.

    ``excess`` returns the ratio of the current 95% half-width to the wanted
    one. Since variance falls as ``1/chains``, the next round asks for
    ``chains * excess^2`` chains (10% more, at least one more chunk). Every
    decision depends only on the data, so the result does not depend on the
    number of threads. The first round is ``pilot_chunks`` chunks, or ``data``
    when given: what ``run(0, k)`` returned for some ``k``.

    Returns
    -------
    data : ndarray
        Concatenated per-chain results.
    reached : bool
        Whether the wanted precision was reached within ``max_chains``.
    """
    max_chunks = max(1, max_chains // chains_per_chunk)
    if data is None:
        n_chunks = min(pilot_chunks, max_chunks)
        data = run(0, n_chunks)
    else:
        n_chunks, rest = divmod(data.shape[0], chains_per_chunk)
        assert rest == 0, "data must be whole chunks"
    for _ in range(20):
        ex = excess(data)
        if ex <= 1.0:
            return data, True
        if n_chunks >= max_chunks:
            return data, False
        want = math.ceil(n_chunks * min(ex * ex * 1.1, 64.0))
        want = min(max(want, n_chunks + 1), max_chunks)
        data = np.concatenate([data, run(n_chunks, want)], axis=0)
        n_chunks = want
    return data, excess(data) <= 1.0
