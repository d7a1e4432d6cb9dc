"""The estimator as a service: ``ess serve``, an HTTP JSON API (FastAPI on uvicorn).

One process answers every request. Answers come from the result store
(:mod:`ess.store`) when it has them; otherwise they are computed by a fixed
number of worker threads (``workers``), since the Numba kernels release the GIL
while they run, so the event loop, and ``/v1/health``, stay responsive. Requests
beyond the workers wait in a bounded queue; when it is full the answer is
``429`` with ``Retry-After``. Identical computations asked for at the same time
run once. Tables too long to answer at once run as jobs (``202`` and a job id).

Every request field is checked twice: by its JSON schema (types and the
package's ranges, published at ``/openapi.json`` and ``/docs``) and by the same
validation as the Python API. Either failure, and a request over one of the
server's :class:`Limits`, gets ``422`` with a message naming the field or the
limit, never ``500``.
"""

from __future__ import annotations

import asyncio
import math
import os
import platform
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Annotated, Any, Literal

import numba
import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException

from ess import __version__, api, config, defaults
from ess.limits import Limits
from ess.params import ParameterError, loop_params
from ess.plan import chain_budget, chain_cost, generations_for
from ess.progress import ComputationCancelledError, Progress
from ess.reference import tier_for
from ess.request import EstimateRequest, ThresholdRequest, estimate_request, threshold_request
from ess.results import EstimateResult, ThresholdResult
from ess.solve import reference_for
from ess.store import ResultStore, key_hash

#: Points of the reference curve that ``GET /v1/reference`` always reports.
REFERENCE_N = defaults.REFERENCE_N
#: ``GET /v1/reference`` reports the curve at the precision tier that serves
#: the default ``rel_precision`` (finer tiers are computed by the estimates
#: that need them, within their limits).
REFERENCE_PRECISION = defaults.REL_PRECISION


class FieldError(ParameterError):
    """A bad request field, located (``where`` is ``body`` or ``query``)."""

    def __init__(self, field: str, message: str, where: str = "body",
                 kind: str = "value_error") -> None:
        super().__init__(field, message)
        self.field = field
        self.where = where
        self.kind = kind


class LimitError(FieldError):
    """A request is over one of the server's limits."""

    def __init__(self, field: str, limit: str, message: str) -> None:
        super().__init__(field, message, "body", kind=f"limit.{limit}")


class QueueFullError(Exception):
    """Every worker is busy and the queue is full."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("queue full")
        self.retry_after = retry_after


class ShuttingDownError(Exception):
    """The server is stopping and takes no new computation."""


# -- the computing threads ---------------------------------------------------------------
class Scheduler:
    """``workers`` threads, a bounded queue, and one computation per identical key.

    The queue's bookkeeping is done when a future completes, whether it ran or
    was cancelled before it started, so a cancelled job frees its place at once.
    """

    def __init__(self, workers: int, max_queue: int) -> None:
        self.workers = workers
        self.capacity = workers + max_queue
        self.stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ess-serve")
        self._lock = threading.RLock()   # a completion callback may run inside submit()
        self._pending = 0                # queued or running
        self._started: dict[int, float] = {}   # running computations: start times
        self._inflight: dict[str, Future] = {}
        self._mean_seconds = 1.0

    @property
    def running(self) -> int:
        """Computations running now."""
        return len(self._started)

    @property
    def queued(self) -> int:
        """Computations waiting for a worker."""
        return self._pending - len(self._started)

    def retry_after(self) -> int:
        """Seconds after which a refused request may find room (a rough estimate).

        A computation is taken to last the longer of the recent mean and the age
        of the oldest one running; the queue drains ``workers`` at a time.
        """
        with self._lock:
            now = time.perf_counter()
            age = max((now - t for t in self._started.values()), default=0.0)
            waves = max(1.0, (self._pending - self.workers + 1) / self.workers)
            return int(min(300, max(1, math.ceil(max(self._mean_seconds, age) * waves))))

    def submit(self, key: str, fn: Callable[[], Any]) -> Future:
        """Run ``fn`` on a worker, or join the identical computation under way.

        Raises
        ------
        QueueFullError
            When every worker is busy and the queue is full.
        ShuttingDownError
            When the server is stopping.
        """
        with self._lock:
            fut = self._inflight.get(key)
            if fut is not None:
                return fut
            if self.stopping.is_set():
                raise ShuttingDownError()
            if self._pending >= self.capacity:
                raise QueueFullError(self.retry_after())
            self._pending += 1
            fut = self._pool.submit(self._run, fn)
            self._inflight[key] = fut
            fut.add_done_callback(lambda f: self._done(key, f))
            return fut

    def _done(self, key: str, fut: Future) -> None:
        with self._lock:
            self._pending -= 1
            if self._inflight.get(key) is fut:
                del self._inflight[key]

    def _run(self, fn: Callable[[], Any]) -> Any:
        me = threading.get_ident()
        with self._lock:
            self._started[me] = time.perf_counter()
        try:
            if self.stopping.is_set():
                raise ComputationCancelledError("the server is stopping")
            return fn()
        finally:
            with self._lock:
                dt = time.perf_counter() - self._started.pop(me)
                self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * dt

    def shutdown(self) -> None:
        """Cancel what runs (at its next chunk of chains) and wait for the threads."""
        self.stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


# -- request and response schemas -------------------------------------------------------
def _int(default, lo: int, hi: int, doc: str):
    return Field(default, strict=True, ge=lo, le=hi, description=doc)


def _float(default, lo: float, hi: float | None, doc: str):
    return Field(default, strict=True, ge=lo, le=hi, allow_inf_nan=False, description=doc)


Finite = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Count = Annotated[int, Field(strict=True, ge=0, le=config.MAX_COUNT)]
RealCount = Annotated[int, Field(strict=True, ge=2, le=config.MAX_COUNT)]
Lam = Annotated[float, Field(strict=True, ge=0.0, le=1.0, allow_inf_nan=False)]
Guidance = Annotated[float, Field(strict=True, ge=0.0, le=1e12, allow_inf_nan=False)]
Memory = Annotated[int, Field(strict=True, ge=1, le=config.MAX_GENERATIONS)] | Literal["all"]
Vector = Annotated[list[Finite], Field(min_length=1, max_length=config.MAX_D)]


class _In(BaseModel):
    """Fields shared by every computing request (SPEC section 5)."""

    model_config = ConfigDict(extra="forbid")

    d: int = _int(defaults.D, 1, config.MAX_D, "dimension")
    n_ini: int | None = Field(None, strict=True, ge=2, le=config.MAX_COUNT,
                              description="size of the first real set (default n_r)")
    memory: Memory = Field(1, description="past models feeding synthetic data: K or 'all'")
    metric: Literal["w2sq", "w2"] = Field("w2sq", description="distance to P_r")
    cov_estimator: Literal["unbiased", "mle"] = Field("unbiased",
                                                      description="covariance divisor")
    seed: int = _int(defaults.SEED, 0, 2**63 - 1, "seed: same seed, same numbers")
    rel_precision: float = _float(defaults.REL_PRECISION, 1e-4, 0.5,
                                  "wanted relative 95% half-width on n_e")
    max_chains: int = _int(defaults.MAX_CHAINS, 1, config.MAX_CHAINS, "chain budget")
    mu_r: Vector | None = Field(None, description="reference mean (default 0)")
    sigma_r: Vector | Annotated[list[Vector], Field(min_length=1, max_length=config.MAX_D)] \
        | None = Field(None, description="reference covariance: diagonal, or full matrix "
                                         "(default identity)")


class EstimateIn(_In):
    """``POST /v1/estimate``."""

    n_r: int = _int(defaults.N_R, 2, config.MAX_COUNT, "real samples per generation")
    n_s: int = _int(defaults.N_S, 0, config.MAX_COUNT, "synthetic samples per generation")
    lam: Lam | None = Field(None, description="sampling bias in [0, 1] (default 1)")
    guidance: Guidance | None = Field(None, description="or guidance w: lam = 1/(1+w)")
    loop: Literal["fresh", "augmentation"] = Field("fresh", description="loop kind")


class ThresholdIn(_In):
    """``POST /v1/threshold``."""

    n_r: int = _int(defaults.N_R, 2, config.MAX_COUNT, "real samples per generation")
    lam: Lam | None = Field(None, description="sampling bias in [0, 1] (default 0.9)")
    guidance: Guidance | None = Field(None, description="or guidance w: lam = 1/(1+w)")
    cap: int | None = Field(None, strict=True, ge=1, le=config.MAX_COUNT,
                            description="largest n_s searched (default 100 n_r, lowered "
                                        "where too expensive)")


class TableIn(_In):
    """``POST /v1/table``: every ``(n_r, n_s, lam)`` of a grid."""

    n_r: list[RealCount] = Field(list(defaults.TABLE_N_R), min_length=1, max_length=config.MAX_GRID,
                                 description="real samples per generation: the grid's values")
    n_s: list[Count] = Field(list(defaults.TABLE_N_S), min_length=1, max_length=config.MAX_GRID,
                             description="synthetic samples per generation: the grid's values")
    lam: list[Lam] | None = Field(None, min_length=1, max_length=config.MAX_GRID,
                                  description="sampling biases: the grid's values "
                                              "(default [1, 0.9, 0.7])")
    guidance: list[Guidance] | None = Field(None, min_length=1, max_length=config.MAX_GRID,
                                            description="or guidance values w: lam = 1/(1+w)")


#: Request fields bounded by a server limit, and the limit.
_LIMITED = {"d": "max_d", "max_chains": "max_chains"}


def _bounded(model: type[BaseModel], limits: Limits) -> type[BaseModel]:
    """``model`` with ``d`` and ``max_chains`` bounded by this server's limits, so that
    its schema (``/docs``) and its messages state the ranges this server accepts.

    ``max_chains`` defaults to the package default or the server's limit if smaller.
    """
    d = model.model_fields["d"]
    mc = model.model_fields["max_chains"]
    top = min(config.DEFAULT_MAX_CHAINS, limits.max_chains)
    return create_model(
        model.__name__, __base__=model, __doc__=model.__doc__,
        d=(int, _int(1, 1, limits.max_d, f"{d.description} (this server: at most "
                     f"max_d = {limits.max_d})")),
        max_chains=(int, _int(top, 1, limits.max_chains, f"{mc.description} (this server: "
                              f"at most max_chains = {limits.max_chains})")))


Num = float | None   # a number, or null where it is not finite
Pair = Annotated[list[Num], Field(min_length=2, max_length=2)]


class EstimateOut(BaseModel):
    """An estimate: the keys of ``ess estimate --json`` and ``from_store``."""

    d: int
    n_r: int
    n_s: int
    lam: float
    loop: str
    metric: str
    cov_estimator: str
    memory: int | str
    n_ini: int
    seed: int
    rel_precision: float
    wd: Num
    wd_se: Num
    wd_ci: Pair
    n_e: Num
    n_e_ci: Pair | None
    n_e_over_n_r: Num
    n_e_over_n_r_ci: Pair | None
    n_e_rel_halfwidth: Num
    chains: int
    generations: int
    burn_in: int
    precision_reached: bool
    converged: bool
    drift_z: Num
    seconds: float
    note: str
    from_store: bool
    verdict: str


class ScanRow(BaseModel):
    """One evaluated ``n_s`` of a threshold search."""

    n_s: int
    excess: Num
    excess_se: Num
    excess_ci: Pair


class ThresholdOut(BaseModel):
    """A threshold: the keys of ``ess threshold --json`` and ``from_store``."""

    d: int
    n_r: int
    lam: float
    metric: str
    cov_estimator: str
    memory: int | str
    seed: int
    rel_precision: float
    n_s_star: int | None
    n_s_star_ci: Annotated[list[int | None], Field(min_length=2, max_length=2)]
    cap: int
    evaluations: int
    precision_reached: bool
    seconds: float
    scan: list[ScanRow]
    note: str
    from_store: bool


class TableOut(BaseModel):
    """A table: one estimate per cell, ``n_r`` outermost, then ``n_s``, then ``lam``."""

    d: int
    metric: str
    cov_estimator: str
    cells: int
    rows: list[EstimateOut]
    from_store: bool = Field(description="every cell came from the store")
    seconds: float


class JobOut(BaseModel):
    """A table computed in the background."""

    id: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    done: int = Field(description="cells finished")
    total: int = Field(description="cells in all")
    created: float = Field(description="Unix time")
    started: float | None
    finished: float | None
    result: TableOut | None
    error: str | None


class RefPoint(BaseModel):
    """``f(n)`` and its standard error."""

    n: int
    f: float
    se: float


class ReferenceOut(BaseModel):
    """The cached reference curve ``f(n)`` of one model class."""

    d: int
    metric: str
    cov_estimator: str
    rel_precision: float = Field(description="the curve serves estimates at this precision")
    tier: float = Field(description="precision tier of the curve's points")
    points: list[RefPoint]
    from_store: bool = Field(description="every reported point was already cached")
    seconds: float


class HealthOut(BaseModel):
    """Liveness and load."""

    status: Literal["ok", "stopping"]
    running: int
    queued: int
    workers: int
    max_queue: int
    jobs: int
    uptime_seconds: float
    store: str


class VersionOut(BaseModel):
    """Versions of ess and of what computes its numbers."""

    ess: str
    api: str
    python: str
    numpy: str
    numba: str


class ErrorItem(BaseModel):
    """One reason a request was refused."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationOut(BaseModel):
    """Body of a ``422``."""

    detail: list[ErrorItem]


class MessageOut(BaseModel):
    """Body of a ``404``, ``429`` or ``503``."""

    detail: str


_REFUSED = {422: {"model": ValidationOut, "description": "bad input or over a server limit"}}
_BUSY = {429: {"model": MessageOut, "description": "queue full; see Retry-After"},
         503: {"model": MessageOut, "description": "the server is stopping"}}
_NO_JOB = {404: {"model": MessageOut, "description": "no such job"}}

def _refusal(loc: list, msg: str, kind: str) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": [{"loc": loc, "msg": msg,
                                                              "type": kind}]})


# -- jobs --------------------------------------------------------------------------------
class Job:
    """A table computed cell by cell on one worker.

    Its status moves ``queued -> running -> done | failed | cancelled`` or
    ``queued -> cancelled``, under a lock: a finished job never changes again.
    """

    FINAL = ("done", "failed", "cancelled")

    def __init__(self, cells: list[tuple], results: list) -> None:
        self.id = uuid.uuid4().hex
        self.cells = cells
        self.results = results     # stored rows, or None for cells to compute
        self.status = "queued"
        self.done = sum(r is not None for r in results)
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self.result: dict | None = None
        self.error: str | None = None
        self.cancel = threading.Event()
        self.future: Future | None = None
        self._lock = threading.Lock()

    def start(self) -> bool:
        """``queued -> running``; false (and ``cancelled``) if it was cancelled first."""
        with self._lock:
            if self.status != "queued":
                return False
            if self.cancel.is_set():
                self._end("cancelled")
                return False
            self.status, self.started = "running", time.time()
            return True

    def finish(self, status: str, result: dict | None = None, error: str | None = None) -> None:
        """``running -> status`` (with the table or the error)."""
        with self._lock:
            if self.status == "running":
                self.result, self.error = result, error
                self._end(status)

    def stop(self) -> None:
        """Ask the job to stop: a queued job is cancelled at once and frees its place
        in the queue; a running one stops at its next chunk of chains."""
        self.cancel.set()
        with self._lock:
            if self.status == "queued":
                self._end("cancelled")
                if self.future is not None:
                    self.future.cancel()

    def _end(self, status: str) -> None:
        self.status = status
        if self.finished is None:
            self.finished = time.time()

    def view(self) -> dict:
        """The job as ``JobOut``."""
        with self._lock:
            return {"id": self.id, "status": self.status, "done": self.done,
                    "total": len(self.cells), "created": self.created,
                    "started": self.started, "finished": self.finished,
                    "result": self.result, "error": self.error}


# -- the service -------------------------------------------------------------------------
class Service:
    """State of one server: store, limits, computing threads and jobs."""

    def __init__(self, store: ResultStore, limits: Limits) -> None:
        self.store = store
        self.limits = limits
        self.scheduler = Scheduler(limits.workers, limits.max_queue)
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.started = time.time()

    # checks -------------------------------------------------------------------------
    def _over(self, req: EstimateRequest, threshold: bool = False) -> None:
        """Refuse a checked request over ``max_chains`` or ``max_work`` (``max_d`` is in
        the request schemas, :func:`_bounded`)."""
        p, mc = req.params, req.max_chains
        lim = self.limits
        if mc > lim.max_chains:
            raise LimitError("max_chains", "max_chains",
                             f"max_chains must be at most {lim.max_chains} on this server "
                             f"(limit max_chains; allowed range [1, {lim.max_chains}]), "
                             f"got {mc}")
        n_values = 1
        if threshold:   # its most expensive evaluation is at the cap, two configurations
            p, n_values = replace(p, n_s=req.cap), 2
        rel = req.rel_precision
        n_gen = generations_for(p, rel)
        work = chain_budget(p, n_gen, mc, n_values) * chain_cost(p, n_gen, n_values)
        if work > lim.max_work:
            field = "cap" if threshold else "max_chains"
            raise LimitError(field, "max_work",
                             f"{field} is too large for this server: the request may need "
                             f"{work:.3g} work units at its chain budget, over the limit "
                             f"max_work = {lim.max_work:.3g}; lower max_chains"
                             f"{', cap' if threshold else ''}, n_s or d, or raise "
                             "rel_precision")

    def check_estimate(self, body: dict) -> EstimateRequest:
        """Validate an estimate request as the Python API does, then the limits."""
        req = estimate_request(**body, n_jobs=1)
        self._over(req)
        return req

    def check_threshold(self, body: dict) -> ThresholdRequest:
        """Validate a threshold request as the Python API does, then the limits."""
        req = threshold_request(**body, n_jobs=1)
        self._over(req, threshold=True)
        return req

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

    async def answer(self, kind: str, req: EstimateRequest) -> dict:
        """The stored answer, or one computed on a worker (and stored)."""
        cls, run = _KINDS[kind]
        k = req.key()
        hit = await asyncio.to_thread(api.load_stored, kind, cls, k, self.store)
        if hit is not None:
            return hit.to_dict()
        fut = self.scheduler.submit(f"{kind}:{key_hash(k)}",
                                    lambda: run(self._now(req), self.store,
                                                self._progress()))
        return (await _wait(fut)).to_dict()

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

    def stored_rows(self, cells: list[EstimateRequest]) -> list:
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

    def add_job(self, job: Job) -> None:
        """Queue ``job`` (``QueueFullError`` if there is no room) and forget the oldest
        finished jobs beyond ``job_history``."""
        job.future = self.scheduler.submit(f"job:{job.id}", lambda: self.run_job(job))
        self.jobs[job.id] = job
        finished = [j for j in self.jobs.values() if j.status in Job.FINAL]
        for j in finished[:max(0, len(self.jobs) - self.limits.job_history)]:
            self.jobs.pop(j.id, None)

    def reference(self, d: int, metric: str, cov_estimator: str, rel_precision: float,
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

    def shutdown(self) -> None:
        """Cancel running and queued work and wait for the threads."""
        for job in list(self.jobs.values()):
            job.stop()
        self.scheduler.shutdown()


_KINDS = {"estimate": (EstimateResult, api.run_estimate),
          "threshold": (ThresholdResult, api.run_threshold)}


def _only_known_query(request: Request, names: tuple[str, ...]) -> None:
    """Refuse unknown or repeated query parameters (a typo is not silently ignored)."""
    keys = [k for k, _ in request.query_params.multi_items()]
    for k in keys:
        if k not in names:
            raise FieldError(k, f"{k} is not a parameter of this endpoint (known: "
                             f"{', '.join(names)})", where="query")
        if keys.count(k) > 1:
            raise FieldError(k, f"{k} must be given once, got {keys.count(k)} values",
                             where="query")


class _JsonBodies:
    """ASGI middleware: every POST body is read as JSON whatever its ``Content-Type``.

    ``curl -d '{...}'`` labels its JSON as a form; without this, such a request
    would be refused with a message about dictionaries rather than answered.
    """

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-type"]
            scope = dict(scope, headers=[*headers, (b"content-type", b"application/json")])
        await self.app(scope, receive, send)


async def _wait(fut: Future) -> Any:
    """The result of a computation, without letting a cancelled request cancel it:
    other identical requests may be waiting for the same future."""
    return await asyncio.shield(asyncio.wrap_future(fut))


def _body(model: BaseModel) -> dict:
    """Request fields as keyword arguments of the Python API (unset optionals dropped)."""
    return {k: v for k, v in model.model_dump().items() if v is not None}


def create_app(store: ResultStore, limits: Limits | None = None) -> FastAPI:
    """The FastAPI application of ``ess serve``.

    Parameters
    ----------
    store : ResultStore
        Result store shared with the command line and the Python API.
    limits : Limits, optional
        What the server accepts (default :class:`Limits`).

    Returns
    -------
    FastAPI
        With the :class:`Service` as ``app.state.service``.
    """
    limits = (limits or Limits()).checked()
    svc = Service(store, limits)
    store.remove_stale_temporaries()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await asyncio.to_thread(svc.shutdown)

    app = FastAPI(title="ess", version=__version__, lifespan=lifespan,
                  description="Effective sample size of self-consuming Gaussian loops: "
                              "how much synthetic data can you mix into training? Field "
                              "names and meanings follow the `ess` command line "
                              "(SPEC section 5). Answers already computed come from the "
                              "result store (`from_store`).")
    app.state.service = svc
    app.add_middleware(_JsonBodies)

    # -- refusals ---------------------------------------------------------------------
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        items = []
        for e in exc.errors():
            loc = [x if isinstance(x, (str, int)) else str(x) for x in e.get("loc", ())]
            if e.get("type") == "json_invalid":
                msg = f"body: malformed JSON ({e.get('ctx', {}).get('error', 'invalid')})"
                loc = ["body"]
            else:
                names = [x for x in loc[1:] if isinstance(x, str)]
                where = names[0] if names else (loc[0] if loc else "body")
                msg = f"{where}: {e.get('msg', 'invalid value')}"
                if e.get("type") == "less_than_equal" and len(loc) == 2 and where in _LIMITED:
                    msg += f" (this server's limit {_LIMITED[where]})"
            items.append({"loc": loc, "msg": msg, "type": str(e.get("type", "value_error"))})
        return JSONResponse(status_code=422, content={"detail": items})

    @app.exception_handler(FieldError)
    async def _located(request: Request, exc: FieldError) -> JSONResponse:
        return _refusal([exc.where, exc.field], str(exc), exc.kind)

    @app.exception_handler(ParameterError)
    async def _param(request: Request, exc: ParameterError) -> JSONResponse:
        return _refusal(["body", exc.name], str(exc), "value_error")

    @app.exception_handler(QueueFullError)
    async def _full(request: Request, exc: QueueFullError) -> JSONResponse:
        return JSONResponse(status_code=429, headers={"Retry-After": str(exc.retry_after)},
                            content={"detail": f"every worker is busy and the queue is full "
                                               f"(limit max_queue = {limits.max_queue}); "
                                               f"retry in {exc.retry_after} s"})

    @app.exception_handler(ShuttingDownError)
    @app.exception_handler(ComputationCancelledError)
    async def _stopping(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=503, headers={"Retry-After": "5"},
                            content={"detail": "the server is stopping; the computation "
                                               "was cancelled"})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:   # a body that is not even text (FastAPI's parse error)
            return _refusal(["body"], f"body: malformed JSON ({exc.detail})", "json_invalid")
        return JSONResponse(status_code=exc.status_code, headers=exc.headers,
                            content={"detail": str(exc.detail)})

    # -- computing endpoints ----------------------------------------------------------
    # The request models carry this server's limits; FastAPI reads a body's model from
    # the endpoint's annotation, so each endpoint is given its model before routing.
    def post(path: str, model: type[BaseModel], **kw):
        def route(fn):
            fn.__annotations__["body"] = _bounded(model, limits)
            return app.post(path, **kw)(fn)
        return route

    @post("/v1/estimate", EstimateIn, response_model=EstimateOut,
          responses={**_REFUSED, **_BUSY}, response_description="the estimate",
          summary="limit WD(n_r, n_s, lam) and the effective sample size n_e")
    async def estimate(body) -> dict:
        return await svc.answer("estimate", svc.check_estimate(_body(body)))

    @post("/v1/threshold", ThresholdIn, response_model=ThresholdOut,
          responses={**_REFUSED, **_BUSY}, response_description="the threshold",
          summary="admissible threshold n_s*(n_r, lam)")
    async def threshold(body) -> dict:
        return await svc.answer("threshold", svc.check_threshold(_body(body)))

    @post("/v1/table", TableIn, response_model=TableOut | JobOut,
          responses={200: {"model": TableOut, "description": "every cell answered"},
                     202: {"model": JobOut, "description": "a job computes the table; "
                           "follow Location (GET /v1/jobs/{id})"},
                     **_REFUSED, **_BUSY},
          summary="n_e over a grid of (n_r, n_s, lam); long grids run as a job")
    async def table(body) -> Any:
        kw = _body(body)
        axes = {k: kw.pop(k) for k in ("d", "n_r", "n_s")}
        if "guidance" in kw:
            from ess.params import lam_from_guidance

            lam = [lam_from_guidance(w) for w in kw.pop("guidance")]
            if "lam" in kw:
                raise ParameterError("guidance", "give either lam or guidance, not both")
        else:
            lam = kw.pop("lam", list(defaults.TABLE_LAM))
        size = len(axes["n_r"]) * len(axes["n_s"]) * len(lam)
        if size > limits.max_grid:   # before building any cell
            raise LimitError("n_r", "max_grid", f"n_r, n_s and lam must span at most "
                             f"{limits.max_grid} cells on this server (limit max_grid), "
                             f"got {size} = len(n_r) x len(n_s) x len(lam)")

        def check() -> tuple[list, list]:
            cells = api.table_cells(axes["d"], axes["n_r"], axes["n_s"], lam, **kw)
            checked = [svc.check_estimate(c) for c in cells]
            return checked, svc.stored_rows(checked)

        checked, stored = await asyncio.to_thread(check)
        missing = sum(r is None for r in stored)
        if missing <= limits.sync_cells:
            if missing == 0:
                return svc.run_cells(checked, stored)
            fut = svc.scheduler.submit(f"table:{uuid.uuid4().hex}",
                                       lambda: svc.run_cells(checked, stored))
            return await _wait(fut)
        job = Job(checked, stored)
        svc.add_job(job)
        return JSONResponse(status_code=202, content=job.view(),
                            headers={"Location": f"/v1/jobs/{job.id}"})

    @app.get("/v1/jobs/{job_id}", response_model=JobOut, responses=_NO_JOB,
             summary="progress and result of a table job")
    async def get_job(job_id: str) -> dict:
        return _job(job_id).view()

    @app.delete("/v1/jobs/{job_id}", response_model=JobOut, responses=_NO_JOB,
                summary="cancel a table job (cells already computed stay in the store)")
    async def delete_job(job_id: str) -> dict:
        job = _job(job_id)
        job.stop()
        for _ in range(500):   # a running job stops at its next chunk of chains
            if job.status in Job.FINAL:
                break
            await asyncio.sleep(0.02)
        return job.view()

    def _job(job_id: str) -> Job:
        job = svc.jobs.get(job_id)
        if job is None:
            raise StarletteHTTPException(404, f"no job with id {job_id!r} (finished jobs are "
                                              f"kept for the last {limits.job_history})")
        return job

    @app.get("/v1/reference", response_model=ReferenceOut, responses={**_REFUSED, **_BUSY},
             summary="the reference curve f(n) (model fit on n real samples), at the tier "
                     "of the default rel_precision")
    async def reference(
            request: Request,
            d: int = Query(1, ge=1, le=limits.max_d,
                           description=f"dimension (this server: at most max_d = "
                                       f"{limits.max_d})"),
            metric: Annotated[Literal["w2sq", "w2"], Query()] = "w2sq",
            cov_estimator: Annotated[Literal["unbiased", "mle"], Query()] = "unbiased",
    ) -> dict:
        _only_known_query(request, ("d", "metric", "cov_estimator"))
        t0 = time.perf_counter()
        rel_precision = REFERENCE_PRECISION
        args = (d, metric, cov_estimator, rel_precision)
        points = await asyncio.to_thread(svc.reference, *args, compute=False)
        cached = points is not None
        if not cached:
            key = f"reference:{d}:{metric}:{cov_estimator}:{tier_for(rel_precision)}"
            points = await _wait(svc.scheduler.submit(key, lambda: svc.reference(*args)))
        return {"d": d, "metric": metric, "cov_estimator": cov_estimator,
                "rel_precision": rel_precision, "tier": tier_for(rel_precision),
                "points": points, "from_store": cached, "seconds": time.perf_counter() - t0}

    # -- about the server -------------------------------------------------------------
    @app.get("/v1/health", response_model=HealthOut, summary="liveness and load")
    async def health() -> dict:
        sch = svc.scheduler
        return {"status": "stopping" if sch.stopping.is_set() else "ok",
                "running": sch.running, "queued": sch.queued, "workers": limits.workers,
                "max_queue": limits.max_queue, "jobs": len(svc.jobs),
                "uptime_seconds": time.time() - svc.started, "store": str(store.root)}

    @app.get("/v1/version", response_model=VersionOut, summary="versions")
    async def version() -> dict:
        return {"ess": __version__, "api": "v1", "python": platform.python_version(),
                "numpy": np.__version__, "numba": numba.__version__}

    return app


def serve(host: str = "127.0.0.1", port: int = 8000, store: str | os.PathLike | None = None,
          limits: Limits | None = None, log_level: str = "warning") -> int:
    """Run the server until interrupted (``ess serve``); returns the exit status.

    Binds the socket before starting, so that a busy port is one clear error;
    ``port = 0`` picks a free port. The first line on standard output is
    ``ess serve: listening on http://HOST:PORT``. ``log_level`` is uvicorn's
    (``"info"`` adds a line per request on standard error).
    """
    import socket
    import sys

    import uvicorn

    from ess.store import default_store_dir

    root = store if store is not None else default_store_dir()
    if root is None:
        raise ParameterError("store", "store must be a folder for ess serve (ESS_STORE is 'off'); "
                             "give --store DIR")
    rs = ResultStore(root)
    try:
        rs.root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ParameterError("store", f"store must be a writable folder; cannot create "
                             f"{str(rs.root)!r} ({e.strerror})") from None
    app = create_app(rs, limits)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off only for sockets that
    # say TCP, and with it on every small response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as e:
        sock.close()
        raise ParameterError("port", f"host and port must name a free local address; cannot listen "
                             f"on {host}:{port} ({getattr(e, 'strerror', None) or e})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    print(f"ess serve: listening on http://{shown}:{bound} (docs at /docs), store "
          f"{rs.root}, {app.state.service.limits.workers} workers", flush=True)
    svc: Service = app.state.service

    class _Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:   # cancel computations at once
            svc.scheduler.stopping.set()
            for job in svc.jobs.values():
                job.cancel.set()
            super().handle_exit(sig, frame)
            # a graceful stop is a normal end (exit status 0): do not re-raise the signal
            self._captured_signals.clear()

    import copy

    logs = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)   # every log line on stderr:
    logs["handlers"]["access"]["stream"] = "ext://sys.stderr"   # stdout has the banner only
    cfg = uvicorn.Config(app, log_level=log_level, log_config=logs,
                         timeout_graceful_shutdown=30, lifespan="on")
    server = _Server(cfg)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    print("ess serve: stopped", file=sys.stderr, flush=True)
    return 0


__all__ = ["Limits", "create_app", "serve"]
