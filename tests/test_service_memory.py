"""`ess serve` under memory abuse and tampered caches (issue 16, parts 2 and 5), on a
real server on 127.0.0.1: two concurrent fine ``d = 1`` estimates whose ``sigma_r``
([2] and [3]) normalise to one reference curve compute it once, within a stated
memory bound; a tampered curve file and a tampered store entry are recomputed, not
served; health shows the server's memory.

Measured before the bound: the two estimates at ``rel_precision = 1e-4`` peaked at
5.8 GB; one at ``3e-4`` (the one used here, some 2 10^6 fits a curve point) at
871 MB in a process of its own; after it, 183 MB.
"""

import json
import time
from concurrent.futures import ThreadPoolExecutor

from benchmarks.service_load import Server
from ess.reference import POINT_BYTES
from ess.service.memory import MIB, process_memory

FINE = {"d": 1, "n_r": 100, "n_s": 100, "lam": 0.9, "rel_precision": 3e-4, "seed": 7}
CHEAP = {"d": 1, "n_r": 100, "n_s": 20, "rel_precision": 0.1, "seed": 3}
#: Room for what else two running requests hold (threads, responses, allocator
#: slack), over the curve points' bound.
SLACK_MIB = 64


def _numbers(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("seconds", "from_store")}


def _peak_mib(pid: int) -> float:
    """VmHWM of the process ``pid`` (its peak resident set), MiB."""
    return process_memory(f"/proc/{pid}/status")[1]


def _curve(cache, rel_precision: float) -> dict:
    """The one cached curve of the tier serving ``rel_precision``."""
    from ess.reference import tier_for

    [data] = [d for d in (json.loads(p.read_text()) for p in (cache / "reference").glob("*.json"))
              if d["key"]["tier"] == tier_for(rel_precision)]
    return data


def _tamper_curves(cache) -> int:
    """Scale every cached ``f`` by 1.3 (the checksum left as it was); the points."""
    n = 0
    for path in (cache / "reference").glob("*.json"):
        data = json.loads(path.read_text())
        for v in data["points"].values():
            v[0] *= 1.3
            n += 1
        path.write_text(json.dumps(data))
    return n


def _tamper_entries(store) -> None:
    """Scale each stored ``wd`` by 1.3 and recompute the entry's plain SHA-256 (all
    that someone who cannot read the store's secret can do)."""
    import hashlib

    from ess.store import CHECKSUM, ResultStore, _canonical

    for path in ResultStore(store).entries():
        entry = json.loads(path.read_text())
        entry["result"]["wd"] *= 1.3
        plain = hashlib.sha256(_canonical({"key": entry["key"], "result": entry["result"]})
                               .encode()).hexdigest()
        entry["sha256"] = entry[CHECKSUM] = plain
        path.write_text(json.dumps(entry))


def test_one_curve_computed_once_in_bounded_memory_and_tampered_caches_recomputed(tmp_path):
    """Two workers, two concurrent fine estimates on one curve: both answered with
    the same n_e, each curve point computed once (health's count equals the points
    in the curve file), and the server's peak resident set (VmHWM) within
    ``workers * POINT_BYTES + 64 MiB`` of its peak after a warm-up request. Then,
    with the curve file's f scaled by 1.3 and the stored entries' wd scaled by 1.3
    (plain SHA-256 recomputed), a new server answers the same question with the
    same numbers, computed again (not from the store, the curve recomputed)."""
    store, cache = tmp_path / "store", tmp_path / "cache"
    with Server(store, "--workers", "2", cache_dir=cache) as srv, srv.client(60) as c:
        assert c.post("/v1/estimate", json=CHEAP).status_code == 200
        h0 = c.get("/v1/health").json()
        assert 0 < h0["rss_mib"] <= h0["peak_rss_mib"]
        warm = _peak_mib(srv.proc.pid)
        assert abs(warm - h0["peak_rss_mib"]) < 16
        t0 = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            rs = list(pool.map(lambda s: c.post("/v1/estimate", json={**FINE, "sigma_r": [s]}),
                               (2.0, 3.0)))
        seconds = time.perf_counter() - t0
        assert [r.status_code for r in rs] == [200, 200], [r.text for r in rs]
        a, b = (r.json() for r in rs)
        assert a["n_e"] == b["n_e"] and a["n_e_ci"] == b["n_e_ci"]   # one normalised curve
        assert b["wd"] == a["wd"] * 1.5                              # in each one's units
        h = c.get("/v1/health").json()
        points = len(_curve(cache, FINE["rel_precision"])["points"])
        assert h["curve_points_computed"] - h0["curve_points_computed"] == points > 0
        peak = _peak_mib(srv.proc.pid)
        bound = warm + 2 * POINT_BYTES / MIB + SLACK_MIB
        assert peak <= bound, (warm, peak, bound, seconds)
        assert h["peak_rss_mib"] <= peak
        first = a
    assert _tamper_curves(cache) > points
    _tamper_entries(store)
    with Server(store, "--workers", "2", cache_dir=cache) as srv, srv.client(60) as c:
        r = c.post("/v1/estimate", json={**FINE, "sigma_r": [2.0]})
        assert r.status_code == 200 and r.json()["from_store"] is False
        assert _numbers(r.json()) == _numbers(first)        # neither lie was served
        assert c.get("/v1/health").json()["curve_points_computed"] == points   # again
    assert "Traceback" not in srv.stderr(), srv.stderr()


def test_health_shows_the_memory_figure_to_every_client(tmp_path):
    """Memory is a load figure like ``running``: shown without a token too (the
    store's folder is not), in MiB, the peak at least the current figure."""
    from fastapi.testclient import TestClient

    from ess.limits import Limits
    from ess.service import create_app
    from ess.service.auth import Tokens
    from ess.store import ResultStore

    token = "alice-token-0123456789"
    app = create_app(ResultStore(tmp_path / "store"), Limits(),
                     Tokens.from_pairs({"alice": token}))
    with TestClient(app, base_url="http://127.0.0.1") as c:
        for headers in ({}, {"Authorization": f"Bearer {token}"}):
            h = c.get("/v1/health", headers=headers).json()
            assert 10 < h["rss_mib"] <= h["peak_rss_mib"] < 100_000
            assert h["curve_points_computed"] >= 0
        assert h["store"] is not None and c.get("/v1/health").json()["store"] is None
