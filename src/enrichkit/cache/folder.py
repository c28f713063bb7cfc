"""The cache in a folder: validated answers kept by row key in diskcache's SQLite database.

A key (``rows.keys``) is the sha256 of the run's fingerprint and the row's input values, so the same
content under another id, in another pack or in another file is a hit. Only validated values are
stored, and nothing is evicted.

The cache checks itself: an entry that cannot be decoded is a miss (counted in ``RowCache.damaged``)
and is overwritten when its row is answered again; a database SQLite reports as corrupt, and every
other disk failure (full, read-only, no permission), is a ``StorageError`` of one line.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import diskcache

from enrichkit.cache.db import COUNT, WAL_PAGES, connect, is_corrupt, owner_only, storage_cause, upsert
from enrichkit.cache.entry import Entry, decode, exact_entries
from enrichkit.cache.leases import FolderLeases
from enrichkit.errors import StorageError
from enrichkit.rows.jsontext import loads

DEFAULT_DIR = "cache"

READER_PAGES = 4096  # the look-ups' page cache (16 MB; diskcache's 32 MB was no faster on 1M keys, and held more)

WRITER_PAGES = 512  # the write connection's page cache (2 MB; a bigger one held more memory at 1M rows, no faster)

_QUERY_KEYS = 500  # keys in one SELECT (SQLite allows 32,766 parameters)


def default_dir() -> Path:
    return Path(os.environ.get("ENRICHKIT_CACHE_DIR") or DEFAULT_DIR)


class RowCache:
    """Validated answers on disk (diskcache over SQLite: safe across threads and processes).

    Nothing is ever evicted: a paid answer stays until ``clear``, ``prune`` or ``forget``.
    """

    remote = False

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.damaged = 0  # entries found undecodable (and treated as misses) by this object
        self._write_lock = threading.Lock()  # ``put_many`` may run in a worker thread, and so may
        self._read_lock = threading.Lock()  # ``get_many``: each is one thread's at a time, and ``close`` waits
        if self.directory.exists() and not self.directory.is_dir():
            raise StorageError(f"cache at {self.directory}: is a file, not a directory")
        rows = self.directory / "rows"
        with self._guard("open"):
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._db = self._open(rows)
        try:
            with self._guard("open"):
                owner_only(rows)
                self._sql = connect(rows / diskcache.core.DBNAME, READER_PAGES)
                self._writer = connect(rows / diskcache.core.DBNAME, WRITER_PAGES)  # ``put_many``'s, in any thread
                self._expected = len(self)
            self._leases = FolderLeases(self.directory)
        except StorageError:
            self._db.close()
            raise
        # diskcache keeps a connection per thread, and ``close`` closes the calling thread's alone: this one's
        # (which set the database up) is closed now, not left to the garbage collector once the thread is gone
        # (a run opens its cache in a thread of its own). diskcache reconnects in any thread that needs it.
        self._db.close()

    @staticmethod
    def _open(rows: Path) -> diskcache.Cache:
        # Nothing expires and nothing is evicted, so diskcache need not look for entries to cull on each
        # write. Row keys are random (sha256), so every write dirties pages all over the key index: a WAL
        # checkpoint every 10,000 pages instead of 1,000 writes each page fewer times (measured 134 -> 94 us
        # a row, 100,000 rows in transactions of 20). Commits stay synchronous=NORMAL: a crash loses nothing.
        return diskcache.Cache(
            str(rows), eviction_policy="none", statistics=False, cull_limit=0, sqlite_wal_autocheckpoint=WAL_PAGES
        )

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """SQLite and OS errors in the block as a ``StorageError`` of one line."""
        try:
            yield
        except sqlite3.Error as exc:
            if is_corrupt(exc):
                raise StorageError(
                    f"cache at {self.directory} is damaged ({exc}): move it aside or run"
                    f" `enrichkit cache salvage --cache-dir {self.directory}`"
                ) from exc
            cause = storage_cause(exc, self.directory / "rows")
            raise StorageError(f"cache at {self.directory}: cannot {doing} ({cause})") from exc
        except OSError as exc:
            raise StorageError(f"cache at {self.directory}: cannot {doing} ({storage_cause(exc)})") from exc

    def get_many(self, keys: Iterable[str]) -> dict[str, Entry]:
        """Look up many keys: a few hundred at a time in one SQL query each, in one read transaction.

        The query reads diskcache's own table (its on-disk format: ``Cache(key, raw, value, mode)``);
        a value diskcache keeps elsewhere (a file, for big ones) or a table it cannot read falls back
        to ``diskcache.Cache.get``. A damaged entry is left out and counted in ``damaged``.
        """
        wanted = sorted(keys)  # in key order: SQLite finds each in pages it just read
        found: dict[str, Entry] = {}
        with self._read_lock, self._guard("read"):
            self._sql.execute("BEGIN")
            try:
                for start in range(0, len(wanted), _QUERY_KEYS):
                    self._decode_into(found, self._select(wanted[start : start + _QUERY_KEYS]))
            finally:
                self._sql.execute("COMMIT")
        return found

    def _decode_into(self, found: dict[str, Entry], known: list[tuple[str, str]]) -> None:
        try:
            docs = loads("[" + ",".join([text for _, text in known]) + "]", exact_entries)  # one parse for the lot
            found.update(zip([key for key, _ in known], map(Entry.of, docs), strict=True))
        except ValueError:  # some entry is damaged: decode one by one
            for key, text in known:
                if (entry := decode(text)) is None:
                    found.pop(key, None)
                    self.damaged += 1
                else:
                    found[key] = entry

    def _select(self, keys: Sequence[str]) -> list[tuple[str, str]]:
        """The stored texts of those ``keys`` that exist (from diskcache itself where it keeps them elsewhere;
        an empty text where it keeps no text)."""
        marks = ",".join("?" * len(keys))
        try:
            rows: list[tuple[str, str | None]] = self._sql.execute(
                f"SELECT key, CASE WHEN mode = {diskcache.core.MODE_RAW} AND typeof(value) = 'text' THEN value END"
                f" FROM Cache WHERE raw = 1 AND key IN ({marks})",
                keys,
            ).fetchall()
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorname", "") != "SQLITE_ERROR":  # not merely a table it cannot read
                raise
            rows = [(key, None) for key in keys]
        if all(text is not None for _, text in rows):
            return cast(list[tuple[str, str]], rows)
        return [(key, text) for key, text in map(self._elsewhere, rows) if text is not None]

    def _elsewhere(self, row: tuple[str, str | None]) -> tuple[str, str | None]:
        """A row as ``_select`` read it, its text asked of diskcache where the table had none."""
        key, text = row
        if text is None:
            kept = self._db.get(key)
            text = kept if isinstance(kept, str) or kept is None else ""
        return key, text

    def put_many(self, entries: Mapping[str, Entry]) -> None:
        """Store entries atomically (one transaction): a crash keeps all of them or none. Safe in any thread
        (one at a time; reads go on meanwhile on a connection of their own).

        They go straight into diskcache's table, in one statement, as ``diskcache.Cache.set`` writes a
        text kept in the table; a text big enough for diskcache to keep in a file of its own, or an
        entry kept in such a file now, goes through diskcache itself."""
        now = time.time()
        texts = [(key, entry.dumps(entry.stored_at or now)) for key, entry in entries.items()]
        with self._write_lock, self._guard("write"):
            small = all(len(text) < self._db.disk.min_file_size for _, text in texts)
            added = upsert(self._writer, now, texts) if small else None
            if added is None:
                with self._db.transact():
                    before = len(self._db)
                    for key, text in texts:
                        self._db.set(key, text)
                    added = len(self._db) - before
            self._expected += added
            self._leases.end(entries)

    def written_elsewhere(self) -> bool:
        """Whether another process (or cache object) stored entries since this one opened: one cheap query."""
        return len(self) != self._expected

    def shared(self) -> bool:
        """Whether another run has this folder open now (``cache.leases``): one local query."""
        with self._guard("read leases"):
            return self._leases.shared()

    def lease(self, keys: Sequence[str]) -> list[str]:
        """Take the leases of the ``keys`` no other run holds; the keys another run holds (``cache.leases``)."""
        with self._guard("lease"):
            return self._leases.lease(keys)

    def release(self, keys: Iterable[str]) -> None:
        """End this run's leases of ``keys`` (rows it gave up on: the others may ask them)."""
        with self._guard("release"):
            self._leases.end(keys)

    def __len__(self) -> int:
        """The entries stored (diskcache's own count, kept by its triggers): one cheap query."""
        with self._read_lock, self._guard("read"):
            (count,) = self._sql.execute(COUNT).fetchone()
            return int(count)

    def volume(self) -> int:
        """Bytes used on disk."""
        with self._guard("read"):
            return int(self._db.volume())

    def clear(self) -> int:
        with self._guard("write"):
            return int(self._db.clear())

    def prune(self, older_than_seconds: float) -> int:
        """Delete entries stored more than ``older_than_seconds`` ago, and damaged ones; returns how many."""
        cutoff = time.time() - older_than_seconds
        with self._guard("write"):
            stale = [k for k in self._db.iterkeys() if getattr(decode(self._db[k]), "stored_at", 0.0) < cutoff]
        return self.forget(stale)

    def find(self, prefixes: Sequence[str] = (), contains: str | None = None) -> Iterator[tuple[str, Entry | None]]:
        """Entries (None: damaged) whose key starts with one of ``prefixes`` (any key if none) and whose
        stored JSON text contains ``contains`` (ignoring ASCII case), most recently stored first."""
        where, params = ["raw = 1"], []
        if prefixes:
            where.append("(" + " OR ".join("substr(key, 1, ?) = ?" for _ in prefixes) + ")")
            params += [x for prefix in prefixes for x in (len(prefix), prefix.lower())]
        if contains is not None:
            where.append(r"(value IS NULL OR value LIKE ? ESCAPE '\')")
            params.append("%" + contains.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%")
        query = f"SELECT key, value FROM Cache WHERE {' AND '.join(where)} ORDER BY store_time DESC"
        with self._guard("read"):
            for key, value in self._sql.execute(query, params):
                text = value if isinstance(value, str) else self._db.get(key)  # big values live in files
                if not isinstance(text, str) or (contains is not None and contains.lower() not in text.lower()):
                    continue
                yield key, decode(text)

    def forget(self, keys: Iterable[str]) -> int:
        """Delete the entries of ``keys`` (one transaction); how many there were."""
        with self._guard("write"), self._db.transact():
            gone = sum(bool(self._db.delete(key)) for key in keys)
        self._expected -= gone
        return gone

    def close(self) -> None:
        self._leases.close()
        with self._write_lock, self._read_lock:  # after a commit or look-up running in another thread
            self._writer.close()
            self._sql.close()
            self._db.close()
