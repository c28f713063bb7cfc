"""Leases of rows in flight, for the processes that share one cache: how long a lease lasts, and the leases
of a cache folder (the Redis cache keeps its own, in Redis).

A folder's leases live in a small SQLite database of their own beside the rows (``leases.db``): the runs
that have the folder open (``holders``, each seen again every third of the lease time) and the rows each
holds in flight (``leases``). A run alone on its folder takes no lease: it writes nothing per pack and
asks one cheap question (is anyone else here?). Once a second run opens the folder, both lease the rows
of each pack before sending it and leave the rows the other holds to it, so a row is paid twice only
if both had it in flight before the second run's first pack. A run that dies stops renewing: its rows
are free after the lease time.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

from enrichkit.cache.db import wal_mode
from enrichkit.errors import UserError

LEASE_SECONDS = 20.0  # a worker that died holds its rows this long (a live one renews its leases)

LEASE_VARIABLE = "ENRICHKIT_LEASE_SECONDS"  # a cluster's own lease time (e.g. shorter on preemptible nodes)

FILE = "leases.db"

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS holders (token TEXT PRIMARY KEY, seen REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS leases (key TEXT PRIMARY KEY, token TEXT NOT NULL, expires REAL NOT NULL)",
)

_QUERY_KEYS = 500


def lease_time() -> float:
    """``ENRICHKIT_LEASE_SECONDS`` from the environment, else ``LEASE_SECONDS``."""
    given = os.environ.get(LEASE_VARIABLE, "").strip()
    if not given:
        return LEASE_SECONDS
    try:
        seconds = float(given)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < math.inf:
        raise UserError(f"{LEASE_VARIABLE} must be a positive number of seconds, not {given!r}")
    return seconds


class FolderLeases:
    """The leases of the runs sharing one cache folder. Opened by a run's first question (``shared``);
    a thread renews this holder and its leases until ``close``. SQLite errors pass to the caller."""

    def __init__(self, folder: Path, *, lease_seconds: float | None = None) -> None:
        self.path = folder / FILE
        self.lease_seconds = lease_time() if lease_seconds is None else lease_seconds
        self._token = uuid.uuid4().hex
        self._sql: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one statement at a time: the renewer runs in a thread of its own
        self._closed = threading.Event()
        self._holding = False  # whether this holder may hold leases now (written any since the last end)

    def _open(self) -> sqlite3.Connection:
        if self._sql is None:
            sql = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
            wal_mode(sql)
            sql.execute("PRAGMA synchronous = NORMAL")
            for statement in _SCHEMA:
                sql.execute(statement)
            now = time.time()
            sql.execute("DELETE FROM holders WHERE seen < ?", (now - 10 * self.lease_seconds,))
            sql.execute("DELETE FROM leases WHERE expires < ?", (now,))
            sql.execute("INSERT OR REPLACE INTO holders VALUES (?, ?)", (self._token, now))
            self.path.chmod(0o600)
            self._sql = sql
            threading.Thread(target=self._renew, name="enrichkit-folder-leases", daemon=True).start()
        return self._sql

    def shared(self) -> bool:
        """Whether another live run has the folder open (this run counts itself in from its first ask)."""
        with self._lock:
            sql = self._open()
            alive = time.time() - self.lease_seconds
            (others,) = sql.execute(
                "SELECT count(*) FROM holders WHERE token != ? AND seen >= ?", (self._token, alive)
            ).fetchone()
            return bool(others)

    def lease(self, keys: Sequence[str]) -> list[str]:
        """Take (or renew) the leases of the ``keys`` nobody else holds, in one transaction; the keys another
        live run holds."""
        held: list[str] = []
        with self._lock:
            sql = self._open()
            now = time.time()
            sql.execute("BEGIN IMMEDIATE")
            try:
                for start in range(0, len(keys), _QUERY_KEYS):
                    part = keys[start : start + _QUERY_KEYS]
                    marks = ",".join("?" * len(part))
                    held += [
                        key
                        for (key,) in sql.execute(
                            f"SELECT key FROM leases WHERE key IN ({marks}) AND token != ? AND expires >= ?",
                            [*part, self._token, now],
                        )
                    ]
                taken = set(held)
                sql.executemany(
                    "INSERT OR REPLACE INTO leases VALUES (?, ?, ?)",
                    [(key, self._token, now + self.lease_seconds) for key in keys if key not in taken],
                )
                sql.execute("COMMIT")
            except BaseException:
                if sql.in_transaction:
                    sql.execute("ROLLBACK")
                raise
            self._holding = True
        return held

    def end(self, keys: Iterable[str]) -> None:
        """End this run's leases of ``keys`` (stored, or given up on); nothing to do if it took none."""
        if not self._holding:
            return
        with self._lock:
            assert self._sql is not None
            self._sql.executemany(
                "DELETE FROM leases WHERE key = ? AND token = ?", [(key, self._token) for key in keys]
            )

    def _renew(self) -> None:
        """Every third of the lease time: this holder is still here, and its leases go on."""
        while not self._closed.wait(self.lease_seconds / 3):
            with self._lock:
                if self._sql is None:
                    return
                try:
                    now = time.time()
                    self._sql.execute("UPDATE holders SET seen = ? WHERE token = ?", (now, self._token))
                    self._sql.execute(
                        "UPDATE leases SET expires = ? WHERE token = ?", (now + self.lease_seconds, self._token)
                    )
                except sqlite3.Error:
                    continue  # a busy or full disk: the next turn tries again, and a lease ends at worst

    def close(self) -> None:
        """Leave the folder: this run's leases end and it no longer counts as a holder."""
        self._closed.set()
        with self._lock:
            if self._sql is None:
                return
            try:
                self._sql.execute("DELETE FROM leases WHERE token = ?", (self._token,))
                self._sql.execute("DELETE FROM holders WHERE token = ?", (self._token,))
            except sqlite3.Error:
                pass  # it expires by itself
            finally:
                self._sql.close()
                self._sql = None
