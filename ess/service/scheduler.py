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


class Scheduler:
    """``workers`` threads, a bounded queue, and one computation per identical key.

    The queue's bookkeeping is done when a future completes, whether it ran or
    was cancelled before it started, so a cancelled job frees its place at once.
    Each client may hold at most ``max_per_client`` computations running or
    queued, so that one client filling the queue does not lock the others out;
    joining an identical computation already under way costs nothing and is
    always allowed.

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
    """

    def __init__(self, workers: int, max_queue: int, max_per_client: int | None = None) -> None:
        self.workers = workers
        self.max_queue = max_queue
        self.capacity = workers + max_queue
        self.max_per_client = max_per_client or self.capacity
        #: Set when the server stops: running computations are cancelled at their
        #: next chunk of chains, and nothing new starts.
        self.stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ess-serve")
        self._lock = threading.RLock()   # a completion callback may run inside submit()
        self._pending = 0                # queued or running
        self._started: dict[int, float] = {}   # running computations: start times
        self._inflight: dict[str, Future] = {}
        self._held: dict[str, int] = {}        # client: computations queued or running
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

        Returns
        -------
        int
            Between 1 and 300.
        """
        with self._lock:
            now = time.perf_counter()
            age = max((now - t for t in self._started.values()), default=0.0)
            waves = max(1.0, (self._pending - self.workers + 1) / self.workers)
            return int(min(300, max(1, math.ceil(max(self._mean_seconds, age) * waves))))

    def held(self, client: str) -> int:
        """Computations of ``client`` queued or running."""
        with self._lock:
            return self._held.get(client, 0)

    def submit(self, key: str, fn: Callable[[], Any], client: str = "") -> Future:
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
            if self._pending >= self.capacity:
                raise QueueFullError(self.retry_after(), self.max_queue)
            self._pending += 1
            self._held[client] = held + 1
            fut = self._pool.submit(self._run, fn)
            self._inflight[key] = fut
            fut.add_done_callback(lambda f: self._done(key, client, f))
            return fut

    def _done(self, key: str, client: str, fut: Future) -> None:
        with self._lock:
            self._pending -= 1
            left = self._held.get(client, 1) - 1
            if left > 0:
                self._held[client] = left
            else:
                self._held.pop(client, None)
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
        """Cancel what runs (at its next chunk of chains) and what waits, and wait
        for the threads. Calling it again does nothing more."""
        self.stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
