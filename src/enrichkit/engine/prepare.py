"""A chunk's rows keyed and looked up: the cache's hits, and the unique work left."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from enrichkit.cache.base import Cache
from enrichkit.cache.entry import Entry
from enrichkit.engine.prompt import PROMPT_VERSION
from enrichkit.providers.base import Provider
from enrichkit.result import Stats
from enrichkit.rows.keys import Keyed, fingerprint, key_rows
from enrichkit.rows.seen_ids import SeenIds
from enrichkit.rows.work import Work
from enrichkit.task.task import Task


def run_fingerprint(task: Task, provider: Provider, echo: bool = False) -> str:
    """What every cache key of a run shares: task, prompt format, provider and model settings."""
    prompt = {"version": PROMPT_VERSION, "echo": echo}
    return fingerprint({"task": task.fingerprint(), "prompt": prompt, "provider": provider.name, **provider.settings()})


@dataclass
class Prepared:
    """The rows of a chunk, their keys, what the cache already holds, and the unique work left."""

    table: list[Mapping[str, Any]]
    ids: list[Any]
    keys: list[str]
    found: dict[str, Entry]
    work: dict[str, Work]


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
    keyed = key_rows(rows, task, run_fingerprint(task, provider, echo), seen, offset)
    return plan(keyed, cache.get_many(set(keyed.keys)) if cache is not None else {}, stats)
