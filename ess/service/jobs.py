"""Tables computed in the background: ``POST /v1/table`` answers ``202`` with a
job, followed at ``GET /v1/jobs/{id}`` and cancelled by ``DELETE``."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import Future
from typing import ClassVar

from ess.request import EstimateRequest


class Job:
    """A table computed cell by cell on one worker.

    Its status moves ``queued -> running -> done | failed | cancelled`` or
    ``queued -> cancelled``, under a lock: a finished job never changes again.

    Parameters
    ----------
    cells : list of EstimateRequest
        The table's cells, in the table's order.
    results : list
        Each cell's stored answer (``EstimateOut`` body), or ``None`` for a
        cell to compute.
    owner : str
        The client that created it (``token NAME`` or ``address HOST``): the
        only one that may follow or cancel it.
    """

    #: Statuses after which a job never changes.
    FINAL: ClassVar[tuple[str, ...]] = ("done", "failed", "cancelled")

    def __init__(self, cells: list[EstimateRequest], results: list[dict | None],
                 owner: str = "") -> None:
        self.id = uuid.uuid4().hex
        self.owner = owner
        self.cells = cells
        self.results = results
        self.status = "queued"
        self.done = sum(r is not None for r in results)
        self.created = time.time()
        self.started: float | None = None
        self.finished: float | None = None
        self.result: dict | None = None
        self.error: str | None = None
        #: Set to stop the job at its next chunk of chains.
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
        """``running -> status``, with the table (``TableOut`` body) or the error."""
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
        """The job as a ``JobOut`` body."""
        with self._lock:
            return {"id": self.id, "status": self.status, "done": self.done,
                    "total": len(self.cells), "created": self.created,
                    "started": self.started, "finished": self.finished,
                    "result": self.result, "error": self.error}
