"""A bounded result store: least recently used entries removed past the bound,
never an entry being read; readers racing removals get the entry or a
recomputation, never an error; ``ess store info | prune | clear``; and
``/v1/health`` reporting the store's size."""

import json
import os
import subprocess
import sys
import threading
import time

import pytest
from fastapi.testclient import TestClient

import ess
import ess.store
from ess.cli import main
from ess.limits import Limits
from ess.service import create_app
from ess.store import MB, ResultStore

#: An entry's result: ~1 kB once stored.
PAYLOAD = {"x": list(range(150))}
QUICK = {"d": 1, "n_r": 100, "n_s": 50, "lam": 0.9, "rel_precision": 0.05}


def _entry_size(tmp_path) -> int:
    st = ResultStore(tmp_path / "probe")
    st.put("estimate", {"i": 0}, PAYLOAD)
    return st.path("estimate", {"i": 0}).stat().st_size


def _put_in_order(st: ResultStore, i: int, base: int) -> None:
    """Put entry ``i`` and date it ``base + i`` ms, so that the order of use does not
    depend on the file system's clock resolution (older than anything written now)."""
    st.put("estimate", {"i": i}, PAYLOAD)
    p = st.path("estimate", {"i": i})
    if p.exists():
        os.utime(p, ns=(base + i * 10**6, base + i * 10**6))


def _on_disk(st: ResultStore) -> int:
    return sum(p.stat().st_size for p in st.entries())


def test_filling_past_the_bound_stays_under_it_and_evicts_the_oldest(tmp_path):
    size = _entry_size(tmp_path)
    bound = 20 * size + size // 2            # room for 20 entries
    st = ResultStore(tmp_path / "store", max_bytes=bound)
    base = time.time_ns() - 10**12
    for i in range(60):
        _put_in_order(st, i, base)
        assert _on_disk(st) <= bound
        assert st.usage().bytes == _on_disk(st)
    kept = sorted(json.loads(p.read_text())["key"]["i"] for p in st.entries())
    # each pruning goes down to 90% of the bound (18 entries), then fills again
    assert 18 <= len(kept) <= 20
    assert kept == list(range(60 - len(kept), 60))     # the newest, without a gap
    assert st.get("estimate", {"i": 59}) == PAYLOAD
    assert st.get("estimate", {"i": 0}) is None


def test_a_read_keeps_an_entry_longer(tmp_path):
    size = _entry_size(tmp_path)
    st = ResultStore(tmp_path / "store", max_bytes=10 * size + size // 2)
    base = time.time_ns() - 10**12
    for i in range(10):
        _put_in_order(st, i, base)
    assert st.get("estimate", {"i": 0}) == PAYLOAD     # used now: the most recent
    _put_in_order(st, 10, base + 10**9)                # over the bound: prune to 9
    kept = {json.loads(p.read_text())["key"]["i"] for p in st.entries()}
    assert 0 in kept and 1 not in kept and 2 not in kept
    assert len(kept) == 9


def test_an_entry_being_read_is_never_removed(tmp_path):
    st = ResultStore(tmp_path / "store")
    for i in range(5):
        st.put("estimate", {"i": i}, PAYLOAD)
    reading = st.path("estimate", {"i": 3})
    with ess.store._reading(reading):
        done = st.prune(0)
        assert done.removed == 4 and done.skipped == 1
        assert [p.name for p in st.entries()] == [reading.name]
    assert st.clear().removed == 1
    assert st.entries() == [] and st.usage().bytes == 0


def test_readers_racing_evictions_get_the_entry_or_nothing(tmp_path):
    """Readers in threads of this process and a pruning process clearing the store
    in a loop: every read is either the entry, whole, or missing; never an error."""
    st = ResultStore(tmp_path / "store")
    keys = [{"i": i} for i in range(40)]
    stop = threading.Event()
    errors, hits, misses = [], [0], [0]

    def writer() -> None:
        while not stop.is_set():
            for k in keys:
                st.put("estimate", k, PAYLOAD | k)

    def reader() -> None:
        try:
            while not stop.is_set():
                for k in keys:
                    got = st.get("estimate", k)
                    if got is None:
                        misses[0] += 1
                    elif got != PAYLOAD | k:
                        errors.append(f"wrong entry for {k}")
                    else:
                        hits[0] += 1
        except Exception as e:   # noqa: BLE001 - that is what the test looks for
            errors.append(repr(e) + __import__("traceback").format_exc())

    def pruner() -> None:
        try:
            while not stop.is_set():
                st.prune(5 * 1024)
        except Exception as e:   # noqa: BLE001
            errors.append(repr(e) + __import__("traceback").format_exc())

    cleaner = subprocess.Popen(   # another process clearing the same store, bounded in time
        [sys.executable, "-c", "import sys, time\nfrom ess.store import ResultStore\n"
         "st = ResultStore(sys.argv[1])\nt0 = time.time()\n"
         "while time.time() - t0 < 2.0:\n    st.clear()\n", str(st.root)])
    threads = [threading.Thread(target=f) for f in (writer, reader, reader, pruner)]
    for t in threads:
        t.start()
    cleaner.wait(60)
    stop.set()
    for t in threads:
        t.join(60)
    assert cleaner.returncode == 0
    assert errors == [], "\n".join(errors)
    assert hits[0] > 0 and misses[0] > 0      # the race did happen both ways


def test_an_evicted_answer_is_recomputed_with_the_same_numbers(tmp_path):
    """Through the Python API: answers read while a thread evicts everything are
    the stored ones or recomputed ones, equal to the numbers without a store."""
    st = ResultStore(tmp_path / "store")
    want = {s: ess.estimate(**QUICK, seed=s, store=False).to_dict() for s in range(4)}
    for w in want.values():
        w.pop("seconds")
        w.pop("from_store")
    stop = threading.Event()

    def evict() -> None:
        while not stop.is_set():
            st.prune(0)
            time.sleep(0.001)

    t = threading.Thread(target=evict)
    t.start()
    try:
        seen = set()
        for _ in range(15):
            for s, w in want.items():
                got = ess.estimate(**QUICK, seed=s, store=st).to_dict()
                seen.add(got.pop("from_store"))
                got.pop("seconds")
                assert got == w
    finally:
        stop.set()
        t.join()
    assert False in seen


def test_store_command(tmp_path, capsys):
    st = ResultStore(tmp_path / "store")
    base = time.time_ns() - 10**12
    for i in range(10):
        _put_in_order(st, i, base)
    size = _on_disk(st)
    assert main(["store", "info", "--store", str(st.root), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info == {"store": str(st.root), "entries": 10, "bytes": size}
    assert main(["store", "info", "--store", str(st.root)]) == 0
    assert "10 answers" in capsys.readouterr().out
    keep = 4.5 * (size / 10) / MB
    assert main(["store", "prune", "--max-mb", f"{keep!r}", "--store", str(st.root),
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["removed"] == 6 and out["entries"] == 4
    assert sorted(json.loads(p.read_text())["key"]["i"] for p in st.entries()) == [6, 7, 8, 9]
    assert main(["store", "clear", "--store", str(st.root)]) == 0
    assert "removed 4 answers" in capsys.readouterr().out
    assert st.entries() == []


@pytest.mark.parametrize("argv, words", [
    (["store"], "needs an action: info, prune or clear"),
    (["store", "prune", "--store", "{tmp}"], "--max-mb"),
    (["store", "prune", "--max-mb", "-1", "--store", "{tmp}"], "max_mb"),
    (["store", "prune", "--max-mb", "lots", "--store", "{tmp}"], "max_mb"),
    (["store", "wipe"], "invalid choice"),
    (["serve", "--store-max-mb", "0", "--store", "{tmp}"], "store_max_mb"),
])
def test_store_command_refusals_are_one_line(tmp_path, capsys, argv, words):
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err


def test_health_reports_the_store_and_the_server_keeps_its_bound(tmp_path):
    size = _entry_size(tmp_path)
    st = ResultStore(tmp_path / "store", max_bytes=4 * size)
    app = create_app(st, Limits())
    with TestClient(app, base_url="http://127.0.0.1") as c:
        h = c.get("/v1/health").json()
        assert (h["store_entries"], h["store_bytes"], h["store_max_bytes"]) == (0, 0, 4 * size)
        for s in range(8):
            assert c.post("/v1/estimate", json=QUICK | {"seed": s}).status_code == 200
            h = c.get("/v1/health").json()
            assert h["store_bytes"] == _on_disk(st) <= 4 * size
            assert h["store_entries"] == len(st.entries())
        assert 1 <= h["store_entries"] <= 4
