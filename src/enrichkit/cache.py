"""The per-row cache: how a row's key is made, and where validated answers are kept.

A key is the sha256 of the run fingerprint (task + prompt format + model settings) and the row's
input values. Row ids and the pack a row travelled in are not part of it, so the same content
under another id, in another pack or in another file is a hit. Only validated values are stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import diskcache

DEFAULT_DIR = "cache"
_QUERY_KEYS = 500  # keys in one SELECT (SQLite allows 32,766 parameters)


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)  # made once: per row
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def canonical(value: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, UTF-8 kept."""
    return _CANONICAL.encode(value)


def fingerprint(parts: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(parts).encode()).hexdigest()


def row_key(run_fingerprint: str, inputs: Mapping[str, Any] | str) -> str:
    """The cache key of a row's ``inputs`` (or of their ``canonical`` text)."""
    text = inputs if isinstance(inputs, str) else canonical(inputs)
    return hashlib.sha256((run_fingerprint + text).encode()).hexdigest()


def default_dir() -> Path:
    return Path(os.environ.get("ENRICHKIT_CACHE_DIR") or DEFAULT_DIR)


class Entry(NamedTuple):
    """A validated answer for one row, with the model that wrote it and its share of the usage.

    (A named tuple: a cached re-run builds one per row, and it is cheap to build.)"""

    values: dict[str, Any]
    model: str
    prompt_tokens: float = 0.0
    output_tokens: float = 0.0
    stored_at: float = 0.0

    def dumps(self, stored_at: float) -> str:
        doc = {"v": self.values, "m": self.model, "u": [self.prompt_tokens, self.output_tokens], "t": stored_at}
        return _COMPACT.encode(doc)

    @classmethod
    def loads(cls, text: str) -> Entry:
        return cls.of(json.loads(text))

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Entry:
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
        # Nothing expires and nothing is evicted, so diskcache need not look for entries to cull on each
        # write. Row keys are random (sha256), so every write dirties pages all over the key index: a WAL
        # checkpoint every 10,000 pages instead of 1,000 writes each page fewer times (measured 134 -> 94 us
        # a row, 100,000 rows in transactions of 20). Commits stay synchronous=NORMAL: a crash loses nothing.
        self._db = diskcache.Cache(
            str(rows), eviction_policy="none", statistics=False, cull_limit=0, sqlite_wal_autocheckpoint=10_000
        )
        _owner_only(rows)
        self._reader = sqlite3.connect(rows / diskcache.core.DBNAME, check_same_thread=False)
        self._expected = len(self._db)

    def get_many(self, keys: Iterable[str]) -> dict[str, Entry]:
        """Look up many keys: a few hundred at a time in one SQL query each, in one read transaction.

        The query reads diskcache's own table (its on-disk format: ``Cache(key, raw, value, mode)``);
        a value diskcache keeps elsewhere (a file, for big ones) or a table it cannot read falls back
        to ``diskcache.Cache.get``.
        """
        wanted = list(keys)
        found: dict[str, Entry] = {}
        for start in range(0, len(wanted), _QUERY_KEYS):
            texts = self._select(wanted[start : start + _QUERY_KEYS])
            for key in [key for key, text in texts.items() if text is None]:  # kept elsewhere by diskcache
                if (stored := self._db.get(key)) is not None:
                    found[key] = Entry.loads(stored)
            known = [(key, text) for key, text in texts.items() if text is not None]
            docs = json.loads("[" + ",".join(text for _, text in known) + "]")  # one parse for the lot
            found.update((key, Entry.of(doc)) for (key, _), doc in zip(known, docs, strict=True))
        return found

    def _select(self, keys: Sequence[str]) -> dict[str, str | None]:
        """The stored texts of those ``keys`` that exist (None: ask diskcache itself)."""
        marks = ",".join("?" * len(keys))
        try:
            rows = self._reader.execute(
                f"SELECT key, value, mode FROM Cache WHERE raw = 1 AND key IN ({marks})", keys
            ).fetchall()
        except sqlite3.Error:
            return {key: None for key in keys}
        return {
            key: value if mode == diskcache.core.MODE_RAW and isinstance(value, str) else None
            for key, value, mode in rows
        }

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
        self._reader.close()
        self._db.close()
