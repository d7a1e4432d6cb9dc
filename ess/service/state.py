"""The state of one ``ess serve`` server (:class:`Service`): its store, its limits,
its computing threads and its jobs; and the checks that turn a request body into
a request object (:mod:`ess.request`) within this server's limits.

Nothing here knows about HTTP: the routes (:mod:`ess.service.app`) reach the
service through a dependency and map its exceptions to answers.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from concurrent.futures import CancelledError, Future
from dataclasses import replace
from typing import Any

from pydantic import BaseModel

from ess import api, config, defaults
from ess.chains import chunk_size
from ess.limits import Limits
from ess.params import (
    LoopParams,
    ParameterError,
    check_exclusive_lam,
    infer_d,
    lam_from_guidance,
    loop_params,
)
from ess.plan import (
    bisect_int,
    chain_budget,
    chain_cost,
    generations_for,
    pilot_chunks,
    search_evaluations,
    work_limit,
)
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
from ess.service.scheduler import QueueDeadlineError, Scheduler, ShuttingDownError
from ess.solve import reference_for
from ess.store import ResultStore, key_hash

#: Points of the reference curve that ``GET /v1/reference`` always reports.
REFERENCE_N = defaults.REFERENCE_N
#: ``GET /v1/reference`` reports the curve at the precision tier that serves
#: the default ``rel_precision`` (finer tiers are computed by the estimates
#: that need them, within their limits).
REFERENCE_PRECISION = defaults.REL_PRECISION
#: Work bound of a ``GET /v1/reference`` computation, for the queue's ``Retry-After``:
#: each point of :data:`REFERENCE_N` within its budget.
REFERENCE_WORK = config.MAX_REFERENCE_WORK * len(REFERENCE_N)
#: Seconds between two looks, while a request waits, at its client (gone?) and at
#: its queue deadline.
POLL_SECONDS = 0.2

#: A function telling whether the client of a request has gone (disconnected).
Gone = Callable[[], Awaitable[bool]]


class ClientGoneError(Exception):
    """The client of a request disconnected while it waited: its computation left the
    queue, or stops at its next chunk of chains (when nobody else waits for it)."""


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


async def wait_in_queue(scheduler: Scheduler, fut: Future, gone: Gone | None = None) -> Any:
    """The result of a computation on ``scheduler``, looking every
    :data:`POLL_SECONDS` at its queue deadline and at its client.

    Raises
    ------
    QueueDeadlineError
        When it waited for a worker longer than the scheduler's
        ``queue_deadline`` (it leaves the queue).
    ClientGoneError
        When ``gone()`` says the client left (the computation leaves the queue,
        or stops at its next chunk, unless another client waits for it).
    """
    scheduler.join(fut)
    left = False
    deadline = scheduler.queue_deadline
    waiting = asyncio.wrap_future(fut)
    try:
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=POLL_SECONDS)
            if done:
                try:
                    return waiting.result()
                except (CancelledError, asyncio.CancelledError,    # stopping, or expired
                        ComputationCancelledError):                # before it started
                    if scheduler.stopping.is_set():
                        raise ShuttingDownError("the server is stopping") from None
                    raise QueueDeadlineError(deadline or 0.0, deadline or 0.0,
                                             scheduler.retry_after()) from None
            waited = scheduler.waited(fut)
            if (deadline is not None and waited is not None and waited > deadline
                    and scheduler.expire(fut)):
                raise QueueDeadlineError(waited, deadline, scheduler.retry_after())
            if gone is not None and await gone():
                left = True
                raise ClientGoneError("the client left")
    finally:
        scheduler.leave(fut, gone=left)
        if not waiting.done():   # read its outcome later, so that none is logged as lost
            waiting.add_done_callback(lambda f: f.cancelled() or f.exception())


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
        self.scheduler = Scheduler(limits.workers, limits.max_queue, limits.max_per_client,
                                   limits.queue_deadline)
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
        threshold, one evaluation at its cap).

        When a first round of chains of the main plan would not fit the request's
        work budget ``max_work``, the computation runs a shorter first round and
        then stops at that budget (:func:`ess.solve.run_limit`), which is then
        the bound (a cold start at large ``d``: a full ``sigma_r`` at ``d = 100``).
        """
        return Service._bound(*Service._plan(req, threshold), req.max_chains, req.max_work)

    @staticmethod
    def _plan(req: EstimateRequest, threshold: bool = False) -> tuple[LoopParams, int, int]:
        """The configuration, generations per chain and configurations in lockstep of
        the dearest computation of ``req`` (for a threshold, an evaluation at its cap)."""
        p, n_values = req.params, 1
        if threshold:   # its most expensive evaluation is at the cap, two configurations
            p, n_values = replace(p, n_s=req.cap), 2
        return p, generations_for(p, req.rel_precision), n_values

    @staticmethod
    def _bound(p: LoopParams, n_gen: int, n_values: int, max_chains: int,
               max_work: float) -> float:
        """Work units of one computation planned by :meth:`_plan` at its chain budget."""
        try:
            chains = chain_budget(p, n_gen, max_chains, n_values, max_work)
        except ParameterError:
            return work_limit(max_work)
        return chains * chain_cost(p, n_gen, n_values)

    def largest_max_chains(self, reqs: list[EstimateRequest]) -> int | None:
        """The largest ``max_chains`` with which ``reqs`` (cells of one request, each
        with its own ``max_chains`` over it) fit ``max_request_work`` together, from
        their plans; ``None`` when not even a first round of chains does."""
        plans = [(self._plan(r, isinstance(r, ThresholdRequest)),
                  search_evaluations(r.cap) if isinstance(r, ThresholdRequest) else 1,
                  r.max_work) for r in reqs]
        low = max(pilot_chunks(p.d, nv) * chunk_size(p.d) for (p, _, nv), _, _ in plans)
        top = max(r.max_chains for r in reqs)

        def fits(m: int) -> bool:
            return sum(k * self._bound(p, g, nv, m, mw)
                       for (p, g, nv), k, mw in plans) <= self.limits.max_request_work

        if low >= top or not fits(low):
            return None
        return bisect_int(lambda m: not fits(m), low, top)[0]

    @classmethod
    def request_work(cls, req: EstimateRequest) -> float:
        """Work units a checked request may need in all, bounded from its plan before
        anything runs: an estimate's :meth:`work`; a threshold search's most
        evaluations (:func:`ess.plan.search_evaluations`) times the bound of one
        at its cap (the dearest: an evaluation's chains grow with ``n_s``)."""
        if isinstance(req, ThresholdRequest):
            return search_evaluations(req.cap) * cls.work(req, threshold=True)
        return cls.work(req)

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

    def check_request_work(self, req: EstimateRequest) -> float:
        """Refuse one estimate or threshold search to compute (not in the store) that
        may need more than ``max_request_work`` in all; its work bound when not
        refused. A search's evaluations run under a share of the limit
        (:meth:`shared`), so it is refused only when that share falls below the
        least work budget :data:`ess.config.MIN_WORK`."""
        lim = self.limits.max_request_work
        total = self.request_work(req)
        if total <= lim:
            return total
        if not isinstance(req, ThresholdRequest):
            raise LimitError("max_chains", "max_request_work",
                             f"max_chains is too large for this server: the estimate may need "
                             f"{total:.3g} work units, over the limit max_request_work = "
                             f"{lim:.3g} (--max-request-work); lower max_chains, n_s or d, or "
                             "raise rel_precision")
        raise LimitError("cap", "max_request_work",
                         f"cap = {req.cap} is too large for one request on this server: its "
                         f"search may make {search_evaluations(req.cap)} evaluations, and "
                         f"max_request_work = {lim:.3g} (--max-request-work) shared among "
                         f"them leaves each less than the least work budget "
                         f"{config.MIN_WORK:g}; lower cap or raise --max-request-work")

    def shared(self, kws: list[dict]) -> list[ThresholdRequest]:
        """Threshold searches (their arguments), validated; a search whose worst case
        is over ``max_request_work`` has each evaluation held to its share of it.

        A search's work is bounded before it runs by its most evaluations
        (:func:`ess.plan.search_evaluations`) times one evaluation's bound, and from
        ``d = 10`` on one evaluation at the package's chain budget may need all of
        ``max_work``: refusing such searches would refuse the default search at
        ``d = 50``. Instead each evaluation of such a search stops at
        ``max_request_work / search_evaluations(cap)`` work units, which the answer
        reports (``max_work``, ``budget_note`` when an evaluation stopped there,
        ``cap_lowered_from`` when a default cap was lowered to fit it), so one search
        fits the limit whatever it asks. A search within the limit keeps the
        package's ``max_work``, so its answer is the command line's, bit for bit. The
        share depends on the search alone, not on the request it came in: a threshold
        heatmap's cell and the same ``/v1/threshold`` are one store entry (the
        calculator page posts the cells one by one, then draws the figure from the
        store); a grid's cells to compute are then summed by :meth:`check_budget`.
        Below :data:`ess.config.MIN_WORK` a search is left as it is, for
        :meth:`check_request_work` to refuse.

        Raises
        ------
        LimitError
            Naming ``cap`` and ``max_request_work`` when a given cap's first round of
            chains does not fit the share.
        """
        lim = self.limits.max_request_work
        out = []
        for kw in kws:
            req = self._threshold(kw)
            share = lim / search_evaluations(req.cap)
            if self.request_work(req) > lim and config.MIN_WORK <= share < req.max_work:
                try:
                    req = self._threshold({**kw, "max_work": share})
                except ParameterError as e:
                    raise LimitError("cap", "max_request_work",
                                     f"cap is too large for one request on this server: each "
                                     f"evaluation of its search runs under a share "
                                     f"{share:.3g} of max_request_work = {lim:.3g} "
                                     f"(--max-request-work), and {e}; lower cap or raise "
                                     "--max-request-work") from None
            out.append(req)
        return out

    def check_budget(self, cells: list[EstimateRequest], stored: list) -> float:
        """Refuse a table or threshold grid whose cells to compute (``None`` in
        ``stored``) may need more than ``max_request_work`` in all (cheap: no cell
        runs); their work bound when not refused."""
        todo = [c for c, r in zip(cells, stored) if r is None]
        total = sum(self.request_work(c) for c in todo)
        lim = self.limits.max_request_work
        if total > lim:
            searches = isinstance(cells[0], ThresholdRequest)
            axes = "n_r and lam" if searches else "n_r, n_s and lam"
            post = ("post its cells one by one to /v1/threshold first (the figure then reads "
                    "them from the store), or " if searches else "")
            most = self.largest_max_chains(todo)
            chains = "" if most is None else f"the largest max_chains within it is {most}; "
            raise LimitError("n_r", "max_request_work",
                             f"{axes} span too much work for one request on this "
                             f"server: its {len(todo)} cells to compute may need {total:.3g} "
                             f"work units in all, over the limit max_request_work = {lim:.3g} "
                             f"(--max-request-work); {chains}split the grid, or {post}lower "
                             "max_chains, n_s or d, or raise rel_precision")
        return total

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
        """Validate a threshold as the Python API does, then this server's limits;
        its evaluations are held to their share of ``max_request_work``
        (:meth:`shared`)."""
        return self.shared([kw])[0]

    def _threshold(self, kw: dict) -> ThresholdRequest:
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
        return self.shared([dict(kw, n_r=a, lam=c) for a in n_r for c in lam])

    # answers ------------------------------------------------------------------------
    def threads(self) -> int:
        """Threads for a computation starting now: the cores shared by those running
        (numbers never depend on it)."""
        return max(1, config.default_jobs() // max(1, self.scheduler.running))

    def _now(self, req: EstimateRequest) -> EstimateRequest:
        """``req`` with the thread count chosen at start."""
        return req.with_jobs(self.threads())

    def _progress(self, cancel: threading.Event | None = None) -> Progress:
        """A silent progress whose hook stops the computation at its next chunk when
        the server stops or ``cancel`` is set (a job cancelled, a client gone)."""
        stop = self.scheduler.stopping
        if cancel is None:
            return Progress(enabled=False, cancelled=stop.is_set)
        return Progress(enabled=False, cancelled=lambda: stop.is_set() or cancel.is_set())

    async def compute(self, key: str, fn: Callable[[Progress], Any], client: str = "",
                      work: float = 0.0, gone: Gone | None = None) -> Any:
        """``fn(progress)`` on a worker (or the identical computation under way), for a
        waiting client: out of the queue past the queue deadline or when the client
        leaves, stopped at its next chunk when every client waiting for it left.

        Parameters
        ----------
        key : str
            Identifies the computation (:meth:`Scheduler.submit`).
        fn : callable
            The computation, given the :class:`Progress` whose hook it checks.
        client : str
            Who asks (counted by the fair queue).
        work : float
            Its work bound, for ``Retry-After``.
        gone : callable, optional
            Tells whether the client disconnected.

        Raises
        ------
        QueueDeadlineError, ClientGoneError
            See :func:`wait_in_queue`.
        """
        cancel = threading.Event()
        fut = self.scheduler.submit(key, lambda: fn(self._progress(cancel)), client, work,
                                    cancel)
        return await wait_in_queue(self.scheduler, fut, gone)

    async def answer(self, kind: str, req: EstimateRequest, client: str = "",
                     gone: Gone | None = None) -> dict:
        """The stored answer, or one computed on a worker (and stored).

        Parameters
        ----------
        kind : {"estimate", "threshold"}
            The question.
        req : EstimateRequest or ThresholdRequest
            Checked by :meth:`check_estimate` or :meth:`check_threshold`.
        client : str
            Who asks (counted by the fair queue while computing).
        gone : callable, optional
            Tells whether the client disconnected (:meth:`compute`).

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
        work = await asyncio.to_thread(self.check_request_work, req)
        out = await self.compute(f"{kind}:{key_hash(k)}",
                                 lambda bar: run(self._now(req), self.store, bar), client,
                                 work, gone)
        return out.to_dict()

    async def simulate(self, reqs: list[SimulateRequest], many: bool, client: str = "",
                       gone: Gone | None = None) -> dict:
        """The ``SimulateOut`` body of a checked simulation (:meth:`check_simulate`), or
        for a list of loops the ``SimulateLoopsOut`` body ``{"loops": [...]}``, computed
        on a worker (:meth:`compute`: out of the queue past its deadline or when the
        client leaves; nothing is stored: trajectories are cheap next to limits;
        identical requests running at once share one computation)."""
        key = {"simulate": [r.key() for r in reqs], "many": many}

        def run(bar: Progress) -> dict:
            out = []
            for r in reqs:
                bar.check()
                out.append(api.run_simulate(replace(r, n_jobs=self.threads()), bar)[0]
                           .to_dict())
            return {"loops": out} if many else out[0]

        work = sum(simulate_work(r.params, r.chains, r.generations) for r in reqs)
        return await self.compute(f"simulate:{key_hash(key)}", run, client, work, gone)

    async def table(self, cells: list[EstimateRequest], client: str = "",
                    gone: Gone | None = None) -> dict | Job:
        """A table whose missing cells are at most ``sync_cells``, answered (the
        ``TableOut`` body); a longer one as a queued :class:`Job` of ``client``."""
        stored = await asyncio.to_thread(self.stored_rows, cells)
        work = await asyncio.to_thread(self.check_budget, cells, stored)
        missing = sum(r is None for r in stored)
        if missing > self.limits.sync_cells:
            job = Job(cells, stored, client)
            self.add_job(job, client, work)
            return job
        if missing == 0:
            return self.run_cells(cells, stored)
        return await self.compute(f"table:{uuid.uuid4().hex}",
                                  lambda bar: self.run_cells(cells, stored, bar=bar), client,
                                  work, gone)

    def run_cells(self, cells: list[EstimateRequest], results: list,
                  job: Job | None = None, bar: Progress | None = None) -> dict:
        """Compute the missing cells of a table, in order; the ``TableOut`` body."""
        t0 = time.perf_counter()
        rows = list(results)
        if bar is None:
            bar = self._progress(None if job is None else job.cancel)
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

    async def threshold_grid(self, cells: list[ThresholdRequest], client: str = "",
                             gone: Gone | None = None) -> list[ThresholdResult]:
        """Every cell's threshold: from the store, the missing ones computed in turn
        as one computation of ``client`` (as ``ess heatmap`` would), within
        ``max_request_work`` in all."""
        def load() -> list[ThresholdResult | None]:
            return [api.load_stored("threshold", ThresholdResult, c.key(), self.store)
                    for c in cells]

        found = await asyncio.to_thread(load)
        if all(r is not None for r in found):
            return found
        work = await asyncio.to_thread(self.check_budget, cells, found)

        def compute(bar: Progress) -> list[ThresholdResult]:
            out = list(found)
            for i, c in enumerate(cells):
                if out[i] is None:
                    bar.check()
                    out[i] = api.run_threshold(self._now(c), self.store, bar)
            return out

        return await self.compute(f"grid:{uuid.uuid4().hex}", compute, client, work, gone)

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

    def add_job(self, job: Job, client: str = "", work: float = 0.0) -> None:
        """Queue ``job`` for ``client`` (``QueueFullError`` if there is no room), with
        its work bound ``work``, and forget the oldest finished jobs beyond
        ``job_history``. Nobody waits for a job: no queue deadline applies to it, and
        jobs run on at most ``workers - 1`` workers (:class:`Scheduler`)."""
        job.future = self.scheduler.submit(f"job:{job.id}", lambda: self.run_job(job), client,
                                           work, job.cancel, background=True)
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
                              client: str = "", gone: Gone | None = None) -> dict:
        """The ``ReferenceOut`` body: :data:`REFERENCE_N` and every other cached point
        of the reference curve, at :data:`REFERENCE_PRECISION`'s tier."""
        self.check_d(d, "query")
        t0 = time.perf_counter()
        args = (d, metric, cov_estimator, REFERENCE_PRECISION)
        points = await asyncio.to_thread(self.reference_points, *args, compute=False)
        cached = points is not None
        if not cached:
            lim = self.limits.max_request_work
            if REFERENCE_WORK > lim:
                raise LimitError("d", "max_request_work",
                                 f"the reference curve at d = {d} is not cached and computing "
                                 f"it may need {REFERENCE_WORK:.3g} work units, over the limit "
                                 f"max_request_work = {lim:.3g} of this server "
                                 "(--max-request-work)", "query")
            key = f"reference:{d}:{metric}:{cov_estimator}:{tier_for(REFERENCE_PRECISION)}"
            points = await self.compute(key, lambda bar: self.reference_points(*args, bar=bar),
                                        client, REFERENCE_WORK, gone)
        return {"d": d, "metric": metric, "cov_estimator": cov_estimator,
                "rel_precision": REFERENCE_PRECISION, "tier": tier_for(REFERENCE_PRECISION),
                "points": points, "from_store": cached, "seconds": time.perf_counter() - t0}

    def reference_points(self, d: int, metric: str, cov_estimator: str, rel_precision: float,
                         compute: bool = True, bar: Progress | None = None
                         ) -> list[dict] | None:
        """Points of the reference curve: :data:`REFERENCE_N` and every other cached one.

        With ``compute`` false, ``None`` unless every point of
        :data:`REFERENCE_N` is cached already.
        """
        p = loop_params(d, 2, 0, 1.0, 2, "fresh", 1, metric, cov_estimator)
        curve = reference_for(p, rel_precision, self.threads(), bar or self._progress())
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
