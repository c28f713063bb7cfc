"""An output file loaded once into an in-memory SQLite table: the server pages and filters it there, so the
browser never holds more than a page, whatever the file's size.

Rows are ranked once, as they are listed: failed rows first, then by ``_confidence`` (lowest first; rows
without one after), then flagged rows (``_flags`` not empty), then in file order. ``_confidence`` and
``_flags`` are optional columns: an output without them is ranked by failure and file order alone.
"""

from __future__ import annotations

import importlib
import json
import math
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enrichkit.engine.reviewed import as_text, review_key
from enrichkit.errors import UserError
from enrichkit.output.formats import SQLITE
from enrichkit.rows.files import Row, file_format, read_rows
from enrichkit.task.task import Task

CONFIDENCE, FLAGS = "_confidence", "_flags"

PAGE_ROWS = 50


@dataclass(frozen=True)
class Query:
    """What the page asks for: filters (all optional), and which page."""

    failed: bool = False
    flagged: bool = False
    below: float | None = None  # confidence below this
    field: str = ""  # with ``value``: rows whose field has this value (as text)
    value: str = ""
    search: str = ""  # words anywhere in the row, ignoring case
    unreviewed: bool = False
    changed: bool = False  # changed since the previous run
    page: int = 0
    size: int = PAGE_ROWS


def read_output(path: Path) -> list[Row]:
    """The rows of an output file of any format enrichkit writes; a missing or damaged one is a ``UserError``."""
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    suffix = file_format(path)
    try:
        if suffix == ".parquet":
            parquet = importlib.import_module("pyarrow.parquet")
            rows: list[Row] = parquet.read_table(path).to_pylist()
            return rows
        if suffix in SQLITE:
            return _sqlite_rows(path)
        return read_rows(path)
    except UserError:
        raise
    except ImportError:
        raise UserError(f"{path}: reading .parquet needs pyarrow: pip install 'enrichkit[parquet]'") from None
    except (OSError, ValueError, sqlite3.Error) as exc:  # a damaged Parquet or SQLite file: its reader's error
        raise UserError(
            f"{path}: cannot read ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        ) from None


def _sqlite_rows(path: Path) -> list[Row]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        db.row_factory = sqlite3.Row
        table = path.stem or "rows"
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        if table not in names:
            raise UserError(f"{path}: no table {table!r} (the one enrichkit writes)")
        quoted = '"' + table.replace('"', '""') + '"'
        return [dict(row) for row in db.execute(f"SELECT * FROM {quoted} ORDER BY rowid")]
    finally:
        db.close()


def is_failed(row: Mapping[str, Any], fields: Iterable[str]) -> bool:
    """Whether a row got no answer: every output field empty."""
    return all(row.get(f) in (None, "") for f in fields)


def confidence_of(row: Mapping[str, Any]) -> float | None:
    value = row.get(CONFIDENCE)
    if value in (None, ""):
        return None
    try:
        number = float(value)  # a CSV output holds it as text
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


class Table:
    """The rows of an output, with each row's review key, ranked; ``page(query)`` pages and filters them."""

    def __init__(self, rows: list[Row], task: Task) -> None:
        self.rows = rows
        self.task = task
        self.columns = list(dict.fromkeys(k for row in rows[:1000] for k in row))
        self.keys = [review_key({f: row.get(f) for f in task.inputs}) for row in rows]
        self.has_confidence = any(CONFIDENCE in row for row in rows[:1])
        self._lock = threading.Lock()
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._db.execute(
            "CREATE TABLE rows (n INTEGER PRIMARY KEY, rank INTEGER NOT NULL, failed INTEGER NOT NULL,"
            " confidence REAL, flagged INTEGER NOT NULL, reviewed INTEGER NOT NULL DEFAULT 0,"
            " changed INTEGER NOT NULL DEFAULT 0, text TEXT NOT NULL)"
        )
        fields = task.fields
        facts = [
            (n, is_failed(row, fields), confidence_of(row), bool(row.get(FLAGS)), _text(row))
            for n, row in enumerate(rows)
        ]
        order = sorted(facts, key=lambda f: (not f[1], math.inf if f[2] is None else f[2], not f[3], f[0]))
        ranks = [0] * len(rows)
        for rank, fact in enumerate(order):
            ranks[fact[0]] = rank
        self._db.executemany(
            "INSERT INTO rows (n, rank, failed, confidence, flagged, text) VALUES (?, ?, ?, ?, ?, ?)",
            ((n, ranks[n], failed, conf, flagged, text) for n, failed, conf, flagged, text in facts),
        )
        self._db.execute("CREATE INDEX rows_rank ON rows (rank)")

    def mark_reviewed(self, numbers: Iterable[int]) -> None:
        with self._lock:
            self._db.executemany("UPDATE rows SET reviewed = 1 WHERE n = ?", ((n,) for n in numbers))

    def mark_changed(self, numbers: Iterable[int]) -> None:
        """Rows whose answer changed since the previous run."""
        with self._lock:
            self._db.executemany("UPDATE rows SET changed = 1 WHERE n = ?", ((n,) for n in numbers))

    def page(self, query: Query) -> tuple[int, list[int]]:
        """How many rows match ``query``, and the numbers (in the file, from 0) of the rows on its page."""
        where, params = self._where(query)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        with self._lock:
            (total,) = self._db.execute(f"SELECT count(*) FROM rows{clause}", params).fetchone()
            numbers = [
                n
                for (n,) in self._db.execute(
                    f"SELECT n FROM rows{clause} ORDER BY rank LIMIT ? OFFSET ?",
                    [*params, query.size, query.page * query.size],
                )
            ]
        return int(total), numbers

    def _where(self, query: Query) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if query.failed:
            where.append("failed")
        if query.flagged:
            where.append("flagged")
        if query.unreviewed:
            where.append("NOT reviewed")
        if query.changed:
            where.append("changed")
        if query.below is not None:
            where.append("confidence < ?")
            params.append(query.below)
        if query.search:
            for word in query.search.lower().split():
                where.append("instr(text, ?) > 0")
                params.append(word)
        if query.field and query.field in self.columns:
            wanted = query.value.lower()
            matching = [n for n, row in enumerate(self.rows) if as_text(row.get(query.field)).lower() == wanted]
            where.append("n IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(matching))
        return where, params


def _text(row: Mapping[str, Any]) -> str:
    """A row's values as one lower-case text, for the search box."""
    try:
        return "\x1f".join(row.values()).lower()  # a CSV output's: text alone
    except TypeError:
        return "\x1f".join(map(as_text, row.values())).lower()
