"""The per-row cache: how a row's key is made, and where validated answers are kept.

A key is the sha256 of the run fingerprint (task + prompt format + model settings) and the row's
input values. Row ids and the pack a row travelled in are not part of it, so the same content
under another id, in another pack or in another file is a hit. Only validated values are stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diskcache

DEFAULT_DIR = "cache"


def canonical(value: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(parts: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(parts).encode()).hexdigest()


def row_key(run_fingerprint: str, inputs: Mapping[str, Any]) -> str:
    return hashlib.sha256((run_fingerprint + canonical(inputs)).encode()).hexdigest()


def default_dir() -> Path:
    return Path(os.environ.get("ENRICHKIT_CACHE_DIR") or DEFAULT_DIR)


@dataclass(frozen=True)
class Entry:
    """A validated answer for one row, with the model that wrote it and its share of the usage."""

    values: dict[str, Any]
    model: str
    prompt_tokens: float = 0.0
    output_tokens: float = 0.0
    stored_at: float = 0.0

    def dumps(self, stored_at: float) -> str:
        return canonical(
            {"v": self.values, "m": self.model, "u": [self.prompt_tokens, self.output_tokens], "t": stored_at}
        )

    @classmethod
    def loads(cls, text: str) -> Entry:
        doc = json.loads(text)
        return cls(doc["v"], doc["m"], doc["u"][0], doc["u"][1], doc["t"])


def _owner_only(folder: Path) -> None:
    """Paid answers are the user's data: the folder and its files are readable by the owner only
    (SQLite gives its -wal/-shm files the database file's permissions)."""
    folder.chmod(0o700)
    for path in folder.iterdir():
        path.chmod(0o700 if path.is_dir() else 0o600)


class RowCache:
    """Validated answers on disk (diskcache over SQLite: safe across threads and processes).

    Nothing is ever evicted: a paid answer stays until ``clear`` or ``prune``.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        rows = self.directory / "rows"
        self._db = diskcache.Cache(str(rows), eviction_policy="none", statistics=False)
        _owner_only(rows)
        self._expected = len(self._db)

    def get_many(self, keys: Iterable[str]) -> dict[str, Entry]:
        """Look up many keys in one read transaction."""
        found: dict[str, Entry] = {}
        with self._db.transact():
            for key in keys:
                text = self._db.get(key)
                if text is not None:
                    found[key] = Entry.loads(text)
        return found

    def put_many(self, entries: Mapping[str, Entry]) -> None:
        """Store entries atomically (one transaction): a crash keeps all of them or none."""
        now = time.time()
        with self._db.transact():
            for key, entry in entries.items():
                self._db.set(key, entry.dumps(entry.stored_at or now))
        self._expected += len(entries)

    def written_elsewhere(self) -> bool:
        """Whether another process (or cache object) stored entries since this one opened: one cheap query."""
        return len(self._db) != self._expected

    def __len__(self) -> int:
        return len(self._db)

    def volume(self) -> int:
        """Bytes used on disk."""
        return int(self._db.volume())

    def clear(self) -> int:
        return int(self._db.clear())

    def prune(self, older_than_seconds: float) -> int:
        """Delete entries stored more than ``older_than_seconds`` ago; returns how many."""
        cutoff = time.time() - older_than_seconds
        stale: Sequence[str] = [k for k in self._db.iterkeys() if Entry.loads(self._db[k]).stored_at < cutoff]
        with self._db.transact():
            for key in stale:
                self._db.delete(key)
        return len(stale)

    def close(self) -> None:
        self._db.close()
