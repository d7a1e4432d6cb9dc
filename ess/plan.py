"""Planning a computation before it runs: burn-in, windows, first rounds and budgets.

Everything here is decided from the parameters alone (never from random numbers),
so a request can be checked against its budgets before any chain runs, and the
same request always gets the same plan.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ess import config, defaults
from ess.analytic import mixing_rate
from ess.chains import STREAM_LIMIT_PILOT, LimitPlan, chunk_size, kernel_memory
from ess.params import LoopParams, ParameterError

#: Generations kept for ``memory="all"``, which has no geometric mixing rate.
ALL_MEMORY_GENERATIONS = 400


def burn_in_for(p: LoopParams, rel_precision: float) -> int:
    """Burn-in from the mixing rate ``rho`` of :func:`ess.analytic.mixing_rate`.

    The initial model's excess over the limit is at most about ``n / n_ini``
    times the limit and decays like ``rho^t``; drop generations until it is
    below a quarter of ``rel_precision``. At least one (the model fit on
    ``n_ini`` samples).
    """
    rho = mixing_rate(p.n_r, p.n_s, p.memory, p.lam, p.cov_estimator)
    if rho >= 1.0:
        return ALL_MEMORY_GENERATIONS // 2
    if rho <= 0.0:
        return 1
    dev0 = max(1.0, (p.n_r + p.n_s) / p.n_ini)
    tol = rel_precision / 4.0
    return max(1, math.ceil(math.log(tol / dev0) / math.log(rho)))


def chain_cost(p: LoopParams, n_gen: int, n_values: int = 1) -> float:
    """Work units of one chain of ``n_gen`` generations (``n_values`` lockstep configs).

    Each generation draws the real group and, for ``memory = K``, up to
    ``min(t, K, n_s)`` synthetic groups: ``memory = "all"`` grows quadratically.
    """
    K = kernel_memory(p, n_gen)
    t = np.arange(1, n_gen)
    groups = float(np.sum(1 + n_values * np.minimum(np.minimum(t, K), max(p.n_s, 1))))
    return (1.0 + groups) * config.group_cost(p.d)


def chain_budget(p: LoopParams, n_gen: int, max_chains: int, n_values: int = 1) -> int:
    """Chains allowed by ``max_chains`` and the work budget, in whole chunks.

    Raises
    ------
    ParameterError
        When ``max_chains`` or the work budget does not cover a first round of
        ``n_gen`` generations.
    """
    cs = chunk_size(p.d)
    pilot = pilot_chunks(p.d, n_values) * cs
    if max_chains < pilot:
        raise ParameterError("max_chains",
            f"max_chains must be at least {pilot} for d = {p.d} (the first "
                             f"round of chains); got {max_chains}")
    by_work = int(config.MAX_WORK // chain_cost(p, n_gen, n_values))
    if by_work < pilot:
        raise ParameterError(
            "n_s", f"n_s = {p.n_s} is too expensive for d = {p.d} and memory = {p.memory}: "
            f"{pilot} chains of {n_gen} generations (the fewest an estimate may need) exceed "
            f"the work budget of one computation ({config.MAX_WORK:g} units); reduce n_s, "
            "memory or d")
    return (min(max_chains, by_work) // cs) * cs


def generations_for(p: LoopParams, rel_precision: float) -> int:
    """Generations per chain of the limit estimate: burn-in plus kept window, as
    :func:`limit_plan` lays them out (the seed plays no part in them)."""
    return limit_plan(p, (p.n_s,), rel_precision, seed=0).generations


def record_every(d: int) -> int:
    """Spacing of the kept generations whose distance is computed.

    For ``d >= 3`` a distance needs an eigen-decomposition, which from ``d``
    of a few tens on costs more than a generation's draws, while consecutive
    generations are strongly correlated. Measured time to a 1% ``n_e`` (2 cores,
    ``(n_r, n_s, lam) = (100, 200, 0.9)``, 4 seeds): at ``d = 10`` spacing 1, 2, 3
    took 7.2, 6.6, 9.2 ms (wider spacing needs more chains); at ``d = 30`` 20, 20,
    17 ms; at the paper's ``d = 100`` setting spacing 3 was 13% faster than 1.
    ``d = 1, 2`` have closed forms, so every generation is measured.
    """
    if d <= 2:
        return 1
    return 2 if d < 20 else 3


def limit_plan(p: LoopParams, n_s_values: tuple[int, ...], rel_precision: float,
               seed: int) -> LimitPlan:
    """The chains of a limit estimate: burn-in, window and measured generations."""
    burn = burn_in_for(replace(p, n_s=n_s_values[0]), rel_precision)
    every = record_every(p.d)
    return LimitPlan(p, n_s_values, burn, window_for(burn, every, p.d), seed, every)


#: Kept window of the first round of chains, as a fraction of the burn-in (at least
#: :data:`PILOT_MIN_WINDOW` generations); see :func:`ess.solve.run_limit`.
PILOT_WINDOW = 0.5
PILOT_MIN_WINDOW = 8


def pilot_plan(main: LimitPlan) -> LimitPlan:
    """The first round's plan: ``main`` with a short window and its own random streams.

    ``main`` itself when its window is not longer, and for ``memory = "all"``, whose
    window average is of a loop that never settles (a shorter window would
    change the quantity estimated).
    """
    w = _whole_halves(max(PILOT_MIN_WINDOW, math.ceil(PILOT_WINDOW * main.burn_in)),
                      main.every)
    if w >= main.window or main.params.memory == "all":
        return main
    return replace(main, window=w, stream=STREAM_LIMIT_PILOT)


def _generations(p: LoopParams, n_s: int, rel_precision: float) -> int:
    return generations_for(replace(p, n_s=n_s), rel_precision)


def bisect_int(pred, lo: int, hi: int) -> tuple[int, int]:
    """Integer bisection for a predicate false at ``lo`` and true at ``hi``.

    Returns the adjacent pair ``(lo, hi)`` with ``pred(lo)`` false, ``pred(hi)`` true.
    """
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid
    return lo, hi


def check_generations(p: LoopParams, rel_precision: float, name: str = "n_s") -> None:
    """Refuse an ``n_s`` whose chains would need more than ``MAX_GENERATIONS``.

    The burn-in grows like ``1 / (1 - rho)`` with ``rho = n_s / (n_r + n_s)``, so a
    very large ``n_s / n_r`` mixes too slowly to estimate the limit in reasonable time.
    The message gives the largest ``n_s`` allowed for this ``n_r``.
    """
    if p.memory == "all":
        return
    if _generations(p, p.n_s, rel_precision) <= config.MAX_GENERATIONS:
        return
    # largest admissible n_s (generations grow with n_s)
    lo, _ = bisect_int(lambda m: _generations(p, m, rel_precision) > config.MAX_GENERATIONS,
                       0, p.n_s)
    raise ParameterError(
        name,
        f"{name} must be at most {lo} for n_r = {p.n_r} at rel_precision = {rel_precision:g}: "
        f"the loop mixes too slowly beyond (more than {config.MAX_GENERATIONS} generations "
        f"per chain); got {p.n_s}")


#: Dimension from which the kept window is as long as the burn-in, not twice it.
SHORT_WINDOW_D = 20


def window_for(burn_in: int, every: int = 1, d: int = 1) -> int:
    """Kept generations per chain of the main plan (the first round keeps fewer,
    :func:`pilot_plan`): at least 32, rounded up to a multiple of ``2 every`` (two
    halves of measured generations).

    Below ``d =`` :data:`SHORT_WINDOW_D` twice the burn-in: each chain pays its
    burn-in, so long windows spread it over more measured generations when many
    chains are needed. From there the distance concentrates (it averages over
    ``d`` eigenvalues) and few chains are ever needed, so the window is as long as
    the burn-in; the work budget, which counts chains of this plan, then refuses
    no more than it has to. Measured at the paper's ``(100, 100, 900, 0.8)`` when
    this was the only plan (burn-in 40, 16 chains, 5 seeds): 0.66 s with twice
    the burn-in, 0.43 s with once, the same 0.25% on ``n_e`` (the reference
    curve's own error).
    """
    return _whole_halves(max(32, (2 if d < SHORT_WINDOW_D else 1) * burn_in), every)


def _whole_halves(window: int, every: int) -> int:
    """``window`` rounded up to a multiple of ``2 every``: two halves of measured
    generations."""
    return -(-window // (2 * every)) * 2 * every


#: Chains of the first round of an estimate, and of a threshold evaluation (two
#: configurations in lockstep): enough for the slopes of up to three control
#: variates per configuration, since :func:`ess.stats.cv_mean` needs ``p + 8``
#: chains and its HC3 intervals held their 95% in 97% of 2000 first rounds of 12
#: chains at ``d = 6`` and 10, and 500 at ``d = 20`` (a threshold's first round, 16
#: chains with six control variates, is conservative: about 98.5%).
PILOT_CHAINS = {1: 12, 2: 16}


def pilot_chunks(d: int, n_values: int = 1) -> int:
    """First round: at least :data:`PILOT_CHAINS` chains. At small ``d`` that is
    one chunk: splitting a millisecond of work over threads costs more than it saves."""
    return math.ceil(PILOT_CHAINS[n_values] / chunk_size(d))


def check_ring_memory(p: LoopParams, n_gen: int) -> None:
    """The per-chain buffers of past models must fit in :data:`ess.config.MAX_BYTES`
    (``memory = "all"`` keeps every generation's model).

    Raises
    ------
    ParameterError
        Naming ``memory``.
    """
    K = kernel_memory(p, n_gen)
    need = 2 * K * p.d * p.d * 8 * config.default_jobs()
    if need > config.MAX_BYTES:
        raise ParameterError("memory", f"memory must be smaller for d = {p.d}: {K} past models "
                             f"of {p.d}x{p.d} need {need / 2**30:.1f} GiB (limit "
                             f"{config.MAX_BYTES / 2**30:.0f} GiB)")


def affordable(p: LoopParams, n_s: int, rel_precision: float, max_chains: int,
               n_values: int = 2) -> bool:
    """Whether a limit at ``n_s`` (a threshold evaluation: ``n_values = 2``
    configurations in lockstep) fits the generation and work limits."""
    q = replace(p, n_s=n_s)
    try:
        check_generations(q, rel_precision)
        chain_budget(q, generations_for(q, rel_precision), max_chains, n_values=n_values)
    except ParameterError:
        return False
    return True


def default_cap(p: LoopParams, rel_precision: float, max_chains: int) -> tuple[int, int]:
    """The threshold search's default cap: ``CAP_PER_N_R n_r``, lowered to the largest
    ``n_s`` whose evaluation fits the budgets.

    Returns
    -------
    (int, int)
        The cap, and the cap asked for before lowering (equal when not lowered).
    """
    wanted = min(defaults.CAP_PER_N_R * p.n_r, config.MAX_COUNT)
    if affordable(p, wanted, rel_precision, max_chains):
        return wanted, wanted
    cap = bisect_int(lambda m: not affordable(p, m, rel_precision, max_chains), 0, wanted)[0]
    return max(cap, 1), wanted


#: Work units of one sample of the sample-level path (``accumulate-subsample``), drawn
#: or fitted: ``SAMPLE_COST + SAMPLE_COST_PER_D2 d^2`` (its ``O(d^2)`` multiply-adds).
#: Measured against the fresh loop's time per unit on one thread (50 generations of
#: ``n_r = 100``, ``n_s = 100`` at d = 2 and 10, ``n_s = 900`` at d = 50 and 100): a
#: sample took 0.07, 0.8, 44 and 250 units at d = 2, 10, 50, 100; this model gives
#: 0.13, 2.1, 50 and 200 (conservative at small d, where the units are coarse).
SAMPLE_COST = 0.05
SAMPLE_COST_PER_D2 = 0.02


def pool_rows(p: LoopParams, n_gen: int) -> int:
    """Samples in the pool of an ``accumulate-subsample`` chain of ``n_gen`` generations:
    the first real set and ``n_gen - 1`` batches."""
    return p.n_ini + (n_gen - 1) * p.n_s


def subsample_chain_cost(p: LoopParams, n_gen: int) -> float:
    """Work units of one ``accumulate-subsample`` chain: every sample drawn (the real
    set, then ``n_s`` per generation) and every sample fitted (``min(n_r + n_s, pool)``
    per generation), at ``SAMPLE_COST + SAMPLE_COST_PER_D2 d^2`` units each, plus a
    Cholesky factor and a distance (one group draw's units) per generation."""
    fitted = sum(min(p.n_r + p.n_s, p.n_ini + t * p.n_s) for t in range(1, n_gen)) + p.n_ini
    per_sample = SAMPLE_COST + SAMPLE_COST_PER_D2 * p.d * p.d
    return (pool_rows(p, n_gen) + fitted) * per_sample + n_gen * config.group_cost(p.d)


def check_pool_memory(p: LoopParams, n_gen: int, threads: int) -> None:
    """The pools of ``accumulate-subsample`` (one per running thread, reused by its
    chains) must fit in :data:`ess.config.MAX_BYTES`: ``pool_rows`` samples of ``d``
    doubles and a row number each.

    Raises
    ------
    ParameterError
        Naming ``generations`` (with the most that fit), or ``n_s`` when not even two
        generations fit.
    """
    if p.loop != "accumulate-subsample":
        return
    per_row = (p.d + 1) * 8 * threads
    need = pool_rows(p, n_gen) * per_row
    if need <= config.MAX_BYTES:
        return
    limit = f"{config.MAX_BYTES / 2**30:.3g} GiB"
    most = (config.MAX_BYTES // per_row - p.n_ini) // p.n_s + 1 if p.n_s else 0
    where = (f"the pool of n_ini + (generations - 1) n_s samples of d = {p.d} "
             f"({pool_rows(p, n_gen)} samples) on {threads} thread(s) needs "
             f"{need / 2**30:.3g} GiB (limit {limit})")
    if p.n_ini * per_row > config.MAX_BYTES:
        raise ParameterError("n_ini", f"n_ini must be at most {config.MAX_BYTES // per_row} "
                             f"for loop accumulate-subsample with d = {p.d}: {where}")
    if most >= 2:
        raise ParameterError("generations", f"generations must be at most {most} for loop "
                             f"accumulate-subsample with n_s = {p.n_s}: {where}; use fewer "
                             "generations, a smaller n_s or d, or fewer jobs")
    raise ParameterError("n_s", f"n_s = {p.n_s} is too large for loop accumulate-subsample: "
                         f"{where}; use a smaller n_s or d, or fewer jobs")
