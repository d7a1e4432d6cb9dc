"""The public Python API: validate, seed, run, wrap.

Names and defaults follow SPEC section 5; every function raises
:class:`ess.params.ParameterError` (a ``ValueError``) naming a bad parameter.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ess import config
from ess.backends import get_backend, map_cells
from ess.chains import kernel_memory, trajectories
from ess.params import (
    ParameterError,
    check_float,
    check_grid_axis,
    check_int,
    check_jobs,
    check_seed,
    loop_params,
)
from ess.progress import Progress
from ess.results import EstimateResult, SimulateResult, ThresholdResult
from ess.solve import (
    bisect_int,
    chain_budget,
    chain_cost,
    check_generations,
    estimate_limit,
    generations_for,
    reference_for,
    threshold_search,
)
from ess.store import ResultStore, open_store


def _check_ring_memory(p, n_gen: int) -> None:
    """The per-chain buffer of past models must fit in memory (``memory = "all"``)."""
    K = kernel_memory(p, n_gen)
    need = 2 * K * p.d * p.d * 8 * config.default_jobs()
    if need > config.MAX_BYTES:
        raise ParameterError("memory", f"memory must be smaller for d = {p.d}: {K} past models of "
                             f"{p.d}x{p.d} need {need / 2**30:.1f} GiB (limit "
                             f"{config.MAX_BYTES / 2**30:.0f} GiB)")


def _validate_estimate(d=1, n_r=100, n_s=0, lam=None, n_ini=None, loop="fresh", memory=1,
                       metric="w2sq", cov_estimator="unbiased", seed=0, rel_precision=0.01,
                       max_chains=config.DEFAULT_MAX_CHAINS, n_jobs=None, mu_r=None,
                       sigma_r=None, guidance=None, progress=False, store=None):
    """Every check of :func:`estimate`, before any computation."""
    p = loop_params(d, n_r, n_s, lam, n_ini, loop, memory, metric, cov_estimator, mu_r,
                    sigma_r, guidance)
    if p.loop == "fully-synthetic":
        raise ParameterError("loop", "loop must be fresh or augmentation for a limit: the fully "
                             "synthetic loop collapses (use simulate)")
    rel, mc = _check_budget(rel_precision, max_chains)
    check_generations(p, rel)
    n_gen = generations_for(p, rel)
    _check_ring_memory(p, n_gen)
    chain_budget(p, n_gen, mc)
    open_store(store)
    return p, check_seed(seed), rel, mc, check_jobs(n_jobs)


def _validate_threshold(d=1, n_r=100, lam=None, n_ini=None, memory=1, metric="w2sq",
                        cov_estimator="unbiased", seed=0, rel_precision=0.01, cap=None,
                        max_chains=config.DEFAULT_MAX_CHAINS, n_jobs=None, mu_r=None,
                        sigma_r=None, guidance=None, progress=False, store=None):
    """Every check of :func:`threshold`, before any computation."""
    if lam is None and guidance is None:
        lam = 0.9
    p = loop_params(d, n_r, 0, lam, n_ini, "fresh", memory, metric, cov_estimator, mu_r,
                    sigma_r, guidance)
    rel, mc = _check_budget(rel_precision, max_chains)
    if cap is None:   # 100 n_r, or less where the chains at n_s = cap would be too expensive
        cap = min(100 * p.n_r, config.MAX_COUNT)
        if not _affordable(p, cap, rel, mc):
            cap = max(bisect_int(lambda m: not _affordable(p, m, rel, mc), 0, cap)[0], 1)
    cap = check_int("cap", cap, 1, config.MAX_COUNT)
    at_cap = replace(p, n_s=cap)
    check_generations(at_cap, rel, name="cap")
    n_gen = generations_for(at_cap, rel)
    _check_ring_memory(p, n_gen)
    try:
        chain_budget(at_cap, n_gen, mc, n_values=2)
    except ParameterError as e:
        raise ParameterError("cap", f"cap is too large for d = {p.d}: at n_s = cap, {e}") from None
    open_store(store)
    return p, check_seed(seed), rel, mc, check_jobs(n_jobs), cap


def estimate_key(checked: tuple) -> dict:
    """Everything that changes an estimate, from the output of :func:`_validate_estimate`
    (not ``n_jobs``: results do not depend on it)."""
    p, seed, rel, mc = checked[:4]
    return {**p.key(), "seed": seed, "rel_precision": rel, "max_chains": mc}


def threshold_key(checked: tuple) -> dict:
    """Everything that changes a threshold, from the output of :func:`_validate_threshold`."""
    return {**estimate_key(checked), "cap": checked[5]}


def load_stored(kind: str, cls, key: dict, store: ResultStore):
    """The stored answer for ``key`` as a ``cls`` (``from_store`` set), or ``None`` when
    absent or damaged (even an entry whose checksum holds but whose fields do not fit)."""
    t0 = time.perf_counter()
    raw = store.get(kind, key)
    if raw is None:
        return None
    try:
        return cls.from_raw(raw, from_store=True, seconds=time.perf_counter() - t0)
    except (TypeError, ValueError, KeyError, AttributeError):
        return None


def _stored(kind: str, cls, key: dict, store: ResultStore | None, compute, bar: Progress):
    """The answer for ``key`` from the store, or computed by ``compute()`` and stored.

    Identical computations started at the same time in this process run once.
    """
    if store is None:
        return compute()
    hit = load_stored(kind, cls, key, store)
    if hit is not None:
        return hit
    with store.computing(kind, key, bar.check):
        hit = load_stored(kind, cls, key, store)   # computed meanwhile by another thread
        if hit is not None:
            return hit
        res = compute()
        store.put(kind, key, res.raw())
        return res


def run_estimate(checked: tuple, store: ResultStore | None, bar: Progress):
    """An estimate from the output of :func:`_validate_estimate`, through ``store``."""
    p, seed, rel, mc, jobs = checked
    return _stored("estimate", EstimateResult, estimate_key(checked), store,
                   lambda: estimate_limit(p, seed, rel, mc, jobs, bar), bar)


def run_threshold(checked: tuple, store: ResultStore | None, bar: Progress):
    """A threshold from the output of :func:`_validate_threshold`, through ``store``."""
    p, seed, rel, mc, jobs, cap = checked
    return _stored("threshold", ThresholdResult, threshold_key(checked), store,
                   lambda: threshold_search(p, seed, rel, mc, cap, jobs, bar), bar)


def _affordable(p, n_s: int, rel: float, mc: int) -> bool:
    """Whether a threshold evaluation at ``n_s`` fits the generation and work limits."""
    q = replace(p, n_s=n_s)
    try:
        check_generations(q, rel)
        chain_budget(q, generations_for(q, rel), mc, n_values=2)
    except ParameterError:
        return False
    return True


def _check_rel(rel_precision) -> float:
    rel = check_float("rel_precision", rel_precision, 0.0, 0.5, low_open=True)
    if rel < 1e-4:
        raise ParameterError("rel_precision",
            f"rel_precision must be a number in [0.0001, 0.5], got {rel}")
    return rel


def _check_budget(rel_precision, max_chains) -> tuple[float, int]:
    return (_check_rel(rel_precision),
            check_int("max_chains", max_chains, 1, config.MAX_CHAINS))


def estimate(d: int = 1, n_r: int = 100, n_s: int = 0, lam: float | None = None,
             n_ini: int | None = None, loop: str = "fresh", memory: int | str = 1,
             metric: str = "w2sq", cov_estimator: str = "unbiased", seed: int = 0,
             rel_precision: float = 0.01, max_chains: int = config.DEFAULT_MAX_CHAINS,
             n_jobs: int | None = None, mu_r=None, sigma_r=None,
             guidance: float | None = None, progress: bool = False,
             store: str | os.PathLike | bool | None = None) -> EstimateResult:
    """Limit ``WD(n_r, n_s, lam)`` of the loop and effective sample size ``n_e``.

    Parameters
    ----------
    d : int
        Dimension (default 1, so that a first try is instant).
    n_r, n_s : int
        Real samples (>= 2) and synthetic samples (>= 0) per generation.
    lam : float, optional
        Sampling bias in ``[0, 1]`` (default 1, unbiased); or give ``guidance=w``
        for ``lam = 1/(1+w)``.
    n_ini : int, optional
        Size of the first real set (default ``n_r``).
    loop : {"fresh", "augmentation"}
        Loop kind; the fully synthetic loop has no limit (use :func:`simulate`).
    memory : int or "all"
        Number of past models the synthetic data come from.
    metric : {"w2sq", "w2"}
        Squared 2-Wasserstein (Fréchet) distance, or its square root.
    cov_estimator : {"unbiased", "mle"}
        Covariance divisor ``n - 1`` or ``n``.
    seed : int
        Seed; the same seed gives the same numbers whatever ``n_jobs``.
    rel_precision : float
        Wanted relative 95% half-width on ``n_e``.
    max_chains : int
        Chain budget.
    n_jobs : int, optional
        Threads (default: every core).
    mu_r, sigma_r : array_like, optional
        Reference mean and covariance (default ``N(0, I_d)``).
    progress : bool
        Draw a progress bar on a terminal.
    store : path, bool or None
        Result store: ``None`` (default) uses the default store
        (``ESS_STORE``, else ``results/`` in the cache folder; ``ESS_STORE=off``
        turns it off), a path uses the store in that folder, ``False`` none.
        An answer found there is returned without recomputation
        (``from_store`` is true); a new one is added to it.

    Returns
    -------
    EstimateResult
    """
    checked = _validate_estimate(
        d=d, n_r=n_r, n_s=n_s, lam=lam, n_ini=n_ini, loop=loop, memory=memory, metric=metric,
        cov_estimator=cov_estimator, seed=seed, rel_precision=rel_precision,
        max_chains=max_chains, n_jobs=n_jobs, mu_r=mu_r, sigma_r=sigma_r, guidance=guidance,
        store=store)
    bar = Progress("estimate", enabled=progress)
    try:
        return run_estimate(checked, open_store(store), bar)
    finally:
        bar.close()


def threshold(d: int = 1, n_r: int = 100, lam: float | None = None, n_ini: int | None = None,
              memory: int | str = 1, metric: str = "w2sq", cov_estimator: str = "unbiased",
              seed: int = 0, rel_precision: float = 0.01, cap: int | None = None,
              max_chains: int = config.DEFAULT_MAX_CHAINS, n_jobs: int | None = None,
              mu_r=None, sigma_r=None, guidance: float | None = None,
              progress: bool = False,
              store: str | os.PathLike | bool | None = None) -> ThresholdResult:
    """Admissible threshold ``n_s*(n_r, lam)``: the largest ``n_s`` with ``n_e >= n_r``.

    Parameters are those of :func:`estimate` (the loop is the fresh loop; ``lam``
    defaults to 0.9);
    ``cap`` bounds the search: beyond it the answer is "no threshold up to the
    cap" (``n_s_star = None``). Its default is ``100 n_r``, lowered where chains at
    ``n_s = cap`` would exceed the work budget (large ``d``); the result reports it.
    ``store`` is that of :func:`estimate`.

    Returns
    -------
    ThresholdResult
    """
    checked = _validate_threshold(
        d=d, n_r=n_r, lam=lam, n_ini=n_ini, memory=memory, metric=metric,
        cov_estimator=cov_estimator, seed=seed, rel_precision=rel_precision, cap=cap,
        max_chains=max_chains, n_jobs=n_jobs, mu_r=mu_r, sigma_r=sigma_r, guidance=guidance,
        store=store)
    bar = Progress("threshold", enabled=progress)
    try:
        return run_threshold(checked, open_store(store), bar)
    finally:
        bar.close()


def simulate(d: int = 1, n_r: int = 100, n_s: int = 100, lam: float | None = None,
             n_ini: int | None = None, loop: str = "fresh", memory: int | str = 1,
             metric: str = "w2sq", cov_estimator: str = "unbiased", seed: int = 0,
             chains: int = 200, generations: int = 50, n_jobs: int | None = None,
             mu_r=None, sigma_r=None, guidance: float | None = None,
             progress: bool = False, return_trajectories: bool = False
             ) -> SimulateResult | tuple[SimulateResult, np.ndarray]:
    """Trajectories of any loop kind, summarised per generation.

    Each row gives, for generation ``t = 1 .. generations``, the mean, the
    median and the 5-95% band over chains of ``dist``, ``|mu - mu_r|`` and ``tr Sigma / d``.

    Returns
    -------
    SimulateResult
        And, with ``return_trajectories``, the raw array of shape
        ``(chains, generations, 4)`` holding ``dist``, ``|mu - mu_r|^2``,
        ``tr Sigma`` and the first coordinate of ``mu``.
    """
    p = loop_params(d, n_r, n_s, lam, n_ini, loop, memory, metric, cov_estimator, mu_r,
                    sigma_r, guidance)
    chains = check_int("chains", chains, 1, config.MAX_CHAINS)
    generations = check_int("generations", generations, 1, config.MAX_GENERATIONS)
    out_bytes = chains * generations * 4 * 8
    if out_bytes > config.MAX_BYTES:
        raise ParameterError("chains", f"chains * generations must be at most "
                             f"{config.MAX_BYTES // 32} (memory), got {chains * generations}")
    _check_ring_memory(p, generations)
    work = chains * chain_cost(p, generations)
    if work > config.MAX_WORK:
        raise ParameterError("chains", f"chains * generations is too large for d = {p.d}: "
                             f"{work:.3g} work units, budget {config.MAX_WORK:g}; "
                             "use fewer chains or generations")
    seed = check_seed(seed)
    jobs = check_jobs(n_jobs)
    t0 = time.perf_counter()
    bar = Progress("simulate", enabled=progress)
    try:
        traj = trajectories(p, chains, generations, seed, jobs, bar)
    finally:
        bar.close()
    dist = traj[:, :, 0]
    dev = np.sqrt(traj[:, :, 1])
    tr = traj[:, :, 2] / p.d
    rows = []
    for t in range(generations):
        row = {"generation": t + 1}
        for name, a in (("dist", dist[:, t]), ("mean_dev", dev[:, t]),
                        ("tr_sigma_over_d", tr[:, t])):
            row[f"{name}_mean"] = float(a.mean())
            row[f"{name}_median"] = float(np.median(a))
            row[f"{name}_q05"] = float(np.quantile(a, 0.05))
            row[f"{name}_q95"] = float(np.quantile(a, 0.95))
        rows.append(row)
    res = SimulateResult(d=p.d, n_r=p.n_r, n_s=p.n_s, lam=p.lam, loop=p.loop, metric=p.metric,
                         cov_estimator=p.cov_estimator, memory=p.memory, n_ini=p.n_ini,
                         seed=seed, chains=chains, generations=generations,
                         seconds=time.perf_counter() - t0, rows=rows)
    return (res, traj) if return_trajectories else res


def reference_curve(n: Sequence[int], d: int = 1, metric: str = "w2sq",
                    cov_estimator: str = "unbiased", sigma_r=None,
                    rel_precision: float = 0.01, n_jobs: int | None = None) -> np.ndarray:
    """Values and standard errors of the reference curve ``f(n)`` at integers ``n >= 2``.

    Returns
    -------
    ndarray, shape (len(n), 2)
        ``f(n)`` and its standard error.
    """
    p = loop_params(d, 2, 0, 1.0, 2, "fresh", 1, metric, cov_estimator, None, sigma_r)
    rel = _check_rel(rel_precision)
    ns = [check_int("n", v, 2, 2**40) for v in n]
    curve = reference_for(p, rel, check_jobs(n_jobs))
    out = np.array([curve.value(v) for v in ns]) * p.dist_factor
    curve.save()
    return out


def _axis_n_r(values) -> list[int]:
    return check_grid_axis("n_r", values, lambda v: check_int("n_r", v, 2, config.MAX_COUNT))


def _axis_lam(values) -> list[float]:
    return check_grid_axis("lam", values, lambda v: check_float("lam", v, 0.0, 1.0))


def _run_grid(cells: list[dict], validate, compute, desc: str, progress: bool,
              backend: str = "local", scheduler: Any = None,
              n_jobs: int | None = None) -> list:
    """Validate the backend and every cell before computing any, then compute them all.

    Results come back in the order of ``cells`` whatever the backend
    (:mod:`ess.backends`); each cell's numbers do not depend on it.
    """
    if len(cells) > config.MAX_GRID:
        raise ParameterError("grid", f"the grid must have at most {config.MAX_GRID} cells, "
                             f"got {len(cells)}")
    where = get_backend(backend, scheduler, n_jobs)
    for cell in cells:
        validate(**cell)
    bar = Progress(desc, enabled=progress)
    bar.add_total(len(cells))
    try:
        return map_cells(compute, cells, where, bar)
    finally:
        bar.close()


def table_cells(d: int, n_r: Sequence[int], n_s: Sequence[int], lam: Sequence[float],
                **kwargs) -> list[dict]:
    """Keyword arguments of :func:`estimate` for every cell of a table grid, ``n_r``
    outermost, with the axes checked (each cell is checked by the caller)."""
    n_r = _axis_n_r(n_r)
    n_s = check_grid_axis("n_s", n_s, lambda v: check_int("n_s", v, 0, config.MAX_COUNT))
    lam = _axis_lam(lam)
    return [dict(d=d, n_r=a, n_s=b, lam=c, **kwargs)
            for a, b, c in itertools.product(n_r, n_s, lam)]


def table(d: int = 1, n_r: Sequence[int] = (50, 100, 200),
          n_s: Sequence[int] = (0, 50, 100, 200, 400),
          lam: Sequence[float] = (1.0, 0.9, 0.7), progress: bool = False,
          n_jobs: int | None = None, backend: str = "local", scheduler: Any = None,
          **kwargs) -> list[EstimateResult]:
    """:func:`estimate` for every ``(n_r, n_s, lam)`` of a grid.

    Every cell uses the same ``seed``; the numbers are the same bit for bit
    whatever ``backend`` and ``n_jobs``.

    Parameters
    ----------
    d : int
        Dimension.
    n_r, n_s, lam : sequence
        Values of each axis of the grid (no repeats).
    progress : bool
        Draw a progress bar (one step per cell) on a terminal.
    n_jobs : int, optional
        With ``backend="local"``: threads in all (default every core), shared
        between cells computed side by side. With ``"dask"``: threads of each
        cell on its worker (default 1).
    backend : {"local", "dask"}
        Where the cells run: threads on this machine, or one task per cell on a
        Dask distributed cluster (needs ``pip install 'ess[distributed]'``).
    scheduler : str or distributed.Client, optional
        With ``backend="dask"``: the scheduler's address (``"tcp://host:8786"``)
        or a connected client.
    **kwargs
        Passed to :func:`estimate` (``n_ini``, ``memory``, ``metric``, ``seed``,
        ``rel_precision``, ``store``, ...): each cell is read from or added to
        the result store on its own.

    Returns
    -------
    list of EstimateResult
        In the order ``n_r``, then ``n_s``, then ``lam``.

    Raises
    ------
    ParameterError
        Naming a bad parameter of any cell or of the backend, before any cell
        is computed; or an unreachable scheduler.
    """
    cells = table_cells(d, n_r, n_s, lam, **kwargs)
    return _run_grid(cells, _validate_estimate, estimate, "table", progress, backend,
                     scheduler, n_jobs)


def threshold_grid(d: int = 1, n_r: Sequence[int] = (50, 100, 200, 400),
                   lam: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9), progress: bool = False,
                   n_jobs: int | None = None, backend: str = "local", scheduler: Any = None,
                   **kwargs) -> list[ThresholdResult]:
    """:func:`threshold` for every ``(n_r, lam)`` of a grid (``n_r`` outer).

    ``progress``, ``n_jobs``, ``backend`` and ``scheduler`` are those of
    :func:`table`; other keyword arguments (``cap``, ``seed``,
    ``rel_precision``, ...) are passed to :func:`threshold`.

    Returns
    -------
    list of ThresholdResult
        In the order ``n_r``, then ``lam``.
    """
    cells = [dict(d=d, n_r=a, lam=c, **kwargs)
             for a, c in itertools.product(_axis_n_r(n_r), _axis_lam(lam))]
    return _run_grid(cells, _validate_threshold, threshold, "heatmap", progress, backend,
                     scheduler, n_jobs)


__all__ = ["estimate", "threshold", "simulate", "reference_curve", "table", "threshold_grid"]
