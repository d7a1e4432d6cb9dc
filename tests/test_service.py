"""`ess serve`: a real server process on 127.0.0.1 driven over HTTP.

Every endpoint against the Python API with the same seed, the result store,
refusals (422 naming the field or the limit, 429 with Retry-After), jobs and
their cancellation, a slow computation not stalling /v1/health, graceful and
brutal stops, a bounded schema-driven fuzz run and a bounded load run.
"""

import json
import random
import signal
import threading
import time

import pytest

import ess
from benchmarks.service_load import Server, run_load, write_results
from ess.limits import Limits
from ess.service import REFERENCE_N
from ess.store import ResultStore


def _numbers(d: dict) -> dict:
    d = dict(d)
    d.pop("seconds")
    d.pop("from_store")
    return d


def _py(res) -> dict:
    return _numbers(res.to_dict())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server with default settings, its own store and reference-curve cache."""
    root = tmp_path_factory.mktemp("serve")
    with Server(root / "store", cache_dir=root / "cache") as srv:
        yield srv


@pytest.fixture(scope="module")
def http(server):
    with server.client() as c:
        yield c


def _wait_job(http, job_id: str, timeout: float = 120.0) -> dict:
    t0 = time.time()
    while time.time() - t0 < timeout:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


# -- every endpoint, equal to the Python API ---------------------------------------------
def test_health_and_version(http):
    h = http.get("/v1/health")
    assert h.status_code == 200 and h.json()["status"] == "ok"
    v = http.get("/v1/version").json()
    assert v["ess"] == ess.__version__ and v["api"] == "v1"
    docs = http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = http.get("/openapi.json").json()
    assert {"/v1/estimate", "/v1/threshold", "/v1/table", "/v1/jobs/{job_id}",
            "/v1/reference", "/v1/health", "/v1/version"} <= set(spec["paths"])
    for model in ("EstimateIn", "ThresholdIn", "TableIn"):   # the server's limits, stated
        props = spec["components"]["schemas"][model]["properties"]
        assert props["d"]["maximum"] == Limits().max_d
        assert props["max_chains"]["maximum"] == Limits().max_chains


def test_estimate_matches_python_and_repeats_from_the_store(server, http):
    body = {"d": 3, "n_r": 100, "n_s": 200, "lam": 0.9, "seed": 11, "rel_precision": 0.01}
    t0 = time.perf_counter()
    first = http.post("/v1/estimate", json=body)
    t_first = time.perf_counter() - t0
    assert first.status_code == 200, first.text
    assert first.json()["from_store"] is False
    assert _numbers(first.json()) == _py(ess.estimate(**body, store=False))
    [entry] = ResultStore(server.store).entries()
    written = entry.stat().st_mtime_ns
    t0 = time.perf_counter()
    second = http.post("/v1/estimate", json=body)
    t_second = time.perf_counter() - t0
    assert second.json()["from_store"] is True
    assert _numbers(second.json()) == _numbers(first.json())
    assert entry.stat().st_mtime_ns == written          # read, not recomputed and rewritten
    assert t_second < t_first, (t_second, t_first)
    # the same answer reaches the Python API and the command line through the store
    assert ess.estimate(**body, store=server.store).from_store


def test_threshold_matches_python(http):
    body = {"n_r": 50, "lam": 0.8, "seed": 11, "rel_precision": 0.05}
    r = http.post("/v1/threshold", json=body)
    assert r.status_code == 200, r.text
    assert _numbers(r.json()) == _py(ess.threshold(**body, store=False))
    again = http.post("/v1/threshold", json=body).json()
    assert again["from_store"] and _numbers(again) == _numbers(r.json())


def test_guidance_and_sigma_r_reach_the_computation(http):
    body = {"d": 2, "n_s": 100, "guidance": 0.25, "sigma_r": [[2.0, 0.5], [0.5, 1.0]],
            "mu_r": [1.0, -1.0], "seed": 2, "rel_precision": 0.05}
    r = http.post("/v1/estimate", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["lam"] == 0.8
    assert _numbers(r.json()) == _py(ess.estimate(**body, store=False))


def test_small_table_is_answered_at_once(http):
    body = {"n_r": [50], "n_s": [0, 100], "lam": [0.9], "seed": 12, "rel_precision": 0.05}
    r = http.post("/v1/table", json=body)
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    assert [_numbers(x) for x in rows] == [_py(x) for x in ess.table(**body, store=False)]


def test_long_table_runs_as_a_job(http):
    body = {"n_r": [50, 100], "n_s": [0, 50, 100, 200], "lam": [1.0, 0.8], "seed": 13,
            "rel_precision": 0.05}
    r = http.post("/v1/table", json=body)
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert r.headers["location"] == f"/v1/jobs/{job_id}"
    job = _wait_job(http, job_id)
    assert job["status"] == "done" and job["done"] == job["total"] == 16
    expected = [_py(x) for x in ess.table(**body, store=False)]
    assert [_numbers(x) for x in job["result"]["rows"]] == expected
    again = http.post("/v1/table", json=body)   # now every cell is stored
    assert again.status_code == 200 and again.json()["from_store"] is True
    assert [_numbers(x) for x in again.json()["rows"]] == expected
    gone = http.delete(f"/v1/jobs/{job_id}")     # deleting a finished job changes nothing
    assert gone.status_code == 200 and gone.json()["status"] == "done"


def test_reference_curve_matches_python(http):
    r = http.get("/v1/reference", params={"d": 2, "metric": "w2"})
    assert r.status_code == 200, r.text
    pts = {p["n"]: (p["f"], p["se"]) for p in r.json()["points"]}
    assert set(REFERENCE_N) <= set(pts)
    ns = sorted(pts)
    py = ess.reference_curve(ns, d=2, metric="w2")     # this process's own cache
    assert [pts[n] for n in ns] == list(zip(py.f, py.f_se))
    assert http.get("/v1/reference", params={"d": 2, "metric": "w2"}).json()["from_store"]


def test_unknown_job_is_404(http):
    for method in ("get", "delete"):
        r = getattr(http, method)("/v1/jobs/no-such-job")
        assert r.status_code == 404 and "no job with id" in r.json()["detail"]


def test_response_models_carry_every_result_field():
    """The response models restate the result dataclasses with JSON types (null where a
    number is not finite); FastAPI drops keys a model lacks, so they must not drift."""
    from ess.service import EstimateOut, ScanRow, ThresholdOut

    est = ess.estimate(n_r=50, n_s=0, store=False).to_dict()
    thr = ess.threshold(n_r=50, lam=0.8, rel_precision=0.1, store=False).to_dict()
    assert list(EstimateOut.model_fields) == list(est)
    assert list(ThresholdOut.model_fields) == list(thr)
    assert list(ScanRow.model_fields) == list(thr["scan"][0])


# -- refusals ----------------------------------------------------------------------------
BAD = [
    ("/v1/estimate", {"d": "3"}, "d"),
    ("/v1/estimate", {"d": 1.5}, "d"),
    ("/v1/estimate", {"d": True}, "d"),
    ("/v1/estimate", {"d": 0}, "d"),
    ("/v1/estimate", {"d": 10**30}, "d"),
    ("/v1/estimate", {"d": 150}, "max_d"),
    ("/v1/estimate", {"n_r": 1}, "n_r"),
    ("/v1/estimate", {"n_r": None}, "n_r"),
    ("/v1/estimate", {"n_r": [100]}, "n_r"),
    ("/v1/estimate", {"n_s": -1}, "n_s"),
    ("/v1/estimate", {"n_s": 10**7, "n_r": 2}, "n_s"),
    ("/v1/estimate", {"lam": 1.5}, "lam"),
    ("/v1/estimate", {"lam": "high"}, "lam"),
    ("/v1/estimate", {"lam": 0.9, "guidance": 1.0}, "guidance"),
    ("/v1/estimate", {"guidance": -1}, "guidance"),
    ("/v1/estimate", {"n_ini": 1}, "n_ini"),
    ("/v1/estimate", {"loop": "fully-synthetic"}, "loop"),
    ("/v1/estimate", {"loop": "augmentation", "n_ini": 7}, "n_ini"),
    ("/v1/estimate", {"memory": 0}, "memory"),
    ("/v1/estimate", {"memory": "some"}, "memory"),
    ("/v1/estimate", {"metric": "w1"}, "metric"),
    ("/v1/estimate", {"cov_estimator": "biased"}, "cov_estimator"),
    ("/v1/estimate", {"seed": -1}, "seed"),
    ("/v1/estimate", {"seed": 2**64}, "seed"),
    ("/v1/estimate", {"rel_precision": 0}, "rel_precision"),
    ("/v1/estimate", {"rel_precision": 0.9}, "rel_precision"),
    ("/v1/estimate", {"max_chains": 0}, "max_chains"),
    ("/v1/estimate", {"max_chains": 300_000}, "max_chains"),
    ("/v1/estimate", {"max_chains": 10**12}, "max_chains"),
    ("/v1/estimate", {"mu_r": [0.0, 1.0]}, "mu_r"),
    ("/v1/estimate", {"mu_r": ["a"]}, "mu_r"),
    ("/v1/estimate", {"sigma_r": [-1.0]}, "sigma_r"),
    ("/v1/estimate", {"d": 2, "sigma_r": [[1.0, 2.0], [2.0, 1.0]]}, "sigma_r"),
    ("/v1/estimate", {"sigma_r": [[1.0], [1.0, 2.0]]}, "sigma_r"),
    ("/v1/estimate", {"n_jobs": 2}, "n_jobs"),
    ("/v1/estimate", {"N_R": 100}, "N_R"),
    ("/v1/threshold", {"n_s": 100}, "n_s"),
    ("/v1/threshold", {"cap": 0}, "cap"),
    ("/v1/threshold", {"cap": 10**7, "d": 100, "memory": 2}, "cap"),   # cold: mixes too slowly
    ("/v1/threshold", {"lam": -0.1}, "lam"),
    ("/v1/table", {"n_r": []}, "n_r"),
    ("/v1/table", {"n_r": [100, 100]}, "n_r"),
    ("/v1/table", {"n_s": [0, -5]}, "n_s"),
    ("/v1/table", {"lam": [2.0]}, "lam"),
    ("/v1/table", {"lam": [0.9], "guidance": [1.0]}, "guidance"),
    ("/v1/table", {"n_r": list(range(2, 60)), "n_s": list(range(10))}, "max_grid"),
    ("/v1/table", {"n_r": 100}, "n_r"),
]


@pytest.mark.parametrize("path,body,field", BAD, ids=[f"{p[4:]}-{f}-{i}" for i, (p, _, f)
                                                      in enumerate(BAD)])
def test_bad_input_is_422_naming_the_field(http, path, body, field):
    r = http.post(path, json=body)
    assert r.status_code == 422, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert any(field in item["msg"] for item in detail), detail
    assert all(set(item) == {"loc", "msg", "type"} for item in detail)


@pytest.mark.parametrize("raw", [b'{"n_s": ', b"[1, 2]", b'"text"', b"", b'{"lam": NaN}',
                                 b'{"lam": Infinity}', b"\xff\xfe"])
def test_malformed_json_is_422(http, raw):
    r = http.post("/v1/estimate", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.json()["detail"][0]["msg"]


@pytest.mark.parametrize("params,field", [({"d": "x"}, "d"), ({"d": 0}, "d"),
                                          ({"d": 150}, "max_d"), ({"metric": "w1"}, "metric"),
                                          ({"d": 2.5}, "d"),
                                          ({"cov_estimator": ""}, "cov_estimator"),
                                          ({"dim": 2}, "dim"), ({"d": [1, 2]}, "d")])
def test_bad_reference_query_is_422(http, params, field):
    r = http.get("/v1/reference", params=params)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert any(field in item["msg"] for item in detail)
    assert all(item["loc"][0] == "query" for item in detail), detail


def test_huge_grid_is_refused_before_any_work(http):
    """A 9-million-cell grid is refused at once, not built cell by cell."""
    body = {"n_r": list(range(2, 3002)), "n_s": list(range(3000)), "lam": [1.0]}
    t0 = time.perf_counter()
    r = http.post("/v1/table", json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "limit.max_grid"
    assert time.perf_counter() - t0 < 5.0


@pytest.mark.parametrize("ctype", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_json_is_read_whatever_the_content_type(http, ctype):
    """`curl -d` labels JSON as a form: it is still read as JSON."""
    headers = {} if ctype is None else {"content-type": ctype}
    body = {"n_s": 50, "lam": 0.9, "seed": 31, "rel_precision": 0.05}
    r = http.post("/v1/estimate", content=json.dumps(body).encode(), headers=headers)
    assert r.status_code == 200, r.text
    assert _numbers(r.json()) == _py(ess.estimate(**body, store=False))
    bad = http.post("/v1/estimate", content=b"n_s=50", headers=headers)
    assert bad.status_code == 422 and "malformed JSON" in bad.json()["detail"][0]["msg"]


def test_wrong_method_and_path(http):
    assert http.get("/v1/estimate").status_code == 405
    assert http.get("/v2/estimate").status_code == 404


# -- limits, queue, jobs, health under load ------------------------------------------------
SLOW = {"d": 100, "n_r": 100, "n_s": 10000, "lam": 1.0, "rel_precision": 0.003}  # ~4 s, 2 cores


def _compiled(c) -> None:
    """Make the server load (or compile) its kernels first: compiling cannot be
    cancelled, and would take longer than the cancellations timed below."""
    r = c.post("/v1/estimate", json={"d": 3, "n_s": 10, "seed": 77, "rel_precision": 0.1})
    assert r.status_code == 200, r.text


def test_queue_full_is_429_and_health_stays_responsive(tmp_path):
    with Server(tmp_path / "store", "--workers", "1", "--max-queue", "0") as srv, \
            srv.client() as c:
        _compiled(c)
        out = {}

        def slow(name: str) -> None:
            out[name] = c.post("/v1/estimate", json=SLOW | {"seed": 1})

        t = threading.Thread(target=slow, args=("a",))
        t.start()
        for _ in range(200):       # wait until the slow computation runs
            if c.get("/v1/health").json()["running"] == 1:
                break
            time.sleep(0.02)
        joined = threading.Thread(target=slow, args=("b",))   # identical: joins, no 429
        joined.start()
        time.sleep(1.5)
        busy = c.post("/v1/estimate", json={"seed": 99, "rel_precision": 0.05})
        assert busy.status_code == 429, busy.text
        assert int(busy.headers["retry-after"]) >= 2     # at least the running one's age
        assert "max_queue" in busy.json()["detail"]
        waits = []
        while t.is_alive():
            t0 = time.perf_counter()
            h = c.get("/v1/health")
            waits.append(time.perf_counter() - t0)
            assert h.status_code == 200
            time.sleep(0.05)
        t.join()
        joined.join()
        assert len(waits) >= 5, "the slow request was too quick to test anything"
        assert max(waits) < 0.5, max(waits)
        assert out["a"].status_code == out["b"].status_code == 200
        assert _numbers(out["a"].json()) == _numbers(out["b"].json())
        assert c.post("/v1/estimate", json={"seed": 99, "rel_precision": 0.05}).status_code \
            == 200


def test_cancelling_a_job(tmp_path):
    with Server(tmp_path / "store", "--workers", "1") as srv, srv.client() as c:
        _compiled(c)
        body = {"d": 100, "n_r": [100, 200], "n_s": [3000, 10000], "lam": [0.95, 1.0],
                "rel_precision": 0.003}   # seconds a cell: still running at 0.5 s
        r = c.post("/v1/table", json=body)
        assert r.status_code == 202
        job_id = r.json()["id"]
        time.sleep(0.5)
        gone = c.delete(f"/v1/jobs/{job_id}")
        assert gone.status_code == 200
        job = gone.json()
        assert job["status"] == "cancelled" and job["done"] < job["total"], job
        assert c.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
        for _ in range(100):   # the worker thread finishes its bookkeeping
            h = c.get("/v1/health").json()
            if h["running"] == h["queued"] == 0:
                break
            time.sleep(0.02)
        assert h["running"] == 0 and h["queued"] == 0, h
        st = ResultStore(srv.store)
        assert all(st.get("estimate", _key_of(p)) is not None for p in st.entries())


def test_deleting_a_queued_job_frees_its_place(tmp_path):
    with Server(tmp_path / "store", "--workers", "1", "--max-queue", "1") as srv, \
            srv.client() as c:
        _compiled(c)
        out = {}
        t = threading.Thread(target=lambda: out.update(r=c.post(
            "/v1/estimate", json=SLOW | {"seed": 8})))
        t.start()
        for _ in range(200):
            if c.get("/v1/health").json()["running"] == 1:
                break
            time.sleep(0.02)
        queued = c.post("/v1/table", json={"n_r": [50, 100], "n_s": [0, 50, 100],
                                           "seed": 8, "rel_precision": 0.05})
        assert queued.status_code == 202
        job_id = queued.json()["id"]
        assert c.post("/v1/estimate", json={"seed": 9}).status_code == 429
        gone = c.delete(f"/v1/jobs/{job_id}").json()
        assert gone["status"] == "cancelled" and gone["started"] is None
        assert c.get("/v1/health").json()["queued"] == 0
        with srv.client() as c2:   # the freed place takes a new request (it waits, no 429)
            after = c2.post("/v1/estimate", json={"seed": 9, "rel_precision": 0.05})
        assert after.status_code == 200, after.text
        t.join()
        assert out["r"].status_code == 200
        final = c.get(f"/v1/jobs/{job_id}").json()
        assert final["status"] == "cancelled" and final["finished"] == gone["finished"]


def test_identical_tables_at_once_compute_each_cell_once(tmp_path):
    with Server(tmp_path / "store", "--workers", "2") as srv, srv.client() as c:
        body = {"d": 3, "n_r": [50, 100], "n_s": [0, 100, 200], "lam": [0.9], "seed": 14,
                "rel_precision": 0.02}
        ids = [c.post("/v1/table", json=body).json()["id"] for _ in range(2)]
        jobs = [_wait_job(c, i) for i in ids]
        assert [j["status"] for j in jobs] == ["done", "done"]
        a, b = (j["result"]["rows"] for j in jobs)
        assert [_numbers(x) for x in a] == [_numbers(x) for x in b]
        computed = [int(not x["from_store"]) + int(not y["from_store"]) for x, y in zip(a, b)]
        assert computed == [1] * 6, computed


def _key_of(path):
    """The key stored in an entry, without the parts ResultStore adds itself."""
    key = json.loads(path.read_text())["key"]
    return {k: v for k, v in key.items() if k not in ("kind", "version", "code")}


def test_graceful_shutdown_cancels_running_work(tmp_path):
    """SIGTERM while a job runs on one worker and a synchronous request waits in the
    queue: the waiting request gets 503, the process ends with status 0."""
    srv = Server(tmp_path / "store", "--workers", "1")
    waiting = {}
    with srv.client() as c:
        _compiled(c)
        r = c.post("/v1/table", json={"d": 50, "n_r": [100, 200], "n_s": [100, 300, 900],
                                      "lam": [0.8, 0.9], "rel_precision": 0.005})
        assert r.status_code == 202

        def ask() -> None:
            with srv.client() as c2:
                waiting["r"] = c2.post("/v1/estimate", json=SLOW | {"seed": 5})

        t = threading.Thread(target=ask)
        t.start()
        for _ in range(200):
            if c.get("/v1/health").json()["queued"] == 1:
                break
            time.sleep(0.02)
        assert c.get("/v1/health").json()["queued"] == 1
    t0 = time.perf_counter()
    assert srv.stop(signal.SIGTERM, timeout=30) == 0, srv.stderr()
    assert time.perf_counter() - t0 < 20
    t.join(30)
    assert waiting["r"].status_code == 503, waiting["r"].text
    assert "stopping" in waiting["r"].json()["detail"]
    assert "Traceback" not in srv.stderr()
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
        if r.status_code == 202:
            result = _wait_job(c, r.json()["id"])["result"]
        else:
            result = r.json()
    expected = [_py(x) for x in ess.table(**body, store=False)]
    assert [_numbers(x) for x in result["rows"]] == expected
    st = ResultStore(store)
    assert len(st.entries()) == 120
    assert all(st.get("estimate", _key_of(p)) is not None for p in st.entries())


# -- schema-driven fuzzing and load ------------------------------------------------------------
def test_schemathesis_finds_no_server_error(tmp_path):
    """Positive and negative cases generated from the OpenAPI schema, bounded in
    examples; tight limits keep every accepted computation small."""
    hypothesis = pytest.importorskip("hypothesis")
    schemathesis = pytest.importorskip("schemathesis")
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_schema_conformance,
        status_code_conformance,
    )

    flags = ("--max-d", "2", "--max-chains", "20000", "--max-work", "3e6", "--max-grid", "6",
             "--sync-cells", "6")
    with Server(tmp_path / "store", *flags, cache_dir=tmp_path / "cache") as srv:
        schema = schemathesis.openapi.from_url(f"{srv.url}/openapi.json")
        checks = [not_a_server_error, status_code_conformance, content_type_conformance,
                  response_schema_conformance]
        ran = 0
        import requests

        session = requests.Session()
        session.trust_env = False   # straight to 127.0.0.1, whatever proxy the machine sets

        def fuzz(op, mode, these):
            @hypothesis.settings(max_examples=25, deadline=None, database=None,
                                 derandomize=True,
                                 suppress_health_check=list(hypothesis.HealthCheck))
            @hypothesis.given(case=op.as_strategy(generation_mode=mode))
            def run(case):
                response = case.call(base_url=srv.url, timeout=120, session=session)
                case.validate_response(response, checks=these)

            run()

        for result in schema.get_all_operations():
            op = result.ok()
            fuzz(op, schemathesis.GenerationMode.POSITIVE, checks)
            ran += 1
            if op.path not in ("/v1/health", "/v1/version", "/v1/jobs/{job_id}"):
                # the others take no input that can be invalid (a job id is any text)
                fuzz(op, schemathesis.GenerationMode.NEGATIVE,
                     checks + [negative_data_rejection])
                ran += 1
        assert ran == 12   # 8 operations; the 4 with constrained input in both modes
        assert "Traceback" not in srv.stderr(), srv.stderr()[-3000:]


def test_load_of_twenty_clients(server, tmp_path):
    res = run_load(server.url, clients=20, requests=200)
    assert res["failures"] == []
    assert res["latency"]["all"]["n"] == 200
    assert res["latency"]["store hit, one client alone"]["n"] == 50
    assert res["latency"]["health"]["n"] >= 3
    assert res["latency"]["health"]["max_ms"] < 1000
    write_results(res, tmp_path, "pytest tests/test_service.py")
    assert "p99" in (tmp_path / "service_load.md").read_text()


# -- the command ------------------------------------------------------------------------
@pytest.mark.parametrize("flags,name", [(["--workers", "0"], "workers"),
                                        (["--port", "70000"], "port"),
                                        (["--max-d", "500"], "max_d"),
                                        (["--max-queue", "-1"], "max_queue"),
                                        (["--max-work", "nan"], "max_work"),
                                        (["--host", "256.1.1.1"], "host"),
                                        (["--max-grid", "10", "--sync-cells", "20"],
                                         "sync_cells"),
                                        (["--log-level", "loud"], "log_level")])
def test_serve_bad_flags_are_one_line(tmp_path, capsys, flags, name):
    from ess.cli import main

    assert main(["serve", "--store", str(tmp_path), "--port", "0", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and name in err and "Traceback" not in err, err


def test_serve_info_log_has_a_line_per_request(tmp_path):
    with Server(tmp_path / "store", "--log-level", "info") as srv, srv.client() as c:
        assert c.get("/v1/health").status_code == 200
        for _ in range(100):
            if "GET /v1/health" in srv.stderr():
                break
            time.sleep(0.02)
        assert "GET /v1/health" in srv.stderr() and "200" in srv.stderr()


def test_serve_busy_port_is_one_line(server, tmp_path, capsys):
    from ess.cli import main

    port = server.url.rsplit(":", 1)[1]
    assert main(["serve", "--store", str(tmp_path), "--port", port]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and port in err, err
