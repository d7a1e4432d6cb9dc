"""The result store: keys, atomic checksummed entries, damage detection, and its
use by the Python API and the command line."""

import hashlib
import json
import math
import os
import stat
import threading

import pytest

import ess
import ess.store
from ess.cli import main
from ess.store import ResultStore, default_store_dir, open_store

QUICK = {"n_r": 100, "n_s": 50, "lam": 0.9, "rel_precision": 0.05}


def _numbers(res) -> dict:
    """Everything but the timing and the store flag."""
    d = res.to_dict() if hasattr(res, "to_dict") else dict(res)
    d.pop("seconds")
    d.pop("from_store")
    return d


def test_entry_round_trip_and_keys(tmp_path):
    st = ResultStore(tmp_path)
    assert st.put("estimate", {"a": 1}, {"x": 1.5, "ci": (1.0, math.inf)})
    assert st.get("estimate", {"a": 1}) == {"x": 1.5, "ci": [1.0, math.inf]}
    assert st.get("estimate", {"a": 2}) is None
    assert st.get("threshold", {"a": 1}) is None
    assert len(st.entries()) == 1


def test_key_holds_version_and_code(tmp_path, monkeypatch):
    st = ResultStore(tmp_path)
    st.put("estimate", {"a": 1}, {"x": 1.0})
    monkeypatch.setattr(ess.store, "__version__", "99.0")
    assert st.get("estimate", {"a": 1}) is None
    monkeypatch.undo()
    monkeypatch.setattr(ess.store, "_CODE", ("pchip.py",))
    assert st.get("estimate", {"a": 1}) is None


def _damage(path, how: str) -> None:
    text = path.read_text()
    if how == "truncated":
        path.write_text(text[: len(text) // 2])
    elif how == "empty":
        path.write_text("")
    elif how == "garbage":
        path.write_bytes(b"\x00\xff not json")
    elif how == "number changed":   # still valid JSON: only the checksum can tell
        entry = json.loads(text)
        entry["result"]["wd"] *= 1.0 + 1e-12
        path.write_text(json.dumps(entry))
    elif how == "deeply nested":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif how == "field missing":  # checksum made to hold: only rebuilding the result tells
        entry = json.loads(text)
        del entry["result"]["wd"]
        secret = ess.store.folder_secret(path.parents[3])   # a reader of the secret
        entry[ess.store.CHECKSUM] = ess.store.keyed_digest(
            secret, {"key": entry["key"], "result": entry["result"]})
        path.write_text(json.dumps(entry))
    elif how in ("edited, plain sha256", "edited, keyed by another secret"):
        # someone who cannot read the store's secret edits a number and recomputes a
        # checksum: the unkeyed SHA-256 of old entries, or an HMAC under a guessed key
        entry = json.loads(text)
        entry["result"]["wd"] *= 1.3
        payload = {"key": entry["key"], "result": entry["result"]}
        entry["sha256"] = hashlib.sha256(ess.store._canonical(payload).encode()).hexdigest()
        entry[ess.store.CHECKSUM] = (entry["sha256"] if how.endswith("sha256") else
                                     ess.store.keyed_digest(b"x" * 32, payload))
        path.write_text(json.dumps(entry))
    elif how == "other key":        # a valid entry of another question, moved here
        entry = json.loads(text)
        entry["key"]["seed"] += 1
        path.write_text(json.dumps(entry))
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("how", ["truncated", "empty", "garbage", "number changed",
                                 "deeply nested", "field missing", "other key",
                                 "edited, plain sha256", "edited, keyed by another secret"])
def test_damaged_entry_is_recomputed_and_replaced(tmp_path, how):
    first = ess.estimate(**QUICK, seed=1, store=tmp_path)
    assert not first.from_store
    [path] = ResultStore(tmp_path).entries()
    _damage(path, how)
    again = ess.estimate(**QUICK, seed=1, store=tmp_path)
    assert not again.from_store                    # never served
    assert _numbers(again) == _numbers(first)      # recomputed
    third = ess.estimate(**QUICK, seed=1, store=tmp_path)
    assert third.from_store                        # and replaced
    assert _numbers(third) == _numbers(first)


def test_the_secret_is_made_once_with_mode_0600_and_old_entries_are_misses(tmp_path):
    """The keyed checksum's secret: 32 random bytes beside the entries, readable by
    the owner only, the same for every store object on the folder; not an entry.
    An entry of an earlier version (a plain SHA-256, no keyed checksum) is a miss."""
    st = ResultStore(tmp_path)
    assert st.put("estimate", {"a": 1}, {"x": 1.5})
    secret = tmp_path / ess.store.SECRET_NAME
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert len(secret.read_bytes()) == ess.store.SECRET_BYTES
    ess.store._SECRETS.clear()                    # as a new process: read, not made again
    assert ResultStore(tmp_path).get("estimate", {"a": 1}) == {"x": 1.5}
    assert ResultStore(tmp_path).secret() == secret.read_bytes()
    assert st.usage().entries == 1 and secret not in st.entries()
    path = st.path("estimate", {"a": 1})
    entry = json.loads(path.read_text())
    entry["sha256"] = hashlib.sha256(ess.store._canonical(
        {"key": entry["key"], "result": entry["result"]}).encode()).hexdigest()
    del entry[ess.store.CHECKSUM]
    path.write_text(json.dumps(entry))
    assert st.get("estimate", {"a": 1}) is None
    secret.unlink()                               # a lost secret: every entry a miss
    ess.store._SECRETS.clear()
    assert st.put("estimate", {"a": 2}, {"x": 2.5})
    ess.store._SECRETS.clear()
    secret.write_bytes(os.urandom(32))
    assert st.get("estimate", {"a": 2}) is None


def test_every_truncation_is_detected(tmp_path):
    st = ResultStore(tmp_path)
    key = {"q": 1}
    st.put("estimate", key, {"wd": 0.1, "ci": [0.09, 0.11], "note": "x" * 50})
    path = st.path("estimate", key)
    full = path.read_bytes()
    for cut in range(len(full)):
        path.write_bytes(full[:cut])
        assert st.get("estimate", key) is None, cut
    path.write_bytes(full)
    assert st.get("estimate", key) is not None


def test_repeated_answers_come_from_the_store(tmp_path):
    e1 = ess.estimate(**QUICK, seed=2, store=tmp_path)
    e2 = ess.estimate(**QUICK, seed=2, store=tmp_path)
    assert (e1.from_store, e2.from_store) == (False, True)
    assert _numbers(e1) == _numbers(e2)
    assert e2.n_e_ci == e1.n_e_ci and isinstance(e2.n_e_ci, tuple)
    t1 = ess.threshold(n_r=50, lam=0.8, seed=2, rel_precision=0.05, store=tmp_path)
    t2 = ess.threshold(n_r=50, lam=0.8, seed=2, rel_precision=0.05, store=tmp_path)
    assert (t1.from_store, t2.from_store) == (False, True)
    assert _numbers(t1) == _numbers(t2)
    assert t2.scan == t1.scan and t2.n_s_star_ci == t1.n_s_star_ci
    grid = {"n_r": [50, 100], "n_s": [0, 50], "lam": [0.9], "rel_precision": 0.05, "seed": 2}
    g1 = ess.table(**grid, store=tmp_path)
    g2 = ess.table(**grid, store=tmp_path)
    assert not all(r.from_store for r in g1) and all(r.from_store for r in g2)
    assert [_numbers(r) for r in g1] == [_numbers(r) for r in g2]


def test_every_parameter_that_matters_is_in_the_key(tmp_path):
    base = ess.estimate(**QUICK, seed=3, store=tmp_path)
    for change in ({"seed": 4}, {"n_s": 51}, {"lam": 0.89}, {"metric": "w2"},
                   {"cov_estimator": "mle"}, {"n_ini": 7}, {"rel_precision": 0.04},
                   {"max_chains": 100_000}, {"sigma_r": [2.0]}, {"mu_r": [1.0]},
                   {"loop": "augmentation"}):
        res = ess.estimate(**(QUICK | {"seed": 3} | change), store=tmp_path)
        assert not res.from_store, change
    assert ess.estimate(**QUICK, seed=3, n_jobs=1, store=tmp_path).from_store   # not n_jobs
    assert _numbers(ess.estimate(**QUICK, seed=3, store=tmp_path)) == _numbers(base)


def test_negative_zero_is_zero(tmp_path):
    ess.estimate(**(QUICK | {"lam": 0.0}), seed=3, store=tmp_path)
    res = ess.estimate(**(QUICK | {"lam": -0.0}), seed=3, store=tmp_path)
    assert res.from_store and math.copysign(1.0, res.lam) == 1.0


def test_identical_computations_at_once_run_once(tmp_path):
    out = []
    threads = [threading.Thread(target=lambda: out.append(
        ess.estimate(**QUICK, seed=12, n_jobs=1, store=tmp_path))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.from_store for r in out) == [False, True, True, True]
    assert len({json.dumps(_numbers(r)) for r in out}) == 1


def test_store_false_and_env(tmp_path, monkeypatch):
    ess.estimate(**QUICK, seed=5, store=False)
    assert not (tmp_path / "v1").exists()
    monkeypatch.setenv("ESS_STORE", str(tmp_path))
    assert default_store_dir() == tmp_path
    assert not ess.estimate(**QUICK, seed=5).from_store
    assert ess.estimate(**QUICK, seed=5).from_store
    for off in ("off", "OFF", "none", "0"):
        monkeypatch.setenv("ESS_STORE", off)
        assert open_store() is None
    monkeypatch.delenv("ESS_STORE")
    assert default_store_dir().name == "results"


@pytest.mark.parametrize("bad", [3, "", [1]])
def test_bad_store_argument(bad):
    with pytest.raises(ess.ParameterError, match="^store must be"):
        ess.estimate(store=bad)


def test_command_line_shares_the_store(tmp_path, capsys):
    py = ess.estimate(**QUICK, seed=6, store=tmp_path)
    args = ["estimate", "--n-s", "50", "--lam", "0.9", "--rel-precision", "0.05", "--seed", "6",
            "--json", "--quiet"]
    assert main(args + ["--store", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["from_store"] is True
    assert _numbers(out) == _numbers(py)
    assert main(args + ["--no-store"]) == 0
    assert json.loads(capsys.readouterr().out)["from_store"] is False
    assert main(args[:-2] + ["--store", str(tmp_path)]) == 0
    assert "(from the result store)" in capsys.readouterr().out
    assert main(args + ["--store", str(tmp_path), "--no-store"]) == 2
    assert "not allowed with" in capsys.readouterr().err


def test_concurrent_writers_leave_one_intact_entry(tmp_path):
    st = ResultStore(tmp_path)
    key = {"k": 1}
    errors = []

    def write(i: int) -> None:
        for _ in range(50):
            if not st.put("estimate", key, {"v": 1.25, "by": "any"}):
                errors.append(i)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert st.get("estimate", key) == {"v": 1.25, "by": "any"}
    assert len(st.entries()) == 1
    assert not list(tmp_path.rglob(".tmp-*"))
