"""Batch mode: the same packs as a live run, sent as ONE provider batch job (half price), resumable.

One job per rung, unless the provider's limits (``BatchBackend.split``: OpenAI 50,000 requests or
200 MB a file) cut it into several, each with its own manifest.

A job's manifest (job name, pack key → row cache keys, pack ids and echoes, and the task) is written
to ``<cache>/jobs/`` BEFORE the job is created and again once it has a name, so a crash, Ctrl-C or
reboot loses nothing: the next run of the same job finds the manifest and re-attaches instead of
submitting again (a manifest without a name is looked up by its display name). Results are checked
item by item exactly like live answers and valid rows are cached at once.

The salvage ladder (``engine.ladder``, the same as live mode's), one batch job a rung: packs on the
main model, then each failed row on its own, then on its own on each fallback model. With
``realtime_fallback`` the rows a job failed go to a live run instead (smaller packs, single rows,
fallbacks, at the live price).
A failed, cancelled or expired job's rows are failures of this run and are submitted again next run;
the answers a cancelled or expired job did give are checked and cached like any other.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from enrichkit.engine.codec import PackCodec
from enrichkit.engine.ladder import Ladder, Rung
from enrichkit.engine.live import LiveRun
from enrichkit.engine.settle import Settlement
from enrichkit.errors import FatalProviderError, RateLimited, RequestRejected, TransientError, UserError
from enrichkit.options import POLL_SECONDS
from enrichkit.providers.base import BatchBackend, JobStatus, Reply, Request
from enrichkit.rows.keys import fingerprint
from enrichkit.rows.work import Work

MAX_POLL_SECONDS = 300.0

ANSWERING = frozenset({"succeeded", "expired", "cancelled"})  # states whose job may hold answers


@dataclass
class Pack:
    keys: list[str]
    ids: list[str] | None  # None: one row asked on its own (object answer)
    echoes: list[str] | None = None


@dataclass
class Manifest:
    """What must survive the process to collect a job: saved before the job exists."""

    display_name: str
    run: str
    model: str
    rung: Rung
    task: dict[str, Any]
    echo: bool
    packs: dict[str, Pack]
    provider: str = "gemini"
    cache: str | None = None
    """The Redis cache (its URL, the password masked) the run keeps its answers in; None: the cache folder."""
    name: str | None = None
    created: float = field(default_factory=time.time)

    @property
    def rows(self) -> int:
        return sum(len(p.keys) for p in self.packs.values())

    def row_keys(self) -> Iterator[str]:
        for pack in self.packs.values():
            yield from pack.keys

    def dumps(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def loads(cls, text: str) -> Manifest:
        doc = json.loads(text)
        doc["packs"] = {k: Pack(**v) for k, v in doc["packs"].items()}
        doc["rung"] = Rung(**doc["rung"])
        return cls(**doc)


class JobStore:
    """Manifests as one JSON file each in ``<cache>/jobs/`` (owner-only), written atomically."""

    def __init__(self, cache_dir: Path) -> None:
        self.folder = cache_dir / "jobs"

    def save(self, manifest: Manifest) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.folder / f"{manifest.display_name}.json"
        temp = path.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(manifest.dumps())
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)

    def drop(self, manifest: Manifest) -> None:
        (self.folder / f"{manifest.display_name}.json").unlink(missing_ok=True)

    def all(self) -> list[Manifest]:
        if not self.folder.is_dir():
            return []
        return sorted(
            (Manifest.loads(p.read_text("utf-8")) for p in self.folder.glob("*.json")), key=lambda m: m.created
        )

    def find(self, name: str) -> Manifest:
        """The manifest of job ``name`` (``batches/...`` or its display name)."""
        for manifest in self.all():
            if name in (manifest.name, manifest.display_name):
                return manifest
        raise UserError(f"no batch job {name!r} in {self.folder} (see `enrichkit jobs list`)")


@dataclass
class BatchRun:
    """Drive the batch jobs of one run: submit or re-attach, wait, collect, salvage."""

    codec: PackCodec
    settlement: Settlement
    backends: Sequence[BatchBackend]  # one per model: the main model, then the fallbacks
    ladder: Ladder
    store: JobStore
    run: str
    provider: str
    cache: str | None = None  # the Redis cache of the run (masked), for the manifests
    wait: bool = True
    realtime: LiveRun | None = None  # the rows a job failed go to this live run instead of a further job
    poll: float = POLL_SECONDS
    jobs: list[str] = field(default_factory=list)
    pending: int = 0

    async def __call__(self, work: Sequence[Work]) -> None:
        by_key = {w.key: w for w in work}
        active = await self._attach(by_key)
        attached = {key for m in active for key in m.row_keys()}
        fresh = [w for w in work if w.key not in attached]
        if fresh:
            active.extend(await self._submit(self.ladder.first, fresh))
        delay = self.poll
        while active:
            for manifest in list(active):
                status = await self._look(manifest)
                if status is not None and status.done:
                    active.remove(manifest)
                    failed = await self._collect(manifest, status, by_key)
                    if status.state == "succeeded":
                        active.extend(await self._salvage(manifest, failed))
                    else:
                        for w, reason in failed.items():  # submitted again by the next run
                            await self.settlement.fail(w, reason)
            if not active or not self.wait:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, MAX_POLL_SECONDS)
        self.pending = sum(by_key[k].rows for m in active for k in m.row_keys() if k in by_key)

    # -- jobs ----------------------------------------------------------------------------------

    async def _look(self, manifest: Manifest) -> JobStatus | None:
        """The job's state; None when the provider could not say just now (asked again next round)."""
        assert manifest.name is not None
        try:
            return await self.backends[manifest.rung.fallback].status(manifest.name)
        except (TransientError, RateLimited):
            return None

    async def _attach(self, by_key: dict[str, Work]) -> list[Manifest]:
        """This run's pending jobs from an earlier (killed or --no-wait) run that hold some of its rows."""
        found = []
        for manifest in self.store.all():
            if manifest.run != self.run or not any(k in by_key for k in manifest.row_keys()):
                continue
            if manifest.name is None:  # killed between saving the manifest and saving the job's name
                manifest.name = await self.backends[manifest.rung.fallback].find(manifest.display_name)
                if manifest.name is None:
                    self.store.drop(manifest)
                    continue
                self.store.save(manifest)
            self.jobs.append(manifest.name)
            found.append(manifest)
        return found

    async def _submit(self, rung: Rung, items: Sequence[Work]) -> list[Manifest]:
        """The requests of ``items`` at ``rung``, as one job (several where the provider's limits say so)."""
        codec = self.codec
        backend = self.backends[rung.fallback]
        packs: dict[str, Pack] = {}
        requests: list[tuple[str, Request]] = []
        for group in codec.packs(items, rung.size):
            if len(group) > 1:
                ids, request = codec.pack_request(group)
                pack = Pack([w.key for w in group], ids, codec.echoes(group))
            else:
                request, pack = codec.single_request(group[0]), Pack([group[0].key], None)
            key = fingerprint({"keys": pack.keys, "rung": [rung.size, rung.fallback]})[:20]
            packs[key] = pack
            requests.append((key, request))
            for w in group:
                w.attempts += 1
        return [await self._create(rung, {k: packs[k] for k, _ in part}, part) for part in backend.split(requests)]

    async def _create(self, rung: Rung, packs: dict[str, Pack], requests: Sequence[tuple[str, Request]]) -> Manifest:
        """Save the manifest, create the job, save its name."""
        backend = self.backends[rung.fallback]
        manifest = Manifest(
            display_name=f"enrichkit-{self.run[:8]}-{uuid.uuid4().hex[:12]}",
            run=self.run,
            model=backend.model,
            rung=rung,
            task=self.codec.task.fingerprint(),
            echo=self.codec.echo is not None,
            packs=packs,
            provider=self.provider,
            cache=self.cache,
        )
        self.store.save(manifest)
        try:
            manifest.name = await backend.submit(requests, manifest.display_name)
        except (FatalProviderError, RequestRejected):  # refused for sure: no job exists (after a timeout one might)
            self.store.drop(manifest)
            raise
        self.store.save(manifest)
        self.jobs.append(manifest.name)
        return manifest

    async def _collect(self, manifest: Manifest, status: JobStatus, by_key: dict[str, Work]) -> dict[Work, str]:
        """Check and cache a finished job's answers; the rows of this run that got none."""
        failed = await collect(
            self.codec, self.settlement, manifest, status, await self._results(manifest, status), by_key
        )
        self.store.drop(manifest)
        return failed

    async def _results(self, manifest: Manifest, status: JobStatus) -> dict[str, Reply | str]:
        if status.state not in ANSWERING:
            return {}
        assert manifest.name is not None
        return await self.backends[manifest.rung.fallback].results(manifest.name)

    async def _salvage(self, manifest: Manifest, failed: dict[Work, str]) -> list[Manifest]:
        """The next rung for the rows a job failed: jobs one rung down the ladder, or the live run."""
        if not failed:
            return []
        if self.realtime is not None:
            await self.realtime.run(list(failed), Rung(max(1, self.ladder.pack_size // 2)))
            return []
        nxt = self.ladder.after(manifest.rung)
        if nxt is None:
            for w, reason in failed.items():
                await self.settlement.fail(w, reason)
            return []
        return await self._submit(nxt, list(failed))


async def collect(
    codec: PackCodec,
    settlement: Settlement,
    manifest: Manifest,
    status: JobStatus,
    results: dict[str, Reply | str],
    by_key: dict[str, Work],
) -> dict[Work, str]:
    """Check every answer of a finished job like a live one (also those a cancelled or expired job
    gave); valid rows are cached (also rows this run does not hold: they were paid for). Results under
    keys the job did not hold are ignored and counted as unknown ids. Returns this run's rows that got
    no valid answer, and why."""
    failed: dict[Work, str] = {}
    stats = settlement.stats
    stats.unknown_ids += sum(1 for key in results if key not in manifest.packs)
    for key, pack in manifest.packs.items():
        items = [by_key.get(k) or _stand_in(k, pack, n, codec) for n, k in enumerate(pack.keys)]
        result = results.get(key)
        if status.state != "succeeded" and not isinstance(result, Reply):
            reasons = {
                w.key: f"batch job {manifest.name} {status.state}: re-run to submit its rows again" for w in items
            }
        elif isinstance(result, Reply):
            stats.count_call(manifest.model, "batch")
            stats.add_usage(manifest.model, result.usage)
            if pack.ids is None:
                checked = codec.read_single(result, items[0])
            else:
                checked = codec.read_pack(result, pack.ids, items, pack.echoes)
            answer, stored = settlement.accept(checked, result.usage, manifest.model, len(items))
            if stored is not None:
                await stored
            reasons = {w.key: why for w, why in answer.items()}
        else:
            stats.count_call(manifest.model, "batch")
            reasons = {w.key: result or "no result for this request in the batch job" for w in items}
        for w in items:
            if w.key in reasons and w.key in by_key:
                failed[w] = reasons[w.key]
    return failed


def _stand_in(key: str, pack: Pack, n: int, codec: PackCodec) -> Work:
    """A row of the job that this run does not hold: enough to check and cache its answer."""
    inputs = {codec.echo: pack.echoes[n]} if codec.echo and pack.echoes else {}
    return Work(key, inputs, rows=0)  # not counted as a row of this run
