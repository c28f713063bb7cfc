"""``enrichkit jobs``: the batch jobs a cache directory is waiting for (list, status, collect, cancel).

A job's manifest names its provider, model and task; ``options`` give the rest as the run had them (the
endpoint, and the cache its answers go to: a run on a Redis cache collects into that cache).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from enrichkit.cache.folder import default_dir
from enrichkit.engine.batch import ANSWERING, JobStore, Manifest, collect
from enrichkit.engine.context import RunContext
from enrichkit.engine.settle import Settlement
from enrichkit.engine.waiting import looks
from enrichkit.errors import UserError
from enrichkit.options import RunOptions
from enrichkit.providers.base import BatchBackend, JobStatus
from enrichkit.result import Stats
from enrichkit.task.task import Task


@dataclass(frozen=True)
class JobLine:
    manifest: Manifest
    status: JobStatus | None  # None: submitted by a run that was killed before the job had a name


@dataclass(frozen=True)
class Collected:
    status: JobStatus
    rows: int
    valid: int


def _store(options: RunOptions) -> JobStore:
    return JobStore(options.cache_dir or default_dir())


@asynccontextmanager
async def _opened(manifest: Manifest, options: RunOptions) -> AsyncIterator[tuple[RunContext, BatchBackend]]:
    """The run that submitted ``manifest``'s job, as far as collecting it needs (its task, checks and cache),
    and the batch API of its provider and model."""
    doc = manifest.task
    task = Task(doc["instruction"], doc["inputs"], doc["output"], together=doc.get("together", ()))
    base_url = options.base_url or manifest.base_url  # the run's endpoint, unless another is given
    given = options.replace(provider=manifest.provider, model=manifest.model, echo=manifest.echo, base_url=base_url)
    context = RunContext.open(task, given)
    try:
        backend = context.provider.batches()
        if backend is None:
            raise UserError(f"the {context.provider.name} provider has no batch API")
        yield context, backend
    finally:
        await context.aclose()


async def _status(manifest: Manifest, options: RunOptions) -> JobStatus | None:
    async with _opened(manifest, options.replace(use_cache=False)) as (_, backend):
        return await backend.status(manifest.name) if manifest.name else None


def list_jobs(options: RunOptions) -> list[JobLine]:
    """Every job the cache directory holds a manifest for, with its state as the provider reports it."""
    return [JobLine(m, asyncio.run(_status(m, options))) for m in _store(options).all()]


def job_status(options: RunOptions, name: str) -> JobLine:
    manifest = _store(options).find(name)
    return JobLine(manifest, asyncio.run(_status(manifest, options)))


async def _collect(options: RunOptions, manifest: Manifest, wait: bool) -> Collected:
    async with _opened(manifest, options) as (context, backend):
        assert manifest.name is not None
        status = await backend.status(manifest.name)
        delays = looks(options.poll)
        while wait and not status.done:
            await asyncio.sleep(next(delays))
            status = await backend.status(manifest.name)
        if not status.done:
            return Collected(status, manifest.rows, 0)
        results = await backend.results(manifest.name) if status.state in ANSWERING else {}
        settlement = Settlement(Stats(), context.io, mark=tuple(manifest.flags))
        await collect(context.codec(), settlement, manifest, status, results, {})
        await settlement.flush()
    _store(options).drop(manifest)
    return Collected(status, manifest.rows, len(settlement.results))


def collect_job(options: RunOptions, name: str, wait: bool = False) -> Collected:
    """Check and cache the answers of a finished job (its other rows are asked again by the next run)."""
    manifest = _store(options).find(name)
    if manifest.cache is not None and options.cache is None:
        raise UserError(
            f"batch job {name} belongs to a run whose answers are kept in Redis ({manifest.cache}):"
            " give its URL with --cache, so that the answers go there"
        )
    return asyncio.run(_collect(options, manifest, wait))


def cancel_job(options: RunOptions, name: str) -> Manifest:
    """Cancel the job at the provider and forget it (its rows are submitted again by the next run)."""
    store = _store(options)
    manifest = store.find(name)

    async def cancel() -> None:
        async with _opened(manifest, options.replace(use_cache=False)) as (_, backend):
            if manifest.name is not None:
                await backend.cancel(manifest.name)

    asyncio.run(cancel())
    store.drop(manifest)
    return manifest
