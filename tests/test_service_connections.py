"""`ess serve`'s connection limits (issue 16, part 3) and CORS (part 4): on real servers
on 127.0.0.1, many idle sockets (more than the process may open) leave ``/v1/health``
answering with a few log lines and no traceback; idle, slow-header and stalled-body
clients are answered ``408`` and disconnected after ``--header-timeout``; when every
connection has a request in progress a new one gets ``503`` at once; CORS headers
appear only for the origins given with ``--cors-origin``; ``/redoc`` loads only this
server's files. Times are stated with a margin for a loaded two-core machine.
"""

import logging
import os
import resource
import socket
import time

import pytest
from fastapi.testclient import TestClient

from benchmarks.service_load import Server
from ess import defaults
from ess.cli import main
from ess.limits import Limits
from ess.params import ParameterError
from ess.service import create_app
from ess.service.connections import (
    Refusals,
    check_connection_limits,
    connection_range,
    default_max_connections,
)
from ess.service.guard import check_origins
from ess.store import ResultStore

#: The server's file-descriptor limit in the idle-socket test, and more idle sockets.
FD_LIMIT, IDLE = 128, 200
#: Longest answer to /v1/health while idle sockets are held (seconds).
HEALTH_WITHIN = 2.0
LAB = "http://lab.example:3000"


def _limit_descriptors():
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))


def _port(srv: Server) -> int:
    return int(srv.url.rsplit(":", 1)[1])


def _read_all(s: socket.socket) -> bytes:
    """Everything the server sends until it closes (b"" + note on a reset)."""
    out = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return out
        if not chunk:
            return out
        out += chunk


def _one_answer(s: socket.socket) -> bytes:
    """One whole answer (headers and a ``content-length`` body) from a kept-alive socket."""
    out = b""
    while b"\r\n\r\n" not in out:
        out += s.recv(65536)
    head, _, body = out.partition(b"\r\n\r\n")
    length = int(next(ln.split(b":")[1] for ln in head.split(b"\r\n")
                      if ln.lower().startswith(b"content-length:")))
    while len(body) < length:
        body += s.recv(65536)
    return head + b"\r\n\r\n" + body


def _warnings(srv: Server) -> list[str]:
    return [ln for ln in srv.stderr().splitlines() if ln.startswith("WARNING")]


# -- idle sockets beyond the descriptor limit ------------------------------------------------
def test_idle_sockets_beyond_the_descriptor_limit_leave_health_answering(tmp_path):
    """With ``ulimit -n`` 128, 200 idle sockets once made every later connection wait
    (health timed out) and asyncio wrote a traceback per accept attempt. Now: at most
    ``--max-connections`` are held, the longest idle is closed for a newcomer, health
    answers within 2 s, the process stays below its descriptor limit, and the log has
    a few lines, no traceback. The same server shows ``--cors-origin`` and ``/redoc``."""
    with Server(tmp_path / "store", "--max-connections", "32", "--header-timeout", "30",
                "--cors-origin", LAB, preexec_fn=_limit_descriptors) as srv:
        socks = [socket.create_connection(("127.0.0.1", _port(srv)), timeout=10)
                 for _ in range(IDLE)]
        try:
            time.sleep(0.5)
            fds = len(os.listdir(f"/proc/{srv.proc.pid}/fd"))
            assert fds < 32 + 16 + 24 < FD_LIMIT, fds     # cap + slack + the server's own
            with srv.client(timeout=10) as c:
                for _ in range(3):
                    t0 = time.perf_counter()
                    assert c.get("/v1/health").status_code == 200
                    assert time.perf_counter() - t0 < HEALTH_WITHIN

                # CORS for the configured origin only
                pre = c.options("/v1/estimate", headers={
                    "origin": LAB, "access-control-request-method": "POST",
                    "access-control-request-headers": "content-type,authorization"})
                assert pre.status_code == 200
                assert pre.headers["access-control-allow-origin"] == LAB
                evil = c.options("/v1/estimate", headers={
                    "origin": "http://evil.example", "access-control-request-method": "POST"})
                assert "access-control-allow-origin" not in evil.headers

                # /redoc from this process's files only
                page = c.get("/redoc")
                assert page.status_code == 200
                js = "/assets/redoc/redoc.standalone.js"
                assert f'src="{js}"' in page.text and "https://" not in page.text
                assert c.get(js).status_code == 200
        finally:
            for s in socks:
                s.close()
    warnings = _warnings(srv)
    assert "Traceback" not in srv.stderr() and "out of file descriptors" not in srv.stderr()
    assert 1 <= len(warnings) <= 6, warnings       # one line, then one summary, per kind
    assert all("--max-connections 32" in w for w in warnings), warnings


# -- read timeouts and a full house ---------------------------------------------------------
def test_slow_and_idle_clients_are_cut_off_and_a_full_house_gets_503(tmp_path):
    """``--header-timeout 1``: a socket that sends nothing, one that sends its headers
    a byte per 0.1 s and one that stalls in its body each get ``408`` and are closed
    between 0.9 and 3 s after they connected; a well-behaved client keeps its
    connection across requests. With ``--max-connections 3`` held by stalled bodies
    (requests in progress, so none can be closed for a newcomer), a fourth connection
    gets ``503`` within 0.5 s, and health answers once the three have timed out."""
    with Server(tmp_path / "store", "--header-timeout", "1", "--max-connections", "3") as srv:
        addr = ("127.0.0.1", _port(srv))
        body = (b"POST /v1/estimate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")

        for kind in ("idle", "slow headers", "stalled body"):
            with socket.create_connection(addr, timeout=10) as s:
                t0 = time.perf_counter()
                if kind == "slow headers":
                    for ch in b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 40:
                        try:
                            s.send(bytes([ch]))
                        except OSError:
                            break
                        time.sleep(0.1)
                elif kind == "stalled body":
                    s.sendall(body)
                answer = _read_all(s)
                waited = time.perf_counter() - t0
            assert answer.startswith(b"HTTP/1.1 408"), (kind, answer[:100])
            assert b"--header-timeout" in answer
            assert 0.9 < waited < 3.0, (kind, waited)

        with socket.create_connection(addr, timeout=10) as s:     # keep-alive, unharmed
            for _ in range(3):
                s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert _one_answer(s).startswith(b"HTTP/1.1 200"), "kept-alive request"
                time.sleep(0.6)

        held = [socket.create_connection(addr, timeout=10) for _ in range(3)]
        for s in held:
            s.sendall(body)
        time.sleep(0.2)
        with socket.create_connection(addr, timeout=10) as s:
            t0 = time.perf_counter()
            answer = _read_all(s)
            assert time.perf_counter() - t0 < 0.5
        assert answer == b"" or answer.startswith(b"HTTP/1.1 503"), answer[:100]
        assert b"retry-after: 1" in answer or answer == b""
        time.sleep(1.5)                                  # the three time out
        with srv.client(timeout=10) as c:
            assert c.get("/v1/health").status_code == 200
        for s in held:
            assert _read_all(s).startswith(b"HTTP/1.1 408")
            s.close()
    assert "Traceback" not in srv.stderr(), srv.stderr()
    warnings = _warnings(srv)
    assert 2 <= len(warnings) <= 6, warnings
    assert any("--header-timeout 1 s" in w for w in warnings)
    assert any("refused a connection with 503" in w for w in warnings)


def test_slow_answers_and_steady_bodies_are_not_cut_and_every_connection_is_counted_out():
    """In this process, uvicorn with the limited protocol (read timeout 0.5 s) and an
    application that takes 1.5 s to answer: a body sent in four parts 0.3 s apart
    (1.2 s in all, no pause over 0.5 s) and the slow answer both go through; after the
    clients leave, the cap counts no connection."""
    import asyncio
    import threading

    import uvicorn

    from ess.service.connections import ConnectionCap, protocol_class
    from ess.service.server import _listening_socket

    async def app(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await asyncio.sleep(1.5)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    cap = ConnectionCap(4)
    sock = cap.listening(_listening_socket("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, http=protocol_class(0.5, cap), ws="none",
                                           lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        with socket.create_connection(sock.getsockname(), timeout=10) as s:
            s.sendall(b"POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 40\r\n\r\n")
            for _ in range(4):
                time.sleep(0.3)
                s.sendall(b"0123456789")
            answer = _one_answer(s)
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"0123456789" * 4)
        deadline = time.monotonic() + 5
        while cap.open and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cap.open == 0 and cap.leaving == 0 and not cap.protocols
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# -- CORS --------------------------------------------------------------------------------------
def _cors_headers(response) -> list[str]:
    return [k for k in response.headers if k.lower().startswith("access-control-")]


@pytest.mark.parametrize("origins", [(), (LAB,)])
def test_cors_headers_only_for_configured_origins(tmp_path, origins):
    app = create_app(ResultStore(tmp_path / "store"), Limits(), cors_origins=origins)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        for origin in (LAB, "http://evil.example"):
            pre = c.options("/v1/estimate", headers={
                "origin": origin, "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type"})
            get = c.get("/v1/health", headers={"origin": origin})
            post = c.post("/v1/estimate", headers={"origin": origin},   # refused: no work
                          json={"n_s": -1})
            assert post.status_code == 422, post.text
            if origin in origins:
                assert pre.status_code == 200
                assert pre.headers["access-control-allow-origin"] == origin
                assert {"POST", "DELETE"} <= set(
                    pre.headers["access-control-allow-methods"].split(", "))
                assert "authorization" in pre.headers["access-control-allow-headers"].lower()
                for r in (get, post):
                    assert r.headers["access-control-allow-origin"] == origin
                    assert "location" in r.headers["access-control-expose-headers"].lower()
                assert "access-control-allow-credentials" not in get.headers
            elif origins:
                for r in (pre, get, post):
                    assert "access-control-allow-origin" not in r.headers
            else:          # no --cors-origin: no CORS header of any kind, ever
                for r in (pre, get, post):
                    assert _cors_headers(r) == [], r.headers


def test_cors_preflights_need_no_token_and_refusals_are_readable(tmp_path):
    """With tokens, a preflight (which carries no Authorization) is answered by CORS
    before the token check, and the page can read a 401."""
    from ess.service.auth import Tokens

    app = create_app(ResultStore(tmp_path / "store"), Limits(),
                     Tokens.from_pairs({"lab": "lab-token-0123456789abcdef"}), cors_origins=[LAB])
    with TestClient(app, base_url="http://127.0.0.1") as c:
        pre = c.options("/v1/version", headers={
            "origin": LAB, "access-control-request-method": "GET",
            "access-control-request-headers": "authorization"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == LAB
        r = c.get("/v1/version", headers={"origin": LAB})
        assert r.status_code == 401 and r.headers["access-control-allow-origin"] == LAB
        ok = c.get("/v1/version", headers={"origin": LAB,
                                           "authorization": "Bearer lab-token-0123456789abcdef"})
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == LAB


def test_cors_origins_are_checked():
    assert check_origins(["HTTPS://Lab.Example", "http://localhost:3000/", LAB, LAB]) == (
        "https://lab.example", "http://localhost:3000", LAB)
    for bad in ("*", "https://*.example", "lab.example", "ftp://lab.example",
                "https://lab.example/app", "https://lab.example?x=1", "https://u:p@lab.example",
                "http://lab.example:99999"):
        with pytest.raises(ParameterError, match="cors_origin must be a web origin"):
            check_origins([bad])


# -- settings ---------------------------------------------------------------------------------
def test_connection_settings_are_checked_against_the_descriptor_limit():
    assert default_max_connections(1024) == 1024 - defaults.FD_HEADROOM
    assert default_max_connections(100_000) == defaults.MAX_CONNECTIONS
    assert connection_range(100) == (1, 50)           # at most half kept for the server
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    hi = connection_range()[1]
    assert check_connection_limits("2.5", str(hi)) == (2.5, hi)
    assert check_connection_limits(defaults.HEADER_TIMEOUT, None)[1] == default_max_connections()
    with pytest.raises(ParameterError, match=rf"max_connections must be an integer in "
                                             rf"\[1, {hi}\].*ulimit -n"):
        check_connection_limits(10, hi + 1)
    for bad in ("0", "-1", "nan", "1e9"):
        with pytest.raises(ParameterError, match=r"header_timeout must be a number in"):
            check_connection_limits(bad, None)


@pytest.mark.parametrize("flags, name", [
    (["--header-timeout", "0"], "header_timeout"),
    (["--max-connections", "0"], "max_connections"),
    (["--max-connections", "10000000"], "max_connections"),
    (["--cors-origin", "*"], "cors_origin"),
])
def test_serve_refuses_bad_connection_flags_with_exit_2(tmp_path, capsys, flags, name):
    assert main(["serve", "--port", "0", "--store", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and name in err and "Traceback" not in err


def test_refusals_are_logged_once_then_summed_up(caplog):
    now = [0.0]
    r = Refusals("closed a connection", "--header-timeout 10 s", every=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="uvicorn.error"):
        for _ in range(500):
            r.note("127.0.0.1:1")
            now[0] += 0.01                           # 500 in 5 s
        r.flush()
        now[0] += 20
        r.note("127.0.0.1:2")
    lines = [rec.getMessage() for rec in caplog.records]
    assert lines == ["closed a connection from 127.0.0.1:1 (--header-timeout 10 s)",
                     "closed a connection: 499 more since the line before "
                     "(--header-timeout 10 s)",
                     "closed a connection from 127.0.0.1:2 (--header-timeout 10 s)"]
    assert r.total == 501


def test_running_out_of_descriptors_is_one_line_not_a_traceback_per_attempt(caplog):
    import asyncio

    from ess.service.connections import quiet_accept_errors

    loop = asyncio.new_event_loop()
    try:
        counted = quiet_accept_errors(loop)
        with caplog.at_level(logging.WARNING):
            for _ in range(2048):                 # one turn of asyncio's accept loop
                loop.call_exception_handler({
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(24, "Too many open files")})
            loop.call_exception_handler({"message": "something else"})
    finally:
        loop.close()
    ours = [r for r in caplog.records if r.name == "uvicorn.error"]
    assert len(ours) == 1 and "out of file descriptors" in ours[0].getMessage()
    assert ours[0].exc_info is None and counted.total == 2048
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == ["something else"]
