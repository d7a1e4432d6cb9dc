"""The limit, ``n_e`` and the threshold ``n_s*`` (SPEC section 3).

Functions here take validated parameters (:class:`ess.params.LoopParams`) and
return result objects; :mod:`ess.api` is the public, validating front.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ess import config
from ess.analytic import fresh_stationary_moments, fresh_stationary_second_moments, mixing_rate
from ess.chains import (
    MAX_ROUND_GROWTH,
    ROUND_MARGIN,
    STREAM_LIMIT_PILOT,
    LimitPlan,
    adaptive,
    chunk_size,
    kernel_memory,
    limit_chunks,
)
from ess.params import LoopParams, ParameterError
from ess.progress import NULL_PROGRESS, Progress
from ess.reference import Inversion, ReferenceCurve
from ess.results import EstimateResult, ThresholdResult
from ess.stats import cv_mean, t975

#: Generations kept for ``memory="all"``, which has no geometric mixing rate.
ALL_MEMORY_GENERATIONS = 400
#: |z| above which the two halves of the kept window are said to differ.
DRIFT_Z = 3.29


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
    pilot = _pilot_chunks(p.d, n_values) * cs
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
#: :data:`PILOT_MIN_WINDOW` generations); see :func:`run_limit`.
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


def run_limit(main: LimitPlan, max_chains: int, n_values: int, n_jobs: int,
              progress: Progress, excess: Callable[[np.ndarray], float],
              restart: bool = True) -> tuple[np.ndarray, bool, LimitPlan, int]:
    """Run chains of a limit until ``excess(data) <= 1`` (see :func:`ess.chains.adaptive`).

    The first round (:data:`PILOT_CHAINS` chains) keeps a short window
    (:func:`pilot_plan`): where the control variates are at work it usually
    suffices, and a long window would only add generations that no precision
    asks for. When it does not suffice, the cheaper of two predicted ways goes on:
    more chains like it, or (with ``restart``) a fresh start with ``main``'s longer
    windows, which spread each chain's burn-in over more measured generations; the
    first round then only sizes the second (independent random streams: the
    estimate never mixes the two plans). The prediction takes a window average's
    variance to fall like ``1 / window``; where it falls slower (the augmentation
    loop, whose chains keep their real set for life), the fresh start costs what a
    single plan of long windows did, plus the first round. The first round counts
    against ``max_chains`` and the work budget: a fresh start gets what it left.
    Returns the data, whether the precision was reached, the plan that produced
    the data, and the chains of a first round set aside (0 without a fresh start).
    """
    p = main.params
    cs, k = chunk_size(p.d), _pilot_chunks(p.d, n_values)

    def runner(plan: LimitPlan):
        return lambda a, b: limit_chunks(plan, a, b, n_jobs, progress)

    budget = chain_budget(p, main.generations, max_chains, n_values)
    short = pilot_plan(main)
    if short is main:
        return (*adaptive(runner(main), cs, k, budget, excess), main, 0)
    data = runner(short)(0, k)
    ex = excess(data)
    if ex <= 1.0:
        return data, True, short, 0
    need = k * min(ex * ex * ROUND_MARGIN, MAX_ROUND_GROWTH)  # chunks the short windows would need
    # main's chunks, if a chain's window average has variance proportional to 1 / window
    fresh = max(k, math.ceil(need * short.window / main.window))
    # what the first round leaves of max_chains and of the work budget
    spent = k * cs * chain_cost(p, short.generations, n_values)
    left = min(max_chains - k * cs,
               int((config.MAX_WORK - spent) // chain_cost(p, main.generations, n_values)))
    left_chunks = left // cs
    if (not restart or left_chunks < k
            or (need - k) * short.generations <= fresh * main.generations):
        budget = chain_budget(p, short.generations, max_chains, n_values)
        return (*adaptive(runner(short), cs, k, budget, excess, data=data), short, 0)
    return (*adaptive(runner(main), cs, min(fresh, left_chunks), left_chunks * cs, excess),
            main, k * cs)


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


def _known_means(p: LoopParams, n_s: int) -> np.ndarray | None:
    """Exact stationary means of the control variates, when known (fresh, memory 1):
    ``E|mu - mu_r|^2`` and ``E tr Sigma``, and ``E tr Sigma^2`` when ``Sigma_r`` is
    the identity (in the kernels' units), the case its recursion is written for.

    The third one does most of the work: ``tr Sigma^{1/2}`` is close to a quadratic
    in the eigenvalues of ``Sigma``, so with ``tr Sigma^2`` among the control
    variates the spread of the window averages left over falls a further 55 times
    at ``(d, n_r, n_s, lam) = (10, 100, 200, 0.9)`` (4000 chains).
    """
    if p.loop != "fresh" or p.memory != 1:
        return None
    if p.sr_identity:
        z = fresh_stationary_second_moments(p.d, p.n_r, n_s, p.lam, p.cov_estimator)
        return z[1:4].copy()
    tr = float(np.sum(p.L_r**2))
    return np.array(fresh_stationary_moments(p.n_r, n_s, p.lam, p.cov_estimator, tr))


#: Chains of the first round of an estimate, and of a threshold evaluation (two
#: configurations in lockstep): enough for the slopes of up to three control
#: variates per configuration, since :func:`ess.chains.cv_mean` needs ``p + 8``
#: chains and its HC3 intervals held their 95% in 97% of 2000 first rounds of 12
#: chains at ``d = 6`` and 10, and 500 at ``d = 20`` (a threshold's first round, 16
#: chains with six control variates, is conservative: about 98.5%).
PILOT_CHAINS = {1: 12, 2: 16}


def _pilot_chunks(d: int, n_values: int = 1) -> int:
    """First round: at least :data:`PILOT_CHAINS` chains. At small ``d`` that is
    one chunk: splitting a millisecond of work over threads costs more than it saves."""
    return math.ceil(PILOT_CHAINS[n_values] / chunk_size(d))


def _limit_stats(data: np.ndarray, v: int,
                 known: np.ndarray | None) -> tuple[float, float, int]:
    y = data[:, v, 0, :].mean(axis=-1)
    if known is None:
        return cv_mean(y)
    return cv_mean(y, data[:, v, 1:1 + len(known), :].mean(axis=-1), known)


def reference_for(p: LoopParams, rel_precision: float, n_jobs: int,
                  progress: Progress = NULL_PROGRESS) -> ReferenceCurve:
    """The reference curve matching ``p``'s ``d``, metric, estimator and ``Sigma_r``."""
    return ReferenceCurve(p.d, p.metric, p.cov_estimator, p.L_r, p.sr_identity,
                          rel_precision=rel_precision, n_jobs=n_jobs, progress=progress)


def estimate_limit(p: LoopParams, seed: int, rel_precision: float, max_chains: int,
                   n_jobs: int, progress: Progress = NULL_PROGRESS,
                   curve: ReferenceCurve | None = None) -> EstimateResult:
    """Estimate ``WD(n_r, n_s, lam)`` and invert the reference curve for ``n_e``.

    Chains are added until the relative 95% half-width on ``n_e`` (limit and
    curve errors combined) is at most ``rel_precision`` or ``max_chains`` is
    spent. The limit's standard error comes from the spread of per-chain
    window averages, with the exactly known stationary moments as control
    variates where they are known (fresh loop, ``memory = 1``).
    """
    t0 = time.perf_counter()
    if curve is None:
        curve = reference_for(p, rel_precision, n_jobs, progress)
    main = limit_plan(p, (p.n_s,), rel_precision, seed)
    known = _known_means(p, p.n_s)
    guess = [float(p.n_r + p.n_s)]

    last: list = [None, None]   # the data last measured, and its measurement

    def rel_halfwidth(data: np.ndarray) -> tuple[float, float, float, float, Inversion]:
        if data is last[0]:     # the final round, measured already by ``excess``
            return last[1]
        last[0], last[1] = data, _measure(data)
        return last[1]

    def _measure(data: np.ndarray) -> tuple[float, float, float, float, Inversion]:
        wd, se, dof = _limit_stats(data, 0, known)
        abs_hw = t975(dof) * se
        inv = curve.invert(wd, n_guess=guess[0])
        if inv.n is None:   # below n = 2: ask for the precision on WD itself
            return wd, se, abs_hw, abs_hw / wd, inv
        guess[0] = inv.n
        lim = abs_hw / wd / abs(inv.slope)
        return wd, se, abs_hw, math.hypot(lim, inv.curve_rel_hw), inv

    def excess(data: np.ndarray) -> float:
        return rel_halfwidth(data)[3] / rel_precision

    data, reached, plan, aside = run_limit(main, max_chains, 1, n_jobs, progress, excess)
    burn = plan.burn_in
    wd, se, abs_hw, hw, inv = rel_halfwidth(data)
    # back to the user's units (the kernels ran on the normalised Sigma_r)
    wd, se, abs_hw = wd * p.dist_factor, se * p.dist_factor, abs_hw * p.dist_factor
    wd_ci = (wd - abs_hw, wd + abs_hw)
    diff = data[:, 0, 0, 0] - data[:, 0, 0, 1]
    sd = float(diff.std(ddof=1))
    drift_z = float(diff.mean() / (sd / math.sqrt(diff.shape[0]))) if sd > 0 else 0.0
    note = ""
    if inv.n is None:
        n_e = n_e_ci = ratio = ratio_ci = None
        f2 = curve.value(2)[0] * p.dist_factor
        note = ("n_e < 2: the limit is farther from P_r than a model fit on 2 real samples "
                f"(WD = {wd:.6g} > f(2) = {f2:.6g})")
    else:
        n_e = inv.n
        n_e_ci = (n_e * math.exp(-hw), n_e * math.exp(hw))
        ratio = n_e / p.n_r
        ratio_ci = (n_e_ci[0] / p.n_r, n_e_ci[1] / p.n_r)
    converged = abs(drift_z) <= DRIFT_Z
    if p.memory == "all":
        note = (note + "; " if note else "") + (
            f"memory 'all' has no geometric mixing rate: generations {burn + 1}.."
            f"{plan.generations} are averaged and the limit is approached slowly")
    if not converged:
        note = (note + "; " if note else "") + (
            f"the kept window drifts ({drift_z:+.1f} standard errors between its halves): "
            "the chains may not have reached the limit")
    if not reached:
        cs = chunk_size(p.d)
        budget = chain_budget(p, plan.generations, max_chains)
        why = (f"max_chains = {max_chains}" if budget == (max_chains // cs) * cs
               else f"the work budget ({budget} chains of {plan.generations} generations)")
        if aside:
            why += (f", counting a first round of {aside} shorter chains that was set "
                    "aside for longer ones")
        note = (note + "; " if note else "") + f"precision not reached within {why}"
    curve.save()
    return EstimateResult(
        d=p.d, n_r=p.n_r, n_s=p.n_s, lam=p.lam, loop=p.loop, metric=p.metric,
        cov_estimator=p.cov_estimator, memory=p.memory, n_ini=p.n_ini, seed=seed,
        rel_precision=rel_precision, wd=wd, wd_se=se, wd_ci=wd_ci, n_e=n_e, n_e_ci=n_e_ci,
        n_e_over_n_r=ratio, n_e_over_n_r_ci=ratio_ci, n_e_rel_halfwidth=hw,
        chains=int(data.shape[0]), generations=plan.generations, burn_in=burn,
        precision_reached=bool(hw <= rel_precision), converged=converged, drift_z=drift_z,
        seconds=time.perf_counter() - t0, note=note)


class _ExcessEvaluator:
    """``WD(n_s) - f(n_r)`` for one ``(n_r, lam)``, with common random numbers.

    Every evaluation runs the same chain seeds at ``n_s`` and at ``n_s = 0`` in
    lockstep on the same real data; the fresh loop at ``n_s = 0`` is a fit on
    ``n_r`` real samples every generation, so its limit is exactly ``f(n_r)``
    and the paired difference is far less noisy than either term.
    """

    def __init__(self, p: LoopParams, seed: int, rel_precision: float, max_chains: int,
                 n_jobs: int, progress: Progress, abs_target: float) -> None:
        self.p = p
        self.seed = seed
        self.rel_precision = rel_precision
        self.max_chains = max_chains
        self.n_jobs = n_jobs
        self.progress = progress
        self.abs_target = abs_target
        self.cache: dict[int, tuple[float, float, float, bool]] = {}

    def __call__(self, n_s: int) -> tuple[float, float, float, bool]:
        """Excess, its standard error, its 95% half-width, and whether the
        precision was reached."""
        if n_s == 0:
            return 0.0, 0.0, 0.0, True
        if n_s in self.cache:
            return self.cache[n_s]
        p = self.p
        q = replace(p, n_s=n_s)
        main = limit_plan(q, (n_s, 0), self.rel_precision, self.seed)
        k1, k0 = _known_means(p, n_s), _known_means(p, 0)

        def stats(data: np.ndarray) -> tuple[float, float, int]:
            y = data[:, 0, 0, :].mean(-1) - data[:, 1, 0, :].mean(-1)
            if k1 is None:
                return cv_mean(y)
            k = 1 + len(k1)
            X = np.concatenate([data[:, 0, 1:k, :].mean(-1), data[:, 1, 1:k, :].mean(-1)], axis=1)
            return cv_mean(y, X, np.concatenate([k1, k0]))

        def excess(data: np.ndarray) -> float:
            _, se, dof = stats(data)
            return t975(dof) * se / self.abs_target

        # never a fresh start on the main plan's streams: every n_s keeps the same
        # streams (common random numbers across the search; it also cost no more,
        # measured over five threshold searches at d = 1 to 10)
        data, reached, _, _ = run_limit(main, self.max_chains, 2, self.n_jobs, self.progress,
                                        excess, restart=False)
        est, se, dof = stats(data)
        self.cache[n_s] = (est, se, t975(dof) * se, reached)
        return self.cache[n_s]

    def inadmissible(self, n_s: int) -> bool:
        """Point estimate of the excess above zero: ``n_e < n_r``."""
        return self(n_s)[0] > 0.0

    def decisively_inadmissible(self, n_s: int) -> bool:
        """The 95% interval of the excess lies above zero."""
        est, _, hw, _ = self(n_s)
        return est - hw > 0.0

    def decisively_admissible(self, n_s: int) -> bool:
        """The 95% interval of the excess lies below zero."""
        est, _, hw, _ = self(n_s)
        return n_s > 0 and est + hw < 0.0


def threshold_search(p: LoopParams, seed: int, rel_precision: float, max_chains: int,
                     cap: int, n_jobs: int,
                     progress: Progress = NULL_PROGRESS) -> ThresholdResult:
    """The admissible threshold ``n_s*(n_r, lam)`` by bracketing and integer bisection.

    A geometric grid of ``n_s`` (1, 2, 4, ... and ``cap``) is scanned
    past the peak of ``n_e / n_r`` to the first decisive fall below 1 (the
    excess ``WD(n_s) - f(n_r)`` above zero by 1.96 standard errors), so noise
    near ``n_s = 0`` cannot stop the search; integer bisection then locates the
    last admissible ``n_s``. Every evaluation uses the same chain seeds (common
    random numbers). Each is made precise to ``rel_precision`` on ``n_e / n_r``.
    """
    t0 = time.perf_counter()
    curve = reference_for(p, rel_precision, n_jobs, progress)
    f_r, _ = curve.value(p.n_r)
    slope = abs(curve.log_slope(p.n_r))
    abs_target = rel_precision * slope * f_r
    ev = _ExcessEvaluator(p, seed, rel_precision, max_chains, n_jobs, progress, abs_target)

    grid = []
    n = 1
    while n < cap:
        grid.append(n)
        n *= 2
    grid.append(cap)
    hi = None
    for n in grid:
        if ev.decisively_inadmissible(n):
            hi = n
            break
    note = ""
    if hi is None:
        if ev.inadmissible(cap):
            hi = cap
            note = "n_e / n_r falls below 1 before the cap, but not decisively"
        else:
            lower = max((m for m in ev.cache if ev.decisively_admissible(m)), default=0)
            return _threshold_result(p, seed, rel_precision, None, (lower, None), cap, ev,
                                     t0, "no threshold up to the cap: n_e >= n_r for every "
                                     f"n_s <= {cap}")
    admissible = [m for m in ev.cache if m < hi and not ev.inadmissible(m)]
    lo = max(admissible, default=0)
    star, _ = bisect_int(ev.inadmissible, lo, hi)
    # 95% interval: from the largest decisively admissible n_s below the estimate
    # to the largest n_s that is not decisively inadmissible.
    dec = [m for m in ev.cache if m <= star and ev.decisively_admissible(m)]
    if dec:
        best = max(dec)
        lower = star if ev.decisively_admissible(star) else bisect_int(
            lambda m: not ev.decisively_admissible(m), best, star)[0]
    else:
        lower = 0
    beyond = [m for m in ev.cache if m > star and ev.decisively_inadmissible(m)]
    if beyond:
        first = min(beyond)
        upper = bisect_int(ev.decisively_inadmissible, star, first)[0]
    else:
        upper = None
    if lower == 0 and star > 0:
        note = (note + "; " if note else "") + (
            "no n_s is decisively admissible: below n_s*, n_e / n_r is within the Monte Carlo "
            "precision of 1, so the threshold is only bounded above (lower rel_precision to "
            "resolve it)")
    return _threshold_result(p, seed, rel_precision, star, (lower, upper), cap, ev, t0, note)


def _threshold_result(p: LoopParams, seed: int, rel_precision: float, star: int | None,
                      ci: tuple[int, int | None], cap: int, ev: _ExcessEvaluator, t0: float,
                      note: str) -> ThresholdResult:
    k = p.dist_factor
    scan = [{"n_s": m, "excess": k * v[0], "excess_se": k * v[1],
             "excess_ci": (k * (v[0] - v[2]), k * (v[0] + v[2]))}
            for m, v in sorted(ev.cache.items())]
    reached = all(v[3] for v in ev.cache.values())
    if not reached:
        note = (note + "; " if note else "") + (
            "some evaluations stopped at max_chains before reaching rel_precision")
    return ThresholdResult(
        d=p.d, n_r=p.n_r, lam=p.lam, metric=p.metric, cov_estimator=p.cov_estimator,
        memory=p.memory, seed=seed, rel_precision=rel_precision, n_s_star=star,
        n_s_star_ci=ci, cap=cap, evaluations=len(ev.cache), precision_reached=reached,
        seconds=time.perf_counter() - t0, scan=scan, note=note)
