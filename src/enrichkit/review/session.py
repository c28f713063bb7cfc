"""A review of one output: its rows (``Table``), the task's fields, and the reviewed values kept for them
(``ReviewStore``): what the page shows, and the edits it makes, checked against the task's schema."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enrichkit.cache.entry import Entry
from enrichkit.calls.prices import price_table
from enrichkit.engine.reviewed import REVIEWED_COLUMN, FieldCheck, Review, ReviewStore, as_text, task_id
from enrichkit.history.runs import RunHistory, RunRecord
from enrichkit.output.readback import textual
from enrichkit.review.entries import Entries, field_confidence, holds, key_prints
from enrichkit.review.table import Table, confidence_of, read_output
from enrichkit.task.task import Task

BANDS = ((0.0, 0.5), (0.5, 0.8), (0.8, 0.95), (0.95, 1.0001))
"""Confidence bands of the summary's accuracy of reviewed rows."""

REVIEWED = "reviewed"
"""A field's confidence where a person's correction stands instead of the model's value."""

FieldConfidence = float | str | None
"""A field's confidence as the page shows it: the model's probability for the value shown, ``REVIEWED``, or
None (none known: free text, a model without log-probabilities, no cache entry of the answer)."""


class Invalid(Exception):
    """A value that does not fit its field: the schema's message."""


@dataclass(frozen=True)
class Band:
    low: float
    high: float
    reviewed: int
    right: int  # reviewed rows accepted without a correction


@dataclass(frozen=True)
class Summary:
    rows: int
    reviewed: int
    corrected: int
    bands: list[Band]


class Session:
    """The review of ``output`` (rows answering ``task``, written by ``run`` if the history knows it), its
    reviewed values and cache entries in ``cache_dir``; ``models``: the models a row may be sent to be asked
    again on (``known_models``)."""

    def __init__(self, output: Path, task: Task, cache_dir: Path, run: RunRecord | None = None) -> None:
        self.output = output
        self.task = task
        self.fields = task.fields
        self.table = Table(read_output(output), task)
        self.store = ReviewStore(cache_dir)
        self.entries = Entries(cache_dir, task, key_prints(cache_dir, task, run), textual(output))
        self.check = FieldCheck(task)
        self.models = known_models(cache_dir)
        self._task = task_id(task)
        reviewed = {key for key, review in self.store.reviews(self._task).items() if review.values}
        self.table.mark_reviewed(n for n, key in enumerate(self.table.keys) if key in reviewed)

    def close(self) -> None:
        self.store.close()
        self.entries.close()

    def reviews(self, numbers: list[int]) -> dict[int, Review]:
        """The stored reviews of rows ``numbers``, by row number."""
        keys = {self.table.keys[n]: n for n in numbers}
        return {keys[k]: review for k, review in self.store.reviews(self._task, keys).items()}

    def values(self, n: int, review: Review | None) -> dict[str, Any]:
        """Row ``n``'s answer as it stands: the output's, the reviewed values on top."""
        row = self.table.rows[n]
        return {f: row.get(f) for f in self.fields} | (review.values if review else {})

    def confidences(
        self, reviews: Mapping[int, Review | None], entries: Mapping[int, Entry] | None = None
    ) -> dict[int, dict[str, FieldConfidence]]:
        """Each field's confidence on the rows of ``reviews`` (row number -> its review, if any), from their cache
        ``entries`` (None: looked up at once): the model's probability for the value shown; ``REVIEWED`` for a
        person's correction (stored, or marked ``_reviewed`` in the output by a run and no longer the model's
        value)."""
        if entries is None:
            rows = self.table.rows
            entries = self.entries.of({n: rows[n] for n in reviews})
        return {n: self._confidence(n, review, entries.get(n)) for n, review in reviews.items()}

    def wrote(self, n: int, entry: Entry | None) -> Entry | None:
        """``entry`` if it holds row ``n``'s answer as the output shows it (the fields a run marked
        ``_reviewed`` aside: a person's)."""
        if entry is None:
            return None
        row = self.table.rows[n]
        marked = set(as_text(row.get(REVIEWED_COLUMN)).split(","))
        shown = [f for f in self.fields if f not in marked]
        return entry if all(holds(entry, f, self.typed(f, row.get(f))) for f in shown) else None

    def _confidence(self, n: int, review: Review | None, entry: Entry | None) -> dict[str, FieldConfidence]:
        values = self.values(n, review)
        marked = set(as_text(self.table.rows[n].get(REVIEWED_COLUMN)).split(","))
        out: dict[str, FieldConfidence] = {}
        for name, value in values.items():
            value = self.typed(name, value)
            figure: FieldConfidence = field_confidence(entry, name, value)
            if review is not None and name in review.corrected:
                figure = REVIEWED
            elif figure is None and name in marked and (review is None or name not in review.values):
                figure = None if entry is not None and holds(entry, name, value) else REVIEWED
            out[name] = figure
        return out

    def typed(self, name: str, value: Any) -> Any:
        """An output's value of field ``name`` as its type (``as_field_type``)."""
        return as_field_type(self.check.properties.get(name), value)

    def parse(self, name: str, text: str) -> Any:
        """A value typed in the page, read as its field's type says (text as it is, else as JSON); checked."""
        schema = self.check.properties.get(name)
        if schema is None:
            raise Invalid(f"{name}: not a field of the task")
        value: Any = text
        if not _is_text(schema):
            try:
                value = json.loads(text)
            except ValueError:
                value = text  # the schema's message says what it wanted
        if (error := self.check.error(name, value)) is not None:
            raise Invalid(error)
        return value

    def correct(self, n: int, name: str, text: str, version: int) -> int:
        """Keep a person's value of field ``name`` of row ``n``; the row's new version (``Invalid``, ``Conflict``)."""
        value = self.parse(name, text)
        return self._put(n, {name: value}, version)

    def accept(self, n: int, version: int) -> int:
        """Keep row ``n``'s answer as it stands as reviewed; the row's new version."""
        reviews = self.reviews([n])
        values = {name: self.typed(name, value) for name, value in self.values(n, reviews.get(n)).items()}
        for name, value in values.items():
            if (error := self.check.error(name, value)) is not None:
                raise Invalid(f"no valid answer to accept ({error}): correct its fields")
        return self._put(n, values, version)

    def ask_again(self, n: int, version: int, model: str | None = None) -> int:
        """Send row ``n`` to be asked again by the next run (its reviewed values dropped), on ``model`` (None:
        the run's own; a model not in ``models`` is ``Invalid``); its new version."""
        if model is not None and model not in self.models:
            raise Invalid(
                f"unknown model {model!r}: ask again on a model prices.json prices or a run of this cache folder"
                " used (or price it: ENRICHKIT_PRICES)"
            )
        row = self.table.rows[n]
        inputs = {f: row.get(f) for f in self.task.inputs}
        return self.store.ask_again(self._task, self.table.keys[n], inputs, version=version, model=model)

    def _put(self, n: int, values: Mapping[str, Any], version: int) -> int:
        row = self.table.rows[n]
        originals = {f: self.typed(f, row.get(f)) for f in values}
        inputs = {f: row.get(f) for f in self.task.inputs}
        new = self.store.put(
            self._task, self.table.keys[n], inputs, values, originals, version=version, confidence=confidence_of(row)
        )
        self.table.mark_reviewed([n])
        return new

    def summary(self) -> Summary:
        reviews = [r for r in self.store.reviews(self._task).values() if r.values]
        bands = []
        for low, high in BANDS:
            inside = [r for r in reviews if r.confidence is not None and low <= r.confidence < high]
            bands.append(Band(low, min(high, 1.0), len(inside), sum(not r.corrected for r in inside)))
        return Summary(len(self.table.rows), len(reviews), sum(bool(r.corrected) for r in reviews), bands)


def known_models(cache_dir: Path) -> list[str]:
    """The models ``prices.json`` prices (and ``ENRICHKIT_PRICES``), and those the runs of ``cache_dir``'s
    history used (their main and fallback models), sorted."""
    models = set(price_table())
    for run in RunHistory(cache_dir).runs():
        models.add(run.model)
        if isinstance(fallbacks := run.options.get("fallback"), list):
            models.update(f for f in fallbacks if isinstance(f, str))
    return sorted(m for m in models if m)


def as_field_type(schema: Mapping[str, Any] | None, value: Any) -> Any:
    """An output's value as the type of its field's ``schema``: a CSV output holds a number, a boolean
    (``True``), a list or an object as text; an SQLite one a boolean as 0 or 1, a list or an object as text."""
    if schema is None or _is_text(schema):
        return value
    if type(value) is int and value in (0, 1) and _is_boolean(schema):
        return bool(value)
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value.lower() if value in ("True", "False") else value)
    except ValueError:
        return value


def _is_boolean(schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    return kind == "boolean" or (isinstance(kind, list) and "boolean" in kind and "integer" not in kind)


def _is_text(schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    if kind == "string" or (isinstance(kind, list) and "string" in kind):
        return True
    return kind is None and all(isinstance(v, str) for v in schema.get("enum", [1]))
