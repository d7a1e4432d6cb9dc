"""On-disk JSON stores with atomic writes: cached reference curves, and the result store.

The result store keeps every estimate and threshold ever computed, keyed by
every parameter that changes the answer plus the package version and a hash of
the computing code. It is shared by the Python API, the command line and the
service (``ess serve``): a repeated question is answered from disk without
recomputation. Entries are written atomically (temporary file, then rename)
and carry a checksum; an entry that is unreadable, truncated, stored
under another key or fails its checksum is treated as missing, so it is
recomputed and replaced, never served.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ess import __version__, config

#: Layout version of result-store entries.
FORMAT = 1
#: Sources whose edits can change a stored answer.
_CODE = ("config.py", "defaults.py", "params.py", "request.py", "plan.py", "analytic.py",
         "pchip.py", "chains.py", "stats.py", "solve.py", "reference.py", "results.py", "api.py",
         "kernels/*.py")
#: Values of ``ESS_STORE`` that turn the default store off.
OFF = ("off", "none", "0", "false", "no")


def key_hash(key: dict) -> str:
    """Stable hash of a JSON-serialisable key."""
    return _hash_text(_canonical(key))


def _hash_text(canon: str) -> str:
    return hashlib.sha256(canon.encode()).hexdigest()[:32]


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def load_json(path: Path, key: dict) -> dict | None:
    """Read an entry; ``None`` if missing, unreadable, or stored under another key."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("key") != json.loads(json.dumps(key)):
        return None
    return data


def save_json(path: Path, data: dict) -> bool:
    """Write atomically (temporary file, then rename); ``False`` if the disk refuses."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(data))   # json.dumps uses the C encoder; json.dump does not
        os.replace(tmp, path)
        return True
    except OSError:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        return False


def default_store_dir() -> Path | None:
    """The store used when none is given: ``ESS_STORE``, else ``<cache dir>/results``.

    ``ESS_STORE=off`` (or ``none``, ``0``, ``false``, ``no``) turns it off.
    """
    env = os.environ.get("ESS_STORE")
    if env is not None and env.strip():
        return None if env.strip().lower() in OFF else Path(env)
    return config.cache_dir() / "results"


class ResultStore:
    """A folder of checksummed result entries, one JSON file per key.

    Parameters
    ----------
    root : path
        The folder (created on first write).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def full_key(self, kind: str, key: dict) -> dict:
        """``key`` completed with the kind of answer, the version and the code hash."""
        return {"kind": kind, "version": __version__, "code": config.source_hash(*_CODE),
                **key}

    def _locate(self, kind: str, key: dict) -> tuple[Path, dict]:
        """File of the entry for ``key``, and its full key as read back from JSON
        (one canonical serialisation serves both)."""
        canon = _canonical(self.full_key(kind, key))
        h = _hash_text(canon)
        return self.root / f"v{FORMAT}" / kind / h[:2] / f"{h}.json", json.loads(canon)

    def path(self, kind: str, key: dict) -> Path:
        """File of the entry for ``key``."""
        return self._locate(kind, key)[0]

    def get(self, kind: str, key: dict) -> dict | None:
        """The stored result for ``key``, or ``None`` if absent or not intact."""
        path, full = self._locate(kind, key)
        try:
            with open(path, encoding="utf-8") as fh:
                entry = json.load(fh)
        except (OSError, ValueError, RecursionError):   # unreadable, not JSON, absurdly nested
            return None
        if not (isinstance(entry, dict) and entry.get("format") == FORMAT
                and entry.get("key") == full and isinstance(entry.get("result"), dict)
                and entry.get("sha256") == _digest(entry["key"], entry["result"])):
            return None
        return entry["result"]

    def put(self, kind: str, key: dict, result: dict) -> bool:
        """Store ``result`` under ``key`` atomically; ``False`` if the disk refuses."""
        path, full = self._locate(kind, key)
        entry = {"format": FORMAT, "key": full, "result": result,
                 "sha256": _digest(full, result)}
        # Not fsynced: the rename is atomic for a killed process, and after an operating
        # system crash a torn entry fails its checksum and is recomputed.
        return save_json(path, entry)

    @contextlib.contextmanager
    def computing(self, kind: str, key: dict,
                  check: Callable[[], None] = lambda: None) -> Iterator[None]:
        """Hold the lock of ``key`` in this process, so that identical computations
        started at the same time run once (the later ones then find the entry).

        ``check`` is called while waiting and may raise to give up.
        """
        name = str(self.path(kind, key))
        with _GUARD:
            entry = _KEY_LOCKS.setdefault(name, [threading.Lock(), 0])
            entry[1] += 1
        try:
            while not entry[0].acquire(timeout=0.1):
                check()
            try:
                yield
            finally:
                entry[0].release()
        finally:
            with _GUARD:
                entry[1] -= 1
                if entry[1] == 0:
                    del _KEY_LOCKS[name]

    def entries(self) -> list[Path]:
        """Every entry file (not the temporary files of unfinished writes)."""
        return sorted(p for p in (self.root / f"v{FORMAT}").glob("*/*/*.json")
                      if not p.name.startswith(".tmp-"))

    def remove_stale_temporaries(self, age: float = 600.0) -> int:
        """Delete temporary files older than ``age`` seconds (left by a killed writer)."""
        n = 0
        now = time.time()
        for p in (self.root / f"v{FORMAT}").glob("*/*/.tmp-*"):
            try:
                if now - p.stat().st_mtime > age:
                    p.unlink()
                    n += 1
            except OSError:
                pass
        return n


#: Locks of the keys being computed in this process, with their number of holders.
_KEY_LOCKS: dict[str, list] = {}
_GUARD = threading.Lock()


def _digest(key: dict, result: dict) -> str:
    return hashlib.sha256(_canonical({"key": key, "result": result}).encode()).hexdigest()


def open_store(store: str | os.PathLike | bool | None = None) -> ResultStore | None:
    """The result store named by an API ``store`` argument.

    ``None`` or ``True``: the default store (:func:`default_store_dir`);
    ``False``: none; a path: the store in that folder.
    """
    if store is None or store is True:
        root = default_store_dir()
        return None if root is None else ResultStore(root)
    if store is False:
        return None
    if isinstance(store, ResultStore):
        return store
    if isinstance(store, (str, os.PathLike)) and str(store).strip():
        return ResultStore(store)
    from ess.params import ParameterError

    raise ParameterError("store", f"store must be a folder path, True or False, got {store!r}")
