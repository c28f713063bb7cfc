"""``enrich`` and ``aenrich``: rows in, rows with new columns out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from google import genai

from enrichkit.cache import RowCache, default_dir, fingerprint, row_key
from enrichkit.engine import Engine, RetryPolicy, Work
from enrichkit.errors import UserError
from enrichkit.prompt import PROMPT_VERSION
from enrichkit.providers.base import Provider
from enrichkit.providers.gemini import DEFAULT_MODEL, GeminiProvider, make_client
from enrichkit.result import EnrichResult, Failure, Stats
from enrichkit.task import Task

MAX_BATCH_SIZE = 50


def run_fingerprint(task: Task, provider: Provider) -> str:
    """What every cache key of a run shares: task, prompt format, provider and model settings."""
    return fingerprint(
        {"task": task.fingerprint(), "prompt": PROMPT_VERSION, "provider": provider.name, **provider.settings()}
    )


def resolve_provider(client: genai.Client | None, model: str | None) -> Provider:
    """Gemini on the given client, or on one built from GEMINI_API_KEY / GOOGLE_API_KEY."""
    if client is not None:
        return GeminiProvider(client, model or DEFAULT_MODEL)
    return GeminiProvider(make_client(), model or DEFAULT_MODEL, owns_client=True)


def _fallback(primary: Provider, choice: str | Provider) -> Provider:
    if not isinstance(choice, str):
        return choice
    if isinstance(primary, GeminiProvider):
        return GeminiProvider(primary.client, choice, temperature=primary.temperature)
    raise UserError(f"fallback model {choice!r}: pass a provider object for a {primary.name} run")


def _row_inputs(rows: Sequence[Mapping[str, Any]], task: Task) -> tuple[list[Any], list[dict[str, Any]]]:
    """Row ids and the input values of every row; a missing field or a repeated id is an error."""
    ids: list[Any] = []
    inputs: list[dict[str, Any]] = []
    seen: dict[Any, int] = {}
    for n, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise UserError(f"row {n + 1}: not an object but {type(row).__name__}")
        rid = row.get(task.id_field, n) if task.id_field else n
        if task.id_field:
            if task.id_field not in row:
                raise UserError(f"row {n + 1}: id field {task.id_field!r} is missing")
            if rid in seen:
                raise UserError(f"rows {seen[rid] + 1} and {n + 1}: duplicate id {rid!r} in field {task.id_field!r}")
            seen[rid] = n
        missing = [f for f in task.inputs if f not in row]
        if missing:
            raise UserError(f"row {n + 1} (id {rid!r}): input field {missing[0]!r} is missing")
        ids.append(rid)
        inputs.append({f: row[f] for f in task.inputs})
    return ids, inputs


async def aenrich(
    rows: Iterable[Mapping[str, Any]],
    task: Task | str | Path,
    *,
    client: genai.Client | None = None,
    model: str | None = None,
    provider: Provider | None = None,
    fallback: Sequence[str | Provider] = (),
    batch_size: int = 20,
    concurrency: int | None = None,
    timeout: float | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    retry: RetryPolicy | None = None,
    on_progress: Callable[[int, Stats], None] | None = None,
) -> EnrichResult:
    """Enrich ``rows`` with the columns of ``task``; see ``enrich``."""
    started = time.perf_counter()
    task = task if isinstance(task, Task) else Task.from_file(task)
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise UserError(f"batch size must be between 1 and {MAX_BATCH_SIZE}, not {batch_size}")
    table = [dict(row) for row in rows]
    ids, inputs = _row_inputs(table, task)
    primary = provider or resolve_provider(client, model)
    tiers = [primary, *(_fallback(primary, choice) for choice in fallback)]
    batch_size = min(batch_size, primary.capabilities.max_batch_size)
    stats = Stats(rows=len(table))
    run_fp = run_fingerprint(task, primary)
    keys = [row_key(run_fp, values) for values in inputs]
    cache = RowCache(cache_dir if cache_dir is not None else default_dir()) if use_cache else None
    try:
        found = cache.get_many(set(keys)) if cache is not None else {}
        work: dict[str, Work] = {}
        for key, values in zip(keys, inputs, strict=True):
            if key in found:
                stats.cache_hits += 1
            elif key in work:
                work[key].rows += 1
                stats.duplicates += 1
            else:
                work[key] = Work(key, values)
        done = stats.cache_hits

        def settled(n: int) -> None:
            nonlocal done
            done += n
            if on_progress is not None:
                on_progress(done, stats)

        if on_progress is not None:
            on_progress(done, stats)
        engine = Engine(
            task,
            tiers,
            cache,
            stats,
            batch_size=batch_size,
            concurrency=concurrency or primary.capabilities.concurrency,
            retry=retry or RetryPolicy(),
            timeout=timeout,
            on_settled=settled,
        )
        try:
            await engine.run(list(work.values()))
        finally:
            for tier in tiers:
                await tier.aclose()
        answers = {**{k: e.values for k, e in found.items()}, **{k: e.values for k, e in engine.results.items()}}
    finally:
        if cache is not None:
            cache.close()
    failures = []
    for n, (row, key) in enumerate(zip(table, keys, strict=True)):
        if key in answers:
            row.update(answers[key])
        else:
            attempts = work[key].attempts if key in work else 0
            failures.append(Failure(ids[n], engine.failures.get(key, "not answered"), attempts, inputs[n]))
    stats.seconds = time.perf_counter() - started
    return EnrichResult(table, failures, stats)


def enrich(rows: Iterable[Mapping[str, Any]], task: Task | str | Path, **options: Any) -> EnrichResult:
    """Enrich ``rows`` (dicts) with the columns ``task`` describes.

    Cached rows cost nothing; the rest travel in packs of up to ``batch_size`` rows per call.
    ``client`` is a ready ``google.genai.Client``; without one, a client is built from
    GEMINI_API_KEY / GOOGLE_API_KEY. ``fallback`` lists models (or providers) that get the rows
    the main model could not answer. Returns the rows in input order with the new fields (absent
    for failed rows), the failures with their last reason, and the run's figures.
    """
    job = aenrich(rows, task, **options)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(job)
    with ThreadPoolExecutor(max_workers=1) as pool:  # called from inside an event loop (e.g. Jupyter)
        return pool.submit(asyncio.run, job).result()
