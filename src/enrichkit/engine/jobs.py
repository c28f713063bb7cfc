"""``enrichkit jobs``: the batch jobs a cache directory is waiting for (list, status, collect, cancel)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from enrichkit.cache.folder import RowCache
from enrichkit.engine.batch import ANSWERING, JobStore, Manifest, collect
from enrichkit.engine.codec import Packer
from enrichkit.errors import UserError
from enrichkit.providers import ProviderName, choose_provider
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


@asynccontextmanager
async def _backend(manifest: Manifest, base_url: str | None) -> AsyncIterator[BatchBackend]:
    """The batch API of the provider and model that hold ``manifest``'s job."""
    provider = choose_provider(cast(ProviderName, manifest.provider), model=manifest.model, base_url=base_url).provider
    try:
        backend = provider.batches()
        if backend is None:
            raise UserError(f"the {provider.name} provider has no batch API")
        yield backend
    finally:
        await provider.aclose()


async def _status(manifest: Manifest, base_url: str | None) -> JobStatus | None:
    async with _backend(manifest, base_url) as backend:
        return await backend.status(manifest.name) if manifest.name else None


def list_jobs(cache_dir: Path, base_url: str | None = None) -> list[JobLine]:
    """Every job the cache directory holds a manifest for, with its state as the provider reports it."""
    return [JobLine(m, asyncio.run(_status(m, base_url))) for m in JobStore(cache_dir).all()]


def job_status(cache_dir: Path, name: str, base_url: str | None = None) -> JobLine:
    manifest = JobStore(cache_dir).find(name)
    return JobLine(manifest, asyncio.run(_status(manifest, base_url)))


async def _collect(cache_dir: Path, manifest: Manifest, base_url: str | None, wait: bool, poll: float) -> Collected:
    cache = RowCache(cache_dir)
    try:
        async with _backend(manifest, base_url) as backend:
            assert manifest.name is not None
            status = await backend.status(manifest.name)
            while wait and not status.done:
                await asyncio.sleep(poll)
                status = await backend.status(manifest.name)
            if not status.done:
                return Collected(status, manifest.rows, 0)
            task = Task(manifest.task["instruction"], manifest.task["inputs"], manifest.task["output"])
            packer = Packer(task, Stats(), cache=cache, echo=manifest.echo)
            results = await backend.results(manifest.name) if status.state in ANSWERING else {}
        await collect(packer, manifest, status, results, {})
        JobStore(cache_dir).drop(manifest)
        return Collected(status, manifest.rows, len(packer.results))
    finally:
        cache.close()


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
        async with _backend(manifest, base_url) as backend:
            if manifest.name is not None:
                await backend.cancel(manifest.name)

    asyncio.run(cancel())
    store.drop(manifest)
    return manifest
