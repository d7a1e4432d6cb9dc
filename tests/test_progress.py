"""Progress bars: drawn only on a terminal, and the point where cancellation stops work."""

import io
import threading

import pytest

from ess.chains import run_parallel
from ess.progress import ComputationCancelledError, Progress


class _Terminal(io.StringIO):
    """A standard error that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_nothing_is_written_when_stderr_is_not_a_terminal(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    bar = Progress("x", enabled=True)
    assert not bar.enabled
    bar.add_total(3)
    bar.update(3)
    bar.close()
    assert err.getvalue() == ""
    assert (bar.total, bar.done) == (3, 3)


def test_nothing_is_written_when_disabled_even_on_a_terminal(monkeypatch):
    err = _Terminal()
    monkeypatch.setattr("sys.stderr", err)
    bar = Progress("x", enabled=False)
    bar.add_total(2)
    bar.update(2)
    bar.close()
    assert err.getvalue() == ""


def test_a_bar_is_drawn_on_a_terminal_and_follows_a_growing_total(monkeypatch):
    err = _Terminal()
    monkeypatch.setattr("sys.stderr", err)
    bar = Progress("estimate", enabled=True)
    bar.add_total(4)
    bar.update(4)
    bar.add_total(4)      # a second round of chains
    bar.update(4)
    bar.close()
    out = err.getvalue()
    assert "estimate" in out and "8/8" in out and "100%" in out
    assert out.endswith("\n")


def test_cancellation_stops_between_steps():
    stop = threading.Event()
    bar = Progress(enabled=False, cancelled=stop.is_set)
    bar.add_total(1)
    bar.update()
    stop.set()
    for step in (bar.check, bar.update, lambda: bar.add_total(1)):
        with pytest.raises(ComputationCancelledError):
            step()
    assert bar.done == 1


def test_a_cancelled_computation_skips_the_chunks_not_yet_started():
    stop = threading.Event()
    bar = Progress(enabled=False, cancelled=stop.is_set)
    started = []

    def chunk(i):
        started.append(i)
        if i == 3:
            stop.set()
        return i

    with pytest.raises(ComputationCancelledError):
        run_parallel(chunk, range(100), 1, bar)
    assert started == [0, 1, 2, 3]
