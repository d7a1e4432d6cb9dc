"""Progress bars on standard error (tqdm), shown only on a terminal; also the point
where a long computation notices that it was cancelled."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tqdm import tqdm

#: Layout of the bar: no rate, since a step is a chunk of chains or a table cell,
#: whose size varies.
_BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}]"


class ComputationCancelledError(Exception):
    """The computation was cancelled (a service job deleted, or the server stopping)."""


class Progress:
    """Count finished work units and draw a bar on ``stderr``.

    Nothing is drawn unless ``enabled`` is true and standard error is a
    terminal, so piped output and ``--quiet`` stay clean; only then is ``tqdm``
    imported (about 65 ms), at the first :meth:`add_total`. Thread-safe.

    Parameters
    ----------
    desc : str
        Label in front of the bar.
    enabled : bool
        Draw the bar (on a terminal only).
    cancelled : callable, optional
        Asked at every step; when it returns true the step raises
        :class:`ComputationCancelledError`, so the computation stops between
        chunks of chains (never in the middle of writing a result).

    Attributes
    ----------
    total, done : int
        Units of work announced, and finished.
    """

    def __init__(self, desc: str = "", enabled: bool = True,
                 cancelled: Callable[[], bool] | None = None) -> None:
        self.desc = desc
        self.cancelled = cancelled
        self.enabled = bool(enabled) and sys.stderr.isatty()
        self.total = 0
        self.done = 0
        self._lock = threading.Lock()
        self._bar: tqdm | None = None

    def add_total(self, n: int) -> None:
        """Announce ``n`` more units of work."""
        self.check()
        with self._lock:
            self.total += n
            if not self.enabled:
                return
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(total=self.total, initial=self.done, desc=self.desc,
                                 file=sys.stderr, bar_format=_BAR_FORMAT, dynamic_ncols=True,
                                 mininterval=0.1, leave=True)
            else:
                self._bar.total = self.total
                self._bar.refresh()

    def update(self, n: int = 1) -> None:
        """Mark ``n`` units done."""
        self.check()
        with self._lock:
            self.done += n
            if self._bar is not None:
                self._bar.update(n)

    def check(self) -> None:
        """Raise :class:`ComputationCancelledError` if the computation was cancelled."""
        if self.cancelled is not None and self.cancelled():
            raise ComputationCancelledError("cancelled")

    def close(self) -> None:
        """Finish the bar's line (nothing if no bar was drawn)."""
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None


NULL_PROGRESS = Progress(enabled=False)
