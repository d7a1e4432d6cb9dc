"""Planning a computation before it runs: burn-in, windows, first rounds and budgets.

Everything here is decided from the parameters alone (never from random numbers),
so a request can be checked against its budgets before any chain runs, and the
same request always gets the same plan.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from ess import config, defaults
from ess.analytic import (
    fresh_second_order_rate,
    fresh_stationary_second_moments,
    mixing_rate,
)
from ess.chains import STREAM_LIMIT, STREAM_LIMIT_PILOT, LimitPlan, chunk_size, kernel_memory
from ess.params import LoopParams, ParameterError

#: Generations kept for ``memory="all"``, which has no geometric mixing rate.
ALL_MEMORY_GENERATIONS = 400


#: Warm-start excess model: the relative excess of ``E dist`` over the limit at a
#: warm start (:func:`warm_start`) is at most ``WARM_C0 + WARM_C1 d`` over
#: ``kappa - 2`` (:func:`warm_excess`). MEASURED (``python -m benchmarks.warm_start``,
#: the warm law's ``E dist`` against a cold-started limit with a long burn-in; table in
#: ``benchmarks/results/warm_start.md``): 110 settings, d in {1, 2, 3, 10, 30, 100},
#: n_r 2..1000, n_s / n_r 0.5..100, lam 0.5..1. The excess is positive and largest
#: at lam = 1 with n_s >> n_r, where the loop multiplies Sigma by Wishart noise over many
#: generations: 0.34% (d = 1), 2.2% (d = 10), 25.8% (d = 100) at (n_r, n_s) = (100,
#: 10^4); 91% at (d, n_r, n_s) = (100, 30, 300); 0.02-0.04% at lam = 0.7, 0.85 and n_s
#: = 100 n_r, d = 100; 3.1% at (d, n_r, n_s, lam) = (100, 100, 100, 0.7). The largest
#: ratio measured / model was 0.82 (d = 100, n_r = 30, n_s = 300, lam = 1).
WARM_C0 = 0.5
WARM_C1 = 0.3
#: Largest ``nu`` of a warm start's Wishart: beyond, ``Sigma`` is as good as fixed.
WARM_MAX_NU = 1e9


def warm_excess(p: LoopParams) -> float:
    """The warm start's relative excess over the limit that the burn-in is sized for
    (an upper bound, measured: see :data:`WARM_C0`); ``inf`` where there is no warm
    start or the model does not bound it.

    The warm start matches the stationary ``E|mu - mu_r|^2``, ``E tr Sigma`` and ``E tr
    Sigma^2`` exactly, so its excess comes from the shape of the law of ``Sigma``,
    which a Wishart fits worst where the loop multiplies ``Sigma`` by its own Wishart
    noise over many generations. Per generation ``E[Sigma' | Sigma]`` holds ``e Sigma``
    (``e = lam (n_s - 1 + n_r / n) / q``, the covariance's own contraction) times a
    noise of relative variance ``2 / (n_s - 1)``, so ``Sigma``'s law has a power tail of
    index ``kappa = 1 - (n_s - 1) ln e`` (Kesten), and the excess measured is below
    ``(WARM_C0 + WARM_C1 d) / (kappa - 2)``.
    """
    if not warm_start(p, (p.n_s,)):
        return math.inf
    if p.n_s < 2:   # no Wishart noise on Sigma: no tail (measured at most 17.7%, n_r = 2)
        return 1.0
    q = p.n_r + p.n_s - (1 if p.cov_estimator == "unbiased" else 0)
    e = p.lam * (p.n_s - 1 + p.n_r / (p.n_r + p.n_s)) / q
    if e <= 0.0:
        return 0.0
    kappa = 1.0 - (p.n_s - 1) * math.log(e)
    if kappa <= 2.0:
        return math.inf
    return (WARM_C0 + WARM_C1 * p.d) / (kappa - 2.0)


def warm_start(p: LoopParams, n_s_values: tuple[int, ...]
               ) -> tuple[tuple[float, float, float], ...]:
    """Warm starts of the chains of a limit, one ``(mu_sd, scale, nu)`` per ``n_s``
    (:mod:`ess.kernels.warm`), or ``()`` where the stationary moments are not known.

    Known for the fresh loop with ``memory = 1`` and ``Sigma_r`` the identity in
    the kernels' units (:func:`ess.analytic.fresh_stationary_second_moments`, which
    gives ``E|mu - mu_r|^2``, ``E tr Sigma`` and ``E tr Sigma^2``); elsewhere (memory
    ``K > 1`` or ``"all"``, the augmentation loop, another ``Sigma_r``) the chains
    start cold, from the fit on ``n_ini`` real samples. The stationary ``E Sigma``
    is a multiple ``c I`` of the identity by symmetry, and the mean's covariance a
    multiple of it too; with ``Sigma = g W``, ``W ~ Wishart(I_d, nu)``::

        E tr Sigma = g nu d = c d,   E tr Sigma^2 = g^2 nu (nu + d + 1) d

    so ``nu = (d + 1) / (E tr Sigma^2 / (c^2 d) - 1)`` and ``g = c / nu``. At ``n_s = 0``
    (the threshold search's paired configuration) this is the reference fit's own
    law: ``mu ~ N(mu_r, I / n_r)``, ``q Sigma ~ Wishart(I, n_r - 1)``.
    """
    if p.loop != "fresh" or p.memory != 1 or not p.sr_identity:
        return ()
    d = p.d
    rows = []
    for n_s in n_s_values:
        z = fresh_stationary_second_moments(d, p.n_r, n_s, p.lam, p.cov_estimator)
        a, c, tr2 = float(z[1]), float(z[2]) / d, float(z[3])
        spread = tr2 / (c * c * d) - 1.0
        nu = (d + 1) / spread if spread * WARM_MAX_NU > d + 1 else WARM_MAX_NU
        rows.append((math.sqrt(a / d), c / nu, nu))
    return tuple(rows)


def cold_excess(p: LoopParams) -> float:
    """A cold start's relative excess over the limit, at most: about ``n / n_ini``."""
    return max(1.0, (p.n_r + p.n_s) / p.n_ini)


def burn_in_for(p: LoopParams, rel_precision: float, warm: bool = False) -> int:
    """Burn-in from the mixing rate ``rho`` of :func:`ess.analytic.mixing_rate`.

    The start's excess over the limit decays like ``rho^t``; drop generations
    until it is below a quarter of ``rel_precision``. A cold start (the fit on
    ``n_ini`` samples) is at most about ``n / n_ini`` times the limit away
    (:func:`cold_excess`); a warm start (:func:`warm_start`) :func:`warm_excess`,
    and since its first-order moments are stationary its excess decays at the
    second-order rate (:func:`ess.analytic.fresh_second_order_rate`) rather than
    ``rho`` from ``d = 2`` on. Measured (``benchmarks/warm_start.py``): at ``(d, n_r,
    n_s, lam) = (100, 100, 10^4, 1)`` the warm excess fell from 25.8% to 3.1% in 50
    generations (0.958 a generation; second-order rate 0.981, ``rho`` 0.990); at ``d =
    10``, ``(20, 2000, 1)`` from 11.7% to 0.8% in 60 (0.956; 0.982, 0.991). At ``d = 1``
    the law of a single variance keeps the shape of its start longer (its log-scale
    forgets at ``rho``): ``rho`` is kept there, where generations are cheap.
    At least one generation.
    """
    rho = mixing_rate(p.n_r, p.n_s, p.memory, p.lam, p.cov_estimator)
    if rho >= 1.0:
        return ALL_MEMORY_GENERATIONS // 2
    if warm and p.d >= 2:   # first-order moments stationary: the rest decays faster
        rho = fresh_second_order_rate(p.d, p.n_r, p.n_s, p.lam, p.cov_estimator)
    if rho <= 0.0:
        return 1
    dev0 = warm_excess(p) if warm else cold_excess(p)
    tol = rel_precision / 4.0
    if dev0 <= tol:
        return 1
    return max(1, math.ceil(math.log(tol / dev0) / math.log(rho)))


def starts_warm(p: LoopParams) -> bool:
    """Whether the chains of a limit at ``p`` start warm: where the stationary moments
    are known (:func:`warm_start`) and the warm start is the closer one."""
    return warm_excess(p) < cold_excess(p)


def chain_cost(p: LoopParams, n_gen: int, n_values: int = 1) -> float:
    """Work units of one chain of ``n_gen`` generations (``n_values`` lockstep configs).

    Each generation draws the real group and, for ``memory = K``, up to
    ``min(t, K, n_s)`` synthetic groups: ``memory = "all"`` grows quadratically.
    """
    K = kernel_memory(p, n_gen)
    t = np.arange(1, n_gen)
    groups = float(np.sum(1 + n_values * np.minimum(np.minimum(t, K), max(p.n_s, 1))))
    return (1.0 + groups) * config.group_cost(p.d)


def work_limit(max_work: float | None) -> float:
    """The work budget of one computation: ``max_work``, or the default
    :data:`ess.config.MAX_WORK` (read when called) when it is ``None``."""
    return config.MAX_WORK if max_work is None else float(max_work)


def chain_budget(p: LoopParams, n_gen: int, max_chains: int, n_values: int = 1,
                 max_work: float | None = None) -> int:
    """Chains allowed by ``max_chains`` and the work budget ``max_work``, in whole chunks.

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
    budget = work_limit(max_work)
    by_work = int(budget // chain_cost(p, n_gen, n_values))
    if by_work < pilot:
        need = pilot * chain_cost(p, n_gen, n_values)
        raise ParameterError(
            "max_work", f"n_s = {p.n_s} is too expensive for d = {p.d} and memory = "
            f"{p.memory}: {pilot} chains of {n_gen} generations (the fewest an estimate may "
            f"need) take {need:.3g} work units, over the work budget max_work = {budget:g}; "
            f"raise max_work (--max-work) to at least {at_least(need)} (at most "
            f"{config.MAX_WORK_LIMIT:g}), or reduce n_s, memory or d")
    return (min(max_chains, by_work) // cs) * cs


def first_round_work(p: LoopParams, rel_precision: float, n_values: int = 1) -> float:
    """Work units of the first round of a limit at ``p`` (``n_values`` configurations
    in lockstep): the least an estimate, or a threshold evaluation, may need."""
    first = pilot_plan(limit_plan(p, (p.n_s,) + (0,) * (n_values - 1), rel_precision, 0))
    chains = pilot_chunks(p.d, n_values) * chunk_size(p.d)
    return chains * chain_cost(p, first.generations, n_values)


def at_least(x: float) -> str:
    """``x`` to three significant digits, rounded up (a budget that is enough)."""
    if x <= 0.0 or not math.isfinite(x):
        return f"{x:g}"
    step = 10.0 ** (math.floor(math.log10(x)) - 2)
    return f"{math.ceil(x / step - 1e-9) * step:.3g}"


def search_work(p: LoopParams, cap: int, rel_precision: float) -> float:
    """The most work a first round of a threshold search up to ``cap`` needs: over the
    scanned grid (:func:`search_grid`), two configurations in lockstep."""
    return max(first_round_work(replace(p, n_s=g), rel_precision, n_values=2)
               for g in search_grid(cap))


def check_work(p: LoopParams, rel_precision: float, max_chains: int,
               max_work: float | None = None, n_values: int = 1, name: str = "n_s") -> None:
    """Refuse, before any computation, a limit whose first round of chains does not fit
    ``max_chains`` or the work budget ``max_work``.

    The message names the configuration ``(d, n_r, n_s, lam)``, the work its first
    round needs, the largest ``n_s`` (named ``name``: ``"cap"`` for a threshold search)
    within the budget, and the flag that would let it through.

    Raises
    ------
    ParameterError
        Naming ``max_chains``, or ``max_work`` when the budget is too small.
    """
    cs = chunk_size(p.d)
    pilot = pilot_chunks(p.d, n_values) * cs
    if max_chains < pilot:
        raise ParameterError("max_chains",
                             f"max_chains must be at least {pilot} for d = {p.d} (the first "
                             f"round of chains); got {max_chains}")
    budget = work_limit(max_work)

    def needs(m: int) -> float:   # a threshold search evaluates its grid up to the cap
        if name == "cap":
            return search_work(p, m, rel_precision)
        return first_round_work(replace(p, n_s=m), rel_precision, n_values)

    need = needs(p.n_s)
    if need <= budget:
        return

    def fits(m: int) -> bool:
        return needs(m) <= budget

    if fits(1):
        best = bisect_int(lambda m: not fits(m), 1, p.n_s)[0]
        largest = f"the largest {name} within it is {best}"
    else:
        largest = f"no {name} >= 1 fits it"
    what = "threshold evaluations up to n_s = cap" if name == "cap" else "estimate"
    raise ParameterError(
        "max_work",
        f"{name} = {p.n_s} is too expensive at (d, n_r, n_s, lam) = ({p.d}, {p.n_r}, "
        f"{p.n_s}, {p.lam:g}) with memory = {p.memory}: the first round of the {what} "
        f"({pilot} chains) needs {need:.3g} work units, over the work budget max_work = "
        f"{budget:g}; {largest}; raise max_work (command line --max-work) to at least "
        f"{at_least(need)} (at most {config.MAX_WORK_LIMIT:g})")


#: Ratio of consecutive ``n_s`` in a threshold search's scan (:func:`search_grid`).
#: Under common random numbers the excess is smooth in ``log n_s``, so the
#: interpolating bisection (:func:`interpolate_int`) closes a bracket four times as
#: wide in one or two more evaluations, while a ratio of 2 spent twice the scan's
#: evaluations. Measured on the paper's Fig. 12 (27 searches at ``d = 100``, 2%, the
#: two searches interleaved cell by cell in one run, 2 shared cores): 716 evaluations,
#: 51.6 s with ratio 2 and plain bisection; 452, 29.3 s with ratio 4, interpolation and
#: one plan per bracket (:meth:`ess.solve._ExcessEvaluator.pin_burn_in`); every new
#: ``n_s*`` inside the old one's 95% interval, 23 of the 27 identical (with their intervals).
SEARCH_GRID_RATIO = 4
#: Evaluations beyond plain bisection's ``ceil(log2 width)`` that the interpolating
#: bisection (:func:`interpolate_int`) may spend on a bracket of ``width`` integers:
#: a hard bound, so that a search's evaluations (:func:`search_evaluations`), and
#: with them the service's request budget, are known before it runs. On the smooth
#: excess of a threshold search interpolation needs fewer than bisection's, but its
#: first steps may halve the bracket less than bisection would: on the smooth test
#: bracket [256, 1024] (bisection: 10) a slack of 0-3 costs 10-12 evaluations, as
#: the bound stops interpolating, and 4 or more costs 6. Noisy values (tests) take
#: at most bisection's plus the slack.
INTERPOLATION_SLACK = 4


def search_grid(cap: int) -> list[int]:
    """The ``n_s`` a threshold search scans first: 1, 4, 16, ... (ratio
    :data:`SEARCH_GRID_RATIO`) below ``cap``, and ``cap``
    (:func:`ess.solve.threshold_search`); its bisection stays between them."""
    grid = []
    n = 1
    while n < cap:
        grid.append(n)
        n *= SEARCH_GRID_RATIO
    return grid + [cap]


def search_evaluations(cap: int) -> int:
    """The most evaluations a threshold search up to ``cap`` can make
    (:func:`ess.solve.threshold_search`): its scan of :func:`search_grid`, then at
    most three integer bisections (the threshold, and each end of its interval),
    each within ``[0, cap]`` and so of at most ``ceil(log2 cap)`` evaluations plus
    :data:`INTERPOLATION_SLACK`."""
    return len(search_grid(cap)) + 3 * (_halvings(max(2, cap)) + INTERPOLATION_SLACK)


def _halvings(width: int) -> int:
    """Plain bisection's evaluations to close a bracket of ``width`` integers:
    ``ceil(log2 width)`` (0 for ``width <= 1``)."""
    return (width - 1).bit_length() if width > 1 else 0


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


#: Starts a limit plan may be asked for: the closer one of a warm and a cold start
#: (``"auto"``), or the cold one (the fit on ``n_ini`` real samples) whatever the
#: moments known (``"cold"``, for checking warm starts against).
STARTS = ("auto", "cold")


def limit_plan(p: LoopParams, n_s_values: tuple[int, ...], rel_precision: float,
               seed: int, start: str = "auto", burn_in_factor: float = 1.0,
               min_burn_in: int = 0) -> LimitPlan:
    """The chains of a limit estimate: burn-in, window and measured generations.

    ``start`` is one of :data:`STARTS`; ``burn_in_factor`` lengthens the burn-in (the
    tests compare warm starts with cold ones burnt in far longer); ``min_burn_in`` is
    the least burn-in (a threshold search gives the ``n_s`` of one bracket one plan,
    :func:`ess.solve.threshold_search`)."""
    first = replace(p, n_s=n_s_values[0])
    warm = warm_start(p, n_s_values) if start == "auto" and starts_warm(first) else ()
    burn = max(math.ceil(burn_in_factor * burn_in_for(first, rel_precision, warm=bool(warm))),
               min_burn_in)
    every = record_every(p.d)
    return LimitPlan(p, n_s_values, burn, window_for(burn, every, p.d), seed, every,
                     warm=warm)


#: Kept window of the first round of cold-started chains, as a fraction of the burn-in
#: (at least two measured generations); see :func:`ess.solve.run_limit`.
PILOT_WINDOW = 0.5


def pilot_plan(main: LimitPlan) -> LimitPlan:
    """The first round's plan: ``main`` with a short window and its own random streams.

    Warm-started chains (:func:`warm_start`) keep two measured generations (one per
    half of the window), the least a chain can give: their burn-in is short and the
    first round often suffices, and it then lands as near ``rel_precision`` as an
    estimate can (at ``d = 100``, a first round of 12 chains that kept 16 measured
    generations reached +-0.1% on ``n_e`` when +-1% was asked). Cold-started chains,
    whose burn-in is long, keep :data:`PILOT_WINDOW` of it (at least two measured
    generations): a second round would pay it again.

    ``main`` itself when its window is not longer, and for ``memory = "all"``, whose
    window average is of a loop that never settles (a shorter window would
    change the quantity estimated).
    """
    w = 2 * main.every
    if not main.warm:
        w = _whole_halves(max(w, math.ceil(PILOT_WINDOW * main.burn_in)), main.every)
    if w >= main.window or main.params.memory == "all":
        return main
    return replace(main, window=w, stream=STREAM_LIMIT_PILOT)


#: Chains of the first round of an estimate from :data:`PROBE_MIN_D` on, where the
#: fixed-slope control variate applies (:func:`fixed_cv_weights`): one chain is a
#: whole chunk there and costs one generation of a ``d x d`` loop per generation, and
#: a few chains often suffice. Measured at ``(d, n_r, n_s, lam) = (100, 100, 900,
#: 0.8)``, 48 chains of 2 measured generations: relative spread of a chain's value
#: 0.78% plain, 0.28% with the fixed slopes, 0.11% with fitted slopes (which need
#: 12 chains); 4 chains then give +-0.44% on the limit, +-0.38% on ``n_e``.
PROBE_CHAINS = 4
PROBE_MIN_D = 20
#: Chains of the first round of a threshold evaluation (the pair ``n_s`` and ``0`` in
#: lockstep) from :data:`PROBE_MIN_D` on, with the fixed slopes on both configurations.
#: Measured at ``d = 100``, ``(n_r, n_s, lam) = (100, 650, 0.5)``, 32 chains: the paired
#: difference's spread per chain is 0.40 plain, 0.42 with the fixed slopes, 0.23 with
#: fitted ones (16 chains needed); the half-width wanted there is about 0.7, which 6
#: chains give (0.42) and 16 give four times over. At ``(1000, 3090, 0.9)``: 0.049,
#: 0.014, 0.007.
PROBE_PAIR_CHAINS = 6


def fixed_cv_weights(p: LoopParams, n_s: int) -> np.ndarray | None:
    """Slopes of a control variate that needs no fitting: ``w2sq``'s second-order
    expansion in the eigenvalues ``l`` of ``Sigma`` around their stationary mean
    ``c = E tr Sigma / d`` (``Sigma_r = I`` in the kernels' units)::

        dist = |mu|^2 + tr Sigma + d - 2 sum sqrt(l)
        sqrt(l) ~ sqrt(c) + (l - c) / (2 sqrt(c)) - (l - c)^2 / (8 c^(3/2))

    so ``dist ~ const + |mu|^2 + (1 - 3 / (2 sqrt(c))) tr Sigma + tr Sigma^2 / (4 c^(3/2))``.
    Subtracting these slopes times the control variates' deviations from their exact
    means leaves an unbiased value with a much smaller spread where the eigenvalues
    are not far spread, and lets a first round of :data:`PROBE_CHAINS` chains
    (too few to fit slopes) use the control variates. ``None`` where the exact means
    are not all known (:func:`warm_start`'s cases) or the metric is ``w2``.
    """
    if p.metric != "w2sq" or not warm_start(p, (n_s,)):
        return None
    c = float(fresh_stationary_second_moments(p.d, p.n_r, n_s, p.lam, p.cov_estimator)[2]) / p.d
    if c <= 0.0:
        return None
    return np.array([1.0, 1.0 - 1.5 / math.sqrt(c), 0.25 / c**1.5])


def first_round_chunks(p: LoopParams, n_values: int = 1) -> int:
    """Chunks of the first round of a limit: from ``d =`` :data:`PROBE_MIN_D` on, where
    :func:`fixed_cv_weights` applies, :data:`PROBE_CHAINS` chains for an estimate and
    :data:`PROBE_PAIR_CHAINS` for a threshold evaluation; else :func:`pilot_chunks`."""
    if p.d >= PROBE_MIN_D and fixed_cv_weights(p, p.n_s) is not None:
        chains = PROBE_CHAINS if n_values == 1 else PROBE_PAIR_CHAINS
        return min(pilot_chunks(p.d, n_values), math.ceil(chains / chunk_size(p.d)))
    return pilot_chunks(p.d, n_values)


def record_variance(records: int, phi: float) -> float:
    """Variance of the mean of ``records`` equally spaced records of a stationary
    AR(1) series with lag-one correlation ``phi``, in units of one record's variance::

        (1/r) (1 + phi)/(1 - phi) - 2 phi (1 - phi^r) / (r^2 (1 - phi)^2)
    """
    r = float(records)
    if phi <= 0.0:
        return 1.0 / r
    if phi >= 1.0:
        return 1.0
    return max((1.0 + phi) / (1.0 - phi) / r
               - 2.0 * phi * (1.0 - phi**r) / (r * r * (1.0 - phi) ** 2), 1.0 / r)


#: Longest kept window a sized plan may choose, as a multiple of the burn-in (at
#: least :data:`SIZED_MIN_LONGEST` generations): the variance model is extrapolated
#: from the first round's short windows, so not without bound.
SIZED_WINDOW_PER_BURN_IN = 8
SIZED_MIN_LONGEST = 256


def sized_plan(short: LimitPlan, need: float, pilot: int) -> tuple[LimitPlan, int]:
    """The cheapest way to the precision that the first round ``short`` fell short of.

    ``need`` chunks of ``short``'s chains would reach it (the first round's measured
    variance, ``pilot`` chunks of it, says so). A plan keeping ``r`` generations per
    chain (every ``every``-th measured) needs ``need f(r) / f(r_short)`` chunks, with
    ``f`` the variance of the mean of ``r / every`` records correlated at the mixing
    rate (:func:`record_variance`; the distance forgets its past at least that fast),
    and costs its chunks times ``burn_in + r`` generations. Going on with ``short``
    costs ``need - pilot`` more chunks of it; a fresh plan at least ``pilot`` chunks
    (the fewest whose control variates are trusted) and the first round is set aside.

    Returns
    -------
    (LimitPlan, int)
        ``short`` itself (go on with it) or the fresh plan (its own stream), and the
        chunks predicted.
    """
    p = short.params
    every, b = short.every, short.burn_in
    rho = mixing_rate(p.n_r, short.n_s_values[0], p.memory, p.lam, p.cov_estimator)
    phi = min(max(rho, 0.0), 1.0) ** every
    r_short = short.window // every
    f_short = record_variance(r_short, phi)
    best = (max(need - pilot, 0.0) * short.generations, short, math.ceil(need))
    longest = _whole_halves(max(SIZED_MIN_LONGEST, SIZED_WINDOW_PER_BURN_IN * b), every)
    longest = min(longest, _whole_halves(config.MAX_GENERATIONS - b, every) - 2 * every)
    r = r_short + 2
    while r * every <= longest:
        chunks = max(pilot, math.ceil(need * record_variance(r, phi) / f_short))
        cost = chunks * (b + r * every)
        if cost < best[0]:
            best = (cost, replace(short, window=r * every, stream=STREAM_LIMIT), chunks)
        r += 2
    return best[1], best[2]


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


def crossing(lo: int, f_lo: float, hi: int, f_hi: float) -> float | None:
    """Where the straight line through ``(lo, f_lo)`` and ``(hi, f_hi)`` crosses zero, in
    ``log n`` when ``lo >= 1``; ``None`` unless ``f_lo < 0 < f_hi`` (both finite)."""
    if not (f_lo < 0.0 < f_hi and math.isfinite(f_lo) and math.isfinite(f_hi)):
        return None
    t = f_lo / (f_lo - f_hi)
    if lo >= 1:
        return math.exp(math.log(lo) + t * (math.log(hi) - math.log(lo)))
    return lo + t * (hi - lo)


def interpolate_int(pred: Callable[[int], bool], value: Callable[[int], float], lo: int,
                    hi: int) -> tuple[int, int]:
    """Integer bisection guided by interpolation, for a predicate false at ``lo`` and true
    at ``hi`` that follows the sign of a smooth ``value`` (``pred(n)`` where ``value(n)``
    is above zero, or at it).

    Each step evaluates the integer nearest to where the straight line through the
    bracket's two values crosses zero (in ``log n`` when ``lo >= 1``: the threshold
    search's excess is smooth in ``log n_s`` under common random numbers), clamped
    inside the bracket. The Illinois rule halves the value of an end kept twice in a
    row. Whenever two steps have not halved the bracket the next is a plain bisection
    step, unless the interpolated point is next to an end (where it may close the
    bracket) and the step before was not such an exception. A noisy or kinked
    ``value`` then costs at most about three times the evaluations of
    :func:`bisect_int`, and never more than :data:`INTERPOLATION_SLACK` beyond them: a
    step interpolates only while the evaluations made plus one plus bisection's for
    the current bracket stay within that bound (a bisection step keeps the sum, an
    interpolated one raises it by at most one), so the bound holds whatever the values
    (tested). On a value smooth in ``log n`` a bracket of a few
    hundred integers closes in four to seven evaluations instead of eight to ten.
    The answer depends only on the values seen, so it is the same for every number
    of jobs; for a monotone ``pred`` it is :func:`bisect_int`'s.

    Returns
    -------
    (int, int)
        The adjacent pair ``(lo, hi)`` with ``pred(lo)`` false and ``pred(hi)`` true.
    """
    f_lo, f_hi = value(lo), value(hi)
    kept = 0            # +1: lo was kept by the last step, -1: hi was
    widths: list[int] = []
    excused = False     # the last step interpolated next to an end despite the guard
    bound = _halvings(hi - lo) + INTERPOLATION_SLACK
    used = 0
    while hi - lo > 1:
        width = hi - lo
        m = (lo + hi) // 2
        halve = len(widths) >= 2 and width > widths[-2] / 2   # two steps did not halve it
        widths.append(width)
        x = crossing(lo, f_lo, hi, f_hi)
        if x is not None and used + 1 + _halvings(width) <= bound:
            near = min(max(round(x), lo + 1), hi - 1)
            excuse = halve and not excused and near in (lo + 1, hi - 1)
            if not halve or excuse:     # next to an end, it may close the bracket: once
                m = near
            excused = excuse
        else:
            excused = False
        used += 1
        v = value(m)
        if pred(m):
            hi, f_hi = m, v
            if kept == 1:
                f_lo *= 0.5
            kept = 1
        else:
            lo, f_lo = m, v
            if kept == -1:
                f_hi *= 0.5
            kept = -1
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
               n_values: int = 2, max_work: float | None = None) -> bool:
    """Whether a limit at ``n_s`` (a threshold evaluation: ``n_values = 2``
    configurations in lockstep) fits the generation and work limits."""
    q = replace(p, n_s=n_s)
    try:
        check_generations(q, rel_precision)
        check_work(q, rel_precision, max_chains, max_work, n_values=n_values,
                   name="cap" if n_values == 2 else "n_s")
    except ParameterError:
        return False
    return True


def default_cap(p: LoopParams, rel_precision: float, max_chains: int,
                max_work: float | None = None) -> tuple[int, int]:
    """The threshold search's default cap: ``CAP_PER_N_R n_r``, lowered to the largest
    ``n_s`` whose evaluation fits the budgets.

    Returns
    -------
    (int, int)
        The cap, and the cap asked for before lowering (equal when not lowered).
    """
    wanted = min(defaults.CAP_PER_N_R * p.n_r, config.MAX_COUNT)
    if affordable(p, wanted, rel_precision, max_chains, max_work=max_work):
        return wanted, wanted
    cap = bisect_int(lambda m: not affordable(p, m, rel_precision, max_chains,
                                              max_work=max_work), 0, wanted)[0]
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
