"""``enrichkit jobs``: the batch jobs a cache directory is waiting for (list, status, collect, cancel)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from enrichkit.batch import JobStore, Manifest, collect
from enrichkit.cache import RowCache
from enrichkit.engine import Engine, RetryPolicy
from enrichkit.providers.base import JobStatus
from enrichkit.providers.gemini import GeminiProvider, make_client
from enrichkit.providers.gemini_batch import GeminiBatches
from enrichkit.result import Stats
from enrichkit.task import Task


@dataclass(frozen=True)
class JobLine:
    manifest: Manifest
    status: JobStatus | None  # None: submitted by a run that was killed before the job had a name


@dataclass(frozen=True)
class Collected:
    status: JobStatus
    rows: int
    valid: int


def _backend(manifest: Manifest, base_url: str | None) -> GeminiBatches:
    return GeminiBatches(GeminiProvider(make_client(base_url=base_url), manifest.model, owns_client=True))


async def _status(manifest: Manifest, base_url: str | None) -> JobStatus | None:
    backend = _backend(manifest, base_url)
    try:
        return await backend.status(manifest.name) if manifest.name else None
    finally:
        await backend.provider.aclose()


def list_jobs(cache_dir: Path, base_url: str | None = None) -> list[JobLine]:
    """Every job the cache directory holds a manifest for, with its state as the provider reports it."""
    return [JobLine(m, asyncio.run(_status(m, base_url))) for m in JobStore(cache_dir).all()]


def job_status(cache_dir: Path, name: str, base_url: str | None = None) -> JobLine:
    manifest = JobStore(cache_dir).find(name)
    return JobLine(manifest, asyncio.run(_status(manifest, base_url)))


async def _collect(cache_dir: Path, manifest: Manifest, base_url: str | None, wait: bool, poll: float) -> Collected:
    backend = _backend(manifest, base_url)
    cache = RowCache(cache_dir)
    try:
        assert manifest.name is not None
        status = await backend.status(manifest.name)
        while wait and not status.done:
            await asyncio.sleep(poll)
            status = await backend.status(manifest.name)
        if not status.done:
            return Collected(status, manifest.rows, 0)
        task = Task(manifest.task["instruction"], manifest.task["inputs"], manifest.task["output"])
        engine = Engine(
            task,
            [backend.provider],
            cache,
            Stats(),
            batch_size=1,
            concurrency=1,
            retry=RetryPolicy(),
            echo=manifest.echo,
        )
        results = await backend.results(manifest.name) if status.state == "succeeded" else {}
        collect(engine, manifest, status, results, {})
        JobStore(cache_dir).drop(manifest)
        return Collected(status, manifest.rows, len(engine.results))
    finally:
        cache.close()
        await backend.provider.aclose()


def collect_job(
    cache_dir: Path, name: str, base_url: str | None = None, wait: bool = False, poll: float = 30
) -> Collected:
    """Check and cache the answers of a finished job (its other rows are asked again by the next run)."""
    return asyncio.run(_collect(cache_dir, JobStore(cache_dir).find(name), base_url, wait, poll))


def cancel_job(cache_dir: Path, name: str, base_url: str | None = None) -> Manifest:
    """Cancel the job at the provider and forget it (its rows are submitted again by the next run)."""
    store = JobStore(cache_dir)
    manifest = store.find(name)

    async def cancel() -> None:
        backend = _backend(manifest, base_url)
        try:
            if manifest.name is not None:
                await backend.cancel(manifest.name)
        finally:
            await backend.provider.aclose()

    asyncio.run(cancel())
    store.drop(manifest)
    return manifest
