"""Small on-disk JSON store with atomic writes, for cached reference curves."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


def key_hash(key: dict) -> str:
    """Stable hash of a JSON-serialisable key."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


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


def save_json(path: Path, data: dict) -> None:
    """Write atomically (temporary file, then rename); silently skip if the disk refuses."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)
    except OSError:
        pass
