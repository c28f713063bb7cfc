"""``enrichkit cache salvage``: salvage every readable entry of a damaged cache into a new one.

The damaged database folder (``DIR/rows``) is renamed aside to ``DIR/rows.damaged-<time>`` and kept;
a new one is built from what can still be read of it, range by range of row ids (and row by row
where a range reads a damaged page); an overwritten magic string at the start is put back first.
The rest of the cache directory (batch jobs) is left as is.
"""

from __future__ import annotations

import contextlib
import itertools
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import diskcache

from enrichkit.cache.db import storage_cause
from enrichkit.cache.entry import Entry, decode
from enrichkit.cache.folder import RowCache
from enrichkit.errors import StorageError, UserError

_STEP = 1_000  # row ids read in one query

_PUT = 1_000  # entries stored in one transaction

_MAGIC = b"SQLite format 3\x00"


@dataclass(frozen=True)
class Salvaged:
    saved: int
    lost: int | None  # None: the damaged database does not say how many entries it held
    aside: Path


def salvage(directory: Path) -> Salvaged:
    """Move ``directory``'s database aside and copy every entry that can be read and decoded into a new one."""
    rows = directory / "rows"
    if not (rows / diskcache.core.DBNAME).is_file():
        raise UserError(f"{directory}: no cache here (no {rows / diskcache.core.DBNAME})")
    aside = _aside(rows)
    try:
        rows.rename(aside)
    except OSError as exc:
        raise StorageError(f"cache at {directory}: cannot move it aside ({storage_cause(exc)})") from exc
    _restore_magic(aside / diskcache.core.DBNAME)
    con = sqlite3.connect(aside / diskcache.core.DBNAME)
    con.execute("PRAGMA query_only = ON")
    con.execute("PRAGMA writable_schema = ON")  # read a file shorter than its header says (truncated)
    fresh = RowCache(directory)
    saved = undecodable = 0
    try:
        batch: dict[str, Entry] = {}
        for key, text in _texts(con, aside):
            if (entry := decode(text)) is None:
                undecodable += 1
                continue
            batch[key] = entry
            if len(batch) >= _PUT:
                saved += _store(fresh, batch)
        saved += _store(fresh, batch)
        held = _held(con)
    finally:
        fresh.close()
        con.close()
    return Salvaged(saved, None if held is None else max(held - saved, undecodable), aside)


def _store(cache: RowCache, batch: dict[str, Entry]) -> int:
    cache.put_many(batch)
    stored = len(batch)
    batch.clear()
    return stored


def _aside(rows: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside, n = rows.with_name(f"rows.damaged-{stamp}"), 1
    while aside.exists():
        n += 1
        aside = rows.with_name(f"rows.damaged-{stamp}-{n}")
    return aside


def _restore_magic(db: Path) -> None:
    """Put back SQLite's 16-byte magic string if it was overwritten (the rest of the header may be intact)."""
    try:
        with db.open("r+b") as file:
            if file.read(len(_MAGIC)) != _MAGIC:
                file.seek(0)
                file.write(_MAGIC)
    except OSError as exc:
        raise StorageError(f"{db}: cannot repair ({storage_cause(exc)})") from exc


def _held(con: sqlite3.Connection) -> int | None:
    """How many entries the database held, by its own count (None if unreadable)."""
    try:
        row = con.execute("SELECT value FROM Settings WHERE key = 'count'").fetchone()
    except sqlite3.DatabaseError:
        return None
    return row[0] if row and isinstance(row[0], int) else None


def _top(con: sqlite3.Connection) -> int | None:
    """The highest row id, from the table or else from its key index (None if neither can be read)."""
    for query in ("SELECT max(rowid) FROM Cache", "SELECT max(rowid) FROM Cache INDEXED BY Cache_key_raw"):
        with contextlib.suppress(sqlite3.DatabaseError):
            return int(con.execute(query).fetchone()[0] or 0)
    return None


def _texts(con: sqlite3.Connection, folder: Path) -> Iterator[tuple[str, str]]:
    """Key and stored text of every entry that can be read."""
    select = "SELECT key, raw, value, mode, filename FROM Cache WHERE rowid BETWEEN ? AND ?"
    top, held = _top(con), _held(con) or 0
    for start in itertools.count(1, _STEP):
        if top is not None and start > top:
            return
        try:
            found = con.execute(select, (start, start + _STEP - 1)).fetchall()
        except sqlite3.DatabaseError:  # a damaged page: row by row, keeping those that can be read
            found = []
            for rowid in range(start, start + _STEP):
                with contextlib.suppress(sqlite3.DatabaseError):
                    found += con.execute(select, (rowid, rowid)).fetchall()
        if top is None and start > held and not found:  # past the count and nothing more: the end
            return
        for key, raw, value, mode, filename in found:
            if not raw or not isinstance(key, str):
                continue
            if mode == diskcache.core.MODE_RAW and isinstance(value, str):
                yield key, value
            elif mode == diskcache.core.MODE_TEXT and isinstance(filename, str):
                with contextlib.suppress(OSError, UnicodeDecodeError):
                    yield key, (folder / filename).read_text(encoding="UTF-8")
