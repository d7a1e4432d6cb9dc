"""The state of one ``ess serve`` server (:class:`Service`): its store, its limits,
its computing threads and its jobs; and the checks that turn a request body into
a request object (:mod:`ess.request`) within this server's limits.

Nothing here knows about HTTP: the routes (:mod:`ess.service.app`) reach the
service through a dependency and map its exceptions to answers.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from pydantic import BaseModel

from ess import api, config, defaults
from ess.limits import Limits
from ess.params import (
    ParameterError,
    check_exclusive_lam,
    infer_d,
    lam_from_guidance,
    loop_params,
)
from ess.plan import chain_budget, chain_cost, generations_for
from ess.progress import ComputationCancelledError, Progress
from ess.reference import tier_for
from ess.request import (
    EstimateRequest,
    SimulateRequest,
    ThresholdRequest,
    estimate_request,
    simulate_requests,
    simulate_work,
    threshold_request,
)
from ess.results import EstimateResult, ThresholdResult
from ess.service.auth import Tokens
from ess.service.jobs import Job
from ess.service.scheduler import Scheduler
from ess.solve import reference_for
from ess.store import ResultStore, key_hash

#: Points of the reference curve that ``GET /v1/reference`` always reports.
REFERENCE_N = defaults.REFERENCE_N
#: ``GET /v1/reference`` reports the curve at the precision tier that serves
#: the default ``rel_precision`` (finer tiers are computed by the estimates
#: that need them, within their limits).
REFERENCE_PRECISION = defaults.REL_PRECISION


class FieldError(ParameterError):
    """A bad request field, located: ``loc`` is ``[where, field]``.

    Parameters
    ----------
    field : str
        The request field.
    message : str
        One sentence naming the field.
    where : str
        ``"body"`` or ``"query"``.
    kind : str
        The ``type`` of the refusal.
    """

    def __init__(self, field: str, message: str, where: str = "body",
                 kind: str = "value_error") -> None:
        super().__init__(field, message)
        self.where = where
        self.kind = kind


class LimitError(FieldError):
    """A request is over one of the server's limits (``type`` is ``limit.<name>``)."""

    def __init__(self, field: str, limit: str, message: str, where: str = "body") -> None:
        super().__init__(field, message, where, kind=f"limit.{limit}")


async def wait(fut: Future) -> Any:
    """The result of a computation, without letting a cancelled request cancel it:
    other identical requests may be waiting for the same future."""
    return await asyncio.shield(asyncio.wrap_future(fut))


class Service:
    """State of one server: store, limits, computing threads and jobs.

    Parameters
    ----------
    store : ResultStore
        Shared with the command line and the Python API.
    limits : Limits
        Checked limits (:meth:`ess.limits.Limits.checked`).
    tokens : Tokens, optional
        Its access tokens (``None``: a server without tokens).
    """

    def __init__(self, store: ResultStore, limits: Limits, tokens: Tokens | None = None) -> None:
        self.store = store
        self.limits = limits
        self.tokens = tokens
        self.scheduler = Scheduler(limits.workers, limits.max_queue, limits.max_per_client)
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.started = time.time()
        self._writable: tuple[float, bool] | None = None

    def store_writable(self, max_age: float = 10.0) -> bool:
        """Whether the store can be written (:meth:`ResultStore.writable`), probed at
        most every ``max_age`` seconds."""
        now = time.monotonic()
        if self._writable is None or now - self._writable[0] > max_age:
            self._writable = (now, self.store.writable())
        return self._writable[1]

    # checks: request bodies to request objects, within this server's limits ---------
    def arguments(self, body: BaseModel) -> dict:
        """A request body as keyword arguments of :mod:`ess.request` (unset optional
        fields dropped), ``d`` within ``max_d``; an omitted ``max_chains`` is the
        package default or this server's limit, whichever is smaller.

        Raises
        ------
        LimitError
            Naming ``d`` (given, or the length of ``mu_r`` or ``sigma_r``) when it
            is over ``max_d``.
        """
        kw = body.model_dump(exclude_none=True)
        if "max_chains" not in body.model_fields_set:
            kw["max_chains"] = min(defaults.MAX_CHAINS, self.limits.max_chains)
        self.check_d(infer_d(kw.get("d"), kw.get("mu_r"), kw.get("sigma_r")))
        return kw

    def check_d(self, d: int, where: str = "body") -> None:
        """Refuse a dimension over this server's ``max_d``."""
        if d > self.limits.max_d:
            raise LimitError("d", "max_d", f"d must be at most {self.limits.max_d} on this "
                             f"server (limit max_d), got {d}", where)

    @staticmethod
    def work(req: EstimateRequest, threshold: bool = False) -> float:
        """Work units a checked request may need at its chain budget (for a
        threshold, one evaluation at its cap)."""
        p, n_values = req.params, 1
        if threshold:   # its most expensive evaluation is at the cap, two configurations
            p, n_values = replace(p, n_s=req.cap), 2
        n_gen = generations_for(p, req.rel_precision)
        return chain_budget(p, n_gen, req.max_chains, n_values) * chain_cost(p, n_gen, n_values)

    def _over(self, req: EstimateRequest, threshold: bool = False) -> None:
        """Refuse a checked request over ``max_chains`` or ``max_work``."""
        mc = req.max_chains
        lim = self.limits
        if mc > lim.max_chains:
            raise LimitError("max_chains", "max_chains",
                             f"max_chains must be at most {lim.max_chains} on this server "
                             f"(limit max_chains), got {mc}")
        work = self.work(req, threshold)
        if work > lim.max_work:
            field = "cap" if threshold else "max_chains"
            raise LimitError(field, "max_work",
                             f"{field} is too large for this server: the request may need "
                             f"{work:.3g} work units at its chain budget, over the limit "
                             f"max_work = {lim.max_work:.3g}; lower max_chains"
                             f"{', cap' if threshold else ''}, n_s or d, or raise "
                             "rel_precision")

    def check_budget(self, cells: list[EstimateRequest], stored: list) -> None:
        """Refuse a table whose cells to compute (``None`` in ``stored``) may need more
        than ``max_request_work`` in all (cheap: no cell runs)."""
        total = sum(self.work(c) for c, r in zip(cells, stored) if r is None)
        lim = self.limits.max_request_work
        if total > lim:
            todo = sum(r is None for r in stored)
            raise LimitError("n_r", "max_request_work",
                             f"n_r, n_s and lam span too much work for one request on this "
                             f"server: its {todo} cells to compute may need {total:.3g} work "
                             f"units in all, over the limit max_request_work = {lim:.3g}; "
                             "split the table, or lower max_chains, n_s or d, or raise "
                             "rel_precision")

    def check_estimate(self, kw: dict) -> EstimateRequest:
        """Validate an estimate as the Python API does, then this server's limits.

        Raises
        ------
        ParameterError
            Naming the field (a :class:`LimitError` for a server limit).
        """
        req = estimate_request(**kw, n_jobs=1)
        self._over(req)
        return req

    def check_threshold(self, kw: dict) -> ThresholdRequest:
        """Validate a threshold as the Python API does, then this server's limits."""
        req = threshold_request(**kw, n_jobs=1)
        self._over(req, threshold=True)
        return req

    def check_simulate(self, kw: dict) -> list[SimulateRequest]:
        """Validate a simulation (``SimulateIn`` arguments, one loop or a list) as the
        Python API does, then this server's limits, before anything runs.

        The memory bound (``accumulate-subsample``'s pools, the trajectories) is the
        package's (:func:`ess.request.simulate_request`), with a pool for every thread
        this server may give one computation. Each loop's work, ``chains`` trajectories
        of ``generations`` generations (:func:`ess.request.simulate_work`: ``d^2`` to
        ``d^3`` per generation), must fit ``max_work``, and all the loops' together
        ``max_request_work``.

        Raises
        ------
        ParameterError
            Naming the field (a :class:`LimitError` for a server limit).
        """
        kw = dict(kw)
        kw.pop("max_chains", None)    # set by arguments() for the estimating requests
        lim = self.limits
        if kw.get("chains", defaults.CHAINS) > lim.max_chains:
            raise LimitError("chains", "max_chains",
                             f"chains must be at most {lim.max_chains} on this server (limit "
                             f"max_chains), got {kw['chains']}")
        reqs = simulate_requests(**kw, n_jobs=config.default_jobs(),
                                 max_work=config.MAX_WORK_LIMIT)
        rows = len(reqs) * reqs[0].generations
        if rows > lim.max_rows:
            raise LimitError("generations", "max_rows",
                             f"generations must be at most {lim.max_rows // len(reqs)} for "
                             f"{len(reqs)} loop(s) on this server (limit max_rows = "
                             f"{lim.max_rows} rows per answer), got {reqs[0].generations}")
        works = [simulate_work(r.params, r.chains, r.generations) for r in reqs]
        for r, work in zip(reqs, works):
            if work > lim.max_work:
                one = simulate_work(r.params, 1, r.generations)
                raise LimitError("chains", "max_work",
                                 f"chains is too large for this server: {r.chains} chains of "
                                 f"{r.generations} generations of loop {r.params.loop} at d = "
                                 f"{r.params.d} need {work:.3g} work units, over the limit "
                                 f"max_work = {lim.max_work:.3g} (at most "
                                 f"{int(lim.max_work // one)} chains); lower chains, "
                                 "generations, n_s or d")
        if sum(works) > lim.max_request_work:
            raise LimitError("loop", "max_request_work",
                             f"loop: the {len(reqs)} loops need {sum(works):.3g} work units "
                             f"in all, over the limit max_request_work = "
                             f"{lim.max_request_work:.3g}; ask for fewer loops at a time, or "
                             "lower chains or generations")
        return reqs

    def table_cells(self, kw: dict) -> list[EstimateRequest]:
        """Every cell of a table (``TableIn`` arguments), each checked as an estimate.

        The grid's size is checked against ``max_grid`` before any cell is built.
        """
        kw = dict(kw)
        axes = {k: kw.pop(k) for k in ("n_r", "n_s")}
        check_exclusive_lam(kw.get("lam"), kw.get("guidance"))
        if "guidance" in kw:
            lam = [lam_from_guidance(w) for w in kw.pop("guidance")]
        else:
            lam = kw.pop("lam", list(defaults.TABLE_LAM))
        size = len(axes["n_r"]) * len(axes["n_s"]) * len(lam)
        if size > self.limits.max_grid:
            raise LimitError("n_r", "max_grid", f"n_r, n_s and lam must span at most "
                             f"{self.limits.max_grid} cells on this server (limit max_grid), "
                             f"got {size} = len(n_r) x len(n_s) x len(lam)")
        cells = api.table_cells(kw.pop("d", None), axes["n_r"], axes["n_s"], lam, **kw)
        return [self.check_estimate(c) for c in cells]

    def threshold_cells(self, kw: dict) -> list[ThresholdRequest]:
        """Every cell of a threshold grid (``ThresholdGridIn`` arguments), ``n_r``
        outer, each checked as a threshold; the size against ``max_grid`` first."""
        kw = dict(kw)
        n_r = kw.pop("n_r")
        check_exclusive_lam(kw.get("lam"), kw.get("guidance"))
        if "guidance" in kw:
            lam = [lam_from_guidance(w) for w in kw.pop("guidance")]
        else:
            lam = kw.pop("lam", list(defaults.HEATMAP_LAM))
        for name, axis in (("n_r", n_r), ("lam", lam)):
            if len(set(axis)) != len(axis):
                raise FieldError(name, f"{name} must not repeat a value, got {axis}")
        if len(n_r) * len(lam) > self.limits.max_grid:
            raise LimitError("n_r", "max_grid", f"n_r and lam must span at most "
                             f"{self.limits.max_grid} cells on this server (limit max_grid), "
                             f"got {len(n_r) * len(lam)} = len(n_r) x len(lam)")
        return [self.check_threshold(dict(kw, n_r=a, lam=c)) for a in n_r for c in lam]

    # answers ------------------------------------------------------------------------
    def threads(self) -> int:
        """Threads for a computation starting now: the cores shared by those running
        (numbers never depend on it)."""
        return max(1, config.default_jobs() // max(1, self.scheduler.running))

    def _now(self, req: EstimateRequest) -> EstimateRequest:
        """``req`` with the thread count chosen at start."""
        return req.with_jobs(self.threads())

    def _progress(self, job: Job | None = None) -> Progress:
        stop = self.scheduler.stopping
        if job is None:
            return Progress(enabled=False, cancelled=stop.is_set)
        return Progress(enabled=False, cancelled=lambda: stop.is_set() or job.cancel.is_set())

    async def answer(self, kind: str, req: EstimateRequest, client: str = "") -> dict:
        """The stored answer, or one computed on a worker (and stored).

        Parameters
        ----------
        kind : {"estimate", "threshold"}
            The question.
        req : EstimateRequest or ThresholdRequest
            Checked by :meth:`check_estimate` or :meth:`check_threshold`.
        client : str
            Who asks (counted by the fair queue while computing).

        Returns
        -------
        dict
            The result's ``to_dict()``.
        """
        cls, run = _KINDS[kind]
        k = req.key()
        hit = await asyncio.to_thread(api.load_stored, kind, cls, k, self.store)
        if hit is not None:
            return hit.to_dict()
        fut = self.scheduler.submit(f"{kind}:{key_hash(k)}",
                                    lambda: run(self._now(req), self.store, self._progress()),
                                    client)
        return (await wait(fut)).to_dict()

    async def simulate(self, reqs: list[SimulateRequest], many: bool,
                       client: str = "") -> dict:
        """The ``SimulateOut`` body of a checked simulation (:meth:`check_simulate`), or
        for a list of loops the ``SimulateLoopsOut`` body ``{"loops": [...]}``, computed
        on a worker (nothing is stored: trajectories are cheap next to limits; identical
        requests running at once share one computation)."""
        key = {"simulate": [r.key() for r in reqs], "many": many}

        def compute() -> dict:
            bar = self._progress()
            out = []
            for r in reqs:
                bar.check()
                out.append(api.run_simulate(replace(r, n_jobs=self.threads()), bar)[0]
                           .to_dict())
            return {"loops": out} if many else out[0]

        return await wait(self.scheduler.submit(f"simulate:{key_hash(key)}", compute, client))

    async def table(self, cells: list[EstimateRequest], client: str = "") -> dict | Job:
        """A table whose missing cells are at most ``sync_cells``, answered (the
        ``TableOut`` body); a longer one as a queued :class:`Job` of ``client``."""
        stored = await asyncio.to_thread(self.stored_rows, cells)
        self.check_budget(cells, stored)
        missing = sum(r is None for r in stored)
        if missing > self.limits.sync_cells:
            job = Job(cells, stored, client)
            self.add_job(job, client)
            return job
        if missing == 0:
            return self.run_cells(cells, stored)
        fut = self.scheduler.submit(f"table:{uuid.uuid4().hex}",
                                    lambda: self.run_cells(cells, stored), client)
        return await wait(fut)

    def run_cells(self, cells: list[EstimateRequest], results: list,
                  job: Job | None = None) -> dict:
        """Compute the missing cells of a table, in order; the ``TableOut`` body."""
        t0 = time.perf_counter()
        rows = list(results)
        bar = self._progress(job)
        for i, c in enumerate(cells):
            if rows[i] is None:
                bar.check()
                rows[i] = api.run_estimate(self._now(c), self.store, bar).to_dict()
                if job is not None:
                    job.done += 1
        p = cells[0].params
        return {"d": p.d, "metric": p.metric, "cov_estimator": p.cov_estimator,
                "cells": len(cells), "rows": rows,
                "from_store": all(r is not None for r in results),
                "seconds": time.perf_counter() - t0}

    async def threshold_grid(self, cells: list[ThresholdRequest],
                             client: str = "") -> list[ThresholdResult]:
        """Every cell's threshold: from the store, the missing ones computed in turn
        as one computation of ``client`` (as ``ess heatmap`` would)."""
        def load() -> list[ThresholdResult | None]:
            return [api.load_stored("threshold", ThresholdResult, c.key(), self.store)
                    for c in cells]

        found = await asyncio.to_thread(load)
        if all(r is not None for r in found):
            return found

        def compute() -> list[ThresholdResult]:
            bar = self._progress()
            out = list(found)
            for i, c in enumerate(cells):
                if out[i] is None:
                    bar.check()
                    out[i] = api.run_threshold(self._now(c), self.store, bar)
            return out

        return await wait(self.scheduler.submit(f"grid:{uuid.uuid4().hex}", compute, client))

    def stored_rows(self, cells: list[EstimateRequest]) -> list[dict | None]:
        """Each cell's stored estimate (``EstimateOut`` body), or ``None``."""
        hits = [api.load_stored("estimate", EstimateResult, c.key(), self.store)
                for c in cells]
        return [None if h is None else h.to_dict() for h in hits]

    def run_job(self, job: Job) -> None:
        """Body of a job's worker: compute, then record the outcome."""
        if not job.start():
            return
        try:
            job.finish("done", result=self.run_cells(job.cells, job.results, job))
        except ComputationCancelledError:
            job.finish("cancelled")
        except Exception as e:   # recorded for GET /v1/jobs/{id}; the server goes on
            job.finish("failed", error=f"{type(e).__name__}: {e}")

    def add_job(self, job: Job, client: str = "") -> None:
        """Queue ``job`` for ``client`` (``QueueFullError`` if there is no room) and
        forget the oldest finished jobs beyond ``job_history``."""
        job.future = self.scheduler.submit(f"job:{job.id}", lambda: self.run_job(job), client)
        self.jobs[job.id] = job
        self.forget_jobs()

    def forget_jobs(self, now: float | None = None) -> None:
        """Forget finished jobs older than ``job_ttl`` and the oldest finished ones
        beyond ``job_history``."""
        now = time.time() if now is None else now
        ttl = self.limits.job_ttl
        for j in [j for j in self.jobs.values() if j.status in Job.FINAL
                  and j.finished is not None and now - j.finished > ttl]:
            self.jobs.pop(j.id, None)
        finished = [j for j in self.jobs.values() if j.status in Job.FINAL]
        for j in finished[:max(0, len(self.jobs) - self.limits.job_history)]:
            self.jobs.pop(j.id, None)

    def job_of(self, job_id: str, client: str) -> Job:
        """The job ``job_id`` of ``client``.

        Raises
        ------
        KeyError
            No such job (or it was forgotten).
        PermissionError
            The job is another client's.
        """
        self.forget_jobs()
        job = self.jobs.get(job_id)
        if job is None:
            raise KeyError(job_id)
        if job.owner != client:
            raise PermissionError(job_id)
        return job

    async def reference_curve(self, d: int, metric: str, cov_estimator: str,
                              client: str = "") -> dict:
        """The ``ReferenceOut`` body: :data:`REFERENCE_N` and every other cached point
        of the reference curve, at :data:`REFERENCE_PRECISION`'s tier."""
        self.check_d(d, "query")
        t0 = time.perf_counter()
        args = (d, metric, cov_estimator, REFERENCE_PRECISION)
        points = await asyncio.to_thread(self.reference_points, *args, compute=False)
        cached = points is not None
        if not cached:
            key = f"reference:{d}:{metric}:{cov_estimator}:{tier_for(REFERENCE_PRECISION)}"
            points = await wait(self.scheduler.submit(key, lambda: self.reference_points(*args),
                                                      client))
        return {"d": d, "metric": metric, "cov_estimator": cov_estimator,
                "rel_precision": REFERENCE_PRECISION, "tier": tier_for(REFERENCE_PRECISION),
                "points": points, "from_store": cached, "seconds": time.perf_counter() - t0}

    def reference_points(self, d: int, metric: str, cov_estimator: str, rel_precision: float,
                         compute: bool = True) -> list[dict] | None:
        """Points of the reference curve: :data:`REFERENCE_N` and every other cached one.

        With ``compute`` false, ``None`` unless every point of
        :data:`REFERENCE_N` is cached already.
        """
        p = loop_params(d, 2, 0, 1.0, 2, "fresh", 1, metric, cov_estimator)
        curve = reference_for(p, rel_precision, self.threads(), self._progress())
        if not compute and not all(n in curve.points for n in REFERENCE_N):
            return None
        for n in REFERENCE_N:
            curve.value(n)
        curve.save()
        return [{"n": n, "f": v[0] * p.dist_factor, "se": v[1] * p.dist_factor}
                for n, v in sorted(curve.points.items())]

    def stop_now(self) -> None:
        """Take nothing new, cancel queued jobs at once and running work at its next
        chunk of chains (on a stop signal, before the server waits for its open
        requests). A queued job ends ``cancelled`` here: its worker will not run it."""
        self.scheduler.stopping.set()
        for job in list(self.jobs.values()):
            job.stop()

    def shutdown(self) -> None:
        """:meth:`stop_now`, then wait for the computing threads."""
        self.stop_now()
        self.scheduler.shutdown()


_KINDS = {"estimate": (EstimateResult, api.run_estimate),
          "threshold": (ThresholdResult, api.run_threshold)}
