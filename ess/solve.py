"""The limit, ``n_e`` and the threshold ``n_s*`` (docs/contract.md, section 3).

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
from ess.analytic import fresh_stationary_moments, fresh_stationary_second_moments
from ess.chains import MAX_ROUND_GROWTH, ROUND_MARGIN, LimitPlan, adaptive, chunk_size, limit_chunks
from ess.kernels.layout import Q_DIST, Q_MEAN_DEV
from ess.params import LoopParams
from ess.plan import (
    at_least,
    chain_budget,
    chain_cost,
    crossing,
    first_round_chunks,
    fixed_cv_weights,
    interpolate_int,
    limit_plan,
    pilot_chunks,
    pilot_plan,
    search_grid,
    search_work,
    sized_plan,
    work_limit,
)
from ess.progress import NULL_PROGRESS, Progress
from ess.reference import Inversion, ReferenceCurve
from ess.results import EstimateResult, Interval, ThresholdResult
from ess.stats import CV_MIN_EXTRA, cv_mean, t975

#: |z| above which the two halves of the kept window are said to differ: the
#: two-sided 99.9% normal quantile, so that a converged chain set is flagged about
#: once in a thousand estimates (a drift flag asks the user to distrust a number;
#: false alarms at the 95% level would cry wolf on one table cell in twenty).
DRIFT_Z = 3.29


def run_limit(main: LimitPlan, max_chains: int, n_values: int, n_jobs: int,
              progress: Progress, excess: Callable[[np.ndarray], float],
              restart: bool = True, max_work: float | None = None
              ) -> tuple[np.ndarray, bool, LimitPlan, int]:
    """Run chains of a limit until ``excess(data) <= 1`` (see :func:`ess.chains.adaptive`).

    The first round (:data:`PILOT_CHAINS` chains) keeps a short window
    (:func:`pilot_plan`, two measured generations when the burn-in is short): the
    least an estimate can run, so that a first round that suffices is not far
    inside the precision asked. When it does not suffice, its measured variance
    sizes the rest (:func:`ess.plan.sized_plan`): the cheapest of more chains like
    it, or (with ``restart``) a fresh start with as many chains of the window that
    lands near ``rel_precision``, predicted with the records' autocorrelation at the
    mixing rate; the first round then only sizes the second (independent random
    streams: the estimate never mixes the two plans). The first round counts against
    ``max_chains`` and the work budget ``max_work``: a fresh start gets what it left.
    Returns the data, whether the precision was reached, the plan that produced
    the data, and the chains of a first round set aside (0 without a fresh start).
    """
    p = main.params
    cs, k = chunk_size(p.d), pilot_chunks(p.d, n_values)

    def runner(plan: LimitPlan):
        return lambda a, b: limit_chunks(plan, a, b, n_jobs, progress)

    short = pilot_plan(main)
    if short is main:
        budget = chain_budget(p, main.generations, max_chains, n_values, max_work)
        return (*adaptive(runner(main), cs, k, budget, excess), main, 0)
    chain_budget(p, short.generations, max_chains, n_values, max_work)  # the first round fits
    probe = min(k, first_round_chunks(p, n_values) if short.warm else k)
    data = runner(short)(0, probe)
    ex = excess(data)
    if ex <= 1.0:
        return data, True, short, 0
    if probe < k:   # a few chains did not suffice: enough to fit the slopes, then measure
        data = np.concatenate([data, runner(short)(probe, k)], axis=0)
        ex = excess(data)
        if ex <= 1.0:
            return data, True, short, 0
    need = k * min(ex * ex * ROUND_MARGIN, MAX_ROUND_GROWTH)  # chunks the short windows would need
    # what the first round leaves of max_chains and of the work budget
    spent = k * cs * chain_cost(p, short.generations, n_values)
    if restart:
        fresh, chunks = sized_plan(short, need, k)
        left = min(max_chains - k * cs, int((work_limit(max_work) - spent)
                                            // chain_cost(p, fresh.generations, n_values)))
        left_chunks = left // cs
        if left_chunks >= k and fresh is not short:
            return (*adaptive(runner(fresh), cs, min(chunks, left_chunks), left_chunks * cs,
                              excess), fresh, k * cs)
    budget = chain_budget(p, short.generations, max_chains, n_values, max_work)
    return (*adaptive(runner(short), cs, k, budget, excess, data=data), short, 0)


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


def _limit_stats(data: np.ndarray, v: int, known: np.ndarray | None,
                 fixed: np.ndarray | None = None) -> tuple[float, float, int]:
    """Mean of the chains' window averages of configuration ``v``, its standard error
    and degrees of freedom: with control variates of exact means ``known`` when given,
    their slopes fitted (:func:`ess.stats.cv_mean`) when there are chains enough, else
    the ``fixed`` slopes (:func:`ess.plan.fixed_cv_weights`) when given."""
    y = data[:, v, Q_DIST, :].mean(axis=-1)
    if known is None:
        return cv_mean(y)
    X = data[:, v, Q_MEAN_DEV:Q_MEAN_DEV + len(known), :].mean(axis=-1)
    if fixed is not None and len(y) < len(known) + CV_MIN_EXTRA:
        return cv_mean(y - (X - known) @ fixed)
    return cv_mean(y, X, known)


def reference_for(p: LoopParams, rel_precision: float, n_jobs: int,
                  progress: Progress = NULL_PROGRESS) -> ReferenceCurve:
    """The reference curve matching ``p``'s ``d``, metric, estimator and ``Sigma_r``."""
    return ReferenceCurve(p.d, p.metric, p.cov_estimator, p.L_r, p.sr_identity,
                          rel_precision=rel_precision, n_jobs=n_jobs, progress=progress)


def estimate_limit(p: LoopParams, seed: int, rel_precision: float, max_chains: int,
                   n_jobs: int, progress: Progress = NULL_PROGRESS,
                   curve: ReferenceCurve | None = None,
                   max_work: float | None = None, start: str = "auto",
                   burn_in_factor: float = 1.0) -> EstimateResult:
    """Estimate ``WD(n_r, n_s, lam)`` and invert the reference curve for ``n_e``.

    Chains are added until the relative 95% half-width on ``n_e`` (limit and
    curve errors combined) is at most ``rel_precision`` or ``max_chains`` or the
    work budget ``max_work`` (default :data:`ess.config.MAX_WORK`) is spent; the
    answer's ``budget_note`` says when the work budget stopped it. The limit's
    standard error comes from the spread of per-chain window averages, with the
    exactly known stationary moments as control variates where they are known
    (fresh loop, ``memory = 1``). ``start`` and ``burn_in_factor`` are those of
    :func:`ess.plan.limit_plan` (checks of the warm starts use them).
    """
    t0 = time.perf_counter()
    if curve is None:
        curve = reference_for(p, rel_precision, n_jobs, progress)
    main = limit_plan(p, (p.n_s,), rel_precision, seed, start, burn_in_factor)
    known = _known_means(p, p.n_s)
    fixed = fixed_cv_weights(p, p.n_s) if known is not None and len(known) == 3 else None
    guess = [float(p.n_r + p.n_s)]

    last: list = [None, None]   # the data last measured, and its measurement

    def rel_halfwidth(data: np.ndarray) -> tuple[float, float, float, float, Inversion]:
        if data is last[0]:     # the final round, measured already by ``excess``
            return last[1]
        last[0], last[1] = data, _measure(data)
        return last[1]

    def _measure(data: np.ndarray) -> tuple[float, float, float, float, Inversion]:
        wd, se, dof = _limit_stats(data, 0, known, fixed)
        abs_hw = t975(dof) * se
        inv = curve.invert(wd, n_guess=guess[0])
        if inv.n is None:   # below n = 2: ask for the precision on WD itself
            return wd, se, abs_hw, abs_hw / wd, inv
        guess[0] = inv.n
        lim = abs_hw / wd / abs(inv.slope)
        return wd, se, abs_hw, math.hypot(lim, inv.curve_rel_hw), inv

    def excess(data: np.ndarray) -> float:
        return rel_halfwidth(data)[3] / rel_precision

    budget_work = work_limit(max_work)
    data, reached, plan, aside = run_limit(main, max_chains, 1, n_jobs, progress, excess,
                                           max_work=budget_work)
    burn = plan.burn_in
    wd, se, abs_hw, hw, inv = rel_halfwidth(data)
    # back to the user's units (the kernels ran on the normalised Sigma_r)
    wd, se, abs_hw = wd * p.dist_factor, se * p.dist_factor, abs_hw * p.dist_factor
    wd_ci = Interval(wd - abs_hw, wd + abs_hw)
    diff = data[:, 0, Q_DIST, 0] - data[:, 0, Q_DIST, 1]   # first half minus second
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
        n_e_ci = Interval(n_e * math.exp(-hw), n_e * math.exp(hw))
        ratio = n_e / p.n_r
        ratio_ci = Interval(n_e_ci[0] / p.n_r, n_e_ci[1] / p.n_r)
    converged = abs(drift_z) <= DRIFT_Z
    if p.memory == "all":
        note = (note + "; " if note else "") + (
            f"memory 'all' has no geometric mixing rate: generations {burn + 1}.."
            f"{plan.generations} are averaged and the limit is approached slowly")
    if not converged:
        note = (note + "; " if note else "") + (
            f"the kept window drifts ({drift_z:+.1f} standard errors between its halves): "
            "the chains may not have reached the limit")
    budget_note = ""
    if not reached:
        cs = chunk_size(p.d)
        budget = chain_budget(p, plan.generations, max_chains, max_work=budget_work)
        by_chains = budget == (max_chains // cs) * cs
        why = (f"max_chains = {max_chains}" if by_chains
               else f"the work budget max_work = {budget_work:g} ({budget} chains of "
               f"{plan.generations} generations)")
        if aside:
            why += (f", counting a first round of {aside} shorter chains that was set "
                    "aside for longer ones")
        note = (note + "; " if note else "") + f"precision not reached within {why}"
        if not by_chains:
            # chains needed, as the rounds predict them (variance ~ 1 / chains)
            need = (data.shape[0] * (hw / rel_precision) ** 2 * ROUND_MARGIN + aside) \
                * chain_cost(p, plan.generations)
            budget_note = (f"the work budget max_work = {budget_work:g} stopped the chains at "
                           f"+-{100 * hw:.3g}% on n_e (asked +-{100 * rel_precision:g}%); "
                           f"about max_work = {at_least(need)} (--max-work; at most "
                           f"{config.MAX_WORK_LIMIT:g}) would reach it")
            note += "; " + budget_note
    curve.save()
    return EstimateResult(
        d=p.d, n_r=p.n_r, n_s=p.n_s, lam=p.lam, loop=p.loop, metric=p.metric,
        cov_estimator=p.cov_estimator, memory=p.memory, n_ini=p.n_ini, seed=seed,
        rel_precision=rel_precision, wd=wd, wd_se=se, wd_ci=wd_ci, n_e=n_e, n_e_ci=n_e_ci,
        n_e_over_n_r=ratio, n_e_over_n_r_ci=ratio_ci, n_e_rel_halfwidth=hw,
        chains=int(data.shape[0]), generations=plan.generations, burn_in=burn,
        precision_reached=bool(hw <= rel_precision), converged=converged, drift_z=drift_z,
        seconds=time.perf_counter() - t0, note=note, max_work=budget_work,
        budget_note=budget_note)


def reference_fit(p: LoopParams, seed: int, rel_precision: float, n_jobs: int,
                  progress: Progress = NULL_PROGRESS,
                  max_work: float | None = None) -> EstimateResult:
    """The answer at ``n_s = 0``: every generation is a fit on ``n_r`` real samples
    (fresh ones, or the same fixed set), the reference fit itself, so ``n_e = n_r``
    exactly and the limit is ``f(n_r)``: no chains run.

    (:func:`estimate_limit` at ``n_s = 0`` estimates the same limit by Monte Carlo,
    which the tests use to check the chains against the curve.)
    """
    t0 = time.perf_counter()
    curve = reference_for(p, rel_precision, n_jobs, progress)
    f, se = curve.value(p.n_r)
    curve.save()
    k = p.dist_factor
    wd, se = f * k, se * k
    return EstimateResult(
        d=p.d, n_r=p.n_r, n_s=0, lam=p.lam, loop=p.loop, metric=p.metric,
        cov_estimator=p.cov_estimator, memory=p.memory, n_ini=p.n_ini, seed=seed,
        rel_precision=rel_precision, wd=wd, wd_se=se,
        wd_ci=Interval(wd - config.Z95 * se, wd + config.Z95 * se), n_e=float(p.n_r),
        n_e_ci=Interval(float(p.n_r), float(p.n_r)), n_e_over_n_r=1.0,
        n_e_over_n_r_ci=Interval(1.0, 1.0), n_e_rel_halfwidth=0.0, chains=0, generations=0,
        burn_in=0, precision_reached=True, converged=True, drift_z=0.0,
        seconds=time.perf_counter() - t0,
        note="n_s = 0: every generation is a fit on n_r real samples, so n_e = n_r exactly "
             "(no Monte Carlo); wd is the reference curve's f(n_r)",
        max_work=work_limit(max_work))


class _ExcessEvaluator:
    """``WD(n_s) - f(n_r)`` for one ``(n_r, lam)``, with common random numbers.

    Every evaluation runs the same chain seeds at ``n_s`` and at ``n_s = 0`` in
    lockstep on the same real data; the fresh loop at ``n_s = 0`` is a fit on
    ``n_r`` real samples every generation, so its limit is exactly ``f(n_r)``
    and the paired difference is far less noisy than either term.
    """

    def __init__(self, p: LoopParams, seed: int, rel_precision: float, max_chains: int,
                 n_jobs: int, progress: Progress, abs_target: float,
                 max_work: float | None = None) -> None:
        self.p = p
        self.max_work = max_work
        self.seed = seed
        self.rel_precision = rel_precision
        self.max_chains = max_chains
        self.n_jobs = n_jobs
        self.progress = progress
        self.abs_target = abs_target
        self.cache: dict[int, tuple[float, float, float, bool]] = {}
        #: The least burn-in of the evaluations from now on (:meth:`pin_burn_in`).
        self.min_burn_in = 0

    def plan(self, n_s: int) -> LimitPlan:
        """The chains of the evaluation at ``n_s``: ``n_s`` and ``0`` in lockstep."""
        return limit_plan(replace(self.p, n_s=n_s), (n_s, 0), self.rel_precision, self.seed,
                          min_burn_in=self.min_burn_in)

    def pin_burn_in(self, n_s: int) -> None:
        """Give every later evaluation at least the burn-in of the one at ``n_s``.

        The burn-in grows with ``n_s`` in steps of one generation, and evaluations with
        different plans draw different random numbers, so the excess and, more, its
        half-width jump where the burn-in does (measured at ``d = 100``, ``(n_r, lam) =
        (100, 0.9)``: half-widths of 0.38, 0.89 and 0.33 times the target at burn-ins of
        24, 25 and 26, constant within each). With the bracket's largest burn-in for all
        of it, common random numbers keep both smooth in ``n_s``; a longer burn-in only
        brings the chains closer to the limit.
        """
        self.min_burn_in = max(self.min_burn_in, self.plan(n_s).burn_in)

    def __call__(self, n_s: int) -> tuple[float, float, float, bool]:
        """Excess, its standard error, its 95% half-width, and whether the
        precision was reached."""
        if n_s == 0:
            return 0.0, 0.0, 0.0, True
        if n_s in self.cache:
            return self.cache[n_s]
        p = self.p
        main = self.plan(n_s)
        k1, k0 = _known_means(p, n_s), _known_means(p, 0)
        w1, w0 = fixed_cv_weights(p, n_s), fixed_cv_weights(p, 0)

        def stats(data: np.ndarray) -> tuple[float, float, int]:
            y = data[:, 0, Q_DIST, :].mean(-1) - data[:, 1, Q_DIST, :].mean(-1)
            if k1 is None:
                return cv_mean(y)
            cvs = slice(Q_MEAN_DEV, Q_MEAN_DEV + len(k1))
            X1, X0 = data[:, 0, cvs, :].mean(-1), data[:, 1, cvs, :].mean(-1)
            if w1 is not None and w0 is not None and len(y) < 2 * len(k1) + CV_MIN_EXTRA:
                return cv_mean(y - (X1 - k1) @ w1 + (X0 - k0) @ w0)   # too few to fit
            return cv_mean(y, np.concatenate([X1, X0], axis=1), np.concatenate([k1, k0]))

        def excess(data: np.ndarray) -> float:
            _, se, dof = stats(data)
            return t975(dof) * se / self.abs_target

        # never a fresh start on the main plan's streams: every n_s keeps the same
        # streams (common random numbers across the search; it also cost no more,
        # measured over five threshold searches at d = 1 to 10)
        data, reached, _, _ = run_limit(main, self.max_chains, 2, self.n_jobs, self.progress,
                                        excess, restart=False, max_work=self.max_work)
        est, se, dof = stats(data)
        self.cache[n_s] = (est, se, t975(dof) * se, reached)
        return self.cache[n_s]

    def estimate(self, n_s: int) -> float:
        """The excess's point estimate."""
        return self(n_s)[0]

    def lower_end(self, n_s: int) -> float:
        """The lower end of the excess's 95% interval (above zero: decisively
        inadmissible)."""
        est, _, hw, _ = self(n_s)
        return est - hw

    def upper_end(self, n_s: int) -> float:
        """The upper end of the excess's 95% interval (below zero: decisively
        admissible)."""
        est, _, hw, _ = self(n_s)
        return est + hw

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


#: A threshold search gives every evaluation at least the burn-in of the evaluation at
#: ``PIN_MARGIN`` times the first guess of ``n_s*`` (the bracket's straight-line
#: crossing in ``log n_s``), or at the bracket's upper end when that is lower
#: (:meth:`_ExcessEvaluator.pin_burn_in`). The guess was within 10% of ``n_s*`` and
#: the interval's ends within 4% of it at ``d = 100``, ``n_r = 100``, ``lam`` 0.5 and
#: 0.9, so the answer and its interval share one plan; the whole bracket's burn-in
#: (the first decisive fall's, up to four times ``n_s*``) made each evaluation up to
#: 2.5 times longer.
PIN_MARGIN = 1.25


def threshold_search(p: LoopParams, seed: int, rel_precision: float, max_chains: int,
                     cap: int, n_jobs: int, progress: Progress = NULL_PROGRESS,
                     cap_wanted: int | None = None,
                     max_work: float | None = None) -> ThresholdResult:
    """The admissible threshold ``n_s*(n_r, lam)`` by bracketing and integer bisection.

    A geometric grid of ``n_s`` (:func:`ess.plan.search_grid`: 1, 4, 16, ... and
    ``cap``) is scanned
    past the peak of ``n_e / n_r`` to the first decisive fall below 1 (the
    excess ``WD(n_s) - f(n_r)`` above zero by 1.96 standard errors), so noise
    near ``n_s = 0`` cannot stop the search; integer bisection guided by the
    excess's values (:func:`ess.plan.interpolate_int`) then locates the last
    admissible ``n_s``, and the ends of its 95% interval. Every evaluation uses the
    same chain seeds (common random numbers). Each is made precise to
    ``rel_precision`` on ``n_e / n_r``.
    ``cap_wanted`` is the cap asked for, when the budgets lowered it to ``cap``:
    the result says so (``cap_lowered_from``, ``budget_note`` and the note), with the
    work budget ``max_work`` that the full cap needs.
    """
    t0 = time.perf_counter()
    budget_work = work_limit(max_work)
    lowered = ""
    if cap_wanted is not None and cap_wanted > cap:
        lowered = (f"the cap was lowered from {cap_wanted} (100 n_r) to {cap}, the largest n_s "
                   f"whose evaluation fits the work budget max_work = {budget_work:g}; the "
                   f"full cap needs max_work >= "
                   f"{at_least(search_work(p, cap_wanted, rel_precision))} (--max-work; at "
                   f"most {config.MAX_WORK_LIMIT:g})")
    curve = reference_for(p, rel_precision, n_jobs, progress)
    f_r, _ = curve.value(p.n_r)
    slope = abs(curve.log_slope(p.n_r))
    abs_target = rel_precision * slope * f_r
    ev = _ExcessEvaluator(p, seed, rel_precision, max_chains, n_jobs, progress, abs_target,
                          budget_work)

    grid = search_grid(cap)
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
                                     f"n_s <= {cap}", lowered, cap_wanted if lowered else None)
    admissible = [m for m in ev.cache if m < hi and not ev.inadmissible(m)]
    lo = max(admissible, default=0)
    hi = min(m for m in ev.cache if lo < m <= hi and ev.inadmissible(m))
    # one plan for the bracket's part where n_s* and its interval lie
    guess = crossing(lo, ev.estimate(lo), hi, ev.estimate(hi))
    ev.pin_burn_in(hi if guess is None else min(hi, math.ceil(PIN_MARGIN * guess)))
    star, _ = interpolate_int(ev.inadmissible, ev.estimate, lo, hi)
    # 95% interval: from the largest decisively admissible n_s below the estimate
    # to the largest n_s that is not decisively inadmissible (each bracketed by the
    # evaluations made so far, then closed by interpolation on the interval's end).
    dec = [m for m in ev.cache if m <= star and ev.decisively_admissible(m)]
    if dec:
        best = max(dec)
        if ev.decisively_admissible(star):
            lower = star
        else:
            top = min((m for m in ev.cache if best < m < star
                       and not ev.decisively_admissible(m)), default=star)
            lower = interpolate_int(lambda m: not ev.decisively_admissible(m), ev.upper_end,
                                    best, top)[0]
    else:
        lower = 0
    beyond = [m for m in ev.cache if m > star and ev.decisively_inadmissible(m)]
    if beyond:
        first = min(beyond)
        start = max((m for m in ev.cache if star < m < first
                     and not ev.decisively_inadmissible(m)), default=star)
        upper = interpolate_int(ev.decisively_inadmissible, ev.lower_end, start, first)[0]
    else:
        upper = None
    if lower == 0 and star > 0:
        note = (note + "; " if note else "") + (
            "no n_s is decisively admissible: below n_s*, n_e / n_r is within the Monte Carlo "
            "precision of 1, so the threshold is only bounded above (lower rel_precision to "
            "resolve it)")
    return _threshold_result(p, seed, rel_precision, star, (lower, upper), cap, ev, t0, note,
                             lowered, cap_wanted if lowered else None)


def _threshold_result(p: LoopParams, seed: int, rel_precision: float, star: int | None,
                      ci: tuple[int, int | None], cap: int, ev: _ExcessEvaluator, t0: float,
                      note: str, lowered: str = "",
                      cap_lowered_from: int | None = None) -> ThresholdResult:
    k = p.dist_factor
    scan = [{"n_s": m, "excess": k * v[0], "excess_se": k * v[1],
             "excess_ci": Interval(k * (v[0] - v[2]), k * (v[0] + v[2]))}
            for m, v in sorted(ev.cache.items())]
    reached = all(v[3] for v in ev.cache.values())
    if not reached:
        note = (note + "; " if note else "") + (
            "some evaluations stopped at max_chains or the work budget (max_work = "
            f"{work_limit(ev.max_work):g}) before reaching rel_precision")
    if lowered:
        note = (note + "; " if note else "") + lowered
    return ThresholdResult(
        d=p.d, n_r=p.n_r, lam=p.lam, metric=p.metric, cov_estimator=p.cov_estimator,
        memory=p.memory, seed=seed, rel_precision=rel_precision, n_s_star=star,
        n_s_star_ci=Interval(*ci), cap=cap, evaluations=len(ev.cache), precision_reached=reached,
        seconds=time.perf_counter() - t0, scan=tuple(scan), note=note,
        cap_lowered_from=cap_lowered_from, max_work=ev.max_work, budget_note=lowered)
