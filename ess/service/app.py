"""The FastAPI application of ``ess serve``: routers, refusals, and :func:`create_app`.

Routes reach the server's state, a :class:`~ess.service.state.Service`, through
the dependency :func:`get_service` (``app.state.service``), so the routers are
module-level objects shared by every application. Request bodies are checked
twice: by their models (:mod:`ess.service.schemas`: types and the package's
ranges) and then by the service (the same validation as the Python API, then
this server's :class:`~ess.limits.Limits`). Every refusal is a ``422`` whose
``loc`` is ``["body" or "query", field]`` and whose message names the field, and
the limit when the request is over one (``type`` is then ``limit.<name>``).
"""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import numba
import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware

from ess import __version__, config, defaults
from ess.limits import Limits
from ess.params import COV_ESTIMATORS, METRICS, ParameterError, check_float, check_int
from ess.progress import ComputationCancelledError
from ess.reference import points_computed
from ess.request import is_loop_list
from ess.service.auth import TokenGate, Tokens
from ess.service.guard import ECHO, LOCAL_HOSTS, Guard, cors_options, host_names, shorten
from ess.service.jobs import Job
from ess.service.memory import process_memory
from ess.service.pages import FIGURE_TYPES, add_pages, threshold_heatmap
from ess.service.scheduler import QueueDeadlineError, QueueFullError, ShuttingDownError
from ess.service.schemas import (
    EstimateIn,
    EstimateOut,
    HealthOut,
    JobOut,
    MessageOut,
    ReferenceOut,
    SimulateIn,
    SimulateLoopsOut,
    SimulateOut,
    TableIn,
    TableOut,
    ThresholdGridIn,
    ThresholdIn,
    ThresholdOut,
    ValidationOut,
    VersionOut,
    field_ranges,
)
from ess.service.state import ClientGoneError, FieldError, Service
from ess.store import ResultStore


def get_service(request: Request) -> Service:
    """The :class:`Service` of the application serving ``request`` (a dependency)."""
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]

#: Published in ``/openapi.json`` so that ``/docs`` offers to send a token; the
#: check itself is :class:`~ess.service.auth.TokenGate`'s, before any route.
_bearer = HTTPBearer(auto_error=False, scheme_name="token",
                     description="an access token of this server (ess serve --token-file); "
                                 "not needed when the server runs without tokens")


def get_client(request: Request,
               _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> str:
    """Who sent ``request`` (a dependency): ``token NAME``, or ``address HOST`` on a
    server without tokens (set by :class:`~ess.service.auth.TokenGate`)."""
    return request.state.client


ClientDep = Annotated[str, Depends(get_client)]

_REFUSED = {422: {"model": ValidationOut, "description": "bad input or over a server limit"}}
_BUSY = {429: {"model": MessageOut, "description": "queue full; see Retry-After"},
         503: {"model": MessageOut, "description": "waited in the queue past the queue "
                                                   "deadline, or the server is stopping; "
                                                   "see Retry-After"}}
_HOST = {421: {"model": MessageOut, "description": "a Host name this server does not answer "
                                                 "to (see --allow-host)"}}
_BODY = {413: {"model": MessageOut, "description": "body over the limit max_body_kb"},
         415: {"model": MessageOut, "description": "body not sent as application/json"}}
_NO_JOB = {404: {"model": MessageOut, "description": "no such job"},
           403: {"model": MessageOut, "description": "another client's job, or not one of "
                                                     "this server's tokens"}}
_TOKEN = {401: {"model": MessageOut, "description": "no access token (a server with tokens)"},
          403: {"model": MessageOut, "description": "not one of this server's tokens"}}


# -- computing endpoints -------------------------------------------------------------------
computing = APIRouter(prefix="/v1", tags=["computations"],
                      responses={**_REFUSED, **_BUSY, **_TOKEN, **_HOST, **_BODY})


@computing.post("/estimate", response_model=EstimateOut, response_description="the estimate",
                summary="limit WD(n_r, n_s, lam) and the effective sample size n_e")
async def estimate(body: EstimateIn, svc: ServiceDep, client: ClientDep,
                   request: Request) -> dict:
    """One loop's limit and ``n_e``: as ``ess estimate --json`` and ``ess.estimate``."""
    return await svc.answer("estimate", svc.check_estimate(svc.arguments(body)), client,
                            request.is_disconnected)


@computing.post("/threshold", response_model=ThresholdOut,
                response_description="the threshold", summary="admissible threshold "
                                                             "n_s*(n_r, lam)")
async def threshold(body: ThresholdIn, svc: ServiceDep, client: ClientDep,
                    request: Request) -> dict:
    """The largest ``n_s`` with ``n_e >= n_r``: as ``ess threshold --json``; the whole
    search within the server's ``max_request_work``."""
    return await svc.answer("threshold", svc.check_threshold(svc.arguments(body)), client,
                            request.is_disconnected)


@computing.post("/simulate", response_model=SimulateOut | SimulateLoopsOut,
                responses={200: {"description": "per-generation rows with n_e(t); for a "
                                                "list of loops, {\"loops\": [one per loop]}"}},
                summary="trajectories of any loop kind, per generation, with n_e(t)")
async def simulate(body: SimulateIn, svc: ServiceDep, client: ClientDep,
                   request: Request) -> dict:
    """``chains`` trajectories of ``generations`` generations of one loop (or of each
    of a list), summarised per generation with ``n_e(t)`` and intervals: as ``ess
    simulate --json`` and ``ess.simulate``. The accumulate loops, which have no limit
    for ``/v1/estimate``, are answered here. Checked before running: the server's
    ``max_chains``, ``max_work`` per loop and ``max_request_work`` over the list, and
    the memory bound of ``accumulate-subsample``'s sample pools."""
    kw = svc.arguments(body)
    reqs = await asyncio.to_thread(svc.check_simulate, kw)
    return await svc.simulate(reqs, is_loop_list(kw.get("loop")), client, request.is_disconnected)


@computing.post("/table", response_model=TableOut | JobOut,
                responses={200: {"model": TableOut, "description": "every cell answered"},
                           202: {"model": JobOut, "description": "a job computes the table; "
                                 "follow Location (GET /v1/jobs/{id})"}},
                summary="n_e over a grid of (n_r, n_s, lam); long grids run as a job")
async def table(body: TableIn, svc: ServiceDep, client: ClientDep, request: Request) -> Any:
    """One estimate per cell, ``n_r`` outermost; tables with more than ``sync_cells``
    cells to compute answer ``202`` with a job."""
    cells = await asyncio.to_thread(svc.table_cells, svc.arguments(body))
    answer = await svc.table(cells, client, request.is_disconnected)
    if isinstance(answer, Job):
        return JSONResponse(status_code=202, content=answer.view(),
                            headers={"Location": f"/v1/jobs/{answer.id}"})
    return answer


@computing.post("/figures/threshold-heatmap",
                response_class=Response,
                responses={200: {"content": {t: {} for t in FIGURE_TYPES.values()},
                                 "description": "the figure of `ess heatmap --kind threshold`"}},
                summary="heatmap of the threshold n_s* over (n_r, lam), as ess heatmap draws "
                        "it")
async def threshold_heatmap_figure(
        body: ThresholdGridIn, svc: ServiceDep, client: ClientDep, request: Request,
        format: Annotated[Literal[tuple(FIGURE_TYPES)], Query(
            description="svg or png")] = "svg") -> Response:
    """Every cell's threshold, from the store or computed (one computation, cell after
    cell, as ``ess heatmap`` would), drawn by the code of ``ess heatmap``: the same
    cells and numbers as ``ess heatmap --kind threshold`` with the same parameters.
    Post each cell to ``/v1/threshold`` first to follow a long grid's progress."""
    cells = await asyncio.to_thread(svc.threshold_cells, svc.arguments(body))
    results = await svc.threshold_grid(cells, client, request.is_disconnected)
    image = await asyncio.to_thread(threshold_heatmap, results, format)
    return Response(image, media_type=FIGURE_TYPES[format])


def only_query(*names: str):
    """A dependency refusing unknown or repeated query parameters (a typo is not
    silently ignored)."""

    def check(request: Request) -> None:
        keys = [k for k, _ in request.query_params.multi_items()]
        for k in keys:
            if k not in names:
                raise FieldError(k, f"{k} is not a parameter of this endpoint (known: "
                                 f"{', '.join(names)})", where="query")
            if keys.count(k) > 1:
                raise FieldError(k, f"{k} must be given once, got {keys.count(k)} values",
                                 where="query")

    return check


@computing.get("/reference", response_model=ReferenceOut,
               dependencies=[Depends(only_query("d", "metric", "cov_estimator"))],
               summary="the reference curve f(n) (model fit on n real samples), at the tier "
                       "of the default rel_precision")
async def reference(
        svc: ServiceDep,
        client: ClientDep,
        request: Request,
        d: Annotated[int, Query(ge=1, le=config.MAX_D, description="dimension (a server may "
                                "accept less: see its limit max_d)")] = defaults.D,
        metric: Annotated[Literal[METRICS], Query()] = defaults.METRIC,
        cov_estimator: Annotated[Literal[COV_ESTIMATORS], Query()] = defaults.COV_ESTIMATOR,
) -> dict:
    """``f(n)`` at ``n = 2, 4, ..., 1024`` and every other cached ``n``."""
    return await svc.reference_curve(d, metric, cov_estimator, client,
                                     request.is_disconnected)


# -- jobs ----------------------------------------------------------------------------------
jobs = APIRouter(prefix="/v1/jobs", tags=["jobs"],
                 responses={**_TOKEN, **_NO_JOB, **_HOST},
                 dependencies=[Depends(get_client)])


def get_job(job_id: str, svc: ServiceDep, client: ClientDep) -> Job:
    """The job ``job_id`` (a dependency); ``404`` if there is none, ``403`` if it is
    another client's (another token, or another address on a server without tokens)."""
    try:
        return svc.job_of(job_id, client)
    except KeyError:
        raise StarletteHTTPException(
            404, f"no job with id {shorten(job_id)!r} (finished jobs are kept for "
                 f"{svc.limits.job_ttl:g} s, at most the last {svc.limits.job_history})") \
            from None
    except PermissionError:
        raise StarletteHTTPException(
            403, "this job was created by another client: only the token (or, on a server "
                 "without tokens, the address) that created a job may follow or cancel it") \
            from None


JobDep = Annotated[Job, Depends(get_job)]


@jobs.get("/{job_id}", response_model=JobOut, summary="progress and result of a table job")
async def job_status(job: JobDep) -> dict:
    """The job's status, cells done, and its table once done."""
    return job.view()


@jobs.delete("/{job_id}", response_model=JobOut,
             summary="cancel a table job (cells already computed stay in the store)")
async def cancel_job(job: JobDep, svc: ServiceDep) -> dict:
    """Cancel a queued job at once, a running one at its next chunk of chains (waited
    for up to 10 s); a finished job does not change."""
    job.stop()
    if job.future is not None:
        svc.scheduler.expire(job.future)   # a queued job frees its place at once
    for _ in range(500):
        if job.status in Job.FINAL:
            break
        await asyncio.sleep(0.02)
    return job.view()


# -- about the server ----------------------------------------------------------------------
about = APIRouter(prefix="/v1", tags=["server"], responses=_HOST)


def _known(request: Request) -> bool:
    """Whether ``request`` carries one of this server's tokens (only such clients are
    shown the store's folder and library versions)."""
    return getattr(request.state, "client", "").startswith("token ")


@about.get("/health", response_model=HealthOut, summary="liveness and load")
async def health(svc: ServiceDep, request: Request) -> dict:
    """Answered at once whatever the load. The store's folder is shown to clients
    with a token only; ``store_writable`` false means answers are computed but not
    stored (a read-only or full disk). The server's memory (current and peak
    resident MiB) is shown to every client: a load figure like ``running``, it
    names no path or version."""
    sch = svc.scheduler
    use = svc.store.usage()
    svc.forget_jobs()
    rss, peak = process_memory()
    return {"status": "stopping" if sch.stopping.is_set() else "ok",
            "running": sch.running, "queued": sch.queued, "workers": svc.limits.workers,
            "max_queue": svc.limits.max_queue, "jobs": len(svc.jobs),
            "uptime_seconds": time.time() - svc.started,
            "store": str(svc.store.root) if _known(request) else None,
            "store_bytes": use.bytes, "store_entries": use.entries,
            "store_max_bytes": svc.store.max_bytes,
            "store_writable": await asyncio.to_thread(svc.store_writable),
            "rss_mib": rss, "peak_rss_mib": peak, "curve_points_computed": points_computed(),
            "tokens": svc.tokens is not None}


@about.get("/version", response_model=VersionOut, summary="versions", responses=_TOKEN,
           response_model_exclude_none=True,
           dependencies=[Depends(get_client)])
async def version(request: Request) -> dict:
    """Versions of ess and the API; of Python, NumPy and Numba too for clients with a
    token."""
    out = {"ess": __version__, "api": "v1"}
    if _known(request):
        out.update(python=platform.python_version(), numpy=np.__version__,
                   numba=numba.__version__)
    return out


# -- refusals ------------------------------------------------------------------------------
def _refusal(loc: list, msg: str, kind: str) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": [{"loc": loc, "msg": msg,
                                                              "type": kind}]})


#: Pydantic's error types for a number outside one of its bounds.
_BOUND_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _out_of_range(name: str, error: dict) -> str | None:
    """For a number outside its field's range, the command line's sentence naming both
    ends (``lam must be a number in [0.0, 1.0], got 2``; the range from
    :func:`~ess.service.schemas.field_ranges`, the words from :mod:`ess.params`);
    ``None`` for any other error."""
    bounds = field_ranges().get(name)
    if error.get("type") not in _BOUND_ERRORS or bounds is None:
        return None
    lo, hi, integer = bounds
    try:
        if integer:
            check_int(name, error.get("input"), int(lo), int(hi))
        else:
            check_float(name, error.get("input"), float(lo), float(hi))
    except ParameterError as e:
        return shorten(str(e), 4 * ECHO)
    return None


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """A request its model refuses: each error's ``loc`` as FastAPI gives it, its
    message prefixed with the field."""
    items = []
    for e in exc.errors():   # a key or value of the request is repeated at most ECHO long
        loc = [shorten(x) if isinstance(x, str) else x if isinstance(x, int) else
               shorten(str(x)) for x in e.get("loc", ())]
        if e.get("type") == "json_invalid":
            msg = f"body: malformed JSON ({e.get('ctx', {}).get('error', 'invalid')})"
            loc = ["body"]
        else:
            names = [x for x in loc[1:] if isinstance(x, str)]
            where = names[0] if names else (loc[0] if loc else "body")
            msg = _out_of_range(where, e) or \
                f"{where}: {shorten(str(e.get('msg', 'invalid value')), 4 * ECHO)}"
        items.append({"loc": loc, "msg": msg, "type": str(e.get("type", "value_error"))})
    return JSONResponse(status_code=422, content={"detail": items})


async def _located(request: Request, exc: FieldError) -> JSONResponse:
    return _refusal([exc.where, exc.name], str(exc), exc.kind)


async def _parameter(request: Request, exc: ParameterError) -> JSONResponse:
    """The Python API's refusal, located by the parameter's name: a body field."""
    return _refusal(["body", exc.name], str(exc), "value_error")


async def _full(request: Request, exc: QueueFullError) -> JSONResponse:
    return JSONResponse(status_code=429, headers={"Retry-After": str(exc.retry_after)},
                        content={"detail": str(exc)})


async def _deadline(request: Request, exc: QueueDeadlineError) -> JSONResponse:
    return JSONResponse(status_code=503, headers={"Retry-After": str(exc.retry_after)},
                        content={"detail": str(exc)})


async def _gone(request: Request, exc: ClientGoneError) -> JSONResponse:
    """Nobody reads this answer: the client left (its computation was dropped)."""
    return JSONResponse(status_code=503, content={"detail": "the client left; its "
                                                            "computation was dropped"})


async def _stopping(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(status_code=503, headers={"Retry-After": "5"},
                        content={"detail": "the server is stopping; the computation "
                                           "was cancelled"})


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400:   # a body that is not even text (FastAPI's parse error)
        return _refusal(["body"], f"body: malformed JSON ({exc.detail})", "json_invalid")
    return JSONResponse(status_code=exc.status_code, headers=exc.headers,
                        content={"detail": str(exc.detail)})


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """At the end of the application's life, cancel running work and wait for the
    computing threads."""
    yield
    await asyncio.to_thread(app.state.service.shutdown)


def describe(limits: Limits, tokens: Tokens | None = None) -> str:
    """The API's description at ``/docs``, with this server's limits."""
    access = ("**Access**: every `/v1/` request but `/v1/health` needs the header "
              "`Authorization: Bearer <token>` with one of this server's tokens (`Authorize` "
              "above); without it the answer is `401`, with an unknown token `403`."
              if tokens is not None else
              "**Access**: this server runs without tokens; anyone who reaches it may compute.")
    return (
        "Effective sample size of self-consuming Gaussian loops: how much synthetic data "
        "can you mix into training? A calculator page is at [`/`](/), the same reference "
        "without the try-it buttons at [`/redoc`](/redoc). Field names and "
        "meanings follow the `ess` command line; "
        "the contract (model, names, defaults, JSON keys) is the project's "
        "`docs/contract.md`. Answers already computed come from the result store "
        "(`from_store`).\n\n"
        "The request schemas state the package's ranges. **This server** accepts at most "
        f"`d` = {limits.max_d} (limit `max_d`), `max_chains` = {limits.max_chains} (limit "
        f"`max_chains`, also the default when it is smaller), {limits.max_grid} cells per "
        f"table (limit `max_grid`), {limits.max_work:.3g} work units per computation "
        f"(limit `max_work`) and {limits.max_request_work:.3g} per request (limit "
        f"`max_request_work`: over a threshold search's evaluations, the cells a table or "
        f"heatmap has to compute or the loops of a simulation, bounded before anything "
        f"runs), {limits.max_rows} per-generation rows per simulation (limit `max_rows`); "
        f"over a limit the answer is `422` with `type` `limit.<name>`. It computes on "
        f"{limits.workers} workers with {limits.max_queue} places to wait (beyond, `429`; a "
        f"request waiting longer than {limits.queue_deadline:g} s gets `503`, limit "
        f"`queue_deadline`; `Retry-After` is the work queued over this server's measured "
        f"speed), at most {limits.max_per_client} running or waiting "
        f"per client (limit `max_per_client`; beyond, `429` for that client only); tables "
        f"with more than {limits.sync_cells} cells to compute run as jobs (`202`).\n\n"
        + access)


def create_app(store: ResultStore, limits: Limits | None = None,
               tokens: Tokens | None = None,
               hosts: Iterable[str] | None = LOCAL_HOSTS,
               cors_origins: Iterable[str] = ()) -> FastAPI:
    """The FastAPI application of ``ess serve``.

    Parameters
    ----------
    store : ResultStore
        Result store shared with the command line and the Python API.
    limits : Limits, optional
        What the server accepts (default :class:`Limits`).
    tokens : Tokens, optional
        Access tokens (``--token-file``): every ``/v1/`` request but
        ``/v1/health`` then needs one. Without, anyone may compute and clients
        are told apart by address.
    hosts : sequence of str or None
        ``Host`` names answered (others get ``421``; :func:`~ess.service.guard.
        host_names`); ``None`` answers any (behind a proxy that checks them).
    cors_origins : sequence of str
        Web origins whose pages may call the API (``--cors-origin``; Starlette's
        ``CORSMiddleware`` with :func:`~ess.service.guard.cors_options`); none: no
        CORS header at all.

    Returns
    -------
    FastAPI
        With the :class:`Service` as ``app.state.service``; its lifespan's end
        cancels running work and waits for the computing threads.
    """
    limits = (limits or Limits()).checked()
    svc = Service(store, limits, tokens)
    store.remove_stale_temporaries()
    store.usage()     # counted once now: /v1/health reads the count
    app = FastAPI(title="ess", version=__version__, lifespan=lifespan,
                  description=describe(limits, tokens), docs_url=None, redoc_url=None)
    app.state.service = svc
    app.add_middleware(TokenGate, tokens=tokens)
    if cors_origins:      # inside the Guard, outside the tokens: preflights carry none
        app.add_middleware(CORSMiddleware, **cors_options(cors_origins))
    app.add_middleware(Guard, hosts=None if hosts is None else host_names(extra=hosts),
                       max_body=limits.max_body_kb * 1024)   # added last: runs first
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(FieldError, _located)
    app.add_exception_handler(ParameterError, _parameter)
    app.add_exception_handler(QueueFullError, _full)
    app.add_exception_handler(ShuttingDownError, _stopping)
    app.add_exception_handler(QueueDeadlineError, _deadline)
    app.add_exception_handler(ClientGoneError, _gone)
    app.add_exception_handler(ComputationCancelledError, _stopping)
    app.add_exception_handler(StarletteHTTPException, _http)
    for router in (computing, jobs, about):
        app.include_router(router)
    add_pages(app)
    if tokens is None:
        app.openapi = _without_security(app)
    return app


def _without_security(app: FastAPI):
    """``app.openapi`` for a server without tokens: the schema states no security
    requirement (the routers declare the bearer scheme for servers with tokens)."""
    build = app.openapi

    def openapi() -> dict:
        schema = build()
        schema.get("components", {}).pop("securitySchemes", None)
        for item in schema.get("paths", {}).values():
            for op in item.values():
                if isinstance(op, dict):
                    op.pop("security", None)
                    answers = op.get("responses", {})
                    answers.pop("401", None)
                    if "another client" not in answers.get("403", {}).get("description", ""):
                        answers.pop("403", None)
        return schema

    return openapi
