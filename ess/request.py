"""One frozen request object per question, each built by one validator.

The Python API, the command line and the service all turn what a user gave into
a request here, and nowhere else: every check (ranges, the loop a question
accepts, budgets, memory) runs before any computation, and raises
:class:`ess.params.ParameterError` naming the parameter. A request carries the
key under which its answer is stored (:meth:`EstimateRequest.key`); ``n_jobs``
is not part of it, since answers do not depend on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from ess import config, defaults
from ess.chains import TRAJECTORY_FIELDS, trajectory_chunk_size
from ess.params import (
    LoopParams,
    ParameterError,
    check_float,
    check_grid_axis,
    check_int,
    check_jobs,
    check_loop,
    check_seed,
    loop_params,
)
from ess.plan import (
    chain_cost,
    check_generations,
    check_pool_memory,
    check_ring_memory,
    check_work,
    default_cap,
    generations_for,
    subsample_chain_cost,
    work_limit,
)
from ess.reference import MAX_N

#: Loops with a stationary limit (``estimate``); the fully synthetic loop collapses.
LIMIT_LOOPS = ("fresh", "augmentation")
#: Loops whose training set grows every generation: no stationary limit.
ACCUMULATE_LOOPS = ("accumulate", "accumulate-subsample")
#: Finest ``rel_precision`` accepted: a finer one needs more chains than the
#: reference curve's precision tiers are built for.
MIN_REL_PRECISION = 1e-4
#: Coarsest ``rel_precision`` accepted.
MAX_REL_PRECISION = 0.5


def check_rel_precision(value) -> float:
    """``rel_precision`` in ``[MIN_REL_PRECISION, MAX_REL_PRECISION]``."""
    rng = f"a number in [{MIN_REL_PRECISION:g}, {MAX_REL_PRECISION:g}]"
    rel = check_float("rel_precision", value, 0.0, MAX_REL_PRECISION, low_open=True)
    if rel < MIN_REL_PRECISION:
        raise ParameterError("rel_precision", f"rel_precision must be {rng}, got {rel:g}")
    return rel


def check_max_chains(value) -> int:
    """``max_chains`` in ``[1, MAX_CHAINS]``."""
    return check_int("max_chains", value, 1, config.MAX_CHAINS)


def check_max_work(value) -> float:
    """``max_work``, the work budget of one computation: ``None`` for the default
    (:data:`ess.config.MAX_WORK`), else a number in ``[MIN_WORK, MAX_WORK_LIMIT]``."""
    if value is None:
        return work_limit(None)
    try:
        return check_float("max_work", value, config.MIN_WORK, config.MAX_WORK_LIMIT)
    except ParameterError:
        raise ParameterError("max_work", f"max_work must be a number in [{config.MIN_WORK:g}, "
                             f"{config.MAX_WORK_LIMIT:g}] (work units; default "
                             f"{config.MAX_WORK:g}), got {value!r}") from None


@dataclass(frozen=True)
class EstimateRequest:
    """A validated ``estimate``: the limit of one loop and its ``n_e``.

    Build it with :func:`estimate_request`.
    """

    params: LoopParams
    seed: int
    rel_precision: float
    max_chains: int
    n_jobs: int
    #: Work budget of one computation (:data:`ess.config.MAX_WORK` by default); the
    #: service bounds it by its own limit.
    max_work: float = config.MAX_WORK

    def key(self) -> dict:
        """Everything that changes the answer (not ``n_jobs``), for the result store."""
        return {**self.params.key(), "seed": self.seed, "rel_precision": self.rel_precision,
                "max_chains": self.max_chains, "max_work": self.max_work}

    def with_jobs(self, n_jobs: int) -> EstimateRequest:
        """The same request on ``n_jobs`` threads (the answer does not change)."""
        return replace(self, n_jobs=check_jobs(n_jobs))


@dataclass(frozen=True)
class ThresholdRequest(EstimateRequest):
    """A validated ``threshold``: ``params`` has ``n_s = 0``; the search runs up to
    ``cap``. ``cap_wanted`` is the default cap before the budgets lowered it (equal
    to ``cap`` when nothing was lowered or the user gave the cap)."""

    cap: int = 1
    cap_wanted: int = 1

    def key(self) -> dict:
        """Everything that changes the answer, for the result store."""
        return {**super().key(), "cap": self.cap}


@dataclass(frozen=True)
class SimulateRequest:
    """A validated ``simulate``: ``chains`` trajectories of ``generations`` generations."""

    params: LoopParams
    seed: int
    chains: int
    generations: int
    n_jobs: int

    def key(self) -> dict:
        """Everything that changes the answer (not ``n_jobs``)."""
        return {**self.params.key(), "seed": self.seed, "chains": self.chains,
                "generations": self.generations}


@dataclass(frozen=True)
class ReferenceRequest:
    """A validated ``reference_curve``: ``f(n)`` at each of ``n``."""

    params: LoopParams
    n: tuple[int, ...]
    rel_precision: float
    n_jobs: int


def _budget(rel_precision, max_chains, max_work) -> tuple[float, int, float]:
    return (check_rel_precision(rel_precision), check_max_chains(max_chains),
            check_max_work(max_work))


def estimate_request(d: int | None = None, n_r=defaults.N_R, n_s=defaults.N_S, lam=None, *,
                     n_ini=None, loop=defaults.LOOP, memory=defaults.MEMORY,
                     metric=defaults.METRIC, cov_estimator=defaults.COV_ESTIMATOR,
                     seed=defaults.SEED, rel_precision=defaults.REL_PRECISION,
                     max_chains=defaults.MAX_CHAINS, n_jobs=None, mu_r=None, sigma_r=None,
                     guidance=None, reference_data=None, max_work=None) -> EstimateRequest:
    """Check an ``estimate`` before any computation (see :func:`ess.estimate`).

    Raises
    ------
    ParameterError
        Naming the first bad parameter, or a budget the request does not fit.
    """
    p = loop_params(d, n_r, n_s, lam, n_ini, loop, memory, metric, cov_estimator, mu_r,
                    sigma_r, guidance, reference_data=reference_data)
    if p.loop in ACCUMULATE_LOOPS:
        raise ParameterError("loop", f"the {p.loop} loop has no stationary limit (its training "
                             "pool grows every generation): use simulate for n_e over "
                             "generations")
    if p.loop not in LIMIT_LOOPS:
        raise ParameterError("loop", f"loop must be {' or '.join(LIMIT_LOOPS)} for a limit; "
                             f"the {p.loop} loop collapses and has none (use simulate)")
    rel, mc, mw = _budget(rel_precision, max_chains, max_work)
    if p.n_s > 0:   # n_s = 0 is the reference fit itself: no chains run
        check_generations(p, rel)
        check_ring_memory(p, generations_for(p, rel))
        check_work(p, rel, mc, mw)
    return EstimateRequest(p, check_seed(seed), rel, mc, check_jobs(n_jobs), mw)


def threshold_request(d: int | None = None, n_r=defaults.N_R, lam=None, *, n_ini=None,
                      memory=defaults.MEMORY, metric=defaults.METRIC,
                      cov_estimator=defaults.COV_ESTIMATOR, seed=defaults.SEED,
                      rel_precision=defaults.REL_PRECISION, cap=None,
                      max_chains=defaults.MAX_CHAINS, n_jobs=None, mu_r=None, sigma_r=None,
                      guidance=None, reference_data=None, max_work=None) -> ThresholdRequest:
    """Check a ``threshold`` before any computation (see :func:`ess.threshold`).

    Raises
    ------
    ParameterError
        Naming the first bad parameter, or a cap whose evaluations do not fit
        the budgets.
    """
    p = loop_params(d, n_r, 0, lam, n_ini, "fresh", memory, metric, cov_estimator, mu_r,
                    sigma_r, guidance, lam_default=defaults.THRESHOLD_LAM,
                    reference_data=reference_data)
    rel, mc, mw = _budget(rel_precision, max_chains, max_work)
    if cap is None:
        cap, wanted = default_cap(p, rel, mc, mw)
    else:
        cap = wanted = check_int("cap", cap, 1, config.MAX_COUNT)
    at_cap = replace(p, n_s=cap)
    check_generations(at_cap, rel, name="cap")
    check_ring_memory(p, generations_for(at_cap, rel))
    check_work(at_cap, rel, mc, mw, n_values=2, name="cap")
    return ThresholdRequest(p, check_seed(seed), rel, mc, check_jobs(n_jobs), mw, cap, wanted)


def simulate_request(d: int | None = None, n_r=defaults.N_R, n_s=defaults.N_S, lam=None, *,
                     n_ini=None, loop=defaults.LOOP, memory=defaults.MEMORY,
                     metric=defaults.METRIC, cov_estimator=defaults.COV_ESTIMATOR,
                     seed=defaults.SEED, chains=defaults.CHAINS,
                     generations=defaults.GENERATIONS, n_jobs=None, mu_r=None, sigma_r=None,
                     guidance=None, reference_data=None, max_work=None) -> SimulateRequest:
    """Check a ``simulate`` before any computation (see :func:`ess.simulate`).

    Raises
    ------
    ParameterError
        Naming the first bad parameter, or ``chains`` when the output or the
        work would exceed its limit.
    """
    p = loop_params(d, n_r, n_s, lam, n_ini, loop, memory, metric, cov_estimator, mu_r,
                    sigma_r, guidance, reference_data=reference_data)
    chains = check_int("chains", chains, 1, config.MAX_CHAINS)
    generations = check_int("generations", generations, 1, config.MAX_GENERATIONS)
    most = config.MAX_BYTES // (len(TRAJECTORY_FIELDS) * 8)   # float64 per field
    if chains * generations > most:
        raise ParameterError("chains", f"chains * generations must be at most {most} "
                             f"(memory), got {chains * generations}")
    check_ring_memory(p, generations)
    n_jobs = check_jobs(n_jobs)
    chunks = -(-chains // trajectory_chunk_size(p.d, generations))
    check_pool_memory(p, generations, min(n_jobs, chunks))
    budget = check_max_work(max_work)
    one = simulate_work(p, 1, generations)
    work = chains * one
    if work > budget:
        most = max(0, int(budget // one))
        raise ParameterError("chains", f"chains * generations is too large for d = {p.d}: "
                             f"{work:.3g} work units, over the work budget max_work = "
                             f"{budget:g} (at most {most} chains of {generations} generations); "
                             "use fewer chains or generations, or raise max_work (command "
                             f"line --max-work, at most {config.MAX_WORK_LIMIT:g})")
    return SimulateRequest(p, check_seed(seed), chains, generations, n_jobs)


def simulate_work(p: LoopParams, chains: int, generations: int) -> float:
    """Work units of ``chains`` trajectories of ``generations`` generations of the loop of
    ``p``: :func:`ess.plan.chain_cost` per chain on sufficient statistics, or
    :func:`ess.plan.subsample_chain_cost` for the sample-level ``accumulate-subsample``."""
    cost = subsample_chain_cost if p.loop == "accumulate-subsample" else chain_cost
    return chains * cost(p, generations)


def simulate_requests(loop=defaults.LOOP, **kw) -> list[SimulateRequest]:
    """:func:`simulate_request` for one loop kind, or for each of a list of them (no
    repeats; aliases count as their loop), every one checked before any runs.

    Raises
    ------
    ParameterError
        Naming the first bad parameter of any loop.
    """
    loops = check_grid_axis("loop", list(loop), check_loop) if is_loop_list(loop) else [loop]
    return [simulate_request(loop=kind, **kw) for kind in loops]


def is_loop_list(loop) -> bool:
    """Whether ``loop`` is a list of loop kinds (a list or tuple) rather than one."""
    return isinstance(loop, (list, tuple))


def reference_request(n: Sequence[int] = defaults.REFERENCE_N, d: int | None = None, *,
                      metric=defaults.METRIC, cov_estimator=defaults.COV_ESTIMATOR,
                      sigma_r=None, rel_precision=defaults.REL_PRECISION,
                      n_jobs=None, reference_data=None) -> ReferenceRequest:
    """Check a ``reference_curve`` before any computation (see :func:`ess.reference_curve`).

    Raises
    ------
    ParameterError
        Naming the first bad parameter.
    """
    p = loop_params(d, 2, 0, 1.0, 2, "fresh", 1, metric, cov_estimator, None, sigma_r,
                    reference_data=reference_data)
    try:
        values = list(n)
    except TypeError:
        raise ParameterError("n", f"n must be a sequence of integers >= 2, got {n!r}") from None
    if not values:
        raise ParameterError("n", "n must have at least one value")
    ns = tuple(check_int("n", v, 2, MAX_N) for v in values)
    return ReferenceRequest(p, ns, check_rel_precision(rel_precision), check_jobs(n_jobs))
