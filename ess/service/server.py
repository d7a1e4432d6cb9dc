"""``ess serve``: bind the socket, run the application on uvicorn, stop cleanly.

On SIGTERM or Ctrl-C (SIGINT) the running computations are cancelled at once (at
their next chunk of chains), requests waiting for them get ``503``, and the
process ends with status 0 once uvicorn has closed its connections; a second
Ctrl-C forces the end.
"""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

from ess import defaults
from ess.limits import Limits
from ess.params import ParameterError
from ess.service.app import create_app
from ess.service.auth import Tokens, check_exposure
from ess.service.connections import (
    ConnectionCap,
    Refusals,
    check_connection_limits,
    protocol_class,
    quiet_accept_errors,
)
from ess.service.guard import check_origins, host_names
from ess.service.state import Service
from ess.store import DEFAULT_MAX_MB, MB, ResultStore, default_store_dir

#: Signals that stop the server.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _server_class() -> type:
    """uvicorn's ``Server`` that cancels the service's computations as soon as a
    stop signal arrives (imported lazily: the command line starts faster)."""
    import uvicorn

    class Server(uvicorn.Server):
        """A uvicorn server whose stop signals first cancel running computations, so
        that the graceful wait for open requests is short, and that logs running out
        of file descriptors in one line, not a traceback per attempt."""

        def __init__(self, config: uvicorn.Config, service: Service,
                     refusals: Sequence[Refusals] = ()) -> None:
            super().__init__(config)
            self.service = service
            self.refusals = list(refusals)

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            self.refusals.append(quiet_accept_errors(asyncio.get_running_loop()))
            await super().startup(sockets)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            await super().shutdown(sockets)
            for counted in self.refusals:      # the refusals not yet summed up in a line
                counted.flush()

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            self.service.stop_now()
            super().handle_exit(sig, frame)

    return Server


@contextmanager
def _stop_signals_end_normally(server) -> Iterator[None]:
    """Our own handlers for :data:`STOP_SIGNALS` around ``server.run()``.

    While uvicorn runs, its handlers take these signals. When it has stopped, it
    puts back the handlers it found (these) and raises the signal it caught once
    more for them (its "cooperative signal handling"), so that a program that
    wants a signal to mean something else can say so. Here a stop signal is a
    normal end: the re-raised signal only repeats the stop, and :func:`serve`
    returns 0 instead of the process dying of it. A signal arriving before uvicorn
    has started stops the server as well. Signal handlers can only be set from the
    main thread; elsewhere, nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(sig: int, frame: FrameType | None) -> None:
        server.service.stop_now()
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening (``port = 0``: a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off only for sockets that
    # say TCP, and with it on every small response waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except (OSError, OverflowError) as e:
        sock.close()
        raise ParameterError("port", f"host and port must name a free local address; cannot "
                             f"listen on {host}:{port} ({getattr(e, 'strerror', None) or e})") \
            from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(host: str = "127.0.0.1", port: int = 8000, store: str | os.PathLike | None = None,
          limits: Limits | None = None, log_level: str = "warning",
          token_file: str | os.PathLike | None = None, allow_anonymous: bool = False,
          store_max_mb: float = DEFAULT_MAX_MB, allow_hosts: Sequence[str] = (),
          header_timeout: float = defaults.HEADER_TIMEOUT, max_connections: int | None = None,
          cors_origins: Sequence[str] = ()) -> int:
    """Run the server until interrupted (``ess serve``).

    Binds the socket before starting, so that a busy port is one clear error;
    ``port = 0`` picks a free port. The first line on standard output is
    ``ess serve: listening on http://HOST:PORT``; every log line goes to
    standard error.

    Parameters
    ----------
    host : str
        Address to listen on.
    port : int
        Port, or 0 for a free one.
    store : path, optional
        Result store folder (default :func:`ess.store.default_store_dir`).
    limits : Limits, optional
        What the server accepts (default :class:`Limits`).
    log_level : str
        uvicorn's (``"info"`` adds a line per request on standard error; a
        request's headers, and so its token, are never logged).
    token_file : path, optional
        Access tokens, one ``name token`` per line
        (:meth:`ess.service.auth.Tokens.read`): every ``/v1/`` request but
        ``/v1/health`` then needs one.
    allow_anonymous : bool
        Listen on an address other than loopback without tokens (refused
        otherwise).
    store_max_mb : float
        Bound on the store (MB of 2**20 bytes): past it, the least recently
        used entries are removed.
    allow_hosts : sequence of str
        ``Host`` names answered besides ``localhost``, the loopback addresses
        and ``host`` (``--allow-host``); others get ``421``.
    header_timeout : float
        Seconds a client has to send a request's headers, and longest pause
        while it sends a body (``--header-timeout``;
        :mod:`ess.service.connections`).
    max_connections : int, optional
        Connections open at once (``--max-connections``; default
        :func:`~ess.service.connections.default_max_connections`, below the
        process's file-descriptor limit).
    cors_origins : sequence of str
        Web origins whose pages may call the API (``--cors-origin``); none: no
        CORS header.

    Returns
    -------
    int
        The exit status: 0 after SIGTERM or Ctrl-C.

    Raises
    ------
    ParameterError
        Naming ``store``, ``port``, ``token_file``, ``host``, ``header_timeout``,
        ``max_connections`` or ``cors_origin`` when the server cannot start.
    """
    import uvicorn

    header_timeout, max_connections = check_connection_limits(header_timeout, max_connections)
    cors_origins = check_origins(cors_origins)
    tokens = Tokens.read(token_file) if token_file is not None else None
    check_exposure(host, tokens, allow_anonymous)
    root = store if store is not None else default_store_dir()
    if root is None:
        raise ParameterError("store", "store must be a folder for ess serve (ESS_STORE is "
                             "'off'); give --store DIR")
    rs = ResultStore(root, max_bytes=int(store_max_mb * MB))
    try:
        rs.root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ParameterError("store", f"store must be a writable folder; cannot create "
                             f"{str(rs.root)!r} ({e.strerror})") from None
    app = create_app(rs, limits, tokens, hosts=host_names(host, allow_hosts),
                     cors_origins=cors_origins)
    svc: Service = app.state.service
    cap = ConnectionCap(max_connections)
    sock = cap.listening(_listening_socket(host, port))
    shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
    access = (f"tokens of {len(tokens.names)} clients from {tokens.source}" if tokens
              else "no tokens")
    print(f"ess serve: listening on http://{shown}:{sock.getsockname()[1]} (calculator at /, "
          f"docs at /docs), store {rs.root} (at most {store_max_mb:g} MB), "
          f"{svc.limits.workers} workers, {access}, at most {max_connections} connections",
          flush=True)

    logs = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)   # every log line on stderr:
    logs["handlers"]["access"]["stream"] = "ext://sys.stderr"   # stdout has the banner only
    cfg = uvicorn.Config(app, log_level=log_level, log_config=logs,
                         timeout_graceful_shutdown=30, lifespan="on", ws="none",
                         http=protocol_class(header_timeout, cap))
    server = _server_class()(cfg, svc, (cap.evicted, cap.refused, cfg.http.timeouts))
    try:
        with _stop_signals_end_normally(server):
            server.run(sockets=[sock])
    finally:
        sock.close()
    print("ess serve: stopped", file=sys.stderr, flush=True)
    return 0
