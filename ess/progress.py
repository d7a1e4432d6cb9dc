"""A minimal progress bar on standard error, shown only on a terminal; also the
point where a long computation notices that it was cancelled."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable


class ComputationCancelledError(Exception):
    """The computation was cancelled (a service job deleted, or the server stopping)."""


class Progress:
    """Count finished work units and draw a bar on ``stderr``.

    Nothing is drawn unless ``enabled`` is true and standard error is a
    terminal, so piped output and ``--quiet`` stay clean. Thread-safe.

    ``cancelled``, if given, is asked at every step; when it returns true the
    step raises :class:`ComputationCancelledError`, so the computation stops between chunks of
    chains (never in the middle of writing a result).
    """

    def __init__(self, desc: str = "", enabled: bool = True,
                 cancelled: Callable[[], bool] | None = None) -> None:
        self.desc = desc
        self.cancelled = cancelled
        self.enabled = bool(enabled) and sys.stderr.isatty()
        self.total = 0
        self.done = 0
        self._lock = threading.Lock()
        self._last = 0.0
        self._start = time.perf_counter()

    def add_total(self, n: int) -> None:
        """Announce ``n`` more units of work."""
        self.check()
        with self._lock:
            self.total += n
        self._draw(force=True)

    def update(self, n: int = 1) -> None:
        """Mark ``n`` units done."""
        self.check()
        with self._lock:
            self.done += n
        self._draw()

    def check(self) -> None:
        """Raise :class:`ComputationCancelledError` if the computation was cancelled."""
        if self.cancelled is not None and self.cancelled():
            raise ComputationCancelledError("cancelled")

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.1 and self.done < self.total:
            return
        self._last = now
        total = max(self.total, 1)
        frac = min(self.done / total, 1.0)
        width = 30
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        sys.stderr.write(f"\r{self.desc} [{bar}] {self.done}/{self.total} "
                         f"{now - self._start:6.1f}s")
        sys.stderr.flush()

    def close(self) -> None:
        """Finish the line."""
        if self.enabled and self.total:
            self._draw(force=True)
            sys.stderr.write("\n")
            sys.stderr.flush()


NULL_PROGRESS = Progress(enabled=False)
