"""Generation-steps per second of the baselines (and of `ess`'s kernel), one process.

A generation-step is one generation of one chain (generation 1, the fit on ``n_ini``
real samples, counts as a step). Each measurement warms up, times a pilot run to size
the real ones, then times :data:`WINDOWS` runs of roughly ``seconds`` each and keeps the
fastest: other load on the machine can only slow a run down. (Shorter windows would
flatter the vectorised baseline at large ``d``, where one generation of its batch takes a
good part of a second and its cheaper first generation would weigh on the rate.)

:mod:`benchmarks.suite` calls :func:`generation_steps_per_second` (the baselines in child
processes with BLAS on one thread, through :mod:`benchmarks.worker`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from benchmarks.baselines import persample_chain_average, vectorised_chain_averages

IMPLS = ("persample", "vectorised", "ess")
#: Generations per chain of the per-sample baseline in a measurement.
PERSAMPLE_GENERATIONS = 20
#: Generations per chain of `ess`'s kernel in a measurement (even: the kernel splits it).
ESS_GENERATIONS = 64
#: Timed runs per measurement; the fastest is kept.
WINDOWS = 3


def vectorised_chains(d: int) -> int:
    """Chains batched by the vectorised baseline: 1000 up to ``d = 10``, else 200."""
    return 1000 if d <= 10 else 200


def _runner(impl: str, d: int, n_r: int, n_s: int, lam: float,
            n_jobs: int) -> Callable[[int], int]:
    """A function running a work unit ``size`` times over and returning its step count."""
    rng = np.random.default_rng(12345)
    if impl == "persample":
        def run(size: int) -> int:
            for _ in range(size):
                persample_chain_average(rng, d, n_r, n_s, lam, n_r, 0, PERSAMPLE_GENERATIONS)
            return size * PERSAMPLE_GENERATIONS
        return run
    if impl == "vectorised":
        chains = vectorised_chains(d)

        def run(size: int) -> int:
            vectorised_chain_averages(rng, chains, d, n_r, n_s, lam, n_r, 0, size)
            return chains * size
        return run
    if impl == "ess":
        # Internal API of the package (not its public front): one chunk of chains at a time.
        from ess.chains import LimitPlan, chunk_size, limit_chunks
        from ess.params import loop_params

        p = loop_params(d=d, n_r=n_r, n_s=n_s, lam=lam)
        plan = LimitPlan(p, (n_s,), 0, ESS_GENERATIONS, 12345)
        cs = chunk_size(d)
        start = [0]

        def run(size: int) -> int:
            limit_chunks(plan, start[0], start[0] + size, n_jobs)
            start[0] += size
            return size * cs * ESS_GENERATIONS
        return run
    raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")


def generation_steps_per_second(impl: str, d: int, n_r: int = 100, n_s: int = 200,
                                lam: float = 0.9, seconds: float = 2.0, *,
                                n_jobs: int = 1) -> float:
    """Measured generation-steps per second of one implementation of the fresh loop.

    Parameters
    ----------
    impl : {"persample", "vectorised", "ess"}
        ``"persample"``: :func:`benchmarks.baselines.persample_chain_average`, chains of
        20 generations one after another. ``"vectorised"``:
        :func:`benchmarks.baselines.vectorised_chain_averages` on 1000 chains
        (``d <= 10``) or 200 (larger ``d``), as many generations as fit. ``"ess"``: the
        package's Numba kernel through ``ess.chains.limit_chunks`` (internal API),
        chunks of chains of 64 generations on ``n_jobs`` threads.
    d : int
        Dimension.
    n_r, n_s : int
        Fresh real and synthetic samples per generation.
    lam : float
        Sampling bias.
    seconds : float
        Rough duration of each of the :data:`WINDOWS` timed runs (a warm-up and a
        pilot run come first).
    n_jobs : int
        Threads for ``"ess"`` (default 1, a per-core figure); ignored by the baselines.

    Returns
    -------
    float
        Generation-steps (one generation of one chain) per second of the fastest
        timed run.
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    run = _runner(impl, d, n_r, n_s, lam, n_jobs)
    run(1)                                   # warm-up (and JIT compilation for "ess")
    size, elapsed = 1, 0.0
    while True:                              # pilot: at least a tenth of the budget
        t0 = time.perf_counter()
        run(size)
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds / 10:
            break
        size *= 2 if elapsed <= 0 else max(2, min(16, math.ceil(seconds / 10 / elapsed)))
    size = max(1, round(size * seconds / elapsed))
    best = 0.0
    for _ in range(WINDOWS):
        t0 = time.perf_counter()
        steps = run(size)
        best = max(best, steps / (time.perf_counter() - t0))
    return best
