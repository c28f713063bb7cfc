"""Batch mode: the same packs as a live run, sent as provider batch jobs (half price), resumable.

A run goes in rounds. Each round is one job per rung (unless the provider's limits, ``BatchBackend.split``:
OpenAI 50,000 requests or 200 MB a file, cut it into several), each with its own manifest.

A job's manifest (job name, pack key → row cache keys, pack ids and echoes, the task, the endpoint) is
written to ``<cache>/jobs/`` BEFORE the job is created and again once it has a name, so a crash, Ctrl-C
or reboot loses nothing: the next run of the same job finds the manifest and re-attaches instead of
submitting again (a manifest without a name is looked up by its display name). Results are checked
item by item exactly like live answers and valid rows are cached at once, also those a failed,
cancelled or expired job did give.

The rows a round left go to the next round: a request that failed for a passing reason (a 5xx, a
deadline, a rate limit, an expired or cancelled job) at the same rung, up to ``RETRIES`` times; the
others one rung down the salvage ladder, still packed (``Ladder.in_batch``: on a fallback model two
failed packs a request), or on the last rung again
(up to ``RETRIES`` times too, as live mode repairs a single row: another answer may pass). At most ``ROUNDS`` rounds.
Rows finish live, at the live price, when ``realtime`` says every failed row does, when they are
stragglers (few rows left after a round: ``STRAGGLER_SHARE`` of the run's and at most
``STRAGGLER_ROWS``; ``stragglers`` says live, another round, or fail), or when the jobs still running
at ``timeout`` were cancelled; ``realtime=False`` never pays live (stragglers take another round, rows
left at the timeout stay pending in their jobs). Rows left after ``ROUNDS`` rounds fail for this run.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from enrichkit.cache.folder import default_dir
from enrichkit.calls.prices import run_cost
from enrichkit.engine.codec import PackCodec, asking
from enrichkit.engine.job_requests import MadeOnRead, keys_of, maker
from enrichkit.engine.ladder import Ladder, Rung
from enrichkit.engine.live import LiveRun
from enrichkit.engine.prompt import pack_ids
from enrichkit.engine.settle import Settlement
from enrichkit.engine.waiting import looks, status_line
from enrichkit.errors import (
    FatalProviderError,
    ProviderError,
    RateLimited,
    RequestRejected,
    TransientError,
    UserError,
)
from enrichkit.history.calls import CallLog
from enrichkit.options import POLL_SECONDS, RunOptions, Stragglers
from enrichkit.providers.base import BatchBackend, JobStatus, Provider, Reply, Request
from enrichkit.providers.redact import redact, redacted_url
from enrichkit.result import ModelStats
from enrichkit.rows.keys import fingerprint
from enrichkit.rows.work import Work

ANSWERING = frozenset({"succeeded", "expired", "cancelled"})  # states whose job may hold answers


def endpoint(options: RunOptions, provider: Provider) -> str | None:
    """The endpoint a run calls, as a manifest keeps it for ``enrichkit jobs``: ``--base-url`` (or
    ``ENRICHKIT_BASE_URL``, or the provider's own), its password and anything shaped like a key masked."""
    url = options.base_url or os.environ.get("ENRICHKIT_BASE_URL") or provider.settings().get("base_url")
    return None if not url else redact(redacted_url(str(url)))


@dataclass
class Pack:
    keys: list[str]
    ids: list[str] | None  # None: one row asked on its own (object answer)
    echoes: list[str] | None = None
    size: int = 0
    """The size of the rung the pack was made at (0: the manifest's); one job holds every rung of a model."""
    fields: list[str] | None = None
    """The output fields its rows are asked for (None: all; ``Work.fields``)."""


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
    base_url: str | None = None
    """The endpoint the run called (``--base-url``; credentials masked), for ``enrichkit jobs``; None: the default."""
    name: str | None = None
    created: float = field(default_factory=time.time)
    flags: list[str] = field(default_factory=list)
    """The flags its answers carry however they are collected (``escalated``: the escalation's job)."""

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


ROUNDS = 6
"""Batch rounds a run takes at most (the ladder's rungs and the retries of passing failures)."""

RETRIES = 2
"""Rounds a row is sent again at the same rung after a passing failure, before it goes down the ladder."""

STRAGGLER_SHARE = 0.02
STRAGGLER_ROWS = 100

CANCEL_LOOKS = 3
"""Looks at a job cancelled at the batch timeout, for the answers it gave, before its rows go live anyway."""

_PASSING = re.compile(
    r"\b(?:5\d\d|429)\b|deadline|timed? ?out|in time|rate.?limit|overloaded|unavailable|internal|api_error"
    r"|resource.exhausted|expired|cancel|no result",
    re.IGNORECASE,
)


def passing(reason: str) -> bool:
    """Whether a request's failure may pass on another try (server error, deadline, rate limit, expiry)."""
    return _PASSING.search(reason) is not None


@dataclass(frozen=True)
class Missed:
    """Why a row of a job got no valid answer at ``rung``; ``kind``: ``passing`` (try again as it was),
    ``whole`` (its whole request failed), ``row`` (the answer pointed at this row, or was blocked)."""

    reason: str
    kind: Literal["passing", "whole", "row"]
    rung: Rung


@dataclass
class BatchRun:
    """Drive the batch jobs of one run: submit or re-attach, wait, collect, salvage, round after round."""

    codec: PackCodec
    settlement: Settlement
    backends: Sequence[BatchBackend]  # one per model: the main model, then the fallbacks
    ladder: Ladder
    store: JobStore
    run: str
    provider: str
    live: LiveRun
    cache: str | None = None  # the Redis cache of the run (masked), for the manifests
    endpoint: str | None = None  # the run's --base-url (masked), for the manifests
    wait: bool = True
    realtime: bool | None = None
    """True: every row a round left goes live; None: stragglers and rows left at the timeout; False: none."""
    stragglers: Stragglers = "live"
    timeout: float | None = None
    """Seconds the run waits for its jobs; then it cancels them and finishes live (None: no limit)."""
    poll: float = POLL_SECONDS
    jobs: list[str] = field(default_factory=list)
    pending: int = 0
    _by_key: dict[str, Work] = field(default_factory=dict)
    _retried: Counter[str] = field(default_factory=Counter)
    _reasons: dict[str, str] = field(default_factory=dict)
    _started: float = 0.0

    @classmethod
    def of(
        cls,
        options: RunOptions,
        live: LiveRun,
        backends: Sequence[BatchBackend],
        ladder: Ladder,
        run: str,
        provider: Provider,
    ) -> BatchRun:
        """The batch jobs of run ``run`` on ``provider``'s ``backends`` (finishing live on ``live``), as
        ``options`` say: the cache folder and cache, the endpoint, waiting, stragglers, timeout and polling."""
        return cls(
            live.codec,
            live.settlement,
            backends,
            ladder,
            JobStore(options.cache_dir or default_dir()),
            run,
            provider.name,
            live,
            cache=redacted_url(options.cache) if options.cache else None,
            endpoint=endpoint(options, provider),
            wait=options.wait,
            realtime=options.realtime_fallback,
            stragglers=options.stragglers,
            timeout=options.batch_timeout,
            poll=options.poll,
        )

    async def __call__(self, work: Sequence[Work]) -> None:
        self._started = asyncio.get_running_loop().time()
        self._by_key = by_key = {w.key: w for w in work}
        active = await self._attach(by_key)
        attached = {key for m in active for key in m.row_keys()}
        fresh = [w for w in work if w.key not in attached]
        if fresh:
            active.extend(await self._submit({self.ladder.first: fresh}))
        rounds = 1
        try:
            while active:
                missed = await self._wait(active)
                if missed is None:  # not waiting (any more): the rows stay in their jobs
                    break
                timed_out = self._timed_out()
                left = await self._route(missed)
                rows = [w for ws in left.values() for w in ws]
                if not rows:
                    break
                if self.realtime or (timed_out and self.realtime is not False):
                    await self._finish_live(left)
                elif rounds >= ROUNDS:
                    await self._fail(rows, f"no valid answer in {ROUNDS} batch rounds")
                elif self._few(rows) and self.stragglers == "fail":
                    await self._fail(rows, "left after a batch round: --stragglers fail")
                elif self._few(rows) and self.stragglers == "live" and self.realtime is not False:
                    await self._finish_live(left)
                else:
                    rounds += 1
                    active.extend(await self._submit(left))
        finally:
            self._show_pending(active)
            self.settlement.stats.waiting = ""

    # -- rounds --------------------------------------------------------------------------------

    async def _wait(self, active: list[Manifest]) -> dict[Work, Missed] | None:
        """Wait for every job in ``active``, collecting each as it ends; the rows they left. None when the
        run stops waiting with jobs still running (``wait`` off, or the timeout where nothing may go live)."""
        missed: dict[Work, Missed] = {}
        delays = looks(self.poll)
        loop = asyncio.get_running_loop()
        while True:
            running, unknown = [], 0
            for manifest in list(active):
                status = await self._look(manifest)
                if status is not None and status.done:
                    active.remove(manifest)
                    missed.update(await self._collect(manifest, status))
                elif status is None:
                    unknown += 1
                else:
                    running.append(status)
            if not active:
                return missed
            self._show_pending(active)
            if not self.wait:
                return None
            if self._timed_out():
                if self.realtime is False:
                    return None
                missed.update(await self._cancel(active))
                return missed
            delay = next(delays)
            if self.timeout is not None:
                delay = max(0.0, min(delay, self._started + self.timeout - loop.time()))
            stats = self.settlement.stats
            stats.waiting = status_line(running, unknown, loop.time() - self._started, delay)
            if self.settlement.on_settled is not None:
                self.settlement.on_settled(0)  # redraws the progress with the line
            await asyncio.sleep(delay)

    async def _route(self, missed: dict[Work, Missed]) -> dict[Rung, list[Work]]:
        """Where each row a round left goes next (by rung); rows with no rung left fail."""
        left: dict[Rung, list[Work]] = {}
        for w, miss in missed.items():
            target: Rung | None = miss.rung
            if miss.kind != "passing" or self._retried[w.key] >= RETRIES:
                target = self.ladder.in_batch(miss.rung, whole=miss.kind == "whole")
            if target is None and self._retried[w.key] < RETRIES:
                target = miss.rung  # the last rung: another try may pass (as live mode repairs a single row)
            if target == miss.rung:
                self._retried[w.key] += 1
            if target is None:
                await self.settlement.fail(w, miss.reason)
            else:
                left.setdefault(target, []).append(w)
                self._reasons[w.key] = miss.reason
        return left

    def _few(self, rows: Sequence[Work]) -> bool:
        """Whether ``rows`` are stragglers: few enough to finish without another round."""
        return len(rows) <= min(STRAGGLER_SHARE * len(self._by_key), STRAGGLER_ROWS)

    async def _fail(self, rows: Sequence[Work], why: str) -> None:
        """Fail ``rows`` for this run (the next run asks them again): their last reason, and ``why``."""
        for w in rows:
            await self.settlement.fail(w, f"{self._reasons.get(w.key, 'no answer')} ({why})")

    async def _finish_live(self, left: dict[Rung, list[Work]]) -> None:
        """Ask ``left`` live from their rungs, at the live price (counted apart in the figures)."""
        stats = self.settlement.stats
        if (budget := self.live.scheduler.budget) is not None and (cost := run_cost(stats)) is not None:
            budget.jobs_spent = cost.batch_usd - cost.live_part_batch_usd  # the jobs so far, at the batch price
        before = copy.deepcopy(stats.by_model)
        for rung, items in left.items():
            stats.finished_live += sum(w.rows for w in items)
            await self.live.run(items, rung)
        for model, now in stats.by_model.items():
            was = before.get(model, ModelStats())
            if now == was:
                continue
            part = stats.live_by_model.setdefault(model, ModelStats())
            for name in ("calls", "rows", "prompt_tokens", "output_tokens", "cached_tokens"):
                setattr(part, name, getattr(part, name) + getattr(now, name) - getattr(was, name))

    def _timed_out(self) -> bool:
        return self.timeout is not None and asyncio.get_running_loop().time() - self._started >= self.timeout

    async def _cancel(self, active: list[Manifest]) -> dict[Work, Missed]:
        """Cancel the jobs still running at the timeout; collect what they answered; the rows they left."""
        missed: dict[Work, Missed] = {}
        for manifest in list(active):
            assert manifest.name is not None
            with contextlib.suppress(TransientError, RateLimited, RequestRejected):
                await self.backends[manifest.rung.fallback].cancel(manifest.name)
            status = None
            for delay in itertools.islice(looks(self.poll), CANCEL_LOOKS):
                status = await self._look(manifest)
                if status is not None and status.done:
                    break
                await asyncio.sleep(delay)
            active.remove(manifest)
            if status is not None and status.done:
                missed.update(await self._collect(manifest, status))
                continue
            why = f"batch job {manifest.name} cancelled at the batch timeout"
            for pack in manifest.packs.values():
                rung = Rung(pack.size or manifest.rung.size, manifest.rung.fallback)
                missed.update((w, Missed(why, "passing", rung)) for k in pack.keys if (w := self._by_key.get(k)))
        return missed

    def _held(self, manifest: Manifest) -> list[Work]:
        return [self._by_key[k] for k in manifest.row_keys() if k in self._by_key]

    def _show_pending(self, active: list[Manifest]) -> None:
        stats = self.settlement.stats
        self.pending = stats.pending = sum(w.rows for m in active for w in self._held(m))
        stats.jobs = self.jobs

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

    async def _submit(self, rows: dict[Rung, list[Work]]) -> list[Manifest]:
        """A round: the requests of ``rows`` at their rungs, as one job a model (several where the provider's
        limits say so)."""
        codec = self.codec
        manifests = []
        for fallback in sorted({rung.fallback for rung in rows}):
            backend = self.backends[fallback]
            packs: dict[str, Pack] = {}
            made: list[tuple[str, Callable[[], Request]]] = []
            rungs = sorted((r for r in rows if r.fallback == fallback), key=lambda r: -r.size)
            for rung in rungs:
                for group in codec.packs(sorted(rows[rung], key=asking), rung.size):
                    if len(group) > 1:
                        ids = pack_ids(len(group))
                        pack = Pack([w.key for w in group], ids, codec.echoes(group), rung.size)
                    else:
                        pack = Pack([group[0].key], None, size=rung.size)
                    pack.fields = None if group[0].fields is None else list(group[0].fields)
                    key = fingerprint({"keys": pack.keys, "rung": [rung.size, rung.fallback]})[:20]
                    packs[key] = pack
                    made.append((key, maker(codec, group)))
                    self.settlement.stats.count_batch(backend.model, rung.size, len(group))
                    for w in group:
                        w.attempts += 1
            top = rungs[0]
            for part in backend.split(MadeOnRead(made)):
                manifests.append(await self._create(top, {k: packs[k] for k in keys_of(part)}, part))
        return manifests

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
            base_url=self.endpoint,
            flags=list(self.settlement.mark),
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

    async def _collect(self, manifest: Manifest, status: JobStatus) -> dict[Work, Missed]:
        """Check and cache a finished job's answers; the rows of this run that got none."""
        results = await self._results(manifest, status)
        log = self.live.log
        missed = await collect(self.codec, self.settlement, manifest, status, results, self._by_key, log, self.provider)
        self.store.drop(manifest)
        return missed

    async def _results(self, manifest: Manifest, status: JobStatus) -> dict[str, Reply | str]:
        if status.state not in ANSWERING:
            return {}
        assert manifest.name is not None
        return await self.backends[manifest.rung.fallback].results(manifest.name)


async def collect(
    codec: PackCodec,
    settlement: Settlement,
    manifest: Manifest,
    status: JobStatus,
    results: dict[str, Reply | str],
    by_key: dict[str, Work],
    log: CallLog | None = None,
    provider: str = "",
) -> dict[Work, Missed]:
    """Check every answer of a finished job like a live one (also those a cancelled or expired job
    gave); valid rows are cached (also rows this run does not hold: they were paid for). Results under
    keys the job did not hold are ignored and counted as unknown ids. Returns this run's rows that got
    no valid answer, and why. Each request answered, or failed, goes in the run's call ``log`` (of
    ``provider``) when every row of it is this run's (its request made again, as it was sent)."""
    failed: dict[Work, Missed] = {}
    stats = settlement.stats
    stats.unknown_ids += sum(1 for key in results if key not in manifest.packs)
    for key, pack in manifest.packs.items():
        items = [by_key.get(k) or _stand_in(k, pack, n, codec) for n, k in enumerate(pack.keys)]
        rung = Rung(pack.size or manifest.rung.size, manifest.rung.fallback)
        result = results.get(key)
        if status.state != "succeeded" and not isinstance(result, Reply):
            why = f"batch job {manifest.name} {status.state}" + (f" ({result})" if result else "")
            missed = {w.key: Missed(why, "passing", rung) for w in items}
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
            kind: Literal["whole", "row"] = "row" if result.finish == "blocked" or len(answer) < len(items) else "whole"
            missed = {w.key: Missed(why, kind, rung) for w, why in answer.items()}
        elif result is None:
            stats.count_call(manifest.model, "batch")
            missed = {w.key: Missed("no result for this request in the batch job", "passing", rung) for w in items}
        else:
            stats.count_call(manifest.model, "batch")
            missed = {w.key: Missed(result, "passing" if passing(result) else "whole", rung) for w in items}
        if log is not None and result is not None and all(w.key in by_key for w in items):
            answered = {w: e.values for w in items if w.key not in missed and (e := settlement.results.get(w.key))}
            invalid = {w: missed[w.key].reason for w in items if w.key in missed}
            request = (
                codec.single_request(items[0], load=False)
                if pack.ids is None
                else codec.pack_request(items, load=False)[1]
            )
            outcome = result if isinstance(result, Reply) else ProviderError(result)
            rows = (rung.size, rung.fallback)  # the request's latency is not known: 0
            log.call("batch", "batch", rows, manifest.model, provider, items, request, outcome, 0.0, answered, invalid)
        for w in items:
            if w.key in missed and w.key in by_key:
                failed[w] = missed[w.key]
    return failed


def _stand_in(key: str, pack: Pack, n: int, codec: PackCodec) -> Work:
    """A row of the job that this run does not hold: enough to check and cache its answer."""
    fields = None if pack.fields is None else tuple(pack.fields)
    echo = codec.of([Work(key, {}, rows=0, fields=fields)]).echo
    inputs = {echo: pack.echoes[n]} if echo and pack.echoes else {}
    return Work(key, inputs, rows=0, fields=fields)  # not counted as a row of this run
