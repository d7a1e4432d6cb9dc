"""The public Python API: validate, seed, run, wrap.

Each function turns its arguments into a request (:mod:`ess.request`, where every
check lives), runs it, and returns a frozen result (:mod:`ess.results`). A bad
argument raises :class:`ess.ParameterError` (a ``ValueError``) naming it. Names
and defaults (:mod:`ess.defaults`) are those of the command line and the service.
"""

from __future__ import annotations

# The modules that compute (ess.solve, ess.chains' runners, ess.generations,
# ess.backends) are imported where they are called, so that an answer from the result
# store imports none of them (tests/test_startup.py).
import itertools
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ess import config, defaults
from ess.params import (
    ParameterError,
    check_data_moments,
    check_float,
    check_grid_axis,
    check_int,
    reference_from_data,
)
from ess.progress import NULL_PROGRESS, Progress
from ess.request import (
    EstimateRequest,
    SimulateRequest,
    ThresholdRequest,
    estimate_request,
    is_loop_list,
    reference_request,
    simulate_requests,
    threshold_request,
)
from ess.results import (
    EstimateResult,
    ReferenceCurveResult,
    SimulateGridResult,
    SimulateResult,
    TableResult,
    ThresholdGridResult,
    ThresholdResult,
)
from ess.store import ResultStore, open_store

Store = str | os.PathLike | bool | None


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


def run_estimate(req: EstimateRequest, store: ResultStore | None,
                 bar: Progress = NULL_PROGRESS) -> EstimateResult:
    """The answer to a checked estimate, from ``store`` or computed (and stored)."""
    p = req.params

    def compute() -> EstimateResult:
        from ess.solve import estimate_limit, reference_fit

        if p.n_s == 0:   # the reference fit itself: exact, no chains
            return reference_fit(p, req.seed, req.rel_precision, req.n_jobs, bar, req.max_work)
        return estimate_limit(p, req.seed, req.rel_precision, req.max_chains, req.n_jobs, bar,
                              max_work=req.max_work)

    return _stored("estimate", EstimateResult, req.key(), store, compute, bar)


def run_threshold(req: ThresholdRequest, store: ResultStore | None,
                  bar: Progress = NULL_PROGRESS) -> ThresholdResult:
    """The answer to a checked threshold, from ``store`` or computed (and stored)."""
    from ess.solve import threshold_search

    p = req.params
    return _stored("threshold", ThresholdResult, req.key(), store,
                   lambda: threshold_search(p, req.seed, req.rel_precision, req.max_chains,
                                            req.cap, req.n_jobs, bar, req.cap_wanted,
                                            req.max_work), bar)


def _with_bar(desc: str, progress: bool, fn):
    bar = Progress(desc, enabled=progress)
    try:
        return fn(bar)
    finally:
        bar.close()


def estimate(d: int | None = None, n_r: int = defaults.N_R, n_s: int = defaults.N_S,
             lam: float | None = None, *, n_ini: int | None = None, loop: str = defaults.LOOP,
             memory: int | str = defaults.MEMORY, metric: str = defaults.METRIC,
             cov_estimator: str = defaults.COV_ESTIMATOR, seed: int = defaults.SEED,
             rel_precision: float = defaults.REL_PRECISION,
             max_chains: int = defaults.MAX_CHAINS, n_jobs: int | None = None,
             mu_r=None, sigma_r=None, guidance: float | None = None, progress: bool = False,
             store: Store = None, reference_data=None,
             max_work: float | None = None) -> EstimateResult:
    """Limit ``WD(n_r, n_s, lam)`` of the loop and effective sample size ``n_e``.

    Parameters
    ----------
    d : int, optional
        Dimension: 1 (so that a first try is instant), or the size of
        ``sigma_r`` / ``mu_r`` when they are given.
    n_r, n_s : int
        Real samples (>= 2) and synthetic samples (>= 0) per generation. At
        ``n_s = 0`` every generation is the reference fit itself: ``n_e = n_r``
        exactly, without Monte Carlo.
    lam : float, optional
        Sampling bias in ``[0, 1]`` (default 1, unbiased); or give ``guidance=w``
        for ``lam = 1/(1+w)``.
    n_ini : int, optional
        Size of the first real set (default ``n_r``); the limit does not depend on it.
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
        Wanted relative 95% half-width on ``n_e``, in ``[1e-4, 0.5]``.
    max_chains : int
        Chain budget.
    max_work : float, optional
        Work budget of the computation, in the units of :data:`ess.config.MAX_WORK`
        (its default, 1e9: a few seconds on two cores at ``d = 100``), in ``[1e3,
        1e13]``. A request whose first round of chains needs more is refused (the
        message gives the largest ``n_s`` within the budget and the budget needed); a
        computation that spends it before ``rel_precision`` says so in ``budget_note``.
    n_jobs : int, optional
        Threads (default: every core).
    mu_r, sigma_r : array_like, optional
        Reference mean and covariance (default ``N(0, I_d)``); ``sigma_r`` is a
        ``d x d`` matrix or its diagonal.
    guidance : float, optional
        Classifier-free guidance factor ``w >= 0`` instead of ``lam``.
    progress : bool
        Draw a progress bar on a terminal.
    store : path, bool or None
        Result store: ``None`` (default) uses the default store
        (``ESS_STORE``, else ``results/`` in the cache folder; ``ESS_STORE=off``
        turns it off), a path uses the store in that folder, ``False`` none.
        An answer found there is returned without recomputation
        (``from_store`` is true); a new one is added to it.
    reference_data : array_like or path, optional
        Real features, an ``n x d`` array (rows are samples, ``n > d``) or a
        ``.npy`` file of one: ``mu_r`` and ``sigma_r`` are their sample mean and
        covariance (instead of giving ``mu_r`` and ``sigma_r``), and ``d`` their
        number of columns.

    Returns
    -------
    EstimateResult

    Raises
    ------
    ParameterError
        Naming a bad parameter, before any computation.

    Examples
    --------
    >>> import ess
    >>> r = ess.estimate(n_r=100, n_s=200, lam=0.9, store=False)
    >>> r.n_e_over_n_r_ci.low < r.n_e_over_n_r < r.n_e_over_n_r_ci.high
    True
    """
    req = estimate_request(d, n_r, n_s, lam, n_ini=n_ini, loop=loop, memory=memory,
                           metric=metric, cov_estimator=cov_estimator, seed=seed,
                           rel_precision=rel_precision, max_chains=max_chains, n_jobs=n_jobs,
                           mu_r=mu_r, sigma_r=sigma_r, guidance=guidance,
                           reference_data=reference_data, max_work=max_work)
    where = open_store(store)
    return _with_bar("estimate", progress, lambda bar: run_estimate(req, where, bar))


def threshold(d: int | None = None, n_r: int = defaults.N_R, lam: float | None = None, *,
              n_ini: int | None = None, memory: int | str = defaults.MEMORY,
              metric: str = defaults.METRIC, cov_estimator: str = defaults.COV_ESTIMATOR,
              seed: int = defaults.SEED, rel_precision: float = defaults.REL_PRECISION,
              cap: int | None = None, max_chains: int = defaults.MAX_CHAINS,
              n_jobs: int | None = None, mu_r=None, sigma_r=None,
              guidance: float | None = None, progress: bool = False,
              store: Store = None, reference_data=None,
              max_work: float | None = None) -> ThresholdResult:
    """Admissible threshold ``n_s*(n_r, lam)``: the largest ``n_s`` with ``n_e >= n_r``.

    Parameters
    ----------
    d, n_r, n_ini, memory, metric, cov_estimator, seed
        As in :func:`estimate` (the loop is the fresh loop).
    rel_precision, max_chains, max_work, n_jobs, mu_r, sigma_r, guidance, progress, store
        As in :func:`estimate`; ``max_work`` bounds each evaluation of the search.
    reference_data : array_like or path, optional
        As in :func:`estimate`.
    lam : float, optional
        Sampling bias (default 0.9: at ``lam = 1`` there is typically no threshold).
    cap : int, optional
        Largest ``n_s`` searched: beyond it the answer is "no threshold up to the
        cap" (``n_s_star = None``). Default ``100 n_r``, lowered where chains at
        ``n_s = cap`` would exceed the work budget ``max_work``; the result says so
        (``cap_lowered_from``, ``budget_note``, ``note``) with the budget the full cap
        needs.

    Returns
    -------
    ThresholdResult

    Raises
    ------
    ParameterError
        Naming a bad parameter, before any computation.

    Examples
    --------
    >>> import ess
    >>> t = ess.threshold(n_r=100, lam=0.7, store=False)
    >>> t.n_s_star_ci.low <= t.n_s_star
    True
    """
    req = threshold_request(d, n_r, lam, n_ini=n_ini, memory=memory, metric=metric,
                            cov_estimator=cov_estimator, seed=seed,
                            rel_precision=rel_precision, cap=cap, max_chains=max_chains,
                            n_jobs=n_jobs, mu_r=mu_r, sigma_r=sigma_r, guidance=guidance,
                            reference_data=reference_data, max_work=max_work)
    where = open_store(store)
    return _with_bar("threshold", progress, lambda bar: run_threshold(req, where, bar))


def simulate(d: int | None = None, n_r: int = defaults.N_R, n_s: int = defaults.N_S,
             lam: float | None = None, *, n_ini: int | None = None,
             loop: str | Sequence[str] = defaults.LOOP,
             memory: int | str = defaults.MEMORY, metric: str = defaults.METRIC,
             cov_estimator: str = defaults.COV_ESTIMATOR, seed: int = defaults.SEED,
             chains: int = defaults.CHAINS, generations: int = defaults.GENERATIONS,
             n_jobs: int | None = None, mu_r=None, sigma_r=None,
             guidance: float | None = None, progress: bool = False,
             return_trajectories: bool = False, reference_data=None,
             max_work: float | None = None):
    """Trajectories of any loop kind, summarised per generation, with ``n_e(t)``.

    Parameters
    ----------
    d, n_r, n_s, lam, n_ini, memory, metric, cov_estimator, seed
        As in :func:`estimate`.
    n_jobs, mu_r, sigma_r, guidance, progress, reference_data, max_work
        As in :func:`estimate` (``chains`` trajectories must fit ``max_work``).
    loop : str or sequence of str
        ``"fresh"``, ``"augmentation"``, ``"fully-synthetic"`` (also called
        ``"replace"``), ``"accumulate"`` or ``"accumulate-subsample"``; or a list of
        them (no repeats), run with the same parameters and seed.
    chains, generations : int
        Independent trajectories, and generations of each (the first is the fit
        on ``n_ini`` real samples).
    return_trajectories : bool
        Also return the raw trajectories.

    Returns
    -------
    SimulateResult or SimulateGridResult
        For one loop, a :class:`~ess.results.SimulateResult` whose rows give, for
        generation ``t = 1 .. generations``, the mean over chains of ``dist``,
        ``|mu - mu_r|``, ``tr Sigma / d``, ``log det Sigma``, ``||Sigma -
        Sigma_r||_F`` and the smallest eigenvalue of ``Sigma``, each with its
        standard error (``_se``) and 95% interval (``_ci``), median and 5-95% band;
        and ``n_e(t)``, the ``n`` with ``f(n) = E dist(G^t, P_r)`` (the reference
        curve and inversion of :func:`estimate`), with ``n_e_ci``, ``n_e_over_n_r``
        and ``n_e_note`` (``"below 2"`` when ``E dist`` exceeds ``f(2)``). For a
        list of loops, a :class:`~ess.results.SimulateGridResult`: one
        ``SimulateResult`` per loop, in order, whose ``to_frame()`` stacks their
        rows after a ``loop`` column. With ``return_trajectories``, also the raw
        array of shape ``(chains, generations, 7)`` (columns ``TRAJ_*`` of
        :mod:`ess.chains`: ``dist``, ``|mu - mu_r|^2``, ``tr Sigma``, ``mu[0]``,
        ``log det Sigma``, ``||Sigma - Sigma_r||_F``, smallest eigenvalue), or a
        tuple of them, one per loop.

    Raises
    ------
    ParameterError
        Naming a bad parameter (of any loop of a list), before any computation.

    Examples
    --------
    >>> import ess
    >>> s = ess.simulate(loop="replace", n_s=10, chains=100, generations=30)
    >>> s.rows[-1]["tr_sigma_over_d_mean"] < s.rows[0]["tr_sigma_over_d_mean"]
    True
    >>> g = ess.simulate(loop=["fresh", "accumulate"], chains=50, generations=5)
    >>> list(g.to_frame()["loop"].unique())
    ['fresh', 'accumulate']
    """
    many = is_loop_list(loop)
    reqs = simulate_requests(loop, d=d, n_r=n_r, n_s=n_s, lam=lam, n_ini=n_ini, memory=memory,
                             metric=metric, cov_estimator=cov_estimator, seed=seed,
                             chains=chains, generations=generations, n_jobs=n_jobs, mu_r=mu_r,
                             sigma_r=sigma_r, guidance=guidance,
                             reference_data=reference_data, max_work=max_work)
    out = [_with_bar("simulate", progress, lambda bar, r=r: run_simulate(r, bar))
           for r in reqs]
    results = [r for r, _ in out]
    res = SimulateGridResult(tuple(results)) if many else results[0]
    if not return_trajectories:
        return res
    return res, (tuple(t for _, t in out) if many else out[0][1])


def run_simulate(req: SimulateRequest,
                 bar: Progress = NULL_PROGRESS) -> tuple[SimulateResult, np.ndarray]:
    """A checked simulate: the trajectories, and their per-generation rows with
    ``n_e(t)`` (:func:`ess.generations.generation_rows`)."""
    from ess.chains import trajectories
    from ess.generations import generation_rows
    from ess.solve import reference_for

    p = req.params
    t0 = time.perf_counter()
    traj = trajectories(p, req.chains, req.generations, req.seed, req.n_jobs, bar)
    curve = reference_for(p, defaults.REL_PRECISION, req.n_jobs, bar)
    rows = generation_rows(p, traj, curve)
    res = SimulateResult(d=p.d, n_r=p.n_r, n_s=p.n_s, lam=p.lam, loop=p.loop, metric=p.metric,
                         cov_estimator=p.cov_estimator, memory=p.memory, n_ini=p.n_ini,
                         seed=req.seed, chains=req.chains, generations=req.generations,
                         seconds=time.perf_counter() - t0, rows=tuple(rows))
    return res, traj


def reference_curve(n: Sequence[int] = defaults.REFERENCE_N, d: int | None = None, *,
                    metric: str = defaults.METRIC, cov_estimator: str = defaults.COV_ESTIMATOR,
                    sigma_r=None, rel_precision: float = defaults.REL_PRECISION,
                    n_jobs: int | None = None, reference_data=None) -> ReferenceCurveResult:
    """The reference curve ``f(n) = E dist(G(n), P_r)`` at integers ``n >= 2``.

    Parameters
    ----------
    n : sequence of int
        Sample sizes (default ``2, 4, ..., 1024``).
    d, metric, cov_estimator, sigma_r, n_jobs, reference_data
        As in :func:`estimate` (of ``reference_data``, only the covariance matters).
    rel_precision : float
        The precision of the estimates the curve serves; the curve is computed
        finer than that (and cached on disk).

    Returns
    -------
    ReferenceCurveResult
        ``n``, ``f`` and its standard error ``f_se``; ``.to_frame()`` has them
        as labelled columns.

    Raises
    ------
    ParameterError
        Naming a bad parameter, before any computation.

    Examples
    --------
    >>> import ess
    >>> c = ess.reference_curve([10, 100])
    >>> c.f[0] > c.f[1]
    True
    """
    req = reference_request(n, d, metric=metric, cov_estimator=cov_estimator,
                            sigma_r=sigma_r, rel_precision=rel_precision, n_jobs=n_jobs,
                            reference_data=reference_data)
    from ess.solve import reference_for

    p = req.params
    curve = reference_for(p, req.rel_precision, req.n_jobs)
    values = [curve.value(v) for v in req.n]
    curve.save()
    k = p.dist_factor
    return ReferenceCurveResult(d=p.d, metric=p.metric, cov_estimator=p.cov_estimator,
                                n=req.n, f=tuple(k * v[0] for v in values),
                                f_se=tuple(k * v[1] for v in values))


def _axis_n_r(values) -> list[int]:
    return check_grid_axis("n_r", values, lambda v: check_int("n_r", v, 2, config.MAX_COUNT))


def _axis_lam(values) -> list[float]:
    return check_grid_axis("lam", values, lambda v: check_float("lam", v, 0.0, 1.0))


def _run_grid(cells: list[dict], validate, run, desc: str, progress: bool,
              backend: str = "local", scheduler: Any = None,
              n_jobs: int | None = None) -> list:
    """Validate the backend and every cell before computing any, then compute them all.

    Results come back in the order of ``cells`` whatever the backend
    (:mod:`ess.backends`); each cell's numbers do not depend on it.
    """
    from ess.backends import get_backend, map_cells

    if len(cells) > config.MAX_GRID:
        raise ParameterError("grid", f"the grid must have at most {config.MAX_GRID} cells, "
                             f"got {len(cells)}")
    where = get_backend(backend, scheduler, n_jobs)
    for cell in cells:
        try:
            validate(**{k: v for k, v in cell.items() if k not in _NOT_CHECKED})
        except ParameterError as e:
            raise ParameterError(e.name, f"grid cell ({_cell_name(cell)}): {e}") from None
    bar = Progress(desc, enabled=progress)
    bar.add_total(len(cells))
    try:
        return map_cells(run, cells, where, bar)
    finally:
        bar.close()


def _reference_once(d, kwargs: dict) -> dict:
    """A grid's keyword arguments with ``reference_data`` turned into ``mu_r`` and
    ``sigma_r`` once (read and checked here), not once per cell."""
    if kwargs.get("reference_data") is None:
        return kwargs
    if kwargs.get("mu_r") is not None or kwargs.get("sigma_r") is not None:
        raise ParameterError("reference_data", "reference_data gives mu_r and sigma_r: "
                             "give either reference_data or mu_r/sigma_r, not both")
    mu, cov = reference_from_data(kwargs["reference_data"])
    check_data_moments(d, mu, cov)
    out = {k: v for k, v in kwargs.items() if k != "reference_data"}
    return {**out, "mu_r": mu, "sigma_r": cov}


def _cell_name(cell: dict) -> str:
    """``n_r = 100, n_s = 10000, lam = 0.85``: the axes of a grid cell."""
    return ", ".join(f"{k} = {cell[k]:g}" if isinstance(cell[k], float) else f"{k} = {cell[k]}"
                     for k in ("n_r", "n_s", "lam") if k in cell)


#: Keyword arguments of a grid cell that its request validator does not take
#: (``store`` is opened once by the grid, ``progress`` is the grid's).
_NOT_CHECKED = ("store", "progress")


def table_cells(d: int | None, n_r: Sequence[int], n_s: Sequence[int], lam: Sequence[float],
                **kwargs) -> list[dict]:
    """Keyword arguments of :func:`estimate` for every cell of a table grid, ``n_r``
    outermost, with the axes checked (each cell is checked by the caller)."""
    n_r = _axis_n_r(n_r)
    n_s = check_grid_axis("n_s", n_s, lambda v: check_int("n_s", v, 0, config.MAX_COUNT))
    lam = _axis_lam(lam)
    return [dict(d=d, n_r=a, n_s=b, lam=c, **kwargs)
            for a, b, c in itertools.product(n_r, n_s, lam)]


def table(d: int | None = None, n_r: Sequence[int] = defaults.TABLE_N_R,
          n_s: Sequence[int] = defaults.TABLE_N_S, lam: Sequence[float] = defaults.TABLE_LAM,
          *, progress: bool = False, n_jobs: int | None = None, backend: str = "local",
          scheduler: Any = None, **kwargs) -> TableResult:
    """:func:`estimate` for every ``(n_r, n_s, lam)`` of a grid.

    Every cell uses the same ``seed``; the numbers are the same bit for bit
    whatever ``backend`` and ``n_jobs``.

    Parameters
    ----------
    d : int, optional
        Dimension (as in :func:`estimate`).
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
    TableResult
        The cells' :class:`EstimateResult`, in the order ``n_r``, then ``n_s``,
        then ``lam``; ``.to_frame()`` gives a DataFrame with the CSV's columns.

    Raises
    ------
    ParameterError
        Naming a bad parameter of any cell or of the backend, before any cell
        is computed; or an unreachable scheduler.

    Examples
    --------
    >>> import ess
    >>> t = ess.table(n_r=[100], n_s=[0, 100], lam=[1.0], store=False)
    >>> list(t.to_frame()["n_s"])
    [0, 100]
    """
    cells = table_cells(d, n_r, n_s, lam, **_reference_once(d, kwargs))
    return TableResult(tuple(_run_grid(cells, estimate_request, estimate, "table", progress,
                                       backend, scheduler, n_jobs)))


def threshold_grid(d: int | None = None, n_r: Sequence[int] = defaults.HEATMAP_N_R,
                   lam: Sequence[float] = defaults.HEATMAP_LAM, *, progress: bool = False,
                   n_jobs: int | None = None, backend: str = "local", scheduler: Any = None,
                   **kwargs) -> ThresholdGridResult:
    """:func:`threshold` for every ``(n_r, lam)`` of a grid (``n_r`` outer).

    Parameters
    ----------
    d : int, optional
        Dimension (as in :func:`estimate`).
    n_r, lam : sequence
        Values of each axis of the grid (no repeats).
    progress, n_jobs, backend, scheduler
        As in :func:`table`.
    **kwargs
        Passed to :func:`threshold` (``cap``, ``seed``, ``rel_precision``, ...).

    Returns
    -------
    ThresholdGridResult
        The cells' :class:`ThresholdResult`, in the order ``n_r``, then ``lam``.

    Examples
    --------
    >>> import ess
    >>> g = ess.threshold_grid(n_r=[50, 100], lam=[0.7], store=False)
    >>> len(g.to_frame())
    2
    """
    kwargs = _reference_once(d, kwargs)
    cells = [dict(d=d, n_r=a, lam=c, **kwargs)
             for a, c in itertools.product(_axis_n_r(n_r), _axis_lam(lam))]
    return ThresholdGridResult(tuple(_run_grid(cells, threshold_request, threshold, "heatmap",
                                               progress, backend, scheduler, n_jobs)))


__all__ = ["estimate", "threshold", "simulate", "reference_curve", "table", "threshold_grid"]
