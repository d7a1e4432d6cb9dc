"""Access tokens of ``ess serve`` (``--token-file FILE``) and who a request comes from.

A token file has one ``name token`` pair per line (blank lines and lines starting
with ``#`` are skipped). With one, every ``/v1/`` request but ``/v1/health``
must carry ``Authorization: Bearer <token>``: without it the answer is ``401``,
with a token not in the file ``403``. The presented token is compared with every
token of the file, each comparison by :func:`hmac.compare_digest` on SHA-256
digests (equal lengths, so neither the position of the first wrong character nor
the token's length shows in the time taken), and without stopping at a match.

The client a request comes from (:func:`client_of`) is the token's name, or the
peer's address when the server runs without tokens; the fair queue
(:mod:`ess.service.scheduler`) counts computations per client.

Tokens never reach a log line or an answer: uvicorn's access log shows the
request line only, and the refusals do not repeat what was presented.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from ess.params import ParameterError

#: Shortest token accepted in a token file.
MIN_TOKEN_LENGTH = 16
#: Paths under ``/v1/`` open without a token.
OPEN_PATHS = ("/v1/health",)
#: How to make a token, shown when a token file is refused.
MAKE_TOKEN = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


@dataclass(frozen=True)
class Tokens:
    """The tokens of one server: client names and the digests of their tokens.

    Attributes
    ----------
    names : tuple of str
        Client names, in the order of the file.
    source : str
        Where they were read from (for messages).
    """

    names: tuple[str, ...]
    source: str = ""
    _digests: tuple[bytes, ...] = field(default=(), repr=False)

    @classmethod
    def from_pairs(cls, pairs: dict[str, str], source: str = "") -> Tokens:
        """Tokens from ``{name: token}`` (tests and programs)."""
        return cls(tuple(pairs), source, tuple(_digest(t) for t in pairs.values()))

    @classmethod
    def read(cls, path: str | os.PathLike) -> Tokens:
        """Read a token file: ``name token`` per line.

        Raises
        ------
        ParameterError
            Naming ``token_file`` and the line (never the token) when the file
            cannot be read, a line is not two words, a name or token repeats, a
            token is shorter than :data:`MIN_TOKEN_LENGTH`, or there is no token.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            why = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            raise ParameterError("token_file", f"token_file must be a readable text file; "
                                 f"cannot read {str(p)!r} ({why})") from None
        pairs: dict[str, str] = {}
        seen: set[bytes] = set()
        for i, line in enumerate(text.splitlines(), 1):
            words = line.split()
            if not words or words[0].startswith("#"):
                continue
            where = f"token_file {str(p)!r} line {i}"
            if len(words) != 2:
                raise ParameterError("token_file", f"{where}: each line must be 'name token' "
                                     f"(two words), got {len(words)} words")
            name, token = words
            if name in pairs:
                raise ParameterError("token_file", f"{where}: the name {name!r} is given twice")
            if len(token) < MIN_TOKEN_LENGTH:
                raise ParameterError("token_file", f"{where}: the token of {name!r} must be at "
                                     f"least {MIN_TOKEN_LENGTH} characters, got {len(token)} "
                                     f"(make one with: {MAKE_TOKEN})")
            if _digest(token) in seen:
                raise ParameterError("token_file", f"{where}: the token of {name!r} is also "
                                     "another client's; give each client its own")
            seen.add(_digest(token))
            pairs[name] = token
        if not pairs:
            raise ParameterError("token_file", f"token_file {str(p)!r} has no 'name token' "
                                 f"line (make a token with: {MAKE_TOKEN})")
        return cls.from_pairs(pairs, str(p))

    def identify(self, presented: str) -> str | None:
        """The name of the client whose token is ``presented``, or ``None``.

        Every token is compared, each with :func:`hmac.compare_digest` on
        digests of equal length, so the time taken does not depend on which
        token matched, nor on how much of one did.
        """
        got = _digest(presented)
        found = None
        for name, want in zip(self.names, self._digests):
            if hmac.compare_digest(got, want) and found is None:
                found = name
        return found


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) reaches only this machine.

    A name counts as loopback when every address it resolves to is one
    (``localhost``); one that cannot be resolved does not.
    """
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback
                               for i in infos)


def check_exposure(host: str, tokens: Tokens | None, allow_anonymous: bool) -> None:
    """Refuse to listen beyond this machine without tokens.

    Raises
    ------
    ParameterError
        Naming ``host`` when ``host`` is not a loopback address, no token file
        is given and ``allow_anonymous`` is false.
    """
    if tokens is None and not allow_anonymous and not is_loopback(host):
        raise ParameterError("host", f"host {host} is reachable from other machines: give "
                             "--token-file FILE (one 'name token' per line) so that only "
                             "your clients can compute, or --allow-anonymous to serve anyone")


def _bearer(scope: Scope) -> str | None:
    """The token of an ``Authorization: Bearer`` header, ``""`` for another scheme or
    an empty one, ``None`` without the header."""
    for k, v in scope["headers"]:
        if k == b"authorization":
            scheme, _, rest = v.decode("latin-1").strip().partition(" ")
            return rest.strip() if scheme.lower() == "bearer" else ""
    return None


def _refuse(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="ess"' + (
        ', error="invalid_token"' if status == 403 else "")}
    return JSONResponse(status_code=status, content={"detail": message}, headers=headers)


class TokenGate:
    """ASGI middleware: every ``/v1/`` request but :data:`OPEN_PATHS` needs a known
    token when the server has tokens; each request's client goes to
    ``scope["state"]["client"]`` (a token's name, or ``address <peer>``).

    Parameters
    ----------
    app : ASGI application
        The application behind.
    tokens : Tokens or None
        ``None``: anyone may compute, clients are told apart by address.
    """

    def __init__(self, app: ASGIApp, tokens: Tokens | None) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        peer = scope.get("client")
        client = f"address {peer[0] if peer else 'unknown'}"
        path = scope.get("path", "")
        guarded = path.startswith("/v1/") and path.rstrip("/") not in OPEN_PATHS
        if self.tokens is not None:
            token = _bearer(scope)
            name = self.tokens.identify(token) if token else None
            if name is not None:
                client = f"token {name}"
            elif guarded:
                if token is None or token == "":
                    answer = _refuse(401, "this server needs an access token: send the header "
                                          "'Authorization: Bearer <token>' (ask the server's "
                                          "administrator for a token)")
                else:
                    answer = _refuse(403, "the access token is not one of this server's "
                                          "(check it, or ask the server's administrator)")
                await answer(scope, receive, send)
                return
        scope.setdefault("state", {})["client"] = client
        await self.app(scope, receive, send)
