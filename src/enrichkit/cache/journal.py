"""Answers a run could not cache (its disk full, its Redis gone), kept in a file beside the output so that the
re-run stores them and pays nothing for them.

Each line is one entry as the cache stores it, with its row key: ``{"k": key, "e": entry text}``. A key
holds the run's fingerprint, so an entry is only ever found by a run of the same task, prompt and model.
The re-run stores the entries into its cache before it sends anything, then removes the file; a line it
cannot read (cut by a crash) is left out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import orjson

from enrichkit.cache.base import Cache
from enrichkit.cache.entry import Entry, decode
from enrichkit.errors import StorageError, os_cause

REPLAY_ROWS = 1_000  # entries stored in one transaction


def journal_path(output: Path) -> Path:
    """Where a run writing ``output`` keeps the answers it could not cache: ``<output stem>-uncached.jsonl``."""
    return output.with_name(f"{output.stem}-uncached.jsonl")


class Journal:
    """The answers of one output that no cache holds yet."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def keep(self, entries: Mapping[str, Entry], stored_at: float) -> None:
        """Append ``entries`` (stored at ``stored_at`` where they have no time) and make them durable."""
        lines = b"".join(
            orjson.dumps({"k": key, "e": entry.dumps(entry.stored_at or stored_at)}) + b"\n"
            for key, entry in entries.items()
        )
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, lines)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot keep the answers the cache could not ({os_cause(exc)})") from exc

    def replay(self, cache: Cache) -> int:
        """Store every entry kept here into ``cache``, then remove the file; how many were stored."""
        if not self.path.is_file():
            return 0
        stored = 0
        batch: dict[str, Entry] = {}
        for key, entry in self._entries():
            batch[key] = entry
            if len(batch) >= REPLAY_ROWS:
                cache.put_many(batch)
                stored += len(batch)
                batch = {}
        if batch:
            cache.put_many(batch)
            stored += len(batch)
        self.path.unlink(missing_ok=True)
        return stored

    def _entries(self) -> Iterator[tuple[str, Entry]]:
        try:
            with self.path.open("rb") as lines:
                for line in lines:
                    try:
                        doc = orjson.loads(line)
                        key, text = doc["k"], doc["e"]
                    except (orjson.JSONDecodeError, TypeError, KeyError):
                        continue
                    if isinstance(key, str) and isinstance(text, str) and (entry := decode(text)) is not None:
                        yield key, entry
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot read ({os_cause(exc)})") from exc
