"""Seeding, chunking and parallel execution of chains; adaptive stopping.

Work is split into chunks of a fixed number of chains that depends only on
``d``; chunk ``i`` draws from streams seeded by ``SeedSequence(seed,
spawn_key=(stream, i))``. The chunk count and seeds never depend on the number
of threads, so results are identical bit for bit on 1 job or 16. Chunks run in
a thread pool: the Numba kernels release the GIL.

The kernels are imported where they run (:func:`limit_chunks`,
:func:`trajectories`), not when this module is: an answer read from the result
store never imports Numba.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ess import config
from ess.blas import single_thread
from ess.kernels.layout import (
    REC_DIST,
    REC_FROB_DEV,
    REC_LOG_DET,
    REC_MEAN_DEV,
    REC_MIN_EIG,
    REC_MU0,
    REC_TR_SIGMA,
)
from ess.params import LoopParams
from ess.progress import NULL_PROGRESS, Progress

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

STREAM_LIMIT = 0
STREAM_TRAJECTORY = 1
STREAM_REFERENCE = 2
#: The short-window first round of a limit (:func:`ess.solve.run_limit`).
STREAM_LIMIT_PILOT = 3

#: Safety margin on the chains a round of :func:`adaptive` asks for: it predicts
#: them from the excess of the chains so far, itself an estimate; asking for 10%
#: more makes a round that falls just short of the precision, and so one more
#: round, less likely.
ROUND_MARGIN = 1.1
#: Cap on the growth of the chains in one round: at most this many times the chains
#: so far. An excess measured on the few chains of a first round can be far too
#: large by chance (it is squared to predict the chains); the cap makes the next
#: round measure again before the rest of the budget is committed.
MAX_ROUND_GROWTH = 64.0
#: Rounds of :func:`adaptive` after the first: a bound that ends the loop whatever
#: ``excess`` returns. Each round asks for at least one more chunk and usually for
#: enough chains to finish, so estimates take two or three rounds.
MAX_ROUNDS = 20

#: Columns of :func:`trajectories`: the kernel record fields kept
#: (:mod:`ess.kernels.layout`; ``tr Sigma^2`` is not kept).
TRAJECTORY_FIELDS = (REC_DIST, REC_MEAN_DEV, REC_TR_SIGMA, REC_MU0, REC_LOG_DET, REC_FROB_DEV,
                     REC_MIN_EIG)
#: Positions of those fields in the array :func:`trajectories` returns.
(TRAJ_DIST, TRAJ_MEAN_DEV, TRAJ_TR_SIGMA, TRAJ_MU0, TRAJ_LOG_DET, TRAJ_FROB_DEV,
 TRAJ_MIN_EIG) = range(len(TRAJECTORY_FIELDS))

#: Loops whose trajectories come from :func:`ess.kernels.accumulate._accumulate_chunk`.
_ACCUMULATE_LOOPS = ("accumulate", "accumulate-subsample")


def kernel_codes(p: LoopParams) -> tuple[int, int]:
    """The kernels' integer codes of ``p``'s loop kind and metric (imports the kernels)."""
    from ess.kernels.distance import METRIC_W2, METRIC_W2SQ
    from ess.kernels.loops import LOOP_AUGMENTATION, LOOP_FRESH, LOOP_FULLY_SYNTHETIC

    loops = {"fully-synthetic": LOOP_FULLY_SYNTHETIC, "augmentation": LOOP_AUGMENTATION,
             "fresh": LOOP_FRESH}
    if p.loop not in loops:   # the accumulate kernels are imported for their loops only
        from ess.kernels.accumulate import LOOP_ACCUMULATE, LOOP_ACCUMULATE_SUBSAMPLE

        loops.update({"accumulate": LOOP_ACCUMULATE,
                      "accumulate-subsample": LOOP_ACCUMULATE_SUBSAMPLE})
    return loops[p.loop], {"w2sq": METRIC_W2SQ, "w2": METRIC_W2}[p.metric]


def chunk_size(d: int) -> int:
    """Chains per chunk: about the same work per chunk whatever ``d``, and enough
    of it (a few hundred microseconds) that seeding and dispatching a chunk,
    about 25 microseconds under the GIL, stay small beside it."""
    return max(1, 256 // (d * d))


#: Work of one chunk of trajectories, in ``d^2 x generations`` (see
#: :func:`trajectory_chunk_size`).
TRAJECTORY_CHUNK_WORK = 2**16
#: Most chains in one chunk of trajectories.
TRAJECTORY_CHUNK_MAX = 256


def trajectory_chunk_size(d: int, n_gen: int) -> int:
    """Chains per chunk of :func:`trajectories`: about :data:`TRAJECTORY_CHUNK_WORK`
    ``d^2``-units of generations (a few milliseconds), at most
    :data:`TRAJECTORY_CHUNK_MAX` chains.

    Trajectories are short (50 generations by default) next to the chains of a limit,
    so :func:`chunk_size`'s chunks of a few hundred microseconds would be one or two
    chains at ``d = 10``, each paying the chunk's seeding and dispatch (a quarter of the
    time of ``simulate`` of ``accumulate`` at ``d = 10``, 1000 chains of 50
    generations). It depends on ``d`` and ``n_gen`` only, never on the threads.
    """
    return max(1, min(TRAJECTORY_CHUNK_MAX, TRAJECTORY_CHUNK_WORK // (d * d * max(n_gen, 1))))


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
    from ess.kernels.random import fix_state

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


@contextlib.contextmanager
def blas_single_thread(d: int) -> Iterator[None]:
    """Hold BLAS to one thread (:func:`ess.blas.single_thread`) while kernels of
    dimension ``d`` run, if they call BLAS (``d >=`` :data:`ess.config.LAPACK_MIN_D`).

    The kernels call BLAS from several chain threads at once, each call on its own
    chunk; a BLAS that split a call over threads of its own would oversubscribe
    the cores, and could sum in another order, hence give other bits, for another
    thread count. One thread per call keeps the numbers those of any ``n_jobs``
    and any ``OPENBLAS_NUM_THREADS``.
    """
    with single_thread(d >= config.LAPACK_MIN_D):
        yield


@functools.cache
def _pool(n_workers: int) -> ThreadPoolExecutor:
    """A thread pool of ``n_workers`` threads, kept for the life of the process:
    starting threads for every round of chains would cost more than a short
    estimate's Monte Carlo. (``concurrent.futures`` is imported here: an answer from
    the result store needs no pool.)"""
    from concurrent.futures import ThreadPoolExecutor

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
    #: Warm starts, one ``(mu_sd, scale, nu)`` row per configuration
    #: (:mod:`ess.kernels.warm`), or ``()`` for the cold start (a fit on ``n_ini``).
    warm: tuple[tuple[float, float, float], ...] = ()

    @property
    def generations(self) -> int:
        """Generations per chain, counting the first model."""
        return self.burn_in + self.window


def limit_chunks(plan: LimitPlan, start: int, stop: int, n_jobs: int,
                 progress: Progress = NULL_PROGRESS) -> np.ndarray:
    """Run chunks ``start .. stop - 1`` of a limit plan.

    Returns
    -------
    ndarray, shape (chains, V, QUANTITIES, HALVES)
        Per-chain window averages, ``[chain, config, quantity, half]`` (see
        :func:`ess.kernels.loops._limit_chunk` and :mod:`ess.kernels.layout`).
    """
    from ess.kernels.loops import _limit_chunk, _limit_chunk_d1
    from ess.kernels.warm import WARM_FIELDS

    p = plan.params
    kernel = _limit_chunk_d1 if p.d == 1 else _limit_chunk   # d = 1: a smaller library
    cs = chunk_size(p.d)
    ns = np.asarray(plan.n_s_values, dtype=np.int64)
    mem = kernel_memory(p, plan.generations)
    loop, metric = kernel_codes(p)
    warm = np.array(plan.warm, dtype=np.float64).reshape(-1, WARM_FIELDS)

    def one(i: int) -> np.ndarray:
        real, syn, mix = chunk_rngs(plan.seed, plan.stream, i, mem > 1)
        return kernel(real, syn, mix, cs, loop, p.n_ini, p.n_r, ns, p.lam,
                      mem, p.cov_estimator == "mle", metric,
                      np.zeros(p.d), p.L_r, p.sr_identity, plan.burn_in, plan.window,
                      plan.every, warm)

    with blas_single_thread(p.d):
        parts = run_parallel(one, range(start, stop), n_jobs, progress)
    return np.concatenate(parts, axis=0)


def trajectories(p: LoopParams, n_chains: int, n_gen: int, seed: int, n_jobs: int,
                 progress: Progress = NULL_PROGRESS) -> np.ndarray:
    """Whole trajectories of ``n_chains`` chains, shape ``(n_chains, n_gen, 7)``.

    In the user's units (the kernels run with ``mu_r = 0`` and the normalised
    ``Sigma_r``), in columns ``TRAJ_DIST`` (``dist``), ``TRAJ_MEAN_DEV``
    (``|mu - mu_r|^2``), ``TRAJ_TR_SIGMA`` (``tr Sigma``), ``TRAJ_MU0`` (``mu[0]``),
    ``TRAJ_LOG_DET`` (``log det Sigma``, ``-inf`` when singular),
    ``TRAJ_FROB_DEV`` (``||Sigma - Sigma_r||_F``) and ``TRAJ_MIN_EIG`` (the smallest
    eigenvalue of ``Sigma``). The accumulate loops run in
    :func:`ess.kernels.accumulate._accumulate_chunk`, the others in
    :func:`ess.kernels.loops._trajectory_chunk`, from the same chunk seeds: the loops
    that draw no real data after the first set (``augmentation``,
    ``fully-synthetic``, ``accumulate``) start every chain from the same first real set
    (common random numbers across loops).
    """
    from ess.kernels.loops import _trajectory_chunk

    cs = trajectory_chunk_size(p.d, n_gen)
    n_chunks = math.ceil(n_chains / cs)
    mem = kernel_memory(p, n_gen)
    loop, metric = kernel_codes(p)
    if p.loop in _ACCUMULATE_LOOPS:
        from ess.kernels.accumulate import _accumulate_chunk as chunk
    else:
        chunk = _trajectory_chunk

    def one(i: int) -> np.ndarray:
        real, syn, mix = chunk_rngs(seed, STREAM_TRAJECTORY, i, mem > 1)
        return chunk(real, syn, mix, cs, loop, p.n_ini, p.n_r, p.n_s, p.lam, mem,
                     p.cov_estimator == "mle", metric, np.zeros(p.d), p.L_r, p.sr_identity,
                     n_gen)

    with blas_single_thread(p.d):
        parts = run_parallel(one, range(n_chunks), n_jobs, progress)
    out = np.concatenate(parts, axis=0)[:n_chains][:, :, list(TRAJECTORY_FIELDS)]
    out[:, :, TRAJ_DIST] *= p.dist_factor
    out[:, :, TRAJ_MEAN_DEV] *= p.scale
    out[:, :, TRAJ_TR_SIGMA] *= p.scale
    out[:, :, TRAJ_MU0] = out[:, :, TRAJ_MU0] * math.sqrt(p.scale) + p.mu_r[0]
    out[:, :, TRAJ_LOG_DET] += p.d * math.log(p.scale)
    out[:, :, TRAJ_FROB_DEV] *= p.scale
    out[:, :, TRAJ_MIN_EIG] *= p.scale
    return out


def adaptive(run: Callable[[int, int], np.ndarray], chains_per_chunk: int,
             pilot_chunks: int, max_chains: int,
             excess: Callable[[np.ndarray], float],
             data: np.ndarray | None = None) -> tuple[np.ndarray, bool]:
    """Add chunks until ``excess(data) <= 1`` or the chain budget is spent.

    ``excess`` returns the ratio of the current 95% half-width to the wanted
    one. Since variance falls as ``1/chains``, the next round asks for
    ``chains * excess^2`` chains (:data:`ROUND_MARGIN` more, at most
    :data:`MAX_ROUND_GROWTH` times the chains so far, at least one more chunk). Every
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
    held = [data]

    def grow(a: int, b: int) -> None:
        new = run(a, b)
        held[0] = new if held[0] is None else np.concatenate([held[0], new], axis=0)

    n_chunks = None
    if data is not None:
        n_chunks, rest = divmod(data.shape[0], chains_per_chunk)
        assert rest == 0, "data must be whole chunks"
    reached = adaptive_rounds(grow, chains_per_chunk, pilot_chunks, max_chains,
                              lambda: excess(held[0]), n_chunks)
    return held[0], reached


def adaptive_rounds(grow: Callable[[int, int], None], chains_per_chunk: int,
                    pilot_chunks: int, max_chains: int, excess: Callable[[], float],
                    n_chunks: int | None = None) -> bool:
    """The rounds of :func:`adaptive`, for callers that keep their own data.

    ``grow(a, b)`` adds chunks ``a .. b - 1`` to the caller's data, ``excess()``
    measures it; ``n_chunks`` is the number of chunks already in it (``None``:
    none, so the first round is ``pilot_chunks``). A caller that folds chunks into
    running moments (:class:`ess.stats.RunningCVMean`) computes in memory
    independent of the number of chains.

    Returns
    -------
    bool
        Whether the wanted precision was reached within ``max_chains``.
    """
    max_chunks = max(1, max_chains // chains_per_chunk)
    if n_chunks is None:
        n_chunks = min(pilot_chunks, max_chunks)
        grow(0, n_chunks)
    for _ in range(MAX_ROUNDS):
        ex = excess()
        if ex <= 1.0:
            return True
        if n_chunks >= max_chunks:
            return False
        want = math.ceil(n_chunks * min(ex * ex * ROUND_MARGIN, MAX_ROUND_GROWTH))
        want = min(max(want, n_chunks + 1), max_chunks)
        grow(n_chunks, want)
        n_chunks = want
    return excess() <= 1.0
