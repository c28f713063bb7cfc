"""Row keys: each row's ids and input values checked, and its cache key (the run's fingerprint and the
row's input values, hashed; a media input's value by the sha256 of its bytes, ``rows.media``)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from enrichkit.errors import UserError
from enrichkit.rows.jsontext import canonical, canonical_all
from enrichkit.rows.media import MediaReader, keyed_media
from enrichkit.rows.seen_ids import SeenIds
from enrichkit.task.hints import did_you_mean
from enrichkit.task.task import Task


def fingerprint(parts: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(parts).encode()).hexdigest()


def row_key(run_fingerprint: str, inputs: Mapping[str, Any] | str) -> str:
    """The cache key of a row's ``inputs`` (or of their ``canonical`` text)."""
    text = inputs if isinstance(inputs, str) else canonical(inputs)
    return hashlib.sha256((run_fingerprint + text).encode()).hexdigest()


def row_keys(run_fingerprint: str, texts: Iterable[str]) -> list[str]:
    """``row_key`` of many rows' ``canonical`` texts."""
    sha256 = hashlib.sha256
    return [sha256((run_fingerprint + text).encode()).hexdigest() for text in texts]


def _row_inputs(
    rows: Sequence[Mapping[str, Any]], task: Task, numbers: Iterable[int]
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Row ids and the input values of every row; a missing field is an error. ``numbers``: the rows'
    numbers (from 0) in their input."""
    ids: list[Any] = []
    inputs: list[dict[str, Any]] = []
    id_field, fields = task.id_field, task.inputs
    for n, row in zip(numbers, rows, strict=True):
        if type(row) is not dict and not isinstance(row, Mapping):
            raise UserError(f"row {n + 1}: not an object but {type(row).__name__}")
        rid = n
        where = f"row {n + 1}"
        if id_field:
            if id_field not in row:
                raise UserError(f"{where}: id field {id_field!r} is missing{_has(row, id_field)}")
            rid = row[id_field]
            where += f" ({id_field} {rid!r})"
        try:
            inputs.append({f: row[f] for f in fields})
        except KeyError:
            missing = next(f for f in fields if f not in row)
            raise UserError(f"{where}: input field {missing!r} is missing{_has(row, missing)}") from None
        ids.append(rid)
    return ids, inputs


def _has(row: Mapping[str, Any], missing: str) -> str:
    """The did-you-mean for a ``missing`` field and the fields ``row`` has, for an error message."""
    return f"{did_you_mean(missing, row)}; the row has: {', '.join(map(str, row)) or 'no fields'}"


def check_rows(rows: Sequence[Mapping[str, Any]], task: Task, seen: SeenIds | None = None, offset: int = 0) -> None:
    """``key_rows``'s checks alone (rows numbered from ``offset``): a missing field or a repeated id is an error."""
    numbers = range(offset, offset + len(rows))
    ids, _ = _row_inputs(rows, task, numbers)
    if task.id_field:
        (SeenIds(task.id_field) if seen is None else seen).add(ids, numbers)


@dataclass
class Keyed:
    """The rows of a chunk (as given: the result's rows are new dicts), their ids, input values, and cache keys."""

    table: list[Mapping[str, Any]]
    ids: list[Any]
    inputs: list[dict[str, Any]]
    texts: list[str]  # the inputs' canonical JSON
    keys: list[str]
    broken: dict[str, str] = field(default_factory=dict)  # key -> why the row's media cannot be sent


def key_rows(
    rows: Iterable[Mapping[str, Any]],
    task: Task,
    fingerprint: str,
    seen: SeenIds | None = None,
    offset: int | Sequence[int] = 0,
    floatless: bool = False,
    media: MediaReader | None = None,
) -> Keyed:
    """Check the rows' input values and ids (none repeated, with the ids ``seen`` in earlier chunks), and
    key them under the run's ``fingerprint``. The rows are numbered from ``offset``, or as it lists them;
    ``floatless``: see ``jsontext.canonical_all``. A task's media inputs are read by ``media`` (default: from
    the working folder): their values in ``inputs`` become ``MediaRef``s, keyed by their content's hash."""
    table = rows if isinstance(rows, list) else list(rows)
    numbers = range(offset, offset + len(table)) if isinstance(offset, int) else offset
    ids, inputs = _row_inputs(table, task, numbers)
    if task.id_field:
        (SeenIds(task.id_field) if seen is None else seen).add(ids, numbers)
    if not task.media:
        texts = canonical_all(inputs, floatless)
        return Keyed(table, ids, inputs, texts, row_keys(fingerprint, texts))
    keyed, problems = keyed_media(inputs, task.media, media or MediaReader())
    texts = canonical_all(keyed, floatless)
    keys = row_keys(fingerprint, texts)
    return Keyed(table, ids, inputs, texts, keys, {keys[n]: reason for n, reason in problems.items()})
