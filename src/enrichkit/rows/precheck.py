"""An input file checked whole before the run pays for its first row: JSON or CSV syntax, every row's id
(present, hashable, never repeated) and input fields.

A run streams its rows a chunk at a time, so without this a mistake at the end of a big file would be
found after the rows before it were paid for. A JSONL file is checked at C speed: each line of a block
read by orjson, the rows' fields and ids taken by ``operator.itemgetter``, the ids' hashes kept in an
array and compared at the end. Anything the quick pass cannot vouch for (a BOM, a value only ``json``
reads, an id neither text nor integer, a repeated hash) sends the whole check the careful way: the rows read as the run
reads them and checked as ``keys.key_rows`` checks them, which names the problem in the run's own words.
"""

from __future__ import annotations

import itertools
from array import array
from collections import deque
from collections.abc import Iterable, Iterator
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson

from enrichkit.rows.jsontext import is_exact, reads_exactly
from enrichkit.rows.keys import check_rows
from enrichkit.rows.seen_ids import SeenIds
from enrichkit.task.task import Task

BLOCK_BYTES = 1 << 20  # read and checked at a time

CHUNK_ROWS = 20_000  # rows checked at a time the careful way


def check_input(source: Path, rows: Iterable[dict[str, Any]], task: Task, limit: int | None = None) -> int:
    """Check the first ``limit`` rows (all: None) of the file ``source`` whose rows ``rows`` reads (a fresh
    reader of it): raise the ``UserError`` the run would raise on its first mistake; the number of rows."""
    suffix = source.suffix.lower()
    if suffix in (".jsonl", ".ndjson") and (counted := quick_jsonl(source, task, limit)) is not None:
        return counted
    return careful(rows, task, limit)


def careful(rows: Iterable[dict[str, Any]], task: Task, limit: int | None = None) -> int:
    """Check ``rows`` as the run does, a chunk at a time; the number of rows."""
    seen = SeenIds(task.id_field) if task.id_field else None
    it: Iterator[dict[str, Any]] = iter(rows if limit is None else itertools.islice(rows, limit))
    done = 0
    while chunk := list(itertools.islice(it, CHUNK_ROWS)):
        check_rows(chunk, task, seen, done)
        done += len(chunk)
    return done


def quick_jsonl(source: Path, task: Task, limit: int | None = None) -> int | None:
    """The rows of a JSONL file whose every line is a JSON object with the task's id and input fields and
    whose ids are all different; None where the quick pass cannot tell (the careful way then decides)."""
    fields = [task.id_field, *task.inputs] if task.id_field else list(task.inputs)
    take = itemgetter(*fields) if fields else None
    ids = itemgetter(task.id_field) if task.id_field else None
    hashes = array("q")
    rows = 0
    try:
        with source.open("rb") as stream:
            while (limit is None or rows < limit) and (block := stream.read(BLOCK_BYTES)):
                if not block.endswith(b"\n"):
                    block += stream.readline()
                lines = block.split(b"\n")
                if not lines[-1]:
                    lines.pop()
                found = _objects(lines, block)
                if found is None:
                    return None
                if limit is not None:
                    found = found[: limit - rows]
                if take is not None:
                    deque(map(take, found), maxlen=0)  # a missing field: KeyError
                if ids is not None:
                    hashes.extend(map(hash, _plain_ids(list(map(ids, found)))))
                rows += len(found)
    except (KeyError, TypeError, OSError):  # a missing field, an id of another kind, a file that cannot be read
        return None
    if len(set(hashes)) != len(hashes):
        return None
    return rows


def _objects(lines: list[bytes], block: bytes) -> list[dict[str, Any]] | None:
    """The objects on ``lines`` (of ``block``; blank ones skipped), as ``json`` reads them; None unless every
    other line is one object that orjson reads exactly."""
    try:
        found = list(map(orjson.loads, lines))
    except orjson.JSONDecodeError:
        lines = [line for line in lines if line.strip()]
        try:
            found = list(map(orjson.loads, lines))
        except orjson.JSONDecodeError:
            return None
    if found and set(map(type, found)) != {dict}:
        return None
    if not reads_exactly(block) and not all(map(is_exact, found)):
        return None
    return found


def _plain_ids(ids: list[Any]) -> list[Any]:
    """``ids`` if they are all strings or integers (which Python compares as the run's ``SeenIds`` does);
    else ``TypeError``: the careful way compares them."""
    if ids and not set(map(type, ids)) <= {str, int}:
        raise TypeError("ids of another kind")
    return ids
