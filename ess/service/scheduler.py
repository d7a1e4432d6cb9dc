"""The computing threads of ``ess serve``: a fixed number of workers, a bounded
queue shared fairly among clients, and one computation per identical key.

The Numba kernels release the GIL while they run, so computations on these
threads leave the event loop (and ``/v1/health``) responsive.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ess.progress import ComputationCancelledError


class QueueFullError(Exception):
    """Every worker is busy and the queue is full (``429``).

    Parameters
    ----------
    retry_after : int
        Seconds after which a new request may find room (see
        :meth:`Scheduler.retry_after`).
    max_queue : int
        The server's limit on waiting computations, named in the answer.
    """

    def __init__(self, retry_after: int, max_queue: int) -> None:
        super().__init__(f"every worker is busy and the queue is full (limit max_queue = "
                         f"{max_queue}); retry in {retry_after} s")
        self.retry_after = retry_after
        self.max_queue = max_queue


class ClientBusyError(QueueFullError):
    """One client holds its share of the running and queued computations (``429``).

    Parameters
    ----------
    client : str
        Who asked (``token NAME`` or ``address HOST``).
    held : int
        Its computations running or queued.
    retry_after : int
        Seconds after which one of them may have finished.
    max_per_client : int
        The server's limit, named in the answer.
    """

    def __init__(self, client: str, held: int, retry_after: int, max_per_client: int) -> None:
        Exception.__init__(self, f"{client} already has {held} computations running or "
                           f"queued on this server (limit max_per_client = {max_per_client}); "
                           f"retry in {retry_after} s")
        self.retry_after = retry_after
        self.client = client
        self.max_per_client = max_per_client


class ShuttingDownError(Exception):
    """The server is stopping and takes no new computation (``503``)."""


class QueueDeadlineError(Exception):
    """A computation waited for a worker longer than the server's queue deadline and
    was taken out of the queue (``503``).

    Parameters
    ----------
    waited : float
        Seconds it waited.
    deadline : float
        The server's limit (``queue_deadline``), named in the answer.
    retry_after : int
        Seconds after which the queued work may have drained
        (:meth:`Scheduler.retry_after`).
    """

    def __init__(self, waited: float, deadline: float, retry_after: int) -> None:
        super().__init__(f"the computation waited {waited:.1f} s for a worker, over this "
                         f"server's limit queue_deadline = {deadline:g} s, and was taken out "
                         f"of the queue; retry in {retry_after} s")
        self.retry_after = retry_after


#: ``Retry-After`` is clamped to this range of seconds: at least a second, and at most
#: an hour (beyond, an estimate from work bounds is too rough to be worth waiting for).
RETRY_AFTER_RANGE = (1, 3600)
#: Work units per second of one worker assumed until this server has measured its own
#: (:meth:`Scheduler.throughput`): 1e9 units took 31 s at d = 10 on two cores
#: (:data:`ess.config.MAX_WORK`), the slowest of the measured dimensions.
INITIAL_THROUGHPUT = 3e7
#: Only computations that ran at least this long (seconds) update the measured
#: throughput: shorter ones are dominated by overheads.
MIN_MEASURED_SECONDS = 0.05
#: Seconds between two looks, while a computation's thread waits for a free worker, at
#: whether it was cancelled.
POLL_SLOT = 0.05


class _Task:
    """Bookkeeping of one queued or running computation."""

    __slots__ = ("key", "client", "work", "submitted", "started", "cancel", "waiters")

    def __init__(self, key: str, client: str, work: float, cancel: threading.Event) -> None:
        self.key = key
        self.client = client
        self.work = work
        self.submitted = time.monotonic()
        self.started: float | None = None
        self.cancel = cancel
        self.waiters = 0


class Scheduler:
    """``workers`` threads, a bounded queue, and one computation per identical key.

    The queue's bookkeeping is done when a future completes, whether it ran or
    was cancelled before it started, so a cancelled job frees its place at once.
    Each client may hold at most ``max_per_client`` computations running or
    queued, so that one client filling the queue does not lock the others out;
    joining an identical computation already under way costs nothing and is
    always allowed.

    Each computation carries its work bound (work units, :mod:`ess.plan`) and a
    cancellation event; the scheduler measures its own throughput (work units
    per second of one worker) from the computations that finish, so that
    :meth:`retry_after` follows the work actually queued. A computation that
    waits for a worker longer than ``queue_deadline`` is taken out of the queue
    (:meth:`expire`); one whose every waiting client has left is taken out of the
    queue, or, when running, cancelled at its next chunk of chains
    (:meth:`leave`).

    Background computations (table jobs, which nobody waits for) run on at most
    ``workers - 1`` workers at once when ``workers >= 2``, so that requests
    waiting for an answer always find a worker within the time one of them takes:
    two long tables cannot hold every worker.

    Parameters
    ----------
    workers : int
        Computations run side by side.
    max_queue : int
        Computations that may wait for a worker; beyond, :meth:`submit` raises
        :class:`QueueFullError`.
    max_per_client : int, optional
        Computations one client may hold, running or queued (default: no limit
        but the queue's).
    queue_deadline : float, optional
        Seconds a computation may wait for a worker (default: no deadline).
    """

    def __init__(self, workers: int, max_queue: int, max_per_client: int | None = None,
                 queue_deadline: float | None = None) -> None:
        self.workers = workers
        self.max_queue = max_queue
        self.capacity = workers + max_queue
        self.max_per_client = max_per_client or self.capacity
        self.queue_deadline = queue_deadline
        #: Set when the server stops: running computations are cancelled at their
        #: next chunk of chains, and nothing new starts.
        self.stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ess-serve")
        self._background = ThreadPoolExecutor(max_workers=max(1, workers - 1),
                                              thread_name_prefix="ess-serve-job")
        self._slots = threading.Semaphore(workers)   # computations running, of either pool
        self._lock = threading.RLock()   # a completion callback may run inside submit()
        self._tasks: dict[Future, _Task] = {}   # queued or running
        self._inflight: dict[str, Future] = {}
        self._held: dict[str, int] = {}        # client: computations queued or running
        self._throughput: float | None = None  # measured work units per second per worker

    @property
    def running(self) -> int:
        """Computations running now."""
        with self._lock:
            return sum(t.started is not None for t in self._tasks.values())

    @property
    def queued(self) -> int:
        """Computations waiting for a worker."""
        with self._lock:
            return sum(t.started is None for t in self._tasks.values())

    def throughput(self) -> float:
        """Work units per second of one worker: measured on this server (a moving
        average over the computations that ran at least
        :data:`MIN_MEASURED_SECONDS`), or :data:`INITIAL_THROUGHPUT` before any."""
        with self._lock:
            return self._throughput or INITIAL_THROUGHPUT

    def work_ahead(self) -> float:
        """Work units queued, plus those running computations may still need (their
        bound less what they did at the measured throughput, never below zero)."""
        with self._lock:
            now, rate = time.monotonic(), self.throughput()
            return sum(t.work if t.started is None else
                       max(0.0, t.work - rate * (now - t.started))
                       for t in self._tasks.values())

    def retry_after(self) -> int:
        """Seconds after which a refused request may find room: the work queued and
        running (:meth:`work_ahead`) over the measured throughput of ``workers``
        workers, clamped to :data:`RETRY_AFTER_RANGE`.

        Returns
        -------
        int
            Between ``RETRY_AFTER_RANGE[0]`` and ``RETRY_AFTER_RANGE[1]``.
        """
        lo, hi = RETRY_AFTER_RANGE
        seconds = self.work_ahead() / (self.throughput() * self.workers)
        return int(min(hi, max(lo, math.ceil(seconds))))

    def held(self, client: str) -> int:
        """Computations of ``client`` queued or running."""
        with self._lock:
            return self._held.get(client, 0)

    def submit(self, key: str, fn: Callable[[], Any], client: str = "", work: float = 0.0,
               cancel: threading.Event | None = None, background: bool = False) -> Future:
        """Run ``fn`` on a worker, or join the identical computation under way.

        Parameters
        ----------
        key : str
            Identifies the computation: a second ``submit`` with the key of a
            computation queued or running gets that computation's future.
        fn : callable
            The computation, called without arguments on a worker thread.
        client : str
            Who asks; counted against ``max_per_client`` until the computation
            ends.
        work : float
            Its work bound in work units (for :meth:`retry_after`).
        cancel : threading.Event, optional
            Set by :meth:`leave` when every waiting client has left a running
            computation: ``fn`` should watch it (a
            :class:`~ess.progress.Progress` hook).
        background : bool
            Nobody waits for it (a table job): it runs on at most ``workers - 1``
            workers shared by such computations.

        Returns
        -------
        concurrent.futures.Future
            Its result is ``fn()``'s.

        Raises
        ------
        ClientBusyError
            When ``client`` holds ``max_per_client`` computations already.
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
                raise ShuttingDownError("the server is stopping")
            held = self._held.get(client, 0)
            if held >= self.max_per_client:
                raise ClientBusyError(client or "this client", held, self.retry_after(),
                                      self.max_per_client)
            if len(self._tasks) >= self.capacity:
                raise QueueFullError(self.retry_after(), self.max_queue)
            self._held[client] = held + 1
            task = _Task(key, client, max(0.0, float(work)), cancel or threading.Event())
            pool = self._background if background else self._pool
            fut = pool.submit(self._run, fn, task)
            self._tasks[fut] = task
            self._inflight[key] = fut
            fut.add_done_callback(self._done)
            return fut

    def join(self, fut: Future) -> None:
        """A client waits for ``fut`` (see :meth:`leave`)."""
        with self._lock:
            task = self._tasks.get(fut)
            if task is not None:
                task.waiters += 1

    def leave(self, fut: Future, gone: bool = False) -> None:
        """A client stops waiting for ``fut``. When ``gone`` (it disconnected) and it
        was the last one waiting, the computation leaves the queue, or, when running,
        is cancelled at its next chunk of chains."""
        with self._lock:
            task = self._tasks.get(fut)
            if task is None:
                return
            task.waiters -= 1
            if gone and task.waiters <= 0:
                task.cancel.set()   # a running computation stops at its next chunk
                if task.started is None:
                    fut.cancel()
                    self._forget(fut)

    def waited(self, fut: Future) -> float | None:
        """Seconds ``fut`` has waited for a worker; ``None`` once started or ended."""
        with self._lock:
            task = self._tasks.get(fut)
            if task is None or task.started is not None:
                return None
            return time.monotonic() - task.submitted

    def expire(self, fut: Future) -> bool:
        """Take ``fut`` out of the queue if it is still waiting for a worker.

        Returns
        -------
        bool
            Whether it was taken out (false once it started or ended).
        """
        with self._lock:
            task = self._tasks.get(fut)
            if task is None or task.started is not None:
                return False
            task.cancel.set()   # a thread waiting for a worker sees it, and never runs it
            fut.cancel()
            self._forget(fut)   # its place in the queue is free at once
            return True

    def _done(self, fut: Future) -> None:
        with self._lock:
            self._forget(fut)

    def _forget(self, fut: Future) -> None:
        """Free the place of ``fut`` in the queue and in its client's share (once)."""
        with self._lock:
            task = self._tasks.pop(fut, None)
            if task is None:
                return
            left = self._held.get(task.client, 1) - 1
            if left > 0:
                self._held[task.client] = left
            else:
                self._held.pop(task.client, None)
            if self._inflight.get(task.key) is fut:
                del self._inflight[task.key]

    def _run(self, fn: Callable[[], Any], task: _Task) -> Any:
        # wait for a slot (still queued: expire() and leave() may take it out)
        while not self._slots.acquire(timeout=POLL_SLOT):
            if self.stopping.is_set() or task.cancel.is_set():
                raise ComputationCancelledError("cancelled while queued")
        try:
            with self._lock:
                task.started = time.monotonic()
            if self.stopping.is_set():
                raise ComputationCancelledError("the server is stopping")
            if task.cancel.is_set():
                raise ComputationCancelledError("cancelled while queued")
            out = fn()
            dt = time.monotonic() - task.started
            if task.work > 0.0 and dt >= MIN_MEASURED_SECONDS:
                with self._lock:
                    rate = task.work / dt
                    self._throughput = rate if self._throughput is None else \
                        math.exp(0.8 * math.log(self._throughput) + 0.2 * math.log(rate))
            return out
        finally:
            self._slots.release()

    def shutdown(self) -> None:
        """Cancel what runs (at its next chunk of chains) and what waits, and wait
        for the threads. Calling it again does nothing more."""
        self.stopping.set()
        self._background.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True, cancel_futures=True)
