"""Connection limits of ``ess serve``: a read timeout for headers and bodies, a cap on
open connections below the process's file-descriptor limit, and refusals logged as
one line each (at most one line per :data:`LOG_EVERY` seconds per kind), never as
tracebacks.

uvicorn (0.55) has neither a header nor a body read timeout: ``timeout_keep_alive``
is armed only after a response and is cancelled by every byte received, so a client
that connects and sends nothing, or sends its headers a byte at a time, holds its
socket forever. Its ``limit_concurrency`` does not bound sockets either: it is checked
only once a complete request has arrived, and then refuses that request (``/v1/health``
as well) while the idle sockets, already accepted, keep their descriptors. Once the
process runs out of descriptors, asyncio's accept loop logs a traceback for every
attempt, and keeps attempting (up to ``backlog``, 2048, per turn): 1100 idle sockets
under a limit of 1024 wrote 185,620 tracebacks (78 MB) in 35 s here while
``/v1/health`` timed out. ASGI middleware cannot help: it runs only after the headers
are complete. So:

- the timeout lives in the protocol layer (:func:`protocol_class`, a subclass of
  uvicorn's h11 protocol, the one uvicorn uses when ``httptools`` is not installed,
  which :func:`ess.service.serve` passes to uvicorn by class);
- the cap is counted where connections are accepted (:class:`ConnectionCap`, whose
  listening socket refuses in ``accept()`` itself), since asyncio accepts a whole
  burst of sockets before the protocol of the first one runs;
- an event-loop exception handler (:func:`quiet_accept_errors`) turns running out of
  descriptors anyway (other files, a lower limit) into one line.

What happens:

- **Read timeout** (``--header-timeout``): a request's headers must be complete within
  the timeout of the connection's opening (or of the first byte after a previous
  answer); while a body is sent, no pause may be longer than the timeout (not counted
  while the server itself is not reading). Otherwise the client gets ``408`` (if no
  answer was started) and the connection is closed.
- **Connection cap** (``--max-connections``, default :func:`default_max_connections`):
  a connection arriving when the cap is reached first closes the connection that has
  been idle longest (no request in progress: waiting for its first request, between
  requests, or still sending headers), so that idle sockets cannot lock out a client
  that asks something; if every connection has a request in progress (or 16 closed
  this way have not released their descriptors yet, within a turn of the event loop),
  the new one is answered ``503`` with ``Retry-After`` and closed at once, before
  reading it. Open descriptors stay below ``max_connections + 16`` plus the server's
  own (8 when idle).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import resource
import socket
import time
from collections.abc import Callable

from ess import defaults
from ess.params import ParameterError, check_float, check_int

#: Seconds between two log lines of the same kind of refusal (the first is logged at once,
#: later ones are counted and summed up in one line).
LOG_EVERY = 10.0
#: Seconds a connection closed for its timeout may take to send its ``408`` before it is
#: cut (a client that reads nothing would otherwise keep its socket).
ABORT_AFTER = 1.0
#: Allowed range of ``--header-timeout``, in seconds.
HEADER_TIMEOUT_RANGE = (0.1, 3600.0)

log = logging.getLogger("uvicorn.error")


def descriptor_limit() -> int | None:
    """The process's soft limit on open file descriptors (``RLIMIT_NOFILE``), or
    ``None`` when unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def connection_range(fd_limit: int | None = None) -> tuple[int, int]:
    """Allowed range of ``--max-connections``: from 1 to the descriptor limit less
    :data:`ess.defaults.FD_HEADROOM` (at most half of the limit kept free)."""
    fd_limit = descriptor_limit() if fd_limit is None else fd_limit
    if fd_limit is None:
        return 1, 1_000_000
    return 1, max(1, fd_limit - min(defaults.FD_HEADROOM, fd_limit // 2))


def default_max_connections(fd_limit: int | None = None) -> int:
    """``--max-connections`` when not given: :data:`ess.defaults.MAX_CONNECTIONS`, or
    fewer when the descriptor limit leaves less room (:func:`connection_range`)."""
    return min(defaults.MAX_CONNECTIONS, connection_range(fd_limit)[1])


def check_connection_limits(header_timeout, max_connections) -> tuple[float, int]:
    """``header_timeout`` and ``max_connections`` checked (text accepted, as from the
    command line; ``max_connections = None``: :func:`default_max_connections`).

    Raises
    ------
    ParameterError
        Naming ``header_timeout`` or ``max_connections`` and its allowed range (that of
        ``max_connections`` follows from this process's descriptor limit).
    """
    timeout = check_float("header_timeout", header_timeout, *HEADER_TIMEOUT_RANGE)
    if max_connections is None:
        return timeout, default_max_connections()
    lo, hi = connection_range()
    try:
        cap = check_int("max_connections", max_connections, lo, hi)
    except ParameterError as e:
        raise ParameterError("max_connections", f"{e} (the process may open "
                             f"{descriptor_limit()} files, ulimit -n, and keeps "
                             f"{defaults.FD_HEADROOM} of them for itself)") from None
    return timeout, cap


class Refusals:
    """One kind of refusal, logged as one line: the first at once, later ones counted and
    summed up in one line per ``every`` seconds.

    Parameters
    ----------
    what : str
        What was done, for one connection (``"closed a connection ..."``).
    hint : str
        The setting that decides it (``"--header-timeout 10"``).
    every : float
        Seconds between two lines.
    clock : callable
        Monotonic seconds.
    """

    def __init__(self, what: str, hint: str, every: float = LOG_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.what, self.hint, self.every, self.clock = what, hint, every, clock
        self.total = 0
        self._pending = 0
        self._last = -math.inf
        self._flush: asyncio.TimerHandle | None = None

    def note(self, client: str = "") -> None:
        """Count one refusal; log it now, or later in a summary."""
        self.total += 1
        now = self.clock()
        if now - self._last >= self.every:
            self._last = now
            who = f" from {client}" if client else ""
            log.warning("%s%s (%s)", self.what, who, self.hint)
            return
        self._pending += 1
        if self._flush is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return
            self._flush = loop.call_later(self._last + self.every - now, self.flush)

    def flush(self) -> None:
        """Log the refusals counted since the last line, if any."""
        self._flush = None
        if self._pending:
            log.warning("%s: %d more since the line before (%s)", self.what, self._pending,
                        self.hint)
            self._pending = 0
            self._last = self.clock()


def _raw_answer(status: int, reason: str, message: str, extra: str = "") -> bytes:
    """A complete HTTP/1.1 answer with a JSON ``detail``, closing the connection."""
    body = json.dumps({"detail": message}).encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n{extra}\r\n").encode() + body


class ConnectionCap:
    """The connections of one server, counted from ``accept()`` to their end.

    The count is kept at the listening socket (:meth:`listening`), not in the
    protocol: asyncio accepts up to ``backlog`` sockets in one turn of its loop
    before the protocol of the first one runs, so a cap checked there lets a burst of
    connections through, and their descriptors, before it can refuse one.

    Parameters
    ----------
    max_connections : int
        Connections open at once.
    slack : int
        Connections being closed to make room that may still hold their descriptors
        (closing takes a turn of the event loop); past it, new connections are
        refused at once instead.
    """

    def __init__(self, max_connections: int, slack: int = 16) -> None:
        self.max = max_connections
        self.slack = slack
        self.open = 0          # accepted, connection not yet lost
        self.leaving = 0       # of these, closed to make room but not yet lost
        self.protocols: set = set()
        self.evicted = Refusals("closed the longest idle connection to make room for a new "
                                "one", f"--max-connections {max_connections}")
        self.refused = Refusals("refused a connection with 503: the cap is reached and no "
                                "idle connection can be closed at once",
                                f"--max-connections {max_connections}")
        self.busy = _raw_answer(503, "Service Unavailable",
                                f"this server has {max_connections} connections open, its "
                                f"limit (--max-connections), and none idle; try again "
                                f"shortly", "retry-after: 1\r\n")

    def admit(self) -> bool:
        """Whether a newly accepted connection may stay (counting it if so): under the
        cap, or once the connection idle longest is closed to make room."""
        if self.open - self.leaving < self.max or (
                self.leaving < self.slack and self._make_room()):
            self.open += 1
            return True
        return False

    def _make_room(self) -> bool:
        """Close the connection idle longest; ``False`` if none is idle."""
        idle = [p for p in self.protocols if not p.leaving and p.idle()]
        if not idle:
            return False
        oldest = min(idle, key=lambda p: p.idle_since)
        oldest.leaving = True
        self.leaving += 1
        self.evicted.note(_peer(oldest.transport))
        oldest.close_now()
        return True

    def refuse(self, conn: socket.socket, addr) -> None:
        """Answer ``503`` on ``conn`` if its buffer takes it, and close it now."""
        self.refused.note(f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) else "")
        try:
            conn.setblocking(False)
            conn.send(self.busy)
        except OSError:
            pass
        conn.close()

    def lost(self, protocol) -> None:
        """A connection ended (its protocol's ``connection_lost``)."""
        self.open -= 1
        if protocol.leaving:
            self.leaving -= 1
        self.protocols.discard(protocol)

    def listening(self, sock: socket.socket) -> socket.socket:
        """``sock`` (listening), as a socket whose ``accept()`` applies this cap: a
        connection not admitted is refused and closed inside ``accept()``, so its
        descriptor is released before the next one is accepted."""
        capped = _CappedSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        capped.cap = self
        return capped


class _CappedSocket(socket.socket):
    """A listening socket whose ``accept()`` applies a :class:`ConnectionCap`."""

    cap: ConnectionCap

    def accept(self):
        while True:
            conn, addr = super().accept()     # BlockingIOError: none waiting
            if self.cap.admit():
                return conn, addr
            self.cap.refuse(conn, addr)


def protocol_class(header_timeout: float, cap: ConnectionCap) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with a read timeout and the connections counted by
    ``cap`` (this module's docstring), for ``uvicorn.Config(http=...)``.

    Parameters
    ----------
    header_timeout : float
        Seconds to send a request's headers; longest pause while sending a body.
    cap : ConnectionCap
        The server's connections (its listening socket from
        :meth:`ConnectionCap.listening`).

    Returns
    -------
    type
        A subclass of ``H11Protocol``; its ``timeouts`` attribute counts the
        connections closed by the timeout (:class:`Refusals`).
    """
    import h11  # imported here: the command line starts without uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol

    late = _raw_answer(408, "Request Timeout",
                       f"the request did not arrive within {header_timeout:g} s "
                       f"(--header-timeout)")

    class LimitedH11Protocol(H11Protocol):
        """uvicorn's h11 protocol with a read timeout and a connection cap."""

        timeouts = Refusals("closed a connection that sent no complete request in time",
                            f"--header-timeout {header_timeout:g} s")

        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self._timer: asyncio.TimerHandle | None = None
            self.idle_since = 0.0
            self.leaving = False

        # -- the cap ----------------------------------------------------------------
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            cap.protocols.add(self)
            self.idle_since = self.loop.time()
            self._arm()

        def idle(self) -> bool:
            """No request in progress (none yet, between two, or headers incomplete)."""
            return (self.conn.their_state is h11.IDLE
                    and (self.cycle is None or self.cycle.response_complete))

        def close_now(self) -> None:
            """Close the connection at once (to make room for another), dropping what
            the client has not read yet: ``close()`` would wait for it."""
            self._disarm()
            self.connections.discard(self)
            self.transport.abort()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            cap.lost(self)
            super().connection_lost(exc)

        # -- the read timeout ---------------------------------------------------------
        def _arm(self) -> None:
            self._disarm()
            self._timer = self.loop.call_later(header_timeout, self._expired)

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def data_received(self, data: bytes) -> None:
            if self._timer is None and self.conn.their_state is h11.IDLE:
                self._arm()            # the first byte of a request after an answer
            super().data_received(data)
            self._follow()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self.idle_since = self.loop.time()
            self._follow()

        def _follow(self) -> None:
            """Headers pending: the deadline runs on; a body: a pause restarts it;
            the request read: no timer."""
            state = self.conn.their_state
            if state is h11.SEND_BODY:
                self._arm()
            elif state is not h11.IDLE:
                self._disarm()

        def _expired(self) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            if self.conn.their_state is h11.SEND_BODY and self.flow.read_paused:
                self._arm()           # the server is not reading: not the client's delay
                return
            self.timeouts.note(_peer(self.transport))
            if self.cycle is None or not self.cycle.response_started:
                self.transport.write(late)
            self.transport.close()
            # a client that does not read would keep the socket until its 408 is sent
            self.loop.call_later(ABORT_AFTER, self.transport.abort)

    return LimitedH11Protocol


def _peer(transport: asyncio.BaseTransport | None) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else ""


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> Refusals:
    """Make ``loop`` log running out of file descriptors in ``accept()`` as one line per
    :data:`LOG_EVERY` seconds instead of a traceback per attempt; other errors go to the
    default handler. Returns the :class:`Refusals` that counts them."""
    exhausted = Refusals("out of file descriptors: new connections wait until some close",
                         f"ulimit -n is {descriptor_limit()}; lower --max-connections")
    previous = loop.get_exception_handler()

    def handler(lp: asyncio.AbstractEventLoop, context: dict) -> None:
        if str(context.get("message", "")).startswith("socket.accept() out of system"):
            exhausted.note()
        elif previous is not None:
            previous(lp, context)
        else:
            lp.default_exception_handler(context)

    loop.set_exception_handler(handler)
    return exhausted
