"""`ess serve` under abuse (issue 16, first slice), in this process through
FastAPI's ``TestClient``: foreign ``Host`` names, bodies not labelled JSON, no
CORS, jobs only for the client that created them, oversized bodies (by
``Content-Length`` and streamed), duplicate keys, a long unknown key not echoed
in full, health and version without paths or versions for anonymous clients,
and finished jobs expiring.
"""

import asyncio
import json
import socket
import time
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from benchmarks.service_load import Server
from ess import config
from ess.limits import Limits
from ess.service import create_app
from ess.service.auth import Tokens
from ess.service.guard import LOCAL_HOSTS, Guard, host_names
from ess.store import ResultStore

CHEAP = {"n_s": 20, "rel_precision": 0.1, "seed": 3}
ALICE, BOB = "alice-token-0123456789", "bob-token-0123456789ab"


@contextmanager
def serving(tmp_path, tokens=None, hosts=LOCAL_HOSTS, client=("127.0.0.1", 50000),
            **limits):
    app = create_app(ResultStore(tmp_path / "store"), Limits(**limits), tokens, hosts=hosts)
    with TestClient(app, base_url="http://127.0.0.1", client=client) as c:
        yield app.state.service, c


@pytest.fixture(scope="module")
def http(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("abuse"), max_body_kb=4) as (_, c):
        yield c


def _auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# -- origin safety -------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.2",
                                  "localhost.evil.example"])
def test_a_foreign_host_is_421_before_any_work(http, host):
    """DNS rebinding sends the attacker's name as Host: refused, even for health."""
    for method, path in (("post", "/v1/estimate"), ("get", "/v1/health"), ("get", "/")):
        kw = {"json": CHEAP} if method == "post" else {}
        r = getattr(http, method)(path, headers={"host": host}, **kw)
        assert r.status_code == 421, r.text
        assert "--allow-host" in r.json()["detail"]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8000", "localhost:9",
                                  "LOCALHOST", "[::1]:8000"])
def test_local_host_names_are_answered(http, host):
    assert http.get("/v1/health", headers={"host": host}).status_code == 200


def test_allow_host_adds_a_name_and_the_bound_address(tmp_path):
    hosts = host_names("192.168.1.5", ["ess.lab.example"])
    with serving(tmp_path, hosts=hosts) as (_, c):
        for ok in ("ess.lab.example:8000", "192.168.1.5", "localhost"):
            assert c.get("/v1/health", headers={"host": ok}).status_code == 200, ok
        assert c.get("/v1/health", headers={"host": "evil.example"}).status_code == 421
    assert "0.0.0.0" not in host_names("0.0.0.0")


def test_a_cross_origin_text_plain_post_is_415_and_no_cors_is_granted(http):
    """The simple request a web page may send without a preflight is not computed;
    a preflight gets no Access-Control-Allow-Origin."""
    evil = {"origin": "http://evil.example"}
    r = http.post("/v1/estimate", content=json.dumps(CHEAP),
                  headers={**evil, "content-type": "text/plain"})
    assert r.status_code == 415
    assert "send Content-Type: application/json" in r.json()["detail"]
    assert "access-control-allow-origin" not in r.headers
    pre = http.options("/v1/estimate", headers={
        **evil, "access-control-request-method": "POST",
        "access-control-request-headers": "content-type"})
    assert "access-control-allow-origin" not in pre.headers
    ok = http.post("/v1/estimate", json=CHEAP, headers=evil)
    assert "access-control-allow-origin" not in ok.headers


def test_jobs_are_followed_and_cancelled_only_by_their_token(tmp_path):
    tokens = Tokens.from_pairs({"alice": ALICE, "bob": BOB})
    with serving(tmp_path, tokens, sync_cells=0) as (_, c):
        r = c.post("/v1/table", json={"n_r": [100], "n_s": [10], "lam": [0.5],
                                      "rel_precision": 0.1}, headers=_auth(ALICE))
        assert r.status_code == 202, r.text
        path = r.headers["location"]
        for method in ("get", "delete"):
            other = getattr(c, method)(path, headers=_auth(BOB))
            assert other.status_code == 403 and "another client" in other.json()["detail"]
        assert c.get(path, headers=_auth(ALICE)).status_code == 200
        assert c.delete(path, headers=_auth(ALICE)).status_code == 200


def test_jobs_of_an_anonymous_server_belong_to_an_address(tmp_path):
    with serving(tmp_path, sync_cells=0, client=("127.0.0.1", 1)) as (svc, c):
        r = c.post("/v1/table", json={"n_r": [100], "n_s": [10], "lam": [0.5],
                                      "rel_precision": 0.1})
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
        assert svc.jobs[job_id].owner == "address 127.0.0.1"
        svc.jobs[job_id].owner = "address 127.0.0.9"    # as if another address had posted it
        assert c.get(f"/v1/jobs/{job_id}").status_code == 403
        assert c.delete(f"/v1/jobs/{job_id}").status_code == 403


# -- body size and JSON ----------------------------------------------------------------------
def test_a_body_over_the_limit_is_413_by_content_length(http):
    r = http.post("/v1/estimate", content=b"{" + b" " * 5000 + b"}",
                  headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert "4 KiB" in r.json()["detail"] and "max_body_kb" in r.json()["detail"]


def test_a_streamed_body_is_refused_after_the_limit_without_reading_it_all():
    """No Content-Length (chunked): counted while read, refused once over the limit;
    the rest is never read and the application never called (the middleware
    itself, since the TestClient reads a whole body before the application)."""
    read, sent, called = [], [], []

    async def receive():
        read.append(1)
        return {"type": "http.request", "body": b" " * 1024, "more_body": len(read) < 1000}

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):
        called.append(1)

    scope = {"type": "http", "method": "POST", "path": "/v1/estimate", "query_string": b"",
             "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")]}
    asyncio.run(Guard(app, host_names(), max_body=4096)(scope, receive, send))
    assert sent[0]["status"] == 413 and not called
    assert len(read) == 5            # 5 KiB read: just past the limit


def test_a_body_within_the_limit_is_answered(http):
    assert http.post("/v1/estimate", json=CHEAP).status_code == 200


@pytest.mark.parametrize("raw, key", [('{"n_s": 20, "n_s": 30}', "n_s"),
                                      ('{"n_s": 20, "lam": 0.5, "lam": 1}', "lam")])
def test_a_duplicate_key_is_422_naming_it(http, raw, key):
    r = http.post("/v1/estimate", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422
    (item,) = r.json()["detail"]
    assert item["loc"] == ["body", key] and item["msg"].startswith(f"{key}: given twice")


def test_a_long_unknown_key_is_not_echoed_in_full(tmp_path):
    with serving(tmp_path) as (_, c):
        key = "k" * 100_000
        r = c.post("/v1/estimate", json={key: 1})
        assert r.status_code == 422
        assert len(r.content) < 2000
        assert r.json()["detail"][0]["loc"][1].startswith("kkkk")


# -- small ones --------------------------------------------------------------------------------
def test_health_and_version_hide_paths_and_versions_from_anonymous_clients(tmp_path):
    with serving(tmp_path) as (svc, c):
        h = c.get("/v1/health").json()
        assert h["store"] is None and str(svc.store.root) not in json.dumps(h)
        assert set(c.get("/v1/version").json()) == {"ess", "api"}
    tokens = Tokens.from_pairs({"alice": ALICE})
    with serving(tmp_path, tokens) as (svc, c):
        assert c.get("/v1/health").json()["store"] is None
        assert c.get("/v1/health", headers=_auth(ALICE)).json()["store"] == str(svc.store.root)
        v = c.get("/v1/version", headers=_auth(ALICE)).json()
        assert {"python", "numpy", "numba"} <= set(v)


def test_finished_jobs_expire_after_job_ttl(tmp_path):
    with serving(tmp_path, sync_cells=0, job_ttl=60) as (svc, c):
        r = c.post("/v1/table", json={"n_r": [100], "n_s": [10], "lam": [0.5],
                                      "rel_precision": 0.1})
        job = svc.jobs[r.json()["id"]]
        c.delete(r.headers["location"])
        assert job.status in job.FINAL
        assert c.get(r.headers["location"]).status_code == 200
        job.finished -= 61                              # as if it had ended a minute ago
        gone = c.get(r.headers["location"])
        assert gone.status_code == 404 and "60 s" in gone.json()["detail"]
        assert job.id not in svc.jobs


def test_new_limits_are_checked():
    from ess.params import ParameterError

    with pytest.raises(ParameterError, match="max_body_kb"):
        Limits(max_body_kb=0).checked()
    with pytest.raises(ParameterError, match="job_ttl"):
        Limits(job_ttl=0).checked()
    with pytest.raises(ParameterError, match="queue_deadline"):
        Limits(queue_deadline=0).checked()


# -- a real server on 127.0.0.1 ----------------------------------------------------------------
def test_a_real_server_refuses_foreign_hosts_wrong_types_and_big_bodies_cheaply(tmp_path):
    """``ess serve --allow-host --max-body-kb --job-ttl`` on 127.0.0.1: a foreign Host
    and a text/plain post from another origin are refused, an allowed name answered;
    a 50 MB body is refused from its Content-Length at once (and a streamed one
    after the limit), health answering all along; no traceback on standard error."""
    with Server(tmp_path / "store", "--allow-host", "ess.lab.example", "--max-body-kb", "64",
                "--job-ttl", "120") as srv, srv.client(timeout=30) as c:
        assert c.get("/v1/health", headers={"host": "evil.example"}).status_code == 421
        assert c.get("/v1/health", headers={"host": "ess.lab.example"}).status_code == 200
        r = c.post("/v1/estimate", content=json.dumps(CHEAP),
                   headers={"content-type": "text/plain", "origin": "http://evil.example"})
        assert r.status_code == 415 and "access-control-allow-origin" not in r.headers
        assert c.post("/v1/estimate", json=CHEAP).status_code == 200

        port = int(srv.url.rsplit(":", 1)[1])
        t0 = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /v1/estimate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 52428800\r\n\r\n")
            s.sendall(b" " * 65536)                   # the rest (50 MB) is never sent
            answer = s.recv(4096)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert time.perf_counter() - t0 < 5

        def streamed():
            for _ in range(50):                       # 50 x 64 KiB, chunked
                yield b" " * 65536

        big = c.post("/v1/estimate", content=streamed(),
                     headers={"content-type": "application/json"})
        assert big.status_code == 413 and "64 KiB" in big.json()["detail"]
        assert c.get("/v1/health").status_code == 200
    assert "Traceback" not in srv.stderr(), srv.stderr()


# -- a budget per request ----------------------------------------------------------------------
TABLE = {"n_r": [100, 200], "n_s": [10, 20, 40], "lam": [0.5, 0.9], "rel_precision": 0.1,
         "seed": 4}


def test_a_table_over_the_request_budget_is_422_before_any_cell_runs(tmp_path):
    with serving(tmp_path, sync_cells=12) as (svc, c):
        cells = svc.table_cells(svc.arguments(_table_in(TABLE)))
        total = sum(svc.work(x) for x in cells)
    with serving(tmp_path, sync_cells=12, max_request_work=total * 0.99) as (svc, c):
        t0 = time.perf_counter()
        r = c.post("/v1/table", json=TABLE)
        assert r.status_code == 422, r.text
        (item,) = r.json()["detail"]
        assert item["loc"] == ["body", "n_r"] and item["type"] == "limit.max_request_work"
        assert "max_request_work" in item["msg"] and "12 cells" in item["msg"]
        assert time.perf_counter() - t0 < 2
        assert svc.store.usage().entries == 0 and not svc.jobs
        assert svc.scheduler.running == svc.scheduler.queued == 0
    with serving(tmp_path, sync_cells=12, max_request_work=total * 1.01) as (svc, c):
        assert c.post("/v1/table", json=TABLE).status_code == 200
    with serving(tmp_path, sync_cells=12, max_request_work=1) as (svc, c):   # all stored
        r = c.post("/v1/table", json=TABLE)
        assert r.status_code == 200 and r.json()["from_store"] is True


def test_a_table_over_the_request_budget_names_the_largest_max_chains(tmp_path):
    """The refusal names the largest max_chains within the budget: with it the table is
    accepted, with one more it is not (d = 10, 500 cells, checked before any runs)."""
    import re
    from dataclasses import replace

    body = {"d": 10, "n_r": list(range(100, 1100, 100)), "n_s": [100 * i for i in range(1, 11)],
            "lam": [0.5, 0.6, 0.7, 0.8, 0.9], "rel_precision": 0.01}
    with serving(tmp_path) as (svc, c):
        t0 = time.perf_counter()
        r = c.post("/v1/table", json=body)
        assert time.perf_counter() - t0 < 5
        assert r.status_code == 422, r.text
        (item,) = r.json()["detail"]
        assert item["type"] == "limit.max_request_work" and "--max-request-work" in item["msg"]
        most = int(re.search(r"the largest max_chains within it is (\d+)", item["msg"])[1])
        cells = svc.table_cells(svc.arguments(_table_in(body)))
        todo = [None] * len(cells)
        assert svc.check_budget([replace(x, max_chains=most) for x in cells], todo) \
            <= svc.limits.max_request_work
        with pytest.raises(Exception, match="max_request_work"):
            svc.check_budget([replace(x, max_chains=most + 1) for x in cells], todo)
        assert svc.scheduler.running == svc.scheduler.queued == 0 and not svc.jobs


def _table_in(body: dict):
    from ess.service.schemas import TableIn

    return TableIn(**body)


THRESHOLD = {"n_r": 50, "lam": 0.8, "rel_precision": 0.1, "seed": 2}


@pytest.mark.parametrize("body", [dict(THRESHOLD), {"n_r": 20, "lam": 0.6, "seed": 1,
                                                    "rel_precision": 0.2},
                                  {"n_r": 30, "lam": 1.0, "rel_precision": 0.2, "cap": 300}])
def test_a_threshold_search_makes_no_more_evaluations_than_its_bound(body):
    """The request budget of a search counts search_evaluations(cap) evaluations: a
    search that brackets and bisects (lam < 1), and one finding no threshold."""
    import ess
    from ess.plan import search_evaluations

    res = ess.threshold(**body, store=False)
    assert 1 <= res.evaluations <= search_evaluations(res.cap), (res.evaluations, res.cap)


def test_search_evaluations_counts_the_scan_and_three_bisections():
    from ess.plan import INTERPOLATION_SLACK, search_evaluations, search_grid

    k = INTERPOLATION_SLACK
    assert search_evaluations(1) == 1 + 3 * (1 + k) and search_evaluations(2) == 2 + 3 * (1 + k)
    assert search_evaluations(10_000) == len(search_grid(10_000)) + 3 * (14 + k) == 8 + 54


def test_default_searches_run_under_their_share_of_the_request_budget(tmp_path):
    """A search is bounded before it runs by its most evaluations times one's bound; at
    d >= 10 one evaluation at the default chain budget may need all of max_work, so each
    evaluation is held to max_request_work / search_evaluations(cap) instead of the
    default search at d = 100 being refused. The share is the search's alone: a heatmap
    cell and the same single threshold are one store entry, and the default heatmap at
    d = 1 fits the default limit from a cold store. Checked without computing."""
    from ess.plan import search_evaluations

    with serving(tmp_path) as (svc, c):
        lim = svc.limits.max_request_work
        req = svc.check_threshold(svc.arguments(_in("ThresholdIn", {"d": 100, "n_r": 100})))
        assert req.max_work == pytest.approx(lim / search_evaluations(req.cap))
        assert req.max_work < config.MAX_WORK
        assert svc.check_request_work(req) <= lim
        cells = svc.threshold_cells(svc.arguments(_in("ThresholdGridIn", {"d": 1})))
        assert len(cells) > 1
        for x in cells:
            one = svc.check_threshold(svc.arguments(_in("ThresholdIn", {
                "d": 1, "n_r": x.params.n_r, "lam": x.params.lam})))
            assert x.key() == one.key()
        assert svc.check_budget(cells, [None] * len(cells)) <= lim


def test_a_search_under_its_share_reports_the_budget_it_ran_under(tmp_path):
    """A small request budget: the search runs, and its answer reports the share of
    max_request_work that each evaluation ran under (here enough for the asked
    precision: a d = 1 search is cheap)."""
    from ess.plan import search_evaluations

    with serving(tmp_path) as (svc, c):
        req = svc.check_threshold(svc.arguments(_in("ThresholdIn", THRESHOLD)))
        evaluations = search_evaluations(req.cap)
    lim = evaluations * 2 * config.MIN_WORK
    with serving(tmp_path, max_request_work=lim) as (svc, c):
        r = c.post("/v1/threshold", json=THRESHOLD)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["max_work"] == pytest.approx(lim / evaluations)
        assert out["precision_reached"] and out["n_s_star"] is not None


def test_a_threshold_over_the_request_budget_is_422_naming_it(tmp_path):
    """A limit that leaves each evaluation less than the least work budget: 422 naming
    max_request_work and the cap, before anything runs."""
    with serving(tmp_path, max_request_work=10 * config.MIN_WORK) as (svc, c):
        t0 = time.perf_counter()
        r = c.post("/v1/threshold", json=THRESHOLD)
        assert time.perf_counter() - t0 < 2
        assert r.status_code == 422, r.text
        (item,) = r.json()["detail"]
        assert item["loc"] == ["body", "cap"] and item["type"] == "limit.max_request_work"
        assert "--max-request-work" in item["msg"] and "lower cap" in item["msg"]
        assert svc.scheduler.running == svc.scheduler.queued == 0
        assert svc.store.usage().entries == 0


def test_a_threshold_heatmap_over_the_request_budget_is_422_summed_over_cells(tmp_path):
    grid = {"n_r": [30, 60], "lam": [0.7, 0.8], "rel_precision": 0.2, "seed": 3, "cap": 500}
    with serving(tmp_path, max_request_work=10 * config.MIN_WORK) as (svc, c):
        r = c.post("/v1/figures/threshold-heatmap", json=grid)
        assert r.status_code == 422, r.text
        (item,) = r.json()["detail"]
        assert item["type"] == "limit.max_request_work" and "4 cells" in item["msg"]
        assert svc.store.usage().entries == 0


def test_an_estimate_or_a_reference_over_the_request_budget_is_422(tmp_path, monkeypatch):
    monkeypatch.setenv("ESS_CACHE_DIR", str(tmp_path / "cache"))   # no curve cached
    with serving(tmp_path, max_request_work=1e3) as (svc, c):
        r = c.post("/v1/estimate", json=CHEAP)
        assert r.status_code == 422, r.text
        assert r.json()["detail"][0]["type"] == "limit.max_request_work"
        r = c.get("/v1/reference?d=7")
        assert r.status_code == 422, r.text
        (item,) = r.json()["detail"]
        assert item["loc"] == ["query", "d"] and item["type"] == "limit.max_request_work"
        assert svc.scheduler.running == svc.scheduler.queued == 0


def _in(model: str, body: dict):
    from ess.service import schemas

    return getattr(schemas, model)(**body)


# -- the queue: deadlines, clients leaving, Retry-After ---------------------------------------
def test_retry_after_is_the_work_ahead_over_the_measured_throughput():
    import threading

    from ess.service.scheduler import INITIAL_THROUGHPUT, RETRY_AFTER_RANGE, Scheduler

    sch = Scheduler(workers=2, max_queue=4)
    gate = threading.Event()
    try:
        assert sch.retry_after() == RETRY_AFTER_RANGE[0]
        held = [sch.submit(f"h{i}", gate.wait, work=40 * INITIAL_THROUGHPUT) for i in range(2)]
        _until_true(lambda: sch.running == 2)
        sch.submit("q", gate.wait, work=100 * INITIAL_THROUGHPUT)
        # (2 x 40 s less what ran, + 100 s) over two workers: about 90 s
        assert 85 <= sch.retry_after() <= 90
        sch.submit("r", gate.wait, work=1e6 * INITIAL_THROUGHPUT)
        assert sch.retry_after() == RETRY_AFTER_RANGE[1]
    finally:
        gate.set()
        for f in held:
            f.result()
    # measured: a computation of 1e6 units that took about 0.2 s
    sch.submit("m", lambda: time.sleep(0.2), work=1e6).result()
    _until_true(lambda: sch.queued == sch.running == 0)
    assert 2e6 < sch.throughput() < 5.1e6
    sch.shutdown()


def test_a_queued_computation_expires_and_one_left_by_its_clients_is_cancelled():
    import threading

    from ess.service.scheduler import Scheduler

    sch = Scheduler(workers=1, max_queue=4, queue_deadline=0.1)
    gate, cancel = threading.Event(), threading.Event()
    ran = []
    try:
        held = sch.submit("held", gate.wait)
        _until_true(lambda: sch.running == 1)
        late = sch.submit("late", lambda: ran.append(1))
        time.sleep(0.15)
        assert sch.waited(late) > 0.1 and sch.expire(late) and late.cancelled()
        assert not sch.expire(held)            # running: not the queue's to expire
        left = sch.submit("left", lambda: ran.append(2), cancel=cancel)
        sch.join(left)
        sch.join(left)                         # two clients wait for it
        sch.leave(left, gone=True)
        assert not left.cancelled() and not cancel.is_set()
        sch.leave(left, gone=True)             # the last one leaves
        assert left.cancelled() and cancel.is_set()
        assert sch.queued == 0
    finally:
        gate.set()
        held.result()
    assert ran == []
    sch.shutdown()


def _until_true(cond, timeout: float = 10.0) -> None:
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "condition not reached"
        time.sleep(0.01)


def test_health_says_when_the_store_cannot_be_written(tmp_path):
    """A store that cannot be written (here its folder would be under a file: no
    permission check stops root) is reported; requests are still answered."""
    with serving(tmp_path) as (svc, c):
        assert c.get("/v1/health").json()["store_writable"] is True
        assert not [p for p in svc.store.root.iterdir() if p.name.startswith(".tmp-probe")]
    (tmp_path / "file").write_text("not a folder")
    app = create_app(ResultStore(tmp_path / "file" / "store"), Limits())
    with TestClient(app, base_url="http://127.0.0.1") as c:
        h = c.get("/v1/health").json()
        assert h["store_writable"] is False and h["status"] == "ok"
        assert c.post("/v1/estimate", json=CHEAP).status_code == 200


def test_a_grid_checks_and_factors_its_sigma_r_once(tmp_path, monkeypatch):
    """Validating a 500-cell table with a full d = 100 sigma_r factors it once, not per
    cell (it was 5.9 of the 7.1 s its checks took), and each cell gets its own copy."""
    import numpy as np

    from ess import params

    calls = []
    real = params._check_reference
    monkeypatch.setattr(params, "_check_reference", lambda *a: calls.append(1) or real(*a))
    rng = np.random.default_rng(1)
    a = rng.normal(size=(100, 100))
    sigma = (a @ a.T / 100 + np.eye(100)).tolist()
    body = {"d": 100, "n_r": list(range(100, 1100, 100)),
            "n_s": [100 * i for i in range(1, 11)], "lam": [0.5, 0.6, 0.7, 0.8, 0.9],
            "sigma_r": sigma}
    with serving(tmp_path, max_grid=500) as (svc, c):
        cells = svc.table_cells(svc.arguments(_table_in(body)))
    assert len(cells) == 500 and len(calls) == 1
    first, last = cells[0].params, cells[-1].params
    assert np.array_equal(first.L_r, last.L_r) and first.L_r is not last.L_r
    assert first.scale == last.scale and not first.sr_identity
    other = params.check_reference(100, None, np.diag(np.arange(1.0, 101.0)))
    assert len(calls) == 2 and not np.array_equal(other[1], first.L_r)


def test_a_cold_started_threshold_is_bounded_by_its_work_budget_not_refused_as_bad(tmp_path):
    """At d = 100 with a full sigma_r the chains start cold and a first round of the main
    plan is over max_work: the run then uses a shorter first round and stops at the
    budget, so each evaluation is bounded by max_work. The service used to refuse every
    such threshold with a value_error naming an n_s the user never gave."""
    import numpy as np

    rng = np.random.default_rng(2)
    a = rng.normal(size=(100, 100))
    body = {"d": 100, "n_r": 100, "lam": 0.5, "sigma_r": (a @ a.T / 100 + np.eye(100)).tolist()}
    with serving(tmp_path, max_body_kb=1024) as (svc, c):
        req = svc.check_threshold(svc.arguments(_in("ThresholdIn", body)))
        # bounded by its share of max_request_work (its default cap lowered to fit
        # that share, which the answer reports), and so admitted
        assert req.max_work < svc.limits.max_work and req.cap < req.cap_wanted
        assert svc.work(req, threshold=True) == req.max_work
        assert svc.check_request_work(req) <= svc.limits.max_request_work
