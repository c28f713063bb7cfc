"""The cache entries of the rows on a page: each field's confidence (the probability the model gave its value,
``Entry.confidence``), looked up by the rows' cache keys when the page is rendered, a page at a time.

A row's cache key (``rows.keys``) hashes the fingerprint every key of its run shares (the run history keeps
it: ``RunRecord.key_fingerprint``) with the row's input values. The fingerprints tried, in order: the run's
that wrote the output, then those of the other recorded runs of the same instruction and inputs (newest
first, a few). An output that keeps values as text (CSV, SQLite) is keyed twice: its input values as they
are, and read as JSON where that gives another type (a number, a list ... of a JSONL input).

An entry is taken as the row's only if its row confidence (its lowest closed field's) is the output's
``_confidence``; a field's figure is kept only where the entry holds the value the output shows. Anything
else (no such entry, a cache pruned or in Redis, a media input keyed by its bytes) shows nothing: never a
figure that is not the answer's own.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from enrichkit.cache.entry import Entry
from enrichkit.cache.folder import RowCache
from enrichkit.engine.confidence import row_confidence
from enrichkit.engine.reviewed import as_text
from enrichkit.errors import StorageError
from enrichkit.history.runs import RunHistory, RunRecord
from enrichkit.review.table import confidence_of
from enrichkit.rows.files import Row
from enrichkit.rows.jsontext import canonical
from enrichkit.rows.keys import row_key
from enrichkit.task.task import Task

MOST_PRINTS = 8
"""Key fingerprints tried at most (the reviewed run's and the latest other runs')."""


def key_prints(cache_dir: Path, task: Task, run: RunRecord | None) -> list[str]:
    """The key fingerprints the output's rows may be cached under: ``run``'s (the run that wrote it), then
    those of the recorded runs of the same instruction and inputs, newest first."""
    prints = [run.key_fingerprint] if run is not None and run.key_fingerprint else []
    for record in RunHistory(cache_dir).runs():
        doc = record.task
        same = doc.get("instruction") == task.instruction and list(doc.get("inputs", ())) == list(task.inputs)
        if same and record.key_fingerprint and record.key_fingerprint not in prints:
            prints.append(record.key_fingerprint)
    return prints[:MOST_PRINTS]


def typed(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Input values read back as text, each read as JSON where that gives another type than text."""
    out: dict[str, Any] = {}
    for name, value in inputs.items():
        if isinstance(value, str):
            try:
                read = orjson.loads(value)
            except orjson.JSONDecodeError:
                read = value
            value = value if isinstance(read, str) else read
        out[name] = value
    return out


class Entries:
    """The cache entries of an output's rows, in the folder ``cache_dir`` (none if it holds no cache)."""

    def __init__(self, cache_dir: Path, task: Task, prints: Sequence[str], textual: bool) -> None:
        self.task = task
        self.prints = list(prints)
        self.textual = textual
        self._cache: RowCache | None = None
        if self.prints and (cache_dir / "rows").is_dir():
            with contextlib.suppress(StorageError):  # a damaged cache: the page shows no figures, not an error
                self._cache = RowCache(cache_dir)

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()

    def of(self, rows: Mapping[int, Row]) -> dict[int, Entry]:
        """The entries that wrote ``rows`` (by row number), in one look-up."""
        if self._cache is None or not rows:
            return {}
        keys: dict[int, list[str]] = {}
        for n, row in rows.items():
            inputs = {f: row.get(f) for f in self.task.inputs}
            try:
                forms = [canonical(inputs)]
                if self.textual and (other := canonical(typed(inputs))) != forms[0]:
                    forms.append(other)
            except (TypeError, ValueError):  # a value no input file holds (a Parquet date): not a row a run keyed
                continue
            keys[n] = [row_key(mark, form) for mark in self.prints for form in forms]
        try:
            found = self._cache.get_many({key for tried in keys.values() for key in tried})
        except StorageError:
            return {}
        out: dict[int, Entry] = {}
        for n, tried in keys.items():
            wanted = confidence_of(rows[n])
            for key in tried:
                entry = found.get(key)
                if entry is not None and _same(row_confidence(entry.confidence), wanted):
                    out[n] = entry
                    break
        return out


def field_confidence(entry: Entry | None, name: str, shown: Any) -> float | None:
    """The probability ``entry`` gives field ``name``'s value, if that is the value ``shown`` (else None)."""
    if entry is None or name not in entry.confidence or name not in entry.values:
        return None
    return entry.confidence[name] if holds(entry, name, shown) else None


def holds(entry: Entry, name: str, shown: Any) -> bool:
    """Whether ``entry``'s value of field ``name`` is the value ``shown`` (as its field's type, or as text)."""
    value = entry.values.get(name)
    return bool(value == shown) or as_text(value) == as_text(shown)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
