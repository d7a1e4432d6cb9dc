"""What ``ess serve`` checks before any route sees a request: the ``Host`` header,
the ``Content-Type`` and size of a POST body, and duplicate JSON keys.

A web page a user visits can send requests to their localhost server: a
``text/plain`` POST needs no CORS preflight, and DNS rebinding gives the page a
name that resolves to 127.0.0.1. So (:class:`Guard`):

- a request whose ``Host`` is not one of this server's names is refused with
  ``421`` (default names: :data:`LOCAL_HOSTS` and the bound address; more with
  ``--allow-host``);
- a POST body must be labelled ``application/json`` (``415`` otherwise: a
  browser cannot send that label across origins without a preflight, which this
  server grants only to the origins given with ``--cors-origin``: without them it
  sends no CORS header at all; :func:`cors_options`);
- a POST body over ``max_body`` bytes is ``413``: refused from its
  ``Content-Length`` before reading, or after reading at most ``max_body + 1``
  bytes when it is streamed;
- a JSON object repeating a key is ``422`` naming the key (the last one would
  otherwise win silently).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ess.params import ParameterError

#: Host names every server answers to (besides the address it is bound to).
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
#: Longest piece of a request (a key, a host name) repeated in a refusal.
ECHO = 64


def shorten(text: str, n: int = ECHO) -> str:
    """``text``, cut to ``n`` characters with a note of its length when longer."""
    return text if len(text) <= n else f"{text[:n]}... ({len(text)} characters)"


def host_names(bound: str | None = None, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The ``Host`` names a server answers to: :data:`LOCAL_HOSTS`, the address it is
    bound to (unless a wildcard) and ``extra``, lower-case and without brackets."""
    names = [*LOCAL_HOSTS, *extra]
    if bound and bound not in ("0.0.0.0", "::", ""):
        names.append(bound)
    return tuple(dict.fromkeys(n.strip().strip("[]").lower() for n in names if n.strip()))


def _host_of(value: str) -> str:
    """The name of a ``Host`` header value: without its port and brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        return value.partition(":")[0]
    return value


def check_origins(origins: Iterable[str]) -> tuple[str, ...]:
    """``--cors-origin`` values checked: each a web origin, ``scheme://host[:port]``
    with scheme ``http`` or ``https``, lower-case and without a trailing slash.

    Raises
    ------
    ParameterError
        Naming ``cors_origin``: a path, a query, ``*`` or another scheme is refused
        (``*`` would let every web page a user visits use the server).
    """
    checked = []
    for origin in origins:
        text = str(origin).strip()
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            parts, port = None, None
        if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname
                or parts.path not in ("", "/") or parts.query or parts.fragment
                or parts.username or parts.password or "*" in text):
            raise ParameterError("cors_origin", f"cors_origin must be a web origin, "
                                 f"scheme://host[:port] with scheme http or https and no "
                                 f"path (e.g. https://lab.example or http://localhost:3000; "
                                 f"'*' is not accepted), got {shorten(text)!r}")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        checked.append(f"{parts.scheme}://{host}" + (f":{port}" if port is not None else ""))
    return tuple(dict.fromkeys(checked))


def cors_options(origins: Iterable[str]) -> dict:
    """Keyword arguments of Starlette's ``CORSMiddleware`` for exactly ``origins``
    (:func:`check_origins`): the methods and headers the API uses, ``Location`` and
    ``Retry-After`` readable by the page, no cookies (tokens travel in the
    ``Authorization`` header, which a page sets itself)."""
    return {"allow_origins": list(check_origins(origins)),
            "allow_methods": ["GET", "POST", "DELETE"],
            "allow_headers": ["Authorization", "Content-Type"],
            "expose_headers": ["Location", "Retry-After"], "allow_credentials": False,
            "max_age": 600}


class DuplicateKeyError(ValueError):
    """A JSON object names ``key`` twice."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    seen: dict = {}
    for k, v in pairs:
        if k in seen:
            raise DuplicateKeyError(k)
        seen[k] = v
    return seen


def duplicate_key(body: bytes) -> str | None:
    """The first key repeated within one JSON object of ``body``, or ``None`` (also
    for a body that is not JSON: the application says so)."""
    try:
        json.loads(body, object_pairs_hook=_no_duplicates)
    except DuplicateKeyError as e:
        return e.key
    except (ValueError, RecursionError):
        return None
    return None


def _answer(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": message})


class Guard:
    """ASGI middleware: the checks of this module, before any route.

    Parameters
    ----------
    app : ASGI application
        The application behind.
    hosts : sequence of str or None
        ``Host`` names answered (:func:`host_names`); ``None``: any.
    max_body : int
        Largest POST body in bytes.
    """

    def __init__(self, app: ASGIApp, hosts: Iterable[str] | None, max_body: int) -> None:
        self.app = app
        self.hosts = None if hosts is None else frozenset(hosts)
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refuse_host(headers.get(b"host", ""))
        if refusal is None and scope["method"] in ("POST", "PUT", "PATCH"):
            refusal = self._refuse_type(headers.get(b"content-type"))
            if refusal is None:
                refusal = self._refuse_length(headers.get(b"content-length"))
            if refusal is None:
                body, refusal = await self._read(receive)
                if refusal is None:
                    key = duplicate_key(body) if body else None
                    if key is not None:
                        refusal = JSONResponse(status_code=422, content={"detail": [{
                            "loc": ["body", shorten(key)], "type": "duplicate_key",
                            "msg": f"{shorten(key)}: given twice in one JSON object; give "
                                   "each key once"}]})
                if refusal is None:
                    receive = _replay(body, receive)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refuse_host(self, host: str) -> JSONResponse | None:
        if self.hosts is None or _host_of(host) in self.hosts:
            return None
        return _answer(421, f"this server does not answer to the host name "
                            f"{shorten(_host_of(host))!r} (it answers to "
                            f"{', '.join(sorted(self.hosts))}; start it with --allow-host "
                            f"NAME to add a name)")

    def _refuse_type(self, ctype: str | None) -> JSONResponse | None:
        media = (ctype or "").partition(";")[0].strip().lower()
        if media == "application/json":
            return None
        got = f"got {shorten(media)!r}" if media else "got none"
        return _answer(415, f"POST bodies must be JSON: send Content-Type: application/json "
                            f"({got}; with curl: -H 'Content-Type: application/json' -d "
                            f"'{{...}}', or --json '{{...}}')")

    def _too_big(self) -> JSONResponse:
        return _answer(413, f"the body is over this server's limit of "
                            f"{self.max_body // 1024} KiB (limit max_body_kb)")

    def _refuse_length(self, length: str | None) -> JSONResponse | None:
        if length is None:
            return None
        try:
            n = int(length)
        except ValueError:
            return _answer(400, "Content-Length must be a whole number of bytes")
        return self._too_big() if n > self.max_body else None

    async def _read(self, receive: Receive) -> tuple[bytes, JSONResponse | None]:
        """The whole body, reading no more than ``max_body + 1`` bytes of it."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", _answer(400, "the client left before sending its body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return b"", self._too_big()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), None


def _replay(body: bytes, then: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then the server's (a disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await then()

    return receive
