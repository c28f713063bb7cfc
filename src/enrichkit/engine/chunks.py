"""A run, a chunk of rows at a time: keyed, looked up, the misses asked (live or as batch jobs), settled.

Each chunk's result is ready once all its rows settled, so memory stays bounded whatever the input's
size. The chunks of a run share its scheduler, ladder and figures (``Stats``); each result holds a
snapshot of the figures as they were when it was made.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from enrichkit.cache.entry import Entry
from enrichkit.cache.folder import default_dir
from enrichkit.calls.budget import Budget, BudgetReached
from enrichkit.calls.prices import run_cost
from enrichkit.calls.scheduler import Scheduler
from enrichkit.engine.agreement import measure
from enrichkit.engine.audit import audit_packed
from enrichkit.engine.batch import BatchRun
from enrichkit.engine.cascade import check_model, escalate
from enrichkit.engine.codec import PackCodec, asking
from enrichkit.engine.collector import fewer_collections
from enrichkit.engine.confidence import row_confidence
from enrichkit.engine.context import RunContext
from enrichkit.engine.fieldkeys import FieldKeys
from enrichkit.engine.interrupt import Interrupt, Interrupted
from enrichkit.engine.ladder import Ladder
from enrichkit.engine.live import LiveRun
from enrichkit.engine.media_fit import unsendable
from enrichkit.engine.reasked import ask_on_chosen
from enrichkit.engine.refusals import refused, remember
from enrichkit.engine.reviewed import Kept, overlaid
from enrichkit.engine.settle import Settlement
from enrichkit.engine.sizing import PackSizer
from enrichkit.engine.stop_evidence import CannotSucceed
from enrichkit.errors import FatalProviderError, StorageError, UserError
from enrichkit.options import AUTO_BATCH_ROWS, Mode
from enrichkit.providers.base import Provider
from enrichkit.result import Confidence, EnrichResult, Failure, KnownAnswers, Stats
from enrichkit.rows.keys import Keyed, key_rows
from enrichkit.rows.media import media_of, shown
from enrichkit.rows.seen_ids import SeenIds
from enrichkit.rows.work import Work

MAX_CONCURRENCY = 64
"""The most calls in flight the adaptive concurrency grows to."""


@dataclass
class Chunk:
    """The rows of a chunk, their ids, keys and inputs, what the cache already holds, and the unique work left."""

    table: list[Mapping[str, Any]]
    ids: list[Any]
    keys: list[str]
    found: dict[str, Entry]
    work: dict[str, Work]
    inputs: list[dict[str, Any]]
    reviewed: Kept | None = None  # reviewed values and rows asked again (None: the task has none)
    partial: dict[str, Entry] = field(default_factory=dict)
    """The cached answers of rows asked for some fields only (``Work.fields``), by key."""
    broken: dict[str, int] = field(default_factory=dict)  # key -> rows whose media cannot be sent (never asked)


def plan(keyed: Keyed, found: dict[str, Entry], stats: Stats, keys: FieldKeys) -> Chunk:
    """The unique work left once the cache ``found`` some rows; hits and duplicates counted into ``stats``.
    A row whose entry answers some of the task's field groups only (``FieldKeys``) is asked for the others:
    its entry goes from ``found`` to ``Chunk.partial``."""
    stats.rows += len(keyed.table)
    work: dict[str, Work] = {}
    every = keys.all
    partial: dict[str, Entry] = {}
    broken: dict[str, int] = {}
    for key, values, text, rid in zip(keyed.keys, keyed.inputs, keyed.texts, keyed.ids, strict=True):
        if key in keyed.broken:
            broken[key] = broken.get(key, 0) + 1
        elif (entry := found.get(key)) is not None and entry.groups == every:
            stats.cache_hits += 1
        elif key in work:
            work[key].rows += 1
            stats.duplicates += 1
        else:
            fields = None
            if entry is not None:
                del found[key]
                part, missing = keys.split(entry)
                if part is not None:
                    partial[key], fields = part, missing
            work[key] = Work(key, values, row_id=rid, text=text, fields=fields)
    if partial:
        stats.partly_cached += sum(work[key].rows for key in partial)
    return Chunk(keyed.table, keyed.ids, keyed.keys, found, work, keyed.inputs, partial=partial, broken=broken)


async def keyed_rows(
    context: RunContext, rows: list[Mapping[str, Any]], seen: SeenIds | None = None, at: int | list[int] = 0
) -> Keyed:
    """``key_rows`` of the run's ``rows``; a task with media reads them on threads (files, URLs)."""
    if context.media is None:
        return key_rows(rows, context.task, context.fingerprint, seen, at)
    return await asyncio.to_thread(key_rows, rows, context.task, context.fingerprint, seen, at, media=context.media)


async def lookup(context: RunContext, keyed: Keyed) -> tuple[dict[str, Entry], Kept | None]:
    """What the run's cache holds of ``keyed``'s rows, and their reviewed values (``engine.reviewed``: a row
    whose every field is reviewed is among the hits, a row to ask again is not; None: the task has none)."""
    io = context.io
    found = {} if io is None else await io.get_many(set(keyed.keys))
    reviewing = context.reviewing
    return found, None if reviewing is None else reviewing.kept(keyed.inputs, keyed.keys, found, context.keys.all)


async def run_chunks(
    context: RunContext,
    rows: Iterable[Mapping[str, Any]],
    *,
    on_progress: Callable[[int, Stats], None] | None = None,
    numbers: Iterator[int] | None = None,
    stats: Stats | None = None,
    whole: bool = False,
    interrupt: Interrupt | None = None,
) -> AsyncGenerator[EnrichResult, None]:
    """Enrich ``rows`` in the run ``context`` sets up, ``chunk_rows`` rows at a time (``batch`` and ``auto``
    modes, or ``whole``: every row in one chunk, one batch job). ``on_progress(settled_rows, stats)`` is called once the
    cache was read and after every settled row. When ``rows`` are some of a bigger input (the misses of a
    swept file), ``numbers`` gives their numbers in it (default 0, 1, ...) and ``stats`` the figures of
    the others. ``interrupt`` (the command line's Ctrl-C) stops a live or flex run as a fatal stop does."""
    started = time.perf_counter()
    opts, task, primary = context.options, context.task, context.provider
    models = context.models
    stats = stats or Stats()
    if context.shows_confidence and stats.confidence is None:
        stats.confidence = Confidence()
        if context.by_agreement:
            stats.confidence.measured_by, stats.confidence.by_agreement = "agreement", context.without_logprobs()
    unchecked = opts.escalate is not None  # the escalation model, checked before the first call
    sizer = PackSizer(context.pack_size) if opts.adaptive else None
    stats.pack_size = sizer.sizes if sizer else None
    limiter = context.limiter
    concurrency = opts.concurrency or default_concurrency(primary, limiter.rpm)
    # a given concurrency is kept as it is, and so are a local model's slots
    adapts = opts.concurrency is None and concurrency > 1 and not primary.capabilities.fixed_concurrency
    scheduler = Scheduler(
        stats,
        concurrency=concurrency,
        retry=opts.retry,
        limiter=limiter,
        max_concurrency=MAX_CONCURRENCY if adapts else None,
    )
    ladder = Ladder(context.pack_size, len(models))
    chunk_rows = None if whole or opts.mode in ("batch", "auto") else opts.chunk_rows
    seen = SeenIds(task.id_field) if task.id_field else None
    done = 0

    def settled(n: int) -> None:
        nonlocal done
        done += n
        if on_progress is not None:
            on_progress(done, stats)

    previous: EnrichResult | None = None
    first = True
    with fewer_collections():
        for rows_of_chunk in _chunks(rows, chunk_rows):
            at = stats.rows if numbers is None else list(itertools.islice(numbers, len(rows_of_chunk)))
            keyed = await keyed_rows(context, rows_of_chunk, seen, at)
            found = lookup(context, keyed)
            if previous is not None:
                yield previous  # written while the cache looks this chunk up
            hits = stats.cache_hits
            entries, kept = await found
            chunk = plan(keyed, entries, stats, context.keys)
            oversized(chunk, keyed.broken, primary)
            chunk.reviewed = kept
            if context.io is not None:
                stats.damaged = context.io.damaged
            if first:
                first = False
                check_columns(opts.check_against, chunk.table)
                stats.mode = choose_mode(opts.mode, primary, len(chunk.work), opts.use_cache)
                if stats.mode == "flex":
                    models = [m.on_tier("flex") for m in models]
                if interrupt is not None and stats.mode != "batch":
                    interrupt.arm()
            settled(stats.cache_hits - hits)
            codec = context.codec(models[0])
            settlement = Settlement(stats, context.io, settled, primary=models[0].model, partial=chunk.partial)
            _fail_broken(chunk, keyed.broken, settlement)
            live = LiveRun(codec, settlement, scheduler, models, ladder, sizer, context.log)
            work = list(chunk.work.values())
            if chunk.partial:
                work.sort(key=asking)  # rows asking for the same fields pack together
            if unchecked and work:
                unchecked = False
                await check_model(context, work)
            if opts.max_cost is not None and scheduler.budget is None:  # the first chunk's estimate is checked
                scheduler.budget = _budget(opts.max_cost, stats.mode, codec, work, context.pack_size, primary)
            if not stats.stopped:
                try:
                    asked = _ask(context, chunk, work, live, opts.audit)
                    await (asked if interrupt is None or stats.mode == "batch" else interrupt.sending(asked))
                except (FatalProviderError, StorageError, BudgetReached, Interrupted) as exc:
                    if not stats.enriched and not isinstance(exc, (CannotSucceed, Interrupted)):  # nothing was
                        raise  # bought: the user's error is the whole story (evidence or Ctrl-C: a stop)
                    stats.stopped = str(exc)
                    stats.interrupted = isinstance(exc, Interrupted)
                    stats.hint = exc.hint if isinstance(exc, CannotSucceed | BudgetReached) else ""
                finally:
                    await settlement.flush()
            stats.seconds = time.perf_counter() - started
            stats.load_seconds = getattr(primary, "load_seconds", None)  # a local model's
            stats.served_by = getattr(primary, "served_by", None)
            if (tally := getattr(primary, "debiased", None)) is not None and tally.answers:  # a local model's
                stats.debiased = {"answers": tally.answers, "turned": tally.turned}
            previous = _result(chunk, context, settlement, stats, models)
            if kept is not None and context.reviewing is not None:
                context.reviewing.answered(kept, settlement.results)
        _remember_refusals(context, [stats] if previous is None else [stats, previous.stats])
        if previous is not None:
            yield previous


def oversized(chunk: Chunk, reasons: dict[str, str], provider: Provider) -> None:
    """Fail the rows whose media no request of ``provider`` could carry (``media_fit``), with why in ``reasons``."""
    limits = provider.capabilities.media
    if limits is None or not chunk.work or not media_of(next(iter(chunk.work.values())).inputs):
        return
    for key, item in list(chunk.work.items()):
        if (why := unsendable(media_of(item.inputs), limits, provider.name)) is not None:
            del chunk.work[key]
            chunk.partial.pop(key, None)
            chunk.broken[key] = item.rows
            reasons[key] = why


def _fail_broken(chunk: Chunk, reasons: Mapping[str, str], settlement: Settlement) -> None:
    """Fail the rows whose media cannot be sent, with why: never asked, never cached."""
    for key, rows in chunk.broken.items():
        settlement.failures[key] = reasons[key]
        settlement.stats.failed += rows
        if settlement.on_settled is not None:
            settlement.on_settled(rows)


def check_columns(known: Mapping[str, str] | str | None, table: list[Mapping[str, Any]]) -> None:
    """Refuse a ``check_against`` column the first row does not hold (later rows without it are not counted)."""
    assert not isinstance(known, str)
    for name, column in (known or {}).items():
        if table and column not in table[0]:
            raise UserError(f"--check-against {name}={column}: row 1 has no column {column!r}")


def _remember_refusals(context: RunContext, figures: list[Stats]) -> None:
    """The models found giving no log-probabilities: said in the ``figures`` (the run's, the last result's),
    kept in the cache folder."""
    escalation = [context.escalation] if context.escalation is not None else []
    names = refused([*context.models, *escalation])
    if not names:
        return
    for stats in figures:
        if stats.confidence is not None:
            stats.confidence.no_logprobs = sorted(names)
    remember(context.options.cache_dir or default_dir(), names)


def default_concurrency(provider: Provider, rpm: int | None) -> int:
    """The provider's default, raised under a high request limit so that the limit, not latency, binds:
    at ``rpm`` requests a minute and up to ~6 s a call, about ``rpm / 10`` calls are in flight."""
    base = provider.capabilities.concurrency
    return min(MAX_CONCURRENCY, max(base, rpm // 10)) if rpm and base > 1 else base


def choose_mode(mode: Mode, provider: Provider, to_send: int, use_cache: bool) -> Mode:
    """The mode a run uses: ``auto`` is batch from ``AUTO_BATCH_ROWS`` rows to send (where the provider
    has a batch API), else live; ``flex`` and ``batch`` need a provider that can."""
    has_batch = provider.batches() is not None
    if mode == "auto":
        return "batch" if has_batch and use_cache and to_send >= AUTO_BATCH_ROWS else "live"
    if mode == "flex" and "flex" not in provider.capabilities.service_tiers:
        raise UserError(f"--mode flex needs a provider with a Flex tier (gemini), not {provider.name}")
    if mode == "batch" and not has_batch:
        raise UserError(f"--mode batch is not available for {provider.name}")
    return mode


def _budget(limit: float, mode: str, codec: PackCodec, work: list[Work], size: int, primary: Provider) -> Budget:
    """The run's budget, with the first chunk's estimate (a batch run over it is refused)."""
    budget = Budget(limit, mode=mode)
    packs = codec.packs(work, size)
    requests = [codec.pack_request(pack, load=False)[1] for pack in packs]
    output_tokens = sum(codec.expected_output_tokens(len(p)) for p in packs)
    budget.check_estimate(primary.model, requests, output_tokens, sum(w.rows for w in work))
    return budget


async def _ask(context: RunContext, chunk: Chunk, work: list[Work], live: LiveRun, audit: float) -> None:
    """Ask for ``work``, then re-ask the ``audit`` share of the packed answers; once no row waits in a batch
    job, measure the agreement of a second packing where that is the confidence, then ask the doubtful rows
    on the escalation model. Rows a person chose another model for go first, on that model."""
    await _send(context, await ask_on_chosen(context, chunk.reviewed, work, live), live)
    await audit_packed(live.codec, live.settlement, live.scheduler, live.models[0], audit, live.media, live.log)
    settlement = live.settlement
    if settlement.stats.pending or not (context.by_agreement or context.escalation is not None):
        return
    inputs = dict(zip(chunk.keys, chunk.inputs, strict=True))
    if context.by_agreement:
        answers, size = _answers(chunk, settlement), context.pack_size
        measured = await measure(live.codec, live.scheduler, live.models[0], answers, inputs, size, live.media)
        _replace(chunk, settlement, measured)
        if (stored := settlement.store(measured)) is not None and measured:
            await stored
    if context.escalation is not None:
        ids: dict[str, Any] = {}
        for key, rid in zip(chunk.keys, chunk.ids, strict=True):
            ids.setdefault(key, rid)  # the first row of a content, as the call log names it
        answers = _answers(chunk, settlement)
        escalated = await escalate(context, answers, inputs, settlement.stats, ids, live.scheduler.budget)
        _replace(chunk, settlement, escalated)


def _answers(chunk: Chunk, settlement: Settlement) -> dict[str, Entry]:
    """The chunk's answers by key: this run's, or the cache's."""
    return {key: entry for key in chunk.keys if (entry := settlement.results.get(key) or chunk.found.get(key))}


def _replace(chunk: Chunk, settlement: Settlement, entries: Mapping[str, Entry]) -> None:
    """Put ``entries`` in place of the answers the chunk holds for their keys."""
    for key, entry in entries.items():
        (chunk.found if key in chunk.found else settlement.results)[key] = entry


async def _send(context: RunContext, work: list[Work], live: LiveRun) -> None:
    """Ask for ``work``: live, or as batch jobs."""
    stats, opts = live.settlement.stats, context.options
    if stats.mode != "batch":
        await live.run(work)
        return
    batched = [(m, b) for m in live.models if (b := m.batches()) is not None]
    backends = [b for _, b in batched]
    ladder = Ladder(live.ladder.pack_size, len(backends), [m.capabilities.max_pack_size for m, _ in batched])
    batch = BatchRun.of(opts, live, backends, ladder, context.fingerprint, context.provider)
    try:
        await batch(work)
    finally:
        stats.pending, stats.jobs = batch.pending, batch.jobs


def _result(
    chunk: Chunk, context: RunContext, settlement: Settlement, stats: Stats, models: list[Provider]
) -> EnrichResult:
    """A chunk's rows with their answers (and ``_confidence`` and ``_flags``, unless ``confidence=False``), and
    its failures; the figures as they are now (the rows' confidence and the known answers' matches counted
    in), with their cost."""
    failures = []
    rows: list[dict[str, Any]] = []
    found, results = chunk.found, settlement.results
    task, summary = context.task, stats.confidence
    fields = task.inputs
    reviewed = None if chunk.reviewed is None else chunk.reviewed.values
    known = _known(context.options.check_against, stats)
    for n, (row, key) in enumerate(zip(chunk.table, chunk.keys, strict=True)):
        if (entry := found.get(key) or results.get(key)) is not None:
            answered = row | entry.values if type(row) is dict else {**row, **entry.values}
            confidence = row_confidence(entry.confidence)
            if summary is not None:
                answered["_confidence"] = confidence
                answered["_flags"] = ",".join(entry.flags) or None
                summary.add(confidence, entry.flags)
            for name, (column, counts) in known.items():
                if column in row:
                    counts.add(matches(entry.values.get(name), row[column]), confidence)
            if reviewed is not None:
                kept = reviewed.get(key)
                stats.reviewed += len(kept or ())
                overlaid(answered, kept)
            rows.append(answered)
        else:
            missing = dict(row) if summary is None else {**row, "_confidence": None, "_flags": None}
            rows.append(missing if reviewed is None else overlaid(missing, None))
            attempts = chunk.work[key].attempts if key in chunk.work else 0
            if stats.stopped and key not in settlement.failures:
                stats.failed += 1  # no answer: the run stopped first
                stats.not_asked += not attempts
            reason = settlement.failures.get(key) or _unanswered(stats, attempts)
            inputs = {f: shown(row[f]) if f in task.media else row[f] for f in fields}  # media as named, not as bytes
            failures.append(Failure(chunk.ids[n], reason, attempts, inputs))
    stats.est_cost = run_cost(stats, local_models(models))
    return EnrichResult(rows, failures, stats.snapshot(), model=task.model)


def _known(check_against: Mapping[str, str] | str | None, stats: Stats) -> dict[str, tuple[str, KnownAnswers]]:
    """Per output field checked, its known column and its counts in ``stats.known`` (made on first use)."""
    assert not isinstance(check_against, str)
    return {
        name: (column, stats.known.setdefault(name, KnownAnswers(column)))
        for name, column in (check_against or {}).items()
    }


def matches(answer: Any, known: Any) -> bool:
    """Whether an answer is the known one: as text, case and surrounding space aside."""
    return str(answer).strip().casefold() == str(known).strip().casefold()


def local_models(models: list[Provider]) -> set[str]:
    """The models of a run whose tokens cost nothing (the local ones)."""
    return {m.model for m in models if m.name == "local"}


def _unanswered(stats: Stats, attempts: int) -> str:
    if stats.stopped and attempts:
        return f"no valid answer in {attempts} attempt{'s' if attempts > 1 else ''}: the run stopped ({stats.stopped})"
    if stats.stopped:
        return f"not asked: the run stopped ({stats.stopped})"
    return "waiting in a batch job: re-run to collect" if stats.pending else "not answered"


def _chunks(rows: Iterable[Mapping[str, Any]], size: int | None) -> Iterator[list[Mapping[str, Any]]]:
    """``rows`` in lists of ``size`` (None: one list, even an empty one)."""
    if size is None:
        yield list(rows)
        return
    it = iter(rows)
    while chunk := list(itertools.islice(it, size)):
        yield chunk
