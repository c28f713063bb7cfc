"""The row ids a run has seen, to name a repeated one: in a dict while they are few, then in an in-memory
SQLite table (a fraction of the dict's memory, so a run of millions of rows stays small)."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from typing import Any

from enrichkit.errors import UserError

SPILL = 100_000  # ids held in a dict before they move to SQLite

_INT64 = 2**63

Key = str | int | float | bytes


def _key(rid: Any, n: int, field: str) -> Key:
    """The id as SQLite holds it: equal ids (1, 1.0 and True among them, as in Python) get one key; an id
    SQLite cannot hold as it is gets a blob (never equal to a string) of its type and value."""
    kind = type(rid)
    if kind is str:
        return rid  # type: ignore[no-any-return]
    if kind is float and math.isfinite(rid) and rid.is_integer():
        rid, kind = int(rid), int
    if kind is int or kind is bool:
        return int(rid) if -_INT64 <= rid < _INT64 else f"int {rid}".encode()
    if kind is float and math.isfinite(rid):
        return rid  # type: ignore[no-any-return]
    try:
        hash(rid)
    except TypeError:
        raise UserError(f"row {n + 1}: id {rid!r} in field {field!r} is not a string or a number") from None
    return f"{kind.__qualname__} {rid!r}".encode()


class SeenIds:
    """Every id of a run so far; ``add`` raises a ``UserError`` naming both rows of a repeated id."""

    def __init__(self, field: str, spill: int = SPILL) -> None:
        self.field = field
        self._spill = spill
        self._first: dict[Key, int] = {}  # id key -> its row's number (from 0)
        self._db: sqlite3.Connection | None = None

    def add(self, ids: Sequence[Any], numbers: Sequence[int]) -> None:
        """Take the ids of rows ``numbers`` (in their order); a repeated id is an error."""
        keys = [_key(rid, n, self.field) for rid, n in zip(ids, numbers, strict=True)]
        if self._db is None:
            first = self._first
            for rid, key, n in zip(ids, keys, numbers, strict=True):
                if (earlier := first.setdefault(key, n)) != n:
                    raise self._repeated(earlier, n, rid)
            if len(first) > self._spill:
                self._db = sqlite3.connect(":memory:")
                self._db.execute("CREATE TABLE ids (id PRIMARY KEY NOT NULL, row INTEGER) WITHOUT ROWID")
                self._insert(list(first.items()))
                self._first = {}
            return
        try:
            self._insert(list(zip(keys, numbers, strict=True)))
        except sqlite3.IntegrityError:  # rolled back: find the first repeat, in row order
            chunk: dict[Key, int] = {}
            for rid, key, n in zip(ids, keys, numbers, strict=True):
                if (before := chunk.get(key, self._row_of(key))) is not None:
                    raise self._repeated(before, n, rid) from None
                chunk[key] = n
            raise

    def _insert(self, pairs: list[tuple[Key, int]]) -> None:
        assert self._db is not None
        with self._db:
            self._db.executemany("INSERT INTO ids VALUES (?, ?)", pairs)

    def _row_of(self, key: Key) -> int | None:
        assert self._db is not None
        found = self._db.execute("SELECT row FROM ids WHERE id = ?", (key,)).fetchone()
        return None if found is None else int(found[0])

    def _repeated(self, earlier: int, n: int, rid: Any) -> UserError:
        return UserError(f"rows {earlier + 1} and {n + 1}: duplicate id {rid!r} in field {self.field!r}")
