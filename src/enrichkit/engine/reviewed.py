"""Reviewed values: a person's corrections and accepted answers, kept per row and field in the cache folder,
and served by every later run instead of a model's answer.

``reviewed.db`` in the cache folder holds them, apart from the cached answers. A value is kept under the
task (its fingerprint: instruction, inputs, output schema; not the provider or model, so a correction
outlives a change of model) and the row (``review_key``: its input values hashed as text, so the same row
read back from a CSV output, where numbers are text, has the same key).

A run serves them so (``Reviewing``): a row whose every field is reviewed is settled from them without a
call (a hit); a row with some fields reviewed takes its cached or model answer for the others, the reviewed
values on top. Each value is checked against its field's schema again before it is served; one that does
not fit (a hand-edited store) is left out. A row a person sent to be asked again is asked again by the
next run, its cached answer passed over (the new answer replaces it), until a run answers it: on the run's
own model, or on the model the person chose (``engine.reasked``).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from enrichkit.cache.db import wal_mode
from enrichkit.cache.entry import Entry
from enrichkit.cache.folder import default_dir
from enrichkit.errors import StorageError
from enrichkit.options import RunOptions
from enrichkit.rows.jsontext import csv_cell
from enrichkit.rows.keys import fingerprint
from enrichkit.task.schema import Validator, first_error, make_validator
from enrichkit.task.task import Task

REVIEWED_DB = "reviewed.db"

REVIEWED_COLUMN = "_reviewed"
"""The output column naming a row's reviewed fields (comma-separated; empty: none)."""

REVIEWED_MODEL = "reviewed"
"""The model of an answer made of reviewed values alone."""

_QUERY_KEYS = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reviewed (
    task TEXT NOT NULL, key TEXT NOT NULL, field TEXT NOT NULL,
    value TEXT NOT NULL, original TEXT, corrected INTEGER NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (task, key, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reviewed_rows (
    task TEXT NOT NULL, key TEXT NOT NULL, inputs TEXT NOT NULL, confidence REAL,
    version INTEGER NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (task, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reask (
    task TEXT NOT NULL, key TEXT NOT NULL, at REAL NOT NULL, model TEXT,
    PRIMARY KEY (task, key)
) WITHOUT ROWID;
"""


def task_id(task: Task) -> str:
    """The task's part of a reviewed value's key: what changes its answers, not the model that gives them."""
    return fingerprint({"reviewed": task.fingerprint()})


def as_text(value: Any) -> str:
    """A value as a CSV output writes it (None empty, lists and objects as JSON)."""
    return str(csv_cell(value))


def review_key(inputs: Mapping[str, Any]) -> str:
    """A row's key in the store: its input values, as text, hashed."""
    text = orjson.dumps({k: as_text(v) for k, v in inputs.items()}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(text).hexdigest()


class FieldCheck:
    """One output field's values checked against its schema (the message the run's validation gives)."""

    def __init__(self, task: Task) -> None:
        self.properties: dict[str, Any] = task.schema["properties"]
        self._validators: dict[str, Validator] = {}

    def error(self, name: str, value: Any) -> str | None:
        """Why ``value`` does not fit field ``name`` (None: it fits)."""
        if name not in self.properties:
            return f"{name}: not a field of the task"
        if name not in self._validators:
            self._validators[name] = make_validator({"type": "object", "properties": {name: self.properties[name]}})
        return first_error(self._validators[name], {name: value})


class Conflict(Exception):
    """The row was reviewed meanwhile (another tab): its version is not the one the edit started from."""

    def __init__(self, version: int) -> None:
        super().__init__(f"the row was changed meanwhile (now version {version})")
        self.version = version


@dataclass
class Review:
    """A row's review as stored: its values by field (``corrected``: the fields a person changed)."""

    key: str
    inputs: dict[str, Any]
    values: dict[str, Any] = field(default_factory=dict)
    originals: dict[str, Any] = field(default_factory=dict)
    corrected: set[str] = field(default_factory=set)
    confidence: float | None = None
    version: int = 0
    again: bool = False  # sent to be asked again, not answered since
    model: str | None = None  # the model it is to be asked again on (None: the run's own)


class ReviewStore:
    """``reviewed.db`` in a cache folder (created on first write). Safe across threads and processes."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / REVIEWED_DB
        self._lock = threading.Lock()
        with self._guard("open"):
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
            wal_mode(self._db)
            self._db.executescript(_SCHEMA)

    @classmethod
    def existing(cls, directory: Path) -> ReviewStore | None:
        """The store in ``directory``, or None when there is none (nothing was reviewed there)."""
        return cls(directory) if (Path(directory) / REVIEWED_DB).is_file() else None

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StorageError(f"reviewed values at {self.path}: cannot {doing} ({exc})") from exc
        except OSError as exc:
            raise StorageError(f"reviewed values at {self.path}: cannot {doing} ({exc.strerror})") from exc

    def has(self, task: str) -> bool:
        """Whether the task has reviewed values, or rows to ask again."""
        query = "SELECT 1 FROM reviewed WHERE task = ? UNION ALL SELECT 1 FROM reask WHERE task = ? LIMIT 1"
        with self._lock, self._guard("read"):
            return self._db.execute(query, (task, task)).fetchone() is not None

    def marked(self, task: str, keys: Iterable[str]) -> dict[str, str | None]:
        """Those of the rows ``keys`` sent to be asked again, with the model chosen for each (None: the run's)."""
        with self._lock, self._guard("read"):
            return self._marked(task, sorted(set(keys)))

    def _marked(self, task: str, keys: list[str]) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for start in range(0, len(keys), _QUERY_KEYS):
            some = keys[start : start + _QUERY_KEYS]
            query = f"SELECT key, model FROM reask WHERE task = ? AND key IN ({','.join('?' * len(some))})"
            found.update(self._db.execute(query, [task, *some]))
        return found

    def answered(self, task: str, keys: Iterable[str]) -> None:
        """The rows ``keys``, sent to be asked again, were answered: no more asking."""
        with self._lock, self._guard("write"):
            self._db.executemany("DELETE FROM reask WHERE task = ? AND key = ?", [(task, k) for k in keys])

    def values(self, task: str, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The reviewed values of the rows ``keys``, by key and field."""
        wanted = sorted(set(keys))
        found: dict[str, dict[str, Any]] = {}
        with self._lock, self._guard("read"):
            for start in range(0, len(wanted), _QUERY_KEYS):
                some = wanted[start : start + _QUERY_KEYS]
                query = (
                    f"SELECT key, field, value FROM reviewed WHERE task = ? AND key IN ({','.join('?' * len(some))})"
                )
                for key, name, value in self._db.execute(query, [task, *some]):
                    found.setdefault(key, {})[name] = json.loads(value)
        return found

    def reviews(self, task: str, keys: Iterable[str] | None = None) -> dict[str, Review]:
        """The stored reviews of the task's rows ``keys`` (None: all of them)."""
        with self._lock, self._guard("read"):
            if keys is None:
                rows = self._db.execute(
                    "SELECT key, inputs, confidence, version FROM reviewed_rows WHERE task = ? ORDER BY at", (task,)
                ).fetchall()
            else:
                wanted, rows = sorted(set(keys)), []
                for start in range(0, len(wanted), _QUERY_KEYS):
                    some = wanted[start : start + _QUERY_KEYS]
                    rows += self._db.execute(
                        "SELECT key, inputs, confidence, version FROM reviewed_rows"
                        f" WHERE task = ? AND key IN ({','.join('?' * len(some))})",
                        [task, *some],
                    ).fetchall()
            reviews = {k: Review(k, json.loads(i), confidence=c, version=v) for k, i, c, v in rows}
            for key, model in self._marked(task, list(reviews)).items():
                reviews[key].again, reviews[key].model = True, model
            for start in range(0, len(reviews), _QUERY_KEYS):
                some = list(reviews)[start : start + _QUERY_KEYS]
                for key, name, value, original, corrected in self._db.execute(
                    "SELECT key, field, value, original, corrected FROM reviewed"
                    f" WHERE task = ? AND key IN ({','.join('?' * len(some))})",
                    [task, *some],
                ):
                    review = reviews[key]
                    review.values[name] = json.loads(value)
                    review.originals[name] = None if original is None else json.loads(original)
                    if corrected:
                        review.corrected.add(name)
        return reviews

    def put(
        self,
        task: str,
        key: str,
        inputs: Mapping[str, Any],
        values: Mapping[str, Any],
        originals: Mapping[str, Any],
        *,
        version: int,
        confidence: float | None = None,
    ) -> int:
        """Keep ``values`` as the row's reviewed values (a field whose value differs from its ``originals``
        counts as corrected), if the row is still at ``version`` (``Conflict`` if another edit came first);
        the row's new version."""
        now = time.time()
        with self._write(task, key, version) as current:
            self._db.execute(
                "INSERT INTO reviewed_rows VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(task, key) DO UPDATE SET"
                " version = excluded.version, at = excluded.at",
                (task, key, json.dumps(dict(inputs), ensure_ascii=False), confidence, current + 1, now),
            )
            for name, value in values.items():
                original = originals.get(name)
                self._db.execute(
                    "INSERT OR REPLACE INTO reviewed VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        task,
                        key,
                        name,
                        json.dumps(value, ensure_ascii=False),
                        json.dumps(original, ensure_ascii=False),
                        int(value != original),
                        now,
                    ),
                )
            self._db.execute("DELETE FROM reask WHERE task = ? AND key = ?", (task, key))
        return current + 1

    def ask_again(
        self, task: str, key: str, inputs: Mapping[str, Any], *, version: int, model: str | None = None
    ) -> int:
        """Send the row to be asked again by the next run (its reviewed values dropped), on ``model`` (None: the
        run's own), if it is still at ``version`` (``Conflict`` if not); the row's new version."""
        now = time.time()
        with self._write(task, key, version) as current:
            self._db.execute(
                "INSERT INTO reviewed_rows VALUES (?, ?, ?, NULL, ?, ?) ON CONFLICT(task, key) DO UPDATE SET"
                " version = excluded.version, at = excluded.at",
                (task, key, json.dumps(dict(inputs), ensure_ascii=False), current + 1, now),
            )
            self._db.execute("DELETE FROM reviewed WHERE task = ? AND key = ?", (task, key))
            self._db.execute("INSERT OR REPLACE INTO reask VALUES (?, ?, ?, ?)", (task, key, now, model))
        return current + 1

    @contextmanager
    def _write(self, task: str, key: str, version: int) -> Iterator[int]:
        """A transaction on the row ``key`` if it is at ``version`` (``Conflict`` if not): yields the version."""
        with self._lock, self._guard("write"):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT version FROM reviewed_rows WHERE task = ? AND key = ?", (task, key)
                ).fetchone()
                current = 0 if row is None else int(row[0])
                if current != version:
                    raise Conflict(current)
                yield current
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()


def store_dir(options: RunOptions) -> Path | None:
    """The folder whose reviewed values a run serves (None: a run without the folder cache)."""
    if not options.use_cache or options.cache is not None:
        return None
    return Path(options.cache_dir or default_dir())


@dataclass
class Kept:
    """A chunk's reviewed values by cache key, the rows it asks again (cache key: review key), and the model
    chosen for those to be asked on another model than the run's (cache key: model)."""

    values: dict[str, dict[str, Any]]
    again: dict[str, str]
    models: dict[str, str] = field(default_factory=dict)


class Reviewing:
    """A run's reviewed values: looked up per chunk, laid over its answers (``serving`` opens one)."""

    def __init__(self, store: ReviewStore, task: Task) -> None:
        self.store = store
        self._id = task_id(task)
        self._check = FieldCheck(task)
        self._fields = task.fields

    def kept(
        self, inputs: Sequence[Mapping[str, Any]], keys: Sequence[str], found: dict[str, Entry], groups: str
    ) -> Kept:
        """The reviewed values of a chunk's rows (their ``inputs`` and cache ``keys``), by cache key; a row
        whose every field is reviewed is added to ``found`` (the cache's hits) as an answer of its own (to
        every field group: ``groups``), and a row sent to be asked again is taken out of it."""
        by_review = [review_key(row) for row in inputs]
        stored = self.store.values(self._id, by_review)
        marked = self.store.marked(self._id, by_review)
        kept = Kept({}, {})
        for key, rkey in zip(keys, by_review, strict=True):
            if rkey in marked:
                found.pop(key, None)
                kept.again[key] = rkey
                if (model := marked[rkey]) is not None:
                    kept.models[key] = model
            if (values := stored.get(rkey)) is None:
                continue
            values = {n: values[n] for n in self._fields if n in values and self._check.error(n, values[n]) is None}
            if not values:
                continue
            kept.values[key] = values
            if (key not in found or found[key].groups != groups) and len(values) == len(self._fields):
                found[key] = Entry(values, REVIEWED_MODEL, groups=groups)
        return kept

    def answered(self, kept: Kept, results: Mapping[str, Entry]) -> None:
        """The rows sent to be asked again that this run answered (``results``): asked no more."""
        if done := [rkey for key, rkey in kept.again.items() if key in results]:
            self.store.answered(self._id, done)

    def close(self) -> None:
        self.store.close()


def serving(task: Task, options: RunOptions) -> Reviewing | None:
    """The reviewed values a run of ``task`` serves; None when it has none (no store, or none for this task)."""
    folder = store_dir(options)
    store = None if folder is None else ReviewStore.existing(folder)
    if store is None:
        return None
    if not store.has(task_id(task)):
        store.close()
        return None
    return Reviewing(store, task)


def overlaid(row: dict[str, Any], kept: Mapping[str, Any] | None) -> dict[str, Any]:
    """An answered row with its reviewed values on top, and the ``_reviewed`` column naming them."""
    if not kept:
        row[REVIEWED_COLUMN] = None
        return row
    row.update(kept)
    row[REVIEWED_COLUMN] = ",".join(kept)
    return row
