"""`ess serve` as a real process on 127.0.0.1: what only a process shows.

Stop signals (SIGTERM, Ctrl-C) cancelling running work with exit status 0,
``kill -9`` mid-write leaving a store every later answer can trust, and a
bounded load run of twenty clients. Endpoints are tested in this process
(``test_service.py``).
"""

import json
import random
import signal
import threading
import time

import pytest

import ess
from benchmarks.service_load import Server, make_tokens, run_load, write_results
from ess.store import ResultStore

#: ~4 s on 2 cores: still running when the server is stopped.
SLOW = {"d": 100, "n_r": 100, "n_s": 3000, "lam": 1.0, "rel_precision": 0.005}


def _numbers(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("seconds", "from_store")}


def _key_of(path):
    """The key stored in an entry, without the parts ResultStore adds itself."""
    key = json.loads(path.read_text())["key"]
    return {k: v for k, v in key.items() if k not in ("kind", "version", "code")}


def _wait_job(http, job_id: str, timeout: float = 120.0) -> dict:
    t0 = time.time()
    while time.time() - t0 < timeout:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_stop_signal_cancels_running_work_and_exits_0(tmp_path, sig):
    """A stop signal while a job runs on the one worker and a request waits in the
    queue: the waiting request gets 503, the process ends with status 0, without a
    traceback, and every entry left in the store is whole. With ``--log-level info``
    every request has a line on standard error."""
    srv = Server(tmp_path / "store", "--workers", "1", "--log-level", "info")
    waiting = {}
    with srv.client() as c:
        r = c.post("/v1/estimate", json={"d": 3, "n_s": 10, "seed": 77, "rel_precision": 0.1})
        assert r.status_code == 200, r.text      # kernels loaded: cancellable from here
        r = c.post("/v1/table", json={"d": 50, "n_r": [100, 200], "n_s": [100, 300, 900],
                                      "lam": [0.8, 0.9], "rel_precision": 0.005})
        assert r.status_code == 202

        def ask() -> None:
            with srv.client() as c2:
                waiting["r"] = c2.post("/v1/estimate", json=SLOW | {"seed": 5})

        t = threading.Thread(target=ask)
        t.start()
        for _ in range(500):   # the job runs and the request waits for the worker
            h = c.get("/v1/health").json()
            if h["running"] == h["queued"] == 1:
                break
            time.sleep(0.02)
        assert h["running"] == h["queued"] == 1, h
    assert srv.stop(sig, timeout=30) == 0, srv.stderr()
    t.join(30)
    assert waiting["r"].status_code == 503, waiting["r"].text
    assert "stopping" in waiting["r"].json()["detail"]
    err = srv.stderr()
    assert "Traceback" not in err and "ess serve: stopped" in err, err
    assert '"GET /v1/health HTTP/1.1" 200' in err, err
    st = ResultStore(srv.store)
    assert all(st.get("estimate", _key_of(p)) is not None for p in st.entries())


def test_store_survives_a_server_killed_mid_write(tmp_path):
    """SIGKILL at random moments while a job writes an entry every few ms; then a
    planted truncated entry. After a restart every answer equals the Python API's."""
    store = tmp_path / "store"
    body = {"n_r": [20, 50, 100, 200, 400], "n_s": [0, 10, 25, 50, 100, 200, 400, 800],
            "lam": [0.6, 0.9, 1.0], "seed": 21, "rel_precision": 0.05}
    rng = random.Random(4)
    counts = []
    for target in (10, 40, 70):
        srv = Server(store, "--workers", "1")
        with srv.client() as c:
            r = c.post("/v1/table", json=body)
            assert r.status_code == 202
            while c.get(f"/v1/jobs/{r.json()['id']}").json()["done"] < target:
                time.sleep(0.001)
            time.sleep(rng.uniform(0.0, 0.01))      # somewhere among the next writes
        srv.stop(signal.SIGKILL)
        counts.append(len(ResultStore(store).entries()))
    assert counts == sorted(counts) and 0 < counts[-1] < 120, counts
    entries = ResultStore(store).entries()
    entries[0].write_text(entries[0].read_text()[:100])     # a torn entry, as if by a crash
    with Server(store) as srv, srv.client() as c:
        r = c.post("/v1/table", json=body)
        result = _wait_job(c, r.json()["id"])["result"] if r.status_code == 202 else r.json()
    expected = [_numbers(x.to_dict()) for x in ess.table(**body, store=False)]
    assert [_numbers(x) for x in result["rows"]] == expected
    st = ResultStore(store)
    assert len(st.entries()) == 120
    assert all(st.get("estimate", _key_of(p)) is not None for p in st.entries())


def test_load_of_twenty_clients_with_tokens_none_logged(tmp_path):
    """The load run, each client with its own token, on a server logging every
    request (``--log-level info``): no failure, and no token in its log; then a
    wrong token and a missing one, refused (403, 401), and still not logged."""
    tokens = make_tokens(tmp_path / "tokens.txt", 20)
    with Server(tmp_path / "store", "--token-file", str(tmp_path / "tokens.txt"),
                "--log-level", "info", cache_dir=tmp_path / "cache") as srv:
        res = run_load(srv.url, clients=20, requests=200, tokens=tokens)
        with srv.client() as c:
            wrong = c.get("/v1/version", headers={"Authorization": f"Bearer {tokens[0]}x"})
            assert wrong.status_code == 403
            assert c.get("/v1/version").status_code == 401
            assert c.get("/v1/version", headers={"Authorization": f"Bearer {tokens[1]}"}
                         ).status_code == 200
        time.sleep(0.2)   # the access log's last lines
        err = srv.stderr()
    assert res["failures"] == []
    assert '"POST /v1/estimate HTTP/1.1" 200' in err and '"GET /v1/version HTTP/1.1" 403' in err
    leaked = [t for t in tokens if t in err or t[:12] in err]
    assert leaked == [], "tokens in the log"
    assert "Bearer" not in err
    assert res["latency"]["all"]["n"] == 200
    assert res["latency"]["store hit, one client alone"]["n"] == 50
    assert res["latency"]["health"]["n"] >= 3
    assert res["latency"]["health"]["max_ms"] < 1000
    write_results(res, tmp_path, "pytest tests/test_service_process.py")
    assert "p99" in (tmp_path / "service_load.md").read_text()
