"""On-disk JSON stores with atomic writes: cached reference curves, and the result store.

The result store keeps every estimate and threshold ever computed, keyed by
every parameter that changes the answer plus the package version and a hash of
the computing code. It is shared by the Python API, the command line and the
service (``ess serve``): a repeated question is answered from disk without
recomputation. Entries are written atomically (temporary file, then rename)
and carry a checksum keyed with a secret of the store (HMAC-SHA256; the secret
is made with :mod:`secrets` on first use and kept beside the entries in
:data:`SECRET_NAME`, mode 0600); an entry that is unreadable, truncated, stored
under another key or fails its checksum is treated as missing, so it is
recomputed and replaced, never served. The checksum makes the store
tamper-evident against whoever can edit its entries but cannot read the secret:
an edited entry, even with a plain SHA-256 recomputed, is a miss. Whoever can
read the secret can forge entries; entries of earlier versions (a plain
SHA-256) are misses. Cached reference curves (:func:`load_curve`) are keyed the
same way, with a secret in their own folder.

A store may be bounded (``max_bytes``; ``ess serve --store-max-mb``, ``ess store
prune``): reading an entry marks it used (its modification time), and when a
write takes the store over its bound the least recently used entries are
removed until it is under. A removal is one ``unlink``: a reader either opened
the entry before it (and reads it whole) or finds it missing and recomputes it;
an entry being read in this process is never removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ess import __version__, config

#: Layout version of result-store entries.
FORMAT = 1
#: Sources whose edits can change a stored answer.
_CODE = ("config.py", "defaults.py", "params.py", "request.py", "plan.py", "analytic.py",
         "pchip.py", "chains.py", "stats.py", "solve.py", "reference.py", "results.py", "api.py",
         "kernels/*.py")
#: A megabyte of ``--store-max-mb`` and ``--max-mb``.
MB = 2**20
#: Default bound of ``ess serve``'s store, in MB: some 200,000 entries.
DEFAULT_MAX_MB = 1024
#: Values of ``ESS_STORE`` that turn the default store off.
OFF = ("off", "none", "0", "false", "no")


def key_hash(key: dict) -> str:
    """Stable hash of a JSON-serialisable key."""
    return _hash_text(_canonical(key))


def _hash_text(canon: str) -> str:
    return hashlib.sha256(canon.encode()).hexdigest()[:32]


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


#: Name of the file that holds a folder's secret, beside its entries.
SECRET_NAME = "secret.key"
#: Bytes of a new secret (256 bits, the size of the HMAC-SHA256 key block's hash).
SECRET_BYTES = 32
#: Field of an entry or curve file that holds its keyed checksum.
CHECKSUM = "hmac_sha256"
#: Secrets read or made by this process, by folder (under ``_GUARD``).
_SECRETS: dict[Path, bytes] = {}


def folder_secret(folder: Path) -> bytes | None:
    """The secret of ``folder`` (a result store, the reference-curve cache): read
    from :data:`SECRET_NAME` in it, or made with :func:`secrets.token_bytes` and
    written there with mode 0600 on first use (linked into place, so that of two
    processes making it at once both use the one that landed). ``None`` when it
    can neither be read nor made (every entry is then a miss). Kept in this
    process once read."""
    folder = Path(folder)
    with _GUARD:
        known = _SECRETS.get(folder)
    if known is not None:
        return known
    path = folder / SECRET_NAME
    secret = _read_secret(path)
    if secret is None:
        tmp = folder / f".tmp-secret-{os.getpid()}-{threading.get_ident()}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(secrets.token_bytes(SECRET_BYTES))
                fh.flush()
                os.fsync(fh.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        secret = _read_secret(path)
    if secret is not None:
        with _GUARD:
            secret = _SECRETS.setdefault(folder, secret)
    return secret


def _read_secret(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            secret = fh.read(4 * SECRET_BYTES)
    except OSError:
        return None
    return secret if len(secret) >= SECRET_BYTES // 2 else None


def keyed_digest(secret: bytes, payload: dict) -> str:
    """HMAC-SHA256 of the canonical JSON of ``payload`` under ``secret``."""
    return hmac.new(secret, _canonical(payload).encode(), hashlib.sha256).hexdigest()


def _intact(secret: bytes | None, payload: dict, digest: object) -> bool:
    return (secret is not None and isinstance(digest, str)
            and hmac.compare_digest(digest, keyed_digest(secret, payload)))


def load_curve(path: Path, key: dict) -> dict | None:
    """Read a cached reference curve (``{"key", "points"}``); ``None`` if missing,
    unreadable, stored under another key or failing its keyed checksum (then it is
    recomputed, never served)."""
    data = load_json(path, key)
    if data is None or not isinstance(data.get("points"), dict):
        return None
    payload = {"key": data["key"], "points": data["points"]}
    return data if _intact(folder_secret(path.parent), payload, data.get(CHECKSUM)) else None


def save_curve(path: Path, data: dict) -> bool:
    """Write a reference curve (``{"key", "points"}``) atomically with its keyed
    checksum; ``False`` if the disk refuses or the folder has no secret."""
    secret = folder_secret(path.parent)
    if secret is None:
        return False
    payload = json.loads(_canonical({"key": data["key"], "points": data["points"]}))
    return save_json(path, {**payload, CHECKSUM: keyed_digest(secret, payload)})


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


@dataclass(frozen=True)
class Usage:
    """What a result store holds.

    Attributes
    ----------
    bytes : int
        Size of its entries (file sizes).
    entries : int
        Number of entries.
    """

    bytes: int
    entries: int


@dataclass(frozen=True)
class Pruned:
    """What :meth:`ResultStore.prune` did.

    Attributes
    ----------
    removed : int
        Entries removed.
    freed : int
        Bytes they held.
    kept : Usage
        What the store holds afterwards.
    skipped : int
        Entries over the bound that were kept because they were being read.
    """

    removed: int
    freed: int
    kept: Usage
    skipped: int = 0


class ResultStore:
    """A folder of checksummed result entries, one JSON file per key.

    Parameters
    ----------
    root : path
        The folder (created on first write).
    max_bytes : int, optional
        Bound on the entries' size: a write that takes the store over it
        removes the least recently used entries down to
        :data:`PRUNE_TO` of it. ``None``: no bound.
    """

    def __init__(self, root: str | os.PathLike, max_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self._usage: Usage | None = None   # counted by this object since its last scan
        self._scanned = 0.0
        self._count = threading.Lock()

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

    def secret(self) -> bytes | None:
        """The store's secret (:func:`folder_secret`), made on first use."""
        return folder_secret(self.root)

    def path(self, kind: str, key: dict) -> Path:
        """File of the entry for ``key``."""
        return self._locate(kind, key)[0]

    def get(self, kind: str, key: dict) -> dict | None:
        """The stored result for ``key``, or ``None`` if absent or not intact.

        A hit marks the entry used (for the least-recently-used bound); while it
        is read, this process does not remove it.
        """
        path, full = self._locate(kind, key)
        with _reading(path):
            try:
                with open(path, encoding="utf-8") as fh:
                    entry = json.load(fh)
            except (OSError, ValueError, RecursionError):   # unreadable, not JSON, too nested
                return None
            if not (isinstance(entry, dict) and entry.get("format") == FORMAT
                    and entry.get("key") == full and isinstance(entry.get("result"), dict)
                    and _intact(self.secret(), {"key": full, "result": entry["result"]},
                                entry.get(CHECKSUM))):
                return None
            with contextlib.suppress(OSError):   # removed meanwhile: the answer stands
                os.utime(path)
        return entry["result"]

    def put(self, kind: str, key: dict, result: dict) -> bool:
        """Store ``result`` under ``key`` atomically; ``False`` if the disk refuses.

        In a bounded store, a write that takes it over ``max_bytes`` prunes it.
        """
        path, full = self._locate(kind, key)
        secret = self.secret()
        if secret is None:      # a folder that cannot be written
            return False
        entry = {"format": FORMAT, "key": full, "result": result,
                 CHECKSUM: keyed_digest(secret, {"key": full, "result": result})}
        # Not fsynced: the rename is atomic for a killed process, and after an operating
        # system crash a torn entry fails its checksum and is recomputed.
        ok = save_json(path, entry)
        if ok and (self.max_bytes is not None or self._usage is not None):
            with contextlib.suppress(OSError):
                self._added(path.stat().st_size)
        return ok

    # the bound -----------------------------------------------------------------------
    def usage(self, max_age: float | None = None) -> Usage:
        """Size and number of entries: counted by a scan of the folder, then kept up
        to date by this object's writes and prunings (entries written by other
        processes are seen at the next scan).

        Parameters
        ----------
        max_age : float, optional
            Scan again when the last scan is older (seconds); ``None``: only if
            there was none.
        """
        with self._count:
            stale = max_age is not None and time.monotonic() - self._scanned > max_age
            if self._usage is None or stale:
                files = self._scan()
                self._usage = Usage(sum(f[1] for f in files), len(files))
                self._scanned = time.monotonic()
            return self._usage

    def _added(self, size: int) -> None:
        """Count a new entry of ``size`` bytes (or a rewritten one: the count is
        corrected at the next scan); prune when over the bound. Once a minute
        while writing, count again from the folder."""
        with self._count:
            counted = self._usage is not None and time.monotonic() - self._scanned < 60.0
            if counted:
                self._usage = Usage(self._usage.bytes + size, self._usage.entries + 1)
        u = self._usage if counted else self.usage(max_age=0.0)   # a scan sees the new one
        if self.max_bytes is not None and u.bytes > self.max_bytes:
            self.prune(int(self.max_bytes * PRUNE_TO))

    def _scan(self) -> list[tuple[int, int, int, Path]]:
        """``(last use in ns, size, inode, path)`` of every entry, least recently
        used first."""
        files = []
        for p in self.entries():
            try:
                st = p.stat()
            except OSError:      # removed meanwhile
                continue
            files.append((st.st_mtime_ns, st.st_size, st.st_ino, p))
        files.sort()
        return files

    def prune(self, max_bytes: int) -> Pruned:
        """Remove the least recently used entries until the store holds at most
        ``max_bytes``.

        Each removal is one ``unlink`` of an entry that was not rewritten or read
        since it was listed; an entry being read in this process is kept (and
        counted in ``skipped``). Another process reading an entry as it is
        removed reads it whole (POSIX) or finds it missing and recomputes it.

        Returns
        -------
        Pruned
            What was removed and what is left.
        """
        removed = freed = skipped = 0
        with _PRUNING:
            files = self._scan()
            total = sum(f[1] for f in files)
            count = len(files)
            for mtime, size, ino, p in files:
                if total <= max_bytes:
                    break
                with _GUARD:
                    if str(p) in _READERS:
                        skipped += 1
                        continue
                    try:
                        st = p.stat()
                        if st.st_ino != ino or st.st_mtime_ns != mtime:
                            continue     # rewritten or used since listed: keep it
                        p.unlink()
                    except FileNotFoundError:   # removed by someone else
                        pass
                    except OSError:
                        skipped += 1
                        continue
                total -= size
                count -= 1
                removed += 1
                freed += size
            kept = Usage(total, count)
        with self._count:
            self._usage, self._scanned = kept, time.monotonic()
        return Pruned(removed, freed, kept, skipped)

    def clear(self) -> Pruned:
        """Remove every entry, and the temporary files of unfinished writes older
        than a minute (an entry being read in this process is kept)."""
        out = self.prune(0)
        self.remove_stale_temporaries(age=60.0)
        return out

    @contextlib.contextmanager
    def computing(self, kind: str, key: dict,
                  check: Callable[[], None] = lambda: None) -> Iterator[None]:
        """Hold the lock of ``key`` in this process, so that identical computations
        started at the same time run once (the later ones then find the entry).

        ``check`` is called while waiting and may raise to give up.
        """
        with single_flight(str(self.path(kind, key)), check):
            yield

    def writable(self) -> bool:
        """Whether a new entry can be written now: a one-byte temporary file is
        created in the store's folder (made if missing) and removed. A read-only
        or full disk gives ``False`` (every answer is then computed, not stored)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-probe-")
        except OSError:
            return False
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(b"0")
                fh.flush()
                os.fsync(fh.fileno())
            return True
        except OSError:
            return False
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def entries(self) -> list[Path]:
        """Every entry file (not the temporary files of unfinished writes)."""
        return sorted(p for p in self._files() if p.suffix == ".json"
                      and not p.name.startswith(".tmp-"))

    def _files(self) -> Iterator[Path]:
        """Every file two folders below ``v<FORMAT>`` (kind, then hash prefix); a
        folder removed meanwhile is skipped (``Path.glob`` would raise)."""
        top = self.root / f"v{FORMAT}"
        for kind in _subfolders(top):
            for part in _subfolders(kind):
                try:
                    with os.scandir(part) as it:
                        names = [e.name for e in it]
                except OSError:
                    continue
                yield from (part / n for n in names)

    def remove_stale_temporaries(self, age: float = 600.0) -> int:
        """Delete temporary files older than ``age`` seconds (left by a killed writer)."""
        n = 0
        now = time.time()
        for p in [p for p in self._files() if p.name.startswith(".tmp-")]:
            try:
                if now - p.stat().st_mtime > age:
                    p.unlink()
                    n += 1
            except OSError:
                pass
        return n


#: Locks of the keys being computed in this process, with their number of holders.
_KEY_LOCKS: dict[Hashable, list] = {}
_GUARD = threading.Lock()


@contextlib.contextmanager
def single_flight(name: Hashable, check: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Hold this process's lock of ``name`` (a result's entry, a reference-curve
    point), so that identical computations asked at the same time by several
    threads (the service's workers, API calls) run once: the later ones wait, then
    find the answer where the first one put it. ``check`` is called every 0.1 s
    while waiting and may raise to give up."""
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
#: Entries being read in this process, with their number of readers (under ``_GUARD``).
_READERS: dict[str, int] = {}
#: One pruning at a time in this process.
_PRUNING = threading.Lock()
#: A write that takes a bounded store over its bound prunes it to this fraction of
#: it, so that pruning (a scan of the folder) happens once per many writes.
PRUNE_TO = 0.9


def _subfolders(path: Path) -> list[Path]:
    """The folders in ``path``; none when it is missing or was removed meanwhile."""
    try:
        with os.scandir(path) as it:
            return [path / e.name for e in it if e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Mark ``path`` as being read in this process (pruning keeps it)."""
    name = str(path)
    with _GUARD:
        _READERS[name] = _READERS.get(name, 0) + 1
    try:
        yield
    finally:
        with _GUARD:
            left = _READERS[name] - 1
            if left:
                _READERS[name] = left
            else:
                del _READERS[name]


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
