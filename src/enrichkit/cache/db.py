"""SQLite under the row cache: a connection of our own to diskcache's database (its table written in
bulk, as ``diskcache.Cache.set`` writes it), and SQLite's errors in a few words."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from enrichkit.errors import os_cause
from enrichkit.rows.jsontext import compact

WAL_PAGES = 10_000  # pages written to the WAL before a checkpoint (see ``RowCache._open``)

_COLUMNS = "key, raw, store_time, expire_time, access_time, access_count, tag, size, mode, filename, value"

_ON_CONFLICT = (  # as ``diskcache.Cache.set`` replaces an entry it keeps in the table
    " ON CONFLICT(key, raw) DO UPDATE SET store_time = excluded.store_time, expire_time = NULL,"
    " access_time = excluded.access_time, tag = NULL, size = 0, mode = 1, value = excluded.value"
    " WHERE filename IS NULL"
)

UPSERT = f"INSERT INTO Cache({_COLUMNS}) VALUES (?, 1, ?, NULL, ?, 0, NULL, 0, 1, NULL, ?){_ON_CONFLICT}"

"""A row of diskcache's own table, as ``diskcache.Cache.set`` writes a text kept in the table."""

UPSERT_JSON = (
    f"INSERT INTO Cache({_COLUMNS}) SELECT json_extract(value, '$[0]'), 1, :now, NULL, :now, 0, NULL, 0, 1, NULL,"
    f" json_extract(value, '$[1]') FROM json_each(:rows) WHERE true{_ON_CONFLICT}"
)

"""``UPSERT`` of many rows given as one JSON array of [key, text] pairs: one statement, which SQLite runs
without Python (so a commit in a worker thread does not wait for the GIL row by row)."""

JSON_EACH = sqlite3.sqlite_version_info >= (3, 38)  # JSON functions built in by default

COUNT = "SELECT value FROM Settings WHERE key = 'count'"


def storage_cause(exc: sqlite3.Error | OSError, folder: Path | None = None) -> str:
    """A disk error in a few words; SQLite's own message is made plainer by a look at ``folder``'s disk."""
    if isinstance(exc, OSError):
        return os_cause(exc)
    name = getattr(exc, "sqlite_errorname", "")
    if folder is None or not name.startswith(("SQLITE_IOERR", "SQLITE_FULL", "SQLITE_READONLY", "SQLITE_CANTOPEN")):
        return str(exc)
    try:
        disk = os.statvfs(folder)
    except OSError:
        return str(exc)
    if disk.f_flag & os.ST_RDONLY:
        return f"read-only file system: {exc}"
    if not os.access(folder, os.W_OK):
        return f"permission denied: {exc}"
    if disk.f_bavail * disk.f_frsize < 1 << 20:
        return f"no space left on device: {exc}"
    return str(exc)


def is_corrupt(exc: sqlite3.Error) -> bool:
    """Whether SQLite says the database file itself is damaged (not merely unwritable)."""
    return getattr(exc, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB")


def owner_only(folder: Path) -> None:
    """Paid answers are the user's data: the folder and its files are readable by the owner only
    (SQLite gives its -wal/-shm files the database file's permissions)."""
    folder.chmod(0o700)
    for path in folder.iterdir():
        path.chmod(0o700 if path.is_dir() else 0o600)


def wal_mode(connection: sqlite3.Connection, *, patience: float = 30.0) -> None:
    """Put ``connection``'s database in WAL mode. SQLite answers "database is locked" at once, without
    waiting for its busy timeout, when another process turns the same new file to WAL or opens it then;
    so that is asked again for up to ``patience`` seconds."""
    deadline = time.monotonic() + patience
    pause = 0.005
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorname", "") != "SQLITE_BUSY" or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


def connect(path: Path, cache_pages: int) -> sqlite3.Connection:
    """A connection of our own to diskcache's database, for bulk reads and writes, set up as diskcache
    sets up its own: commits synchronous=NORMAL in WAL mode (a crash loses nothing), the same checkpoints;
    a page cache of ``cache_pages`` (diskcache's own: 8,192)."""
    connection = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute(f"PRAGMA cache_size = {cache_pages}")
    connection.execute(f"PRAGMA wal_autocheckpoint = {WAL_PAGES}")
    return connection


def upsert(
    connection: sqlite3.Connection, now: float, rows: list[tuple[str, str]], *, bulk: bool = JSON_EACH
) -> int | None:
    """Insert or replace ``rows`` (key, text) stored at ``now`` in one transaction: how many entries that
    added; None, and nothing written, if one would replace an entry that diskcache keeps in a file.
    (``bulk``: in one statement, ``UPSERT_JSON``; else ``UPSERT`` row by row.)"""
    connection.execute("BEGIN IMMEDIATE")
    try:
        (before,) = connection.execute(COUNT).fetchone()
        if bulk:
            cursor = connection.execute(UPSERT_JSON, {"now": now, "rows": compact([list(row) for row in rows])})
        else:
            cursor = connection.executemany(UPSERT, [(key, now, now, text) for key, text in rows])
        if cursor.rowcount != len(rows):
            connection.execute("ROLLBACK")
            return None
        (after,) = connection.execute(COUNT).fetchone()
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    return int(after - before)
