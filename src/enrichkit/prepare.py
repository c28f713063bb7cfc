"""Rows in: their ids and input values checked, their cache keys, the cache's hits, the unique work left."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from enrichkit.cache import Cache, Entry, fingerprint, row_keys
from enrichkit.errors import UserError
from enrichkit.hints import did_you_mean
from enrichkit.jsontext import canonical_all
from enrichkit.packer import Work
from enrichkit.prompt import PROMPT_VERSION
from enrichkit.providers.base import Provider
from enrichkit.result import Stats
from enrichkit.seen_ids import SeenIds
from enrichkit.task import Task


def run_fingerprint(task: Task, provider: Provider, echo: bool = False) -> str:
    """What every cache key of a run shares: task, prompt format, provider and model settings."""
    prompt = {"version": PROMPT_VERSION, "echo": echo}
    return fingerprint({"task": task.fingerprint(), "prompt": prompt, "provider": provider.name, **provider.settings()})


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
        if id_field:
            if id_field not in row:
                raise UserError(f"row {n + 1}: id field {id_field!r} is missing")
            rid = row[id_field]
        try:
            inputs.append({f: row[f] for f in fields})
        except KeyError:
            missing = next(f for f in fields if f not in row)
            hint = did_you_mean(missing, row)
            columns = ", ".join(map(str, row))
            raise UserError(
                f"row {n + 1} (id {rid!r}): input field {missing!r} is missing{hint}; the row has: {columns}"
            ) from None
        ids.append(rid)
    return ids, inputs


@dataclass
class Keyed:
    """The rows of a chunk (as given: the result's rows are new dicts), their ids, input values, and cache keys."""

    table: list[Mapping[str, Any]]
    ids: list[Any]
    inputs: list[dict[str, Any]]
    texts: list[str]  # the inputs' canonical JSON
    keys: list[str]


@dataclass
class Prepared:
    """The rows of a chunk, their keys, what the cache already holds, and the unique work left."""

    table: list[Mapping[str, Any]]
    ids: list[Any]
    keys: list[str]
    found: dict[str, Entry]
    work: dict[str, Work]


def key_rows(
    rows: Iterable[Mapping[str, Any]],
    task: Task,
    provider: Provider,
    echo: bool,
    seen: SeenIds | None = None,
    offset: int | Sequence[int] = 0,
    floatless: bool = False,
) -> Keyed:
    """Check the rows' input values and ids (none repeated, with the ids ``seen`` in earlier chunks), and
    key them. The rows are numbered from ``offset``, or as it lists them; ``floatless``: see
    ``jsontext.canonical_all``."""
    table = rows if isinstance(rows, list) else list(rows)
    numbers = range(offset, offset + len(table)) if isinstance(offset, int) else offset
    ids, inputs = _row_inputs(table, task, numbers)
    if task.id_field:
        (SeenIds(task.id_field) if seen is None else seen).add(ids, numbers)
    texts = canonical_all(inputs, floatless)
    return Keyed(table, ids, inputs, texts, row_keys(run_fingerprint(task, provider, echo), texts))


def plan(keyed: Keyed, found: dict[str, Entry], stats: Stats) -> Prepared:
    """The unique work left once the cache ``found`` some rows; hits and duplicates counted into ``stats``."""
    stats.rows += len(keyed.table)
    work: dict[str, Work] = {}
    for key, values, text in zip(keyed.keys, keyed.inputs, keyed.texts, strict=True):
        if key in found:
            stats.cache_hits += 1
        elif key in work:
            work[key].rows += 1
            stats.duplicates += 1
        else:
            work[key] = Work(key, values, text=text)
    return Prepared(keyed.table, keyed.ids, keyed.keys, found, work)


def prepare(
    rows: Iterable[Mapping[str, Any]],
    task: Task,
    provider: Provider,
    cache: Cache | None,
    echo: bool,
    stats: Stats,
    seen: SeenIds | None = None,
    offset: int = 0,
) -> Prepared:
    """Key the rows, look them up in the cache and count hits and duplicates into ``stats``."""
    keyed = key_rows(rows, task, provider, echo, seen, offset)
    return plan(keyed, cache.get_many(set(keyed.keys)) if cache is not None else {}, stats)
