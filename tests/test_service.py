"""`ess serve`'s application in this process, through FastAPI's ``TestClient``.

Every endpoint against the Python API with the same seed, the result store,
the schemas (derived from the result types, stating the package's ranges),
refusals (``422`` locating the field, ``429`` with Retry-After), jobs and their
cancellation, the queue, a slow computation not stalling /v1/health, and a
bounded schema-driven fuzz run. The process itself (signals, ``kill -9``, load)
is tested in ``test_service_process.py``.
"""

import dataclasses
import json
import re
import socket
import threading
import time
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

import ess
from ess import config, defaults
from ess.limits import Limits
from ess.params import ParameterError
from ess.request import simulate_request, simulate_work
from ess.results import Interval
from ess.service import REFERENCE_N, create_app
from ess.service.schemas import (
    EstimateIn,
    EstimateOut,
    ScanRow,
    SimulateOut,
    SimulateRow,
    ThresholdOut,
    json_type,
    response_model,
)
from ess.store import ResultStore


def _numbers(d: dict) -> dict:
    d = dict(d)
    d.pop("seconds")
    d.pop("from_store")
    return d


def _py(res) -> dict:
    return _numbers(res.to_dict())


@contextmanager
def serving(tmp_path, **limits):
    """An application with its own store and ``limits``, and a client for it; on
    leaving, the application's end (cancel, wait for the threads)."""
    app = create_app(ResultStore(tmp_path / "store"), Limits(**limits))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield app.state.service, c


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """One application with default limits for the module's tests, and its client."""
    with serving(tmp_path_factory.mktemp("serve")) as (svc, c):
        yield svc, c


@pytest.fixture(scope="module")
def http(service):
    return service[1]


def _wait_job(http, job_id: str, timeout: float = 120.0) -> dict:
    t0 = time.time()
    while time.time() - t0 < timeout:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


def _until(cond, timeout: float = 10.0) -> None:
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


@contextmanager
def occupied(svc, n: int = 1, work: float = 0.0):
    """``n`` of the service's workers held by computations (of ``work`` units each)
    that wait for the gate yielded; it opens on leaving."""
    gate = threading.Event()
    futures = [svc.scheduler.submit(f"blocker:{i}", gate.wait, work=work) for i in range(n)]
    _until(lambda: svc.scheduler.running == n)
    try:
        yield gate
    finally:
        gate.set()
        for f in futures:
            f.result()


# -- every endpoint, equal to the Python API ---------------------------------------------
def test_health_version_and_docs(http):
    h = http.get("/v1/health")
    assert h.status_code == 200 and h.json()["status"] == "ok"
    v = http.get("/v1/version").json()
    assert v["ess"] == ess.__version__ and v["api"] == "v1"
    docs = http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = http.get("/openapi.json").json()
    assert {"/v1/estimate", "/v1/threshold", "/v1/table", "/v1/simulate", "/v1/jobs/{job_id}",
            "/v1/reference", "/v1/health", "/v1/version"} <= set(spec["paths"])


def test_estimate_matches_python_and_repeats_from_the_store(service):
    svc, http = service
    body = {"d": 3, "n_r": 100, "n_s": 200, "lam": 0.9, "seed": 11, "rel_precision": 0.01}
    first = http.post("/v1/estimate", json=body)
    assert first.status_code == 200, first.text
    assert first.json()["from_store"] is False
    assert _numbers(first.json()) == _py(ess.estimate(**body, store=False))
    [entry] = svc.store.entries()
    written = (entry.stat().st_ino, entry.read_bytes())    # a rewrite is a new file
    second = http.post("/v1/estimate", json=body)
    assert second.json()["from_store"] is True
    assert _numbers(second.json()) == _numbers(first.json())
    assert (entry.stat().st_ino, entry.read_bytes()) == written   # read, not rewritten
    # the same answer reaches the Python API and the command line through the store
    assert ess.estimate(**body, store=svc.store.root).from_store


def test_served_json_is_the_results_to_dict(http):
    """Same keys in the same order, and the same JSON text for every number (an
    integer interval stays integers)."""
    body = {"n_r": 50, "lam": 0.8, "seed": 11, "rel_precision": 0.05}
    r = http.post("/v1/threshold", json=body)
    assert r.status_code == 200, r.text
    # the service ran each evaluation under its share of max_request_work
    py = ess.threshold(**body, max_work=r.json()["max_work"], store=False).to_dict()
    assert list(r.json()) == list(py)
    assert json.dumps(_numbers(r.json())) == json.dumps(_numbers(py))
    est = {"n_s": 0, "seed": 3}
    r = http.post("/v1/estimate", json=est)
    py = ess.estimate(**est, store=False).to_dict()
    assert list(r.json()) == list(py)
    assert json.dumps(_numbers(r.json())) == json.dumps(_numbers(py))


def test_threshold_matches_python_and_repeats_from_the_store(http):
    body = {"n_r": 50, "lam": 0.7, "seed": 12, "rel_precision": 0.05}
    r = http.post("/v1/threshold", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["from_store"] is False
    assert _numbers(r.json()) == _py(ess.threshold(**body, max_work=r.json()["max_work"],
                                                   store=False))
    again = http.post("/v1/threshold", json=body).json()
    assert again["from_store"] and _numbers(again) == _numbers(r.json())


def test_guidance_and_sigma_r_reach_the_computation(http):
    body = {"d": 2, "n_s": 100, "guidance": 0.25, "sigma_r": [[2.0, 0.5], [0.5, 1.0]],
            "mu_r": [1.0, -1.0], "seed": 2, "rel_precision": 0.05}
    r = http.post("/v1/estimate", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["lam"] == 0.8
    assert _numbers(r.json()) == _py(ess.estimate(**body, store=False))


def test_d_is_the_length_of_sigma_r_when_not_given(http):
    """As in the Python API: an omitted ``d`` is the length of ``mu_r`` or ``sigma_r``."""
    body = {"n_s": 50, "sigma_r": [1.0, 4.0, 0.5], "seed": 4, "rel_precision": 0.05}
    r = http.post("/v1/estimate", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["d"] == 3
    assert _numbers(r.json()) == _py(ess.estimate(**body, store=False))


def _no_seconds(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "seconds"}


def test_simulate_matches_python_key_for_key(http):
    """``/v1/simulate`` of an accumulate loop: the rows of ``ess.simulate`` with the same
    seed, number for number, and the keys of its response models in order."""
    body = {"d": 2, "n_r": 20, "n_s": 20, "lam": 0.9, "loop": "accumulate", "chains": 40,
            "generations": 5, "seed": 3}
    r = http.post("/v1/simulate", json=body)
    assert r.status_code == 200, r.text
    py = ess.simulate(**body).to_dict()
    assert list(r.json()) == list(py) == list(SimulateOut.model_fields)
    assert list(r.json()["rows"][0]) == list(SimulateRow.model_fields)
    assert json.dumps(_no_seconds(r.json())) == json.dumps(_no_seconds(py))
    assert [row["generation"] for row in r.json()["rows"]] == [1, 2, 3, 4, 5]
    assert all(row["n_e_ci"] is not None for row in r.json()["rows"])


def test_simulate_takes_a_list_of_loops_as_the_command_line_does(http):
    """A list of loops answers ``{"loops": [...]}``, as ``ess simulate --json``; ``replace``
    is ``fully-synthetic``; ``accumulate-subsample`` (sample level) is served too."""
    body = {"n_r": 10, "n_s": 10, "loop": ["replace", "accumulate-subsample", "augmentation"],
            "chains": 30, "generations": 4, "seed": 5}
    r = http.post("/v1/simulate", json=body)
    assert r.status_code == 200, r.text
    loops = r.json()["loops"]
    assert [x["loop"] for x in loops] == ["fully-synthetic", "accumulate-subsample",
                                          "augmentation"]
    py = ess.simulate(**body).to_dicts()
    assert json.dumps([_no_seconds(x) for x in loops]) == json.dumps([_no_seconds(x)
                                                                       for x in py])


def test_estimate_of_an_accumulate_loop_is_the_one_line_of_the_api(http):
    """The accumulate loops have no limit: ``/v1/estimate`` refuses them with the message
    of ``ess.estimate`` and ``ess estimate`` (which points to simulate), at ``loop``."""
    for loop in ("accumulate", "accumulate-subsample", "replace"):
        with pytest.raises(ParameterError) as e:
            ess.estimate(loop=loop, store=False)
        r = http.post("/v1/estimate", json={"loop": loop})
        _refused(r, "body", "loop", None)
        assert r.json()["detail"][0]["msg"] == str(e.value)
        assert "simulate" in str(e.value) and "\n" not in str(e.value)


def test_estimate_of_the_augmentation_loop_matches_python(http):
    body = {"n_r": 50, "n_s": 50, "loop": "augmentation", "seed": 6, "rel_precision": 0.05}
    r = http.post("/v1/estimate", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["loop"] == "augmentation"
    assert _numbers(r.json()) == _py(ess.estimate(**body, store=False))


def test_simulate_limits_are_checked_before_running(tmp_path):
    """``chains`` over max_chains, a loop's work over max_work, a list's over
    max_request_work and rows over max_rows: each refused by name before anything runs
    (the limits are set around the work :func:`ess.request.simulate_work` counts)."""
    body = {"d": 2, "n_r": 20, "n_s": 20, "chains": 100, "generations": 10}
    one = simulate_work(simulate_request(**body, loop="accumulate").params, 100, 10)
    with serving(tmp_path, max_chains=1000, max_work=1.5 * one, max_request_work=2.5 * one,
                 max_rows=30) as (svc, c):
        _refused(c.post("/v1/simulate", json={**body, "chains": 1001}), "body", "chains",
                 "max_chains")
        _refused(c.post("/v1/simulate", json={**body, "chains": 200}), "body", "chains",
                 "max_work")
        _refused(c.post("/v1/simulate", json={**body, "loop": ["fresh", "augmentation",
                                                               "accumulate"]}),
                 "body", "loop", "max_request_work")
        _refused(c.post("/v1/simulate", json={**body, "generations": 31, "chains": 10}),
                 "body", "generations", "max_rows")
        _refused(c.post("/v1/simulate", json={**body, "loop": ["fresh", "accumulate"],
                                              "generations": 16, "chains": 10}),
                 "body", "generations", "max_rows")
        assert svc.scheduler.running == 0 and svc.scheduler.queued == 0
        r = c.post("/v1/simulate", json={**body, "loop": ["fresh", "accumulate"]})
        assert r.status_code == 200, r.text


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
    py = ess.reference_curve(ns, d=2, metric="w2")
    assert [pts[n] for n in ns] == list(zip(py.f, py.f_se))
    assert http.get("/v1/reference", params={"d": 2, "metric": "w2"}).json()["from_store"]


def test_unknown_job_is_404(http):
    for method in ("get", "delete"):
        r = getattr(http, method)("/v1/jobs/no-such-job")
        assert r.status_code == 404 and "no job with id" in r.json()["detail"]


def test_wrong_method_and_path(http):
    assert http.get("/v1/estimate").status_code == 405
    assert http.get("/v2/estimate").status_code == 404


# -- schemas --------------------------------------------------------------------------------
def test_response_models_and_to_dict_have_the_same_keys():
    """The response models are generated from the result types; FastAPI drops keys a
    model lacks, so a model and ``to_dict()`` must agree, key for key, in order."""
    for n_s in (0, 50):   # n_s = 0 answers without Monte Carlo: the same keys
        est = ess.estimate(n_r=50, n_s=n_s, rel_precision=0.1, store=False).to_dict()
        assert list(EstimateOut.model_fields) == list(est)
    thr = ess.threshold(n_r=50, lam=0.8, rel_precision=0.1, store=False).to_dict()
    assert list(ThresholdOut.model_fields) == list(thr)
    assert list(ScanRow.model_fields) == list(thr["scan"][0])


def test_response_model_follows_a_result_dataclass():
    """A new field of a result reaches its model with its JSON type, in order."""

    @dataclasses.dataclass(frozen=True)
    class Toy:
        """A toy result."""

        n_s: int
        wd: float
        n_e_ci: Interval | None
        memory: int | str

    model = response_model(Toy, "ToyOut", extra={"verdict": str})
    assert list(model.model_fields) == ["n_s", "wd", "n_e_ci", "memory", "verdict"]
    ok = model(n_s=3, wd=None, n_e_ci=[1, 2.5], memory="all", verdict="helps")
    assert ok.model_dump(mode="json")["n_e_ci"] == [1, 2.5]   # an int stays an int
    with pytest.raises(ValueError):
        model(n_s=3, wd=1.0, n_e_ci=[1.0], memory=1, verdict="helps")   # not a pair
    schema = model.model_json_schema()
    assert schema["description"] == "A toy result."
    assert schema["properties"]["n_s"]["description"] == "synthetic samples per generation"
    with pytest.raises(TypeError):
        json_type(dict)


def test_openapi_states_the_package_ranges_defaults_and_this_servers_limits(tmp_path):
    """Request schemas: the package's ranges and ess.defaults; the description: this
    server's limits and the project's own contract (no SPEC reference)."""
    with serving(tmp_path, max_d=7, max_chains=5000) as (_, c):
        spec = c.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    for model in ("EstimateIn", "ThresholdIn", "TableIn"):
        props = schemas[model]["properties"]
        d = next(x for x in props["d"]["anyOf"] if x["type"] == "integer")
        assert d["maximum"] == config.MAX_D
        assert props["max_chains"]["maximum"] == config.MAX_CHAINS
        assert props["max_chains"]["default"] == defaults.MAX_CHAINS
        assert props["seed"]["default"] == defaults.SEED
        assert props["rel_precision"]["default"] == defaults.REL_PRECISION
        assert props["memory"]["default"] == defaults.MEMORY
        assert all(p.get("description") for p in props.values()), model
    assert schemas["EstimateIn"]["properties"]["n_s"]["default"] == defaults.N_S
    assert schemas["TableIn"]["properties"]["n_r"]["default"] == list(defaults.TABLE_N_R)
    text = spec["info"]["description"]
    assert "`d` = 7 (limit `max_d`)" in text and "`max_chains` = 5000" in text
    assert "docs/contract.md" in text and "SPEC" not in json.dumps(spec)
    assert all(p.get("description") for p in schemas["EstimateOut"]["properties"].values())


# -- refusals ----------------------------------------------------------------------------
#: (path, body, field located, server limit or None)
BAD = [
    ("/v1/estimate", {"d": "3"}, "d", None),
    ("/v1/estimate", {"d": 1.5}, "d", None),
    ("/v1/estimate", {"d": True}, "d", None),
    ("/v1/estimate", {"d": 0}, "d", None),
    ("/v1/estimate", {"d": 10**30}, "d", None),
    ("/v1/estimate", {"d": 150}, "d", "max_d"),
    ("/v1/estimate", {"mu_r": [0.0] * 150}, "d", "max_d"),
    ("/v1/estimate", {"n_r": 1}, "n_r", None),
    ("/v1/estimate", {"n_r": None}, "n_r", None),
    ("/v1/estimate", {"n_r": [100]}, "n_r", None),
    ("/v1/estimate", {"n_s": -1}, "n_s", None),
    ("/v1/estimate", {"n_s": 10**7, "n_r": 2}, "n_s", None),
    ("/v1/estimate", {"lam": 1.5}, "lam", None),
    ("/v1/estimate", {"lam": "high"}, "lam", None),
    ("/v1/estimate", {"lam": 0.9, "guidance": 1.0}, "guidance", None),
    ("/v1/estimate", {"guidance": -1}, "guidance", None),
    ("/v1/estimate", {"n_ini": 1}, "n_ini", None),
    ("/v1/estimate", {"loop": "fully-synthetic"}, "loop", None),
    ("/v1/estimate", {"loop": "augmentation", "n_ini": 7}, "n_ini", None),
    ("/v1/estimate", {"memory": 0}, "memory", None),
    ("/v1/estimate", {"memory": "some"}, "memory", None),
    ("/v1/estimate", {"metric": "w1"}, "metric", None),
    ("/v1/estimate", {"cov_estimator": "biased"}, "cov_estimator", None),
    ("/v1/estimate", {"seed": -1}, "seed", None),
    ("/v1/estimate", {"seed": 2**64}, "seed", None),
    ("/v1/estimate", {"rel_precision": 0}, "rel_precision", None),
    ("/v1/estimate", {"rel_precision": 0.9}, "rel_precision", None),
    ("/v1/estimate", {"max_chains": 0}, "max_chains", None),
    ("/v1/estimate", {"max_chains": 300_000}, "max_chains", "max_chains"),
    ("/v1/estimate", {"max_chains": 10**12}, "max_chains", None),
    ("/v1/estimate", {"d": 3, "mu_r": [0.0, 1.0]}, "mu_r", None),
    ("/v1/estimate", {"mu_r": ["a"]}, "mu_r", None),
    ("/v1/estimate", {"sigma_r": [-1.0]}, "sigma_r", None),
    ("/v1/estimate", {"d": 2, "sigma_r": [[1.0, 2.0], [2.0, 1.0]]}, "sigma_r", None),
    ("/v1/estimate", {"sigma_r": [[1.0], [1.0, 2.0]]}, "sigma_r", None),
    ("/v1/estimate", {"n_jobs": 2}, "n_jobs", None),
    ("/v1/estimate", {"N_R": 100}, "N_R", None),
    ("/v1/threshold", {"n_s": 100}, "n_s", None),
    ("/v1/threshold", {"cap": 0}, "cap", None),
    ("/v1/threshold", {"cap": 10**7, "d": 100, "memory": 2}, "cap", None),   # cold start
    ("/v1/threshold", {"lam": -0.1}, "lam", None),
    ("/v1/threshold", {"d": 101}, "d", "max_d"),
    ("/v1/table", {"n_r": []}, "n_r", None),
    ("/v1/table", {"n_r": [100, 100]}, "n_r", None),
    ("/v1/table", {"n_s": [0, -5]}, "n_s", None),
    ("/v1/table", {"lam": [2.0]}, "lam", None),
    ("/v1/table", {"lam": [0.9], "guidance": [1.0]}, "guidance", None),
    ("/v1/table", {"n_r": list(range(2, 60)), "n_s": list(range(10))}, "n_r", "max_grid"),
    ("/v1/table", {"n_r": 100}, "n_r", None),
    ("/v1/table", {"d": 120}, "d", "max_d"),
    ("/v1/estimate", {"loop": "accumulate"}, "loop", None),
    ("/v1/estimate", {"loop": "recycle"}, "loop", None),
    ("/v1/simulate", {"loop": "recycle"}, "loop", None),
    ("/v1/simulate", {"loop": []}, "loop", None),
    ("/v1/simulate", {"loop": ["fresh", "recycle"]}, "loop", None),
    ("/v1/simulate", {"loop": ["replace", "fully-synthetic"]}, "loop", None),
    ("/v1/simulate", {"chains": 0}, "chains", None),
    ("/v1/simulate", {"chains": 300_000}, "chains", "max_chains"),
    ("/v1/simulate", {"generations": 0}, "generations", None),
    ("/v1/simulate", {"generations": 10**6}, "generations", None),
    ("/v1/simulate", {"generations": 5001}, "generations", "max_rows"),
    ("/v1/simulate", {"d": 101}, "d", "max_d"),
    ("/v1/simulate", {"rel_precision": 0.1}, "rel_precision", None),
    ("/v1/simulate", {"d": 100, "chains": 10_000, "generations": 1000}, "chains",
     "max_work"),
    # accumulate-subsample keeps every sample: a pool of 10^5 samples per generation of
    # d = 100 over 100 generations (8 GB a thread) is over the memory bound
    ("/v1/simulate", {"loop": "accumulate-subsample", "d": 100, "n_s": 10**5,
                      "generations": 100, "chains": 1}, "generations", None),
]


def _names(field: str, msg: str) -> bool:
    """``msg`` names ``field`` as a word (not as a letter of another word)."""
    return re.search(rf"(?<![\w.]){re.escape(field)}(?!\w)", msg) is not None


def _refused(r, where: str, field: str, limit: str | None) -> None:
    assert r.status_code == 422, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert detail and all(set(item) == {"loc", "msg", "type"} for item in detail)
    for item in detail:
        assert item["loc"][:2] == [where, field], detail
        assert _names(field, item["msg"]), detail
    if limit is not None:
        assert [item["type"] for item in detail] == [f"limit.{limit}"], detail
        assert _names(limit, detail[0]["msg"]), detail
    else:
        assert not any(item["type"].startswith("limit.") for item in detail), detail


@pytest.mark.parametrize("path,body,field,limit", BAD,
                         ids=[f"{p[4:]}-{f}-{i}" for i, (p, _, f, _) in enumerate(BAD)])
def test_bad_input_is_422_locating_the_field(http, path, body, field, limit):
    _refused(http.post(path, json=body), "body", field, limit)


def test_the_name_check_is_not_fooled_by_letters():
    assert _names("d", "d: Input should be a valid integer")
    assert _names("d", "d must be at most 100 on this server (limit max_d), got 150")
    assert not _names("d", "sigma_r must be positive definite")
    assert not _names("n_s", "n_s_star is beyond the cap")
    assert not _names("d", "max_d")


@pytest.mark.parametrize("raw", [b'{"n_s": ', b"[1, 2]", b'"text"', b"", b'{"lam": NaN}',
                                 b'{"lam": Infinity}', b"\xff\xfe"])
def test_malformed_json_is_422(http, raw):
    r = http.post("/v1/estimate", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert detail[0]["msg"] and detail[0]["loc"][0] == "body"


@pytest.mark.parametrize("params,field,limit", [
    ({"d": "x"}, "d", None), ({"d": 0}, "d", None), ({"d": 150}, "d", "max_d"),
    ({"d": 5000}, "d", None), ({"metric": "w1"}, "metric", None), ({"d": 2.5}, "d", None),
    ({"cov_estimator": ""}, "cov_estimator", None), ({"dim": 2}, "dim", None),
    ({"d": [1, 2]}, "d", None)])
def test_bad_reference_query_is_422_locating_the_parameter(http, params, field, limit):
    _refused(http.get("/v1/reference", params=params), "query", field, limit)


def test_huge_grid_is_refused_before_any_work(http):
    """A 9-million-cell grid is refused by its size, not built cell by cell."""
    body = {"n_r": list(range(2, 3002)), "n_s": list(range(3000)), "lam": [1.0]}
    r = http.post("/v1/table", json=body)
    _refused(r, "body", "n_r", "max_grid")
    assert "9000000" in r.json()["detail"][0]["msg"]


def test_tight_server_limits(tmp_path):
    """Each limit of a server refuses by name, at the field it bounds; an omitted
    max_chains is the server's limit when that is below the package default."""
    with serving(tmp_path, max_d=2, max_chains=5000, max_work=1e6, max_grid=4,
                 sync_cells=2) as (svc, c):
        _refused(c.post("/v1/estimate", json={"d": 3}), "body", "d", "max_d")
        _refused(c.post("/v1/table", json={"sigma_r": [1.0, 1.0, 1.0]}), "body", "d", "max_d")
        _refused(c.get("/v1/reference", params={"d": 3}), "query", "d", "max_d")
        _refused(c.post("/v1/estimate", json={"max_chains": 5001}), "body", "max_chains",
                 "max_chains")
        _refused(c.post("/v1/estimate", json={"d": 2, "n_s": 10**5}), "body", "max_chains",
                 "max_work")
        # cold-started (memory 2): warm starts make the default memory 1 evaluation cheap
        _refused(c.post("/v1/threshold", json={"d": 2, "cap": 10**5, "memory": 2}), "body",
                 "cap", "max_work")
        _refused(c.post("/v1/table", json={"n_r": [50], "n_s": [0, 1], "lam": [1, 0.9, 0.8]}),
                 "body", "n_r", "max_grid")
        from ess.service.schemas import EstimateIn

        assert svc.arguments(EstimateIn())["max_chains"] == 5000
        r = c.post("/v1/estimate", json={"n_s": 20, "rel_precision": 0.1})
        assert r.status_code == 200, r.text
        assert r.json()["chains"] <= 5000


@pytest.mark.parametrize("ctype", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_a_body_not_labelled_json_is_415_saying_what_to_send(http, ctype):
    """`curl -d` labels JSON as a form, and a web page can post text/plain across
    origins without asking: neither is read; the answer says what to send."""
    headers = {} if ctype is None else {"content-type": ctype}
    body = {"n_s": 50, "lam": 0.9, "seed": 31, "rel_precision": 0.05}
    r = http.post("/v1/estimate", content=json.dumps(body).encode(), headers=headers)
    assert r.status_code == 415, r.text
    assert "send Content-Type: application/json" in r.json()["detail"]
    ok = http.post("/v1/estimate", content=json.dumps(body).encode(),
                   headers={"content-type": "application/json; charset=utf-8"})
    assert ok.status_code == 200, ok.text
    assert _numbers(ok.json()) == _py(ess.estimate(**body, store=False))
    bad = http.post("/v1/estimate", content=b"n_s=50",
                    headers={"content-type": "application/json"})
    assert bad.status_code == 422 and "malformed JSON" in bad.json()["detail"][0]["msg"]


# -- the queue, jobs, health under load ----------------------------------------------------
SLOW = {"d": 100, "n_r": 100, "n_s": 10000, "lam": 1.0, "rel_precision": 0.003}  # ~4 s, 2 cores


def _post_in_thread(c, path: str, body: dict, out: dict, name: str) -> threading.Thread:
    t = threading.Thread(target=lambda: out.update({name: c.post(path, json=body)}))
    t.start()
    return t


def test_queue_full_is_429_and_identical_requests_join(tmp_path):
    """One worker held, one place to wait: a request waits, the identical one joins it
    (computed once), a third is refused with 429 and Retry-After."""
    body = {"n_s": 30, "seed": 41, "rel_precision": 0.05}
    with serving(tmp_path, workers=1, max_queue=1) as (svc, c):
        out = {}
        rate = svc.scheduler.throughput()   # nothing measured yet: the first guess
        with occupied(svc, work=10 * rate) as gate:
            a = _post_in_thread(c, "/v1/estimate", body, out, "a")
            _until(lambda: svc.scheduler.queued == 1)
            b = _post_in_thread(c, "/v1/estimate", body, out, "b")
            time.sleep(0.2)
            assert svc.scheduler.queued == 1 and "b" not in out   # joined, not refused
            time.sleep(1.6)
            busy = c.post("/v1/estimate", json=body | {"seed": 42})
            assert busy.status_code == 429, busy.text
            # the work ahead over the first guess of the speed: the held worker's 10 s
            # less the 1.8 s or more it ran, plus the queued estimate's bound
            queued = svc.request_work(svc.check_estimate(svc.arguments(EstimateIn(**body))))
            ahead = svc.scheduler.work_ahead() / rate
            assert 5.0 < ahead <= 8.2 + queued / rate
            assert abs(int(busy.headers["retry-after"]) - ahead) <= 1.5, busy.headers
            assert "max_queue" in busy.json()["detail"]
            assert c.get("/v1/health").json()["queued"] == 1
            gate.set()
            a.join()
            b.join()
        assert out["a"].status_code == out["b"].status_code == 200
        assert out["a"].json() == out["b"].json()          # one computation, one answer
        assert out["a"].json()["from_store"] is False
        assert len(svc.store.entries()) == 1
        assert c.post("/v1/estimate", json=body | {"seed": 42}).status_code == 200


def test_health_stays_responsive_during_a_computation(tmp_path):
    """The kernels release the GIL: /v1/health answers all along a slow estimate,
    not after it. The bound is relative to the estimate's own duration (a quarter
    of it), so that a machine slowed by other work stretches both alike."""
    with serving(tmp_path, workers=1) as (svc, c):
        _compiled(c)
        out = {}
        t0 = time.perf_counter()
        t = _post_in_thread(c, "/v1/estimate", SLOW | {"seed": 1}, out, "slow")
        _until(lambda: svc.scheduler.running == 1)
        waits = []
        while t.is_alive():
            t1 = time.perf_counter()
            h = c.get("/v1/health")
            waits.append(time.perf_counter() - t1)
            assert h.status_code == 200 and h.json()["running"] in (0, 1)
            time.sleep(0.05)
        t.join()
        duration = time.perf_counter() - t0
        assert out["slow"].status_code == 200, out["slow"].text
        assert len(waits) >= 5, "the slow request was too quick to test anything"
        assert max(waits) < duration / 4, (max(waits), duration)


def _compiled(c) -> None:
    """Load (or compile) the kernels first: compiling cannot be cancelled, and would
    take longer than the cancellations below."""
    r = c.post("/v1/estimate", json={"d": 3, "n_s": 10, "seed": 77, "rel_precision": 0.1})
    assert r.status_code == 200, r.text


def _key_of(path):
    """The key stored in an entry, without the parts ResultStore adds itself."""
    key = json.loads(path.read_text())["key"]
    return {k: v for k, v in key.items() if k not in ("kind", "version", "code")}


def test_cancelling_a_running_job(tmp_path):
    with serving(tmp_path, workers=1) as (svc, c):
        _compiled(c)
        # seconds a cell even with warm starts (lam = 1 and n_s >> n_r mix slowest), so the
        # job is still running when it is cancelled
        body = {"d": 100, "n_r": [100, 200], "n_s": [3000, 10000], "lam": [0.95, 1.0],
                "rel_precision": 0.003}
        r = c.post("/v1/table", json=body)
        assert r.status_code == 202
        job_id = r.json()["id"]
        _until(lambda: c.get(f"/v1/jobs/{job_id}").json()["status"] == "running")
        time.sleep(0.3)
        gone = c.delete(f"/v1/jobs/{job_id}")
        assert gone.status_code == 200
        job = gone.json()
        assert job["status"] == "cancelled" and job["done"] < job["total"], job
        assert c.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"
        _until(lambda: svc.scheduler.running == svc.scheduler.queued == 0)
        st = svc.store
        assert all(st.get("estimate", _key_of(p)) is not None for p in st.entries())


def test_deleting_a_queued_job_frees_its_place(tmp_path):
    with serving(tmp_path, workers=1, max_queue=1) as (svc, c):
        with occupied(svc) as gate:
            queued = c.post("/v1/table", json={"n_r": [50, 100], "n_s": [0, 50, 100],
                                               "seed": 8, "rel_precision": 0.05})
            assert queued.status_code == 202
            job_id = queued.json()["id"]
            assert c.post("/v1/estimate", json={"seed": 9}).status_code == 429
            gone = c.delete(f"/v1/jobs/{job_id}").json()
            assert gone["status"] == "cancelled" and gone["started"] is None
            assert c.get("/v1/health").json()["queued"] == 0
            out = {}   # the freed place takes a new request: it waits, no 429
            t = _post_in_thread(c, "/v1/estimate", {"seed": 9, "rel_precision": 0.05}, out,
                                "after")
            _until(lambda: svc.scheduler.queued == 1)
            gate.set()
            t.join()
        assert out["after"].status_code == 200, out["after"].text
        final = c.get(f"/v1/jobs/{job_id}").json()
        assert final["status"] == "cancelled" and final["finished"] == gone["finished"]


def test_identical_tables_at_once_compute_each_cell_once(tmp_path):
    """Two identical table jobs start together on two workers (of three: jobs take at
    most all but one): each cell is computed by one of them and read from the store by
    the other."""
    with serving(tmp_path, workers=3) as (svc, c):
        body = {"d": 3, "n_r": [50, 100], "n_s": [0, 100, 200], "lam": [0.9], "seed": 14,
                "rel_precision": 0.02}
        with occupied(svc, 3):   # both jobs wait, then start at once
            posted = [c.post("/v1/table", json=body) for _ in range(2)]
            assert [p.status_code for p in posted] == [202, 202], [p.text for p in posted]
        jobs = [_wait_job(c, p.json()["id"]) for p in posted]
        assert [j["status"] for j in jobs] == ["done", "done"]
        a, b = (j["result"]["rows"] for j in jobs)
        assert [_numbers(x) for x in a] == [_numbers(x) for x in b]
        computed = [int(not x["from_store"]) + int(not y["from_store"]) for x, y in zip(a, b)]
        assert computed == [1] * 6, computed


def test_stopping_cancels_running_work_and_refuses_waiting_requests(tmp_path):
    """What a stop signal does first (Service.stop_now): the running job is cancelled
    at its next chunk, the request waiting for a worker gets 503, health says so."""
    with serving(tmp_path, workers=1) as (svc, c):
        _compiled(c)
        r = c.post("/v1/table", json={"d": 50, "n_r": [100, 200], "n_s": [100, 300, 900],
                                      "lam": [0.8, 0.9], "rel_precision": 0.005})
        assert r.status_code == 202
        job_id = r.json()["id"]
        _until(lambda: c.get(f"/v1/jobs/{job_id}").json()["status"] == "running")
        out = {}
        t = _post_in_thread(c, "/v1/estimate", SLOW | {"seed": 5}, out, "waiting")
        _until(lambda: svc.scheduler.queued == 1)
        svc.stop_now()
        t.join(30)
        assert out["waiting"].status_code == 503, out["waiting"].text
        assert "stopping" in out["waiting"].json()["detail"]
        assert _wait_job(c, job_id, timeout=30)["status"] == "cancelled"
        assert c.get("/v1/health").json()["status"] == "stopping"
        assert c.post("/v1/estimate", json={"seed": 6}).status_code == 503


def test_a_job_still_queued_when_stopping_ends_cancelled(tmp_path):
    """A stop takes queued jobs off the queue with a final status: they never run."""
    with serving(tmp_path, workers=1) as (svc, c):
        with occupied(svc):
            r = c.post("/v1/table", json={"n_r": [50, 100], "n_s": [0, 50, 100], "seed": 15})
            assert r.status_code == 202
            svc.stop_now()
            job = c.get(f"/v1/jobs/{r.json()['id']}").json()
            assert job["status"] == "cancelled" and job["started"] is None, job
            assert c.post("/v1/estimate", json={"seed": 15}).status_code == 503


# -- schema-driven fuzzing -----------------------------------------------------------------
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

    app = create_app(ResultStore(tmp_path / "store"),
                     Limits(max_d=2, max_chains=20000, max_work=3e6, max_grid=6, sync_cells=6),
                     hosts=None)   # schemathesis's Host is "testserver"
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    ran = 0

    def rejected(ctx, response, case):
        """negative_data_rejection, with 413 among the refusals: a body over the server's
        size limit (--max-body-kb) is refused before it is read, whatever it holds."""
        if response.status_code == 413:
            return True
        return negative_data_rejection(ctx, response, case)

    def fuzz(op, mode, these):
        @hypothesis.settings(max_examples=25, deadline=None, database=None, derandomize=True,
                             suppress_health_check=list(hypothesis.HealthCheck))
        @hypothesis.given(case=op.as_strategy(generation_mode=mode))
        def run(case):
            case.validate_response(case.call(timeout=120), checks=these)

        run()

    try:
        for result in schema.get_all_operations():
            op = result.ok()
            fuzz(op, schemathesis.GenerationMode.POSITIVE, checks)
            ran += 1
            if op.path not in ("/v1/health", "/v1/version", "/v1/jobs/{job_id}"):
                # the others take no input that can be invalid (a job id is any text)
                fuzz(op, schemathesis.GenerationMode.NEGATIVE, checks + [rejected])
                ran += 1
    finally:
        app.state.service.shutdown()
    assert ran == 16   # 10 operations; the 6 with constrained input in both modes


# -- the command ------------------------------------------------------------------------
@pytest.mark.parametrize("flags,name", [(["--workers", "0"], "workers"),
                                        (["--port", "70000"], "port"),
                                        (["--max-d", "2049"], "max_d"),
                                        (["--max-queue", "-1"], "max_queue"),
                                        (["--max-work", "nan"], "max_work"),
                                        (["--host", "256.1.1.1"], "host"),
                                        (["--max-grid", "10", "--sync-cells", "20"],
                                         "sync_cells"),
                                        (["--log-level", "loud"], "log_level"),
                                        (["--max-body-kb", "0"], "max_body_kb"),
                                        (["--job-ttl", "-5"], "job_ttl"),
                                        (["--max-request-work", "x"], "max_request_work"),
                                        (["--queue-deadline", "0"], "queue_deadline")])
def test_serve_bad_flags_are_one_line(tmp_path, capsys, flags, name):
    from ess.cli import main

    assert main(["serve", "--store", str(tmp_path), "--port", "0", *flags]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and name in err and "Traceback" not in err, err


def test_serve_busy_port_is_one_line(tmp_path, capsys):
    from ess.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        assert main(["serve", "--store", str(tmp_path), "--port", port]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and port in err, err


@pytest.mark.parametrize("body, loc, msg", [
    ({"lam": 2}, ["body", "lam"], "lam must be a number in [0.0, 1.0], got 2"),
    ({"n_r": -5}, ["body", "n_r"], "n_r must be an integer in [2, 10000000], got -5"),
    ({"rel_precision": 0.9}, ["body", "rel_precision"],
     "rel_precision must be a number in [0.0001, 0.5], got 0.9"),
])
def test_an_out_of_range_number_is_refused_naming_both_ends(http, body, loc, msg):
    """The schema's range, in the words of ess.params' checks (as the command line)."""
    r = http.post("/v1/estimate", json=body)
    assert r.status_code == 422, r.text
    (item,) = r.json()["detail"]
    assert item["loc"] == loc and item["msg"] == msg


def test_an_out_of_range_list_entry_names_both_ends(http):
    r = http.post("/v1/table", json={"n_r": [100, 1], "n_s": [10], "lam": [0.9]})
    assert r.status_code == 422, r.text
    (item,) = r.json()["detail"]
    assert item["loc"] == ["body", "n_r", 1]
    assert item["msg"] == f"n_r must be an integer in [2, {config.MAX_COUNT}], got 1"
