"""Access tokens and fair queues of `ess serve`.

In this process (FastAPI's ``TestClient``): no header ``401``, an unknown token
``403``, a known one ``200``, ``/v1/health`` open, every token compared with
:func:`hmac.compare_digest`, token files refused with a line naming the file and
line, one client flooding the queue refused with ``429`` while another is served.
As a process: the refusal to listen beyond loopback without tokens, and no token
in the log at ``--log-level info``.
"""

import hmac
import threading
import time
from contextlib import contextmanager

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from ess.cli import main
from ess.limits import Limits
from ess.params import ParameterError
from ess.service import auth, create_app
from ess.service.auth import Tokens, check_exposure, is_loopback
from ess.store import ResultStore

ALICE = "alice-0123456789abcdef"
BOB = "bob-fedcba9876543210xyz"
TOKENS = {"alice": ALICE, "bob": BOB}
#: A computation of a few milliseconds once the kernels are compiled.
QUICK = {"d": 1, "n_r": 100, "n_s": 50, "lam": 0.9, "rel_precision": 0.05}


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@contextmanager
def serving(tmp_path, tokens=TOKENS, **limits):
    app = create_app(ResultStore(tmp_path / "store"), Limits(**limits),
                     Tokens.from_pairs(tokens) if tokens else None)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield app.state.service, c


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("auth")) as (svc, c):
        yield c


# -- tokens --------------------------------------------------------------------------------
@pytest.mark.parametrize("method, path, body", [
    ("post", "/v1/estimate", QUICK), ("post", "/v1/threshold", {"n_r": 10}),
    ("post", "/v1/table", {"n_r": [10], "n_s": [0]}), ("get", "/v1/reference", None),
    ("get", "/v1/version", None), ("get", "/v1/jobs/nope", None),
    ("delete", "/v1/jobs/nope", None), ("get", "/v1/no-such-path", None)])
def test_every_v1_path_but_health_needs_a_known_token(guarded, method, path, body):
    kw = {"json": body} if body is not None else {}
    none = getattr(guarded, method)(path, **kw)
    assert none.status_code == 401, none.text
    assert none.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in none.json()["detail"]
    for header in ({"Authorization": "Basic YWxpY2U6eA=="}, {"Authorization": "Bearer "}):
        assert getattr(guarded, method)(path, headers=header, **kw).status_code == 401
    wrong = getattr(guarded, method)(path, headers=_auth(ALICE[:-1] + "X"), **kw)
    assert wrong.status_code == 403, wrong.text
    assert ALICE[:-1] not in wrong.text             # never repeated back
    right = getattr(guarded, method)(path, headers=_auth(ALICE), **kw)
    assert right.status_code not in (401, 403), right.text


def test_right_token_is_200_and_health_is_open(guarded):
    assert guarded.post("/v1/estimate", json=QUICK, headers=_auth(BOB)).status_code == 200
    assert guarded.get("/v1/version", headers=_auth(ALICE)).status_code == 200
    h = guarded.get("/v1/health")
    assert h.status_code == 200 and h.json()["tokens"] is True
    assert guarded.get("/v1/health", headers=_auth("not a token at all")).status_code == 200


def test_pages_and_docs_are_open(guarded):
    for path in ("/docs", "/openapi.json"):
        assert guarded.get(path).status_code == 200, path


def test_openapi_offers_the_token_to_docs(guarded):
    spec = guarded.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    assert spec["paths"]["/v1/estimate"]["post"]["security"] == [{"token": []}]
    assert "security" not in spec["paths"]["/v1/health"]["get"]
    assert "401" in spec["paths"]["/v1/estimate"]["post"]["responses"]
    assert "Authorization: Bearer" in spec["info"]["description"]


def test_tokens_are_compared_in_constant_time(monkeypatch):
    """Every token is compared, each by hmac.compare_digest on equal-length digests,
    whichever matches (a match does not end the loop early)."""
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    tokens = Tokens.from_pairs({f"c{i}": f"token-number-{i:04d}-abcdef" for i in range(5)})
    for presented, name in [("token-number-0000-abcdef", "c0"), ("token-number-0004-abcdef",
                                                                  "c4"), ("x", None),
                            ("token-number-0000-abcdef" * 40, None)]:
        calls.clear()
        assert tokens.identify(presented) == name
        assert calls == [(32, 32)] * 5


def test_anonymous_server_tells_clients_apart_by_address(tmp_path):
    with serving(tmp_path, tokens=None) as (svc, c):
        assert c.post("/v1/estimate", json=QUICK).status_code == 200
        assert c.get("/v1/health").json()["tokens"] is False
        seen = []
        app = c.app

        @app.get("/v1/test-client")
        async def who(request: Request) -> dict:
            seen.append(request.state.client)
            return {}

        c.get("/v1/test-client")
        assert seen == ["address testclient"]


@pytest.mark.parametrize("text, words", [
    ("", "no 'name token' line"),
    ("# only a comment\n\n", "no 'name token' line"),
    ("alice\n", "line 1: each line must be 'name token'"),
    (f"alice {ALICE} extra\n", "line 1: each line must be 'name token'"),
    (f"alice {ALICE}\nalice {BOB}\n", "line 2: the name 'alice' is given twice"),
    (f"alice {ALICE}\nbob {ALICE}\n", "line 2: the token of 'bob' is also another client's"),
    ("alice short\n", "line 1: the token of 'alice' must be at least 16 characters, got 5"),
])
def test_bad_token_files_are_one_line_naming_it(tmp_path, capsys, text, words):
    f = tmp_path / "tokens.txt"
    f.write_text(text)
    with pytest.raises(ParameterError, match=words) as e:
        Tokens.read(f)
    assert e.value.name == "token_file"
    assert ALICE not in str(e.value) and BOB not in str(e.value)
    assert main(["serve", "--port", "0", "--store", str(tmp_path / "s"),
                 "--token-file", str(f)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err and ALICE not in err


def test_token_file_with_comments_and_blank_lines(tmp_path):
    f = tmp_path / "tokens.txt"
    f.write_text(f"# lab tokens\n\nalice   {ALICE}\n  bob\t{BOB}  \n")
    t = Tokens.read(f)
    assert t.names == ("alice", "bob")
    assert t.identify(BOB) == "bob" and t.identify(ALICE) == "alice"
    assert t.identify(ALICE + " ") is None
    assert ALICE not in repr(t)
    assert main(["serve", "--token-file", str(tmp_path / "missing.txt")]) == 2


@pytest.mark.parametrize("host, loop", [("127.0.0.1", True), ("127.3.4.5", True),
                                        ("::1", True), ("localhost", True),
                                        ("0.0.0.0", False), ("::", False),
                                        ("192.0.2.7", False), ("no-such-host.invalid", False)])
def test_loopback_addresses(host, loop):
    assert is_loopback(host) is loop


def test_binding_beyond_loopback_needs_tokens_or_allow_anonymous(tmp_path, capsys):
    with pytest.raises(ParameterError, match="--token-file") as e:
        check_exposure("0.0.0.0", None, False)
    assert e.value.name == "host"
    check_exposure("0.0.0.0", Tokens.from_pairs(TOKENS), False)
    check_exposure("0.0.0.0", None, True)
    check_exposure("127.0.0.1", None, False)
    # the command line refuses before it binds anything: one line, status 2
    assert main(["serve", "--host", "0.0.0.0", "--port", "0",
                 "--store", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--allow-anonymous" in err and "--token-file" in err


# -- fair queues ---------------------------------------------------------------------------
def _until(cond, timeout: float = 20.0) -> None:
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def test_one_client_flooding_gets_429_while_another_is_served(tmp_path):
    """alice fills her share (2) of a one-worker server whose worker is held; her
    third request gets 429 with Retry-After naming max_per_client, and so does a
    table job; bob is still queued and answered, and so is alice once hers are done."""
    with serving(tmp_path, workers=1, max_queue=10, max_per_client=2) as (svc, c):
        gate = threading.Event()
        blocker = svc.scheduler.submit("blocker", gate.wait, client="someone else")
        _until(lambda: svc.scheduler.running == 1)
        answers: dict = {}

        def ask(name: str, token: str, seed: int) -> None:
            answers[name, seed] = c.post("/v1/estimate", json=QUICK | {"seed": seed},
                                         headers=_auth(token))

        threads = [threading.Thread(target=ask, args=("alice", ALICE, s)) for s in (1, 2)]
        for t in threads:
            t.start()
        _until(lambda: svc.scheduler.held("token alice") == 2)
        flood = c.post("/v1/estimate", json=QUICK | {"seed": 3}, headers=_auth(ALICE))
        assert flood.status_code == 429, flood.text
        assert int(flood.headers["retry-after"]) >= 1
        assert "max_per_client = 2" in flood.json()["detail"]
        assert "token alice" in flood.json()["detail"]
        job = c.post("/v1/table", json={"n_r": [100], "n_s": [10, 20, 30, 40, 60],
                                        "lam": [0.9], "rel_precision": 0.05},
                     headers=_auth(ALICE))
        assert job.status_code == 429, job.text
        # the same computation as one of alice's joins it: no new work, no refusal
        same = threading.Thread(target=ask, args=("alice-again", ALICE, 1))
        bob = threading.Thread(target=ask, args=("bob", BOB, 4))
        same.start()
        bob.start()
        _until(lambda: svc.scheduler.held("token bob") == 1)
        assert svc.scheduler.queued == 3
        gate.set()
        blocker.result()
        for t in (*threads, same, bob):
            t.join(120)
        assert {k: r.status_code for k, r in answers.items()} == {
            ("alice", 1): 200, ("alice", 2): 200, ("alice-again", 1): 200, ("bob", 4): 200}
        assert svc.scheduler.held("token alice") == 0
        again = c.post("/v1/estimate", json=QUICK | {"seed": 3}, headers=_auth(ALICE))
        assert again.status_code == 200


def test_max_per_client_flag_is_checked(tmp_path, capsys):
    assert main(["serve", "--max-per-client", "0", "--store", str(tmp_path)]) == 2
    assert "max_per_client" in capsys.readouterr().err
