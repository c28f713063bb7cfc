"""``enrich`` and ``aenrich``: rows in, rows with new columns out."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from google import genai

from enrichkit.adaptive import PackSizer
from enrichkit.audit import check_fraction
from enrichkit.batch import POLL_SECONDS, BatchRun, JobStore
from enrichkit.cache import Entry, RowCache, canonical, default_dir, fingerprint, row_key
from enrichkit.engine import Engine, RetryPolicy, Work
from enrichkit.errors import UserError
from enrichkit.limiter import RateLimiter
from enrichkit.prompt import ECHO_WORDS, PROMPT_VERSION, estimate_tokens, expected_output_tokens
from enrichkit.providers.base import Provider
from enrichkit.providers.choose import choose_provider
from enrichkit.providers.gemini import DEFAULT_MODEL, GeminiProvider
from enrichkit.result import EnrichResult, Failure, Stats
from enrichkit.task import Task

MAX_BATCH_SIZE = 50
CHUNK_ROWS = 20_000  # rows read, looked up, enriched and written at a time
AUTO_BATCH_ROWS = 2_000  # --mode auto: a batch job from this many rows to send (100 packed requests) up
Mode = Literal["live", "flex", "batch", "auto"]
MODES: tuple[Mode, ...] = ("live", "flex", "batch", "auto")
T = TypeVar("T")


def run_fingerprint(task: Task, provider: Provider, echo: bool = False) -> str:
    """What every cache key of a run shares: task, prompt format, provider and model settings."""
    prompt = {"version": PROMPT_VERSION, "echo": echo}
    return fingerprint({"task": task.fingerprint(), "prompt": prompt, "provider": provider.name, **provider.settings()})


def resolve_provider(client: genai.Client | None, model: str | None) -> Provider:
    """Gemini on the given client; without one, the default choice (Gemini if a key is set, else local)."""
    if client is not None:
        return GeminiProvider(client, model or DEFAULT_MODEL)
    return choose_provider(model=model).provider


def _fallback(primary: Provider, choice: str | Provider) -> Provider:
    if not isinstance(choice, str):
        return choice
    if isinstance(primary, GeminiProvider):
        return GeminiProvider(primary.client, choice, temperature=primary.temperature)
    raise UserError(f"fallback model {choice!r}: pass a provider object for a {primary.name} run")


def _row_inputs(
    rows: Sequence[Mapping[str, Any]], task: Task, seen: dict[Any, int], offset: int
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Row ids and the input values of every row; a missing field or a repeated id (``seen``: the
    ids of earlier chunks) is an error. Rows are numbered from ``offset``."""
    ids: list[Any] = []
    inputs: list[dict[str, Any]] = []
    for n, row in enumerate(rows, offset):
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


@dataclass
class Prepared:
    """The rows of a run, their keys, what the cache already holds, and the unique work left."""

    table: list[dict[str, Any]]
    ids: list[Any]
    keys: list[str]
    found: dict[str, Entry]
    work: dict[str, Work]


def prepare(
    rows: Iterable[Mapping[str, Any]],
    task: Task,
    provider: Provider,
    cache: RowCache | None,
    echo: bool,
    stats: Stats,
    seen: dict[Any, int] | None = None,
    offset: int = 0,
) -> Prepared:
    """Key the rows, look them up in the cache and count hits and duplicates into ``stats``."""
    table = [dict(row) for row in rows]
    ids, inputs = _row_inputs(table, task, {} if seen is None else seen, offset)
    run_fp = run_fingerprint(task, provider, echo)
    texts = [canonical(values) for values in inputs]
    keys = [row_key(run_fp, text) for text in texts]
    found = cache.get_many(set(keys)) if cache is not None else {}
    stats.rows += len(table)
    work: dict[str, Work] = {}
    for key, values, text in zip(keys, inputs, texts, strict=True):
        if key in found:
            stats.cache_hits += 1
        elif key in work:
            work[key].rows += 1
            stats.duplicates += 1
        else:
            work[key] = Work(key, values, text=text)
    return Prepared(table, ids, keys, found, work)


def default_concurrency(provider: Provider, rpm: int | None) -> int:
    """The provider's default, raised under a high request limit so that the limit, not latency, binds:
    at ``rpm`` requests a minute and up to ~6 s a call, about ``rpm / 10`` calls are in flight."""
    base = provider.capabilities.concurrency
    return min(64, max(base, rpm // 10)) if rpm and base > 1 else base


def choose_mode(mode: Mode, provider: Provider, to_send: int, use_cache: bool) -> Mode:
    """The mode a run uses: ``auto`` is batch from ``AUTO_BATCH_ROWS`` rows to send (on Gemini), else live."""
    if mode == "auto":
        return "batch" if isinstance(provider, GeminiProvider) and use_cache and to_send >= AUTO_BATCH_ROWS else "live"
    if mode in ("flex", "batch") and not isinstance(provider, GeminiProvider):
        raise UserError(f"--mode {mode} needs the Gemini provider, not {provider.name}")
    if mode == "batch" and not use_cache:
        raise UserError("--mode batch keeps its jobs and answers in the cache: drop --no-cache")
    return mode


def _check_batch_size(batch_size: int) -> None:
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise UserError(f"batch size must be between 1 and {MAX_BATCH_SIZE}, not {batch_size}")


async def aenrich_chunks(
    rows: Iterable[Mapping[str, Any]],
    task: Task | str | Path,
    *,
    chunk_rows: int | None = CHUNK_ROWS,
    client: genai.Client | None = None,
    model: str | None = None,
    provider: Provider | None = None,
    fallback: Sequence[str | Provider] = (),
    batch_size: int = 20,
    concurrency: int | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    limiter: RateLimiter | None = None,
    echo: bool | None = None,
    timeout: float | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
    retry: RetryPolicy | None = None,
    on_progress: Callable[[int, Stats], None] | None = None,
    audit: float = 0.0,
    adaptive: bool = False,
    mode: Mode = "live",
    wait: bool = True,
    realtime_fallback: bool = False,
    poll: float = POLL_SECONDS,
) -> AsyncGenerator[EnrichResult, None]:
    """Enrich ``rows`` with the columns of ``task`` (see ``enrich``), ``chunk_rows`` rows at a time.

    Each chunk's result is yielded once all its rows settled, so memory stays bounded whatever the
    input's size (None: every row in one chunk). ``batch`` and ``auto`` modes take every row as one
    chunk (one batch job). All chunks share one ``stats``: the last result's figures are the run's.

    ``echo=True`` makes every packed answer copy the first
    words of its row's last input field, so answers attached to the wrong row are caught and asked
    again. ``rpm``/``tpm`` cap requests and prompt tokens a minute on the client side; a ``limiter`` shared by
    several runs caps them together. ``on_progress(settled_rows, stats)`` is called once the cache
    was read and after every settled row.

    ``audit``: once the packs settled, ask this fraction of the rows answered in packs again one at
    a time and put how the answers agree in ``stats.audit`` (never cached; see ``enrichkit.audit``).
    ``adaptive=True`` halves the pack size while packed answers come back invalid and doubles it back
    when clean (see ``enrichkit.adaptive``; the sizes used are in ``stats.pack_size``).

    ``mode``: ``live`` (default), ``flex`` (Gemini's Flex tier: about half price, slower), ``batch``
    (one Gemini batch job: half price, resumable; see ``enrichkit.batch``; ``wait=False`` submits and
    returns, the rows then count as ``stats.pending``) or ``auto`` (batch from ``AUTO_BATCH_ROWS``
    rows to send). ``poll`` is the first wait between looks at a batch job, in seconds.
    """
    started = time.perf_counter()
    task = task if isinstance(task, Task) else Task.from_file(task)
    _check_batch_size(batch_size)
    check_fraction(audit)
    if mode in ("batch", "auto"):
        chunk_rows = None
    primary = provider or resolve_provider(client, model)
    tiers = [primary, *(_fallback(primary, choice) for choice in fallback)]
    cache = RowCache(cache_dir if cache_dir is not None else default_dir()) if use_cache else None
    echo = primary.capabilities.echo if echo is None else echo
    stats = Stats()
    limiter = limiter or RateLimiter(rpm, tpm)
    size = min(batch_size, primary.capabilities.max_pack_size)
    sizer = PackSizer(size) if adaptive else None
    seen: dict[Any, int] = {}
    done = 0

    def settled(n: int) -> None:
        nonlocal done
        done += n
        if on_progress is not None:
            on_progress(done, stats)

    try:
        for chunk in _chunks(rows, chunk_rows):
            hits = stats.cache_hits
            run = prepare(chunk, task, primary, cache, echo, stats, seen, stats.rows)
            if stats.rows == len(run.table):  # the first chunk
                stats.mode = choose_mode(mode, primary, len(run.work), use_cache)
                if stats.mode == "flex":
                    tiers = [t.on_tier("flex") for t in tiers]
            settled(stats.cache_hits - hits)
            engine = Engine(
                task,
                tiers,
                cache,
                stats,
                batch_size=size,
                concurrency=concurrency or default_concurrency(primary, limiter.rpm),
                retry=retry or RetryPolicy(),
                timeout=timeout,
                limiter=limiter,
                echo=echo,
                on_settled=settled,
                sizer=sizer,
            )
            if stats.mode == "batch":
                assert cache is not None
                backends = [b for t in tiers if (b := t.batches()) is not None]
                fp = run_fingerprint(task, primary, echo)
                batch = BatchRun(engine, backends, JobStore(cache.directory), fp, wait, realtime_fallback, poll)
                await batch(list(run.work.values()))
                stats.pending, stats.jobs = batch.pending, batch.jobs
            else:
                await engine.run(list(run.work.values()))
            await engine.audit(audit)
            stats.seconds = time.perf_counter() - started
            yield _result(run, engine, stats)
    finally:
        for tier in tiers:
            await tier.aclose()
        if cache is not None:
            cache.close()


def _result(run: Prepared, engine: Engine, stats: Stats) -> EnrichResult:
    """A chunk's rows with their answers, and its failures."""
    failures = []
    for n, (row, key) in enumerate(zip(run.table, run.keys, strict=True)):
        if (entry := run.found.get(key) or engine.results.get(key)) is not None:
            row.update(entry.values)
        else:
            attempts = run.work[key].attempts if key in run.work else 0
            reason = engine.failures.get(
                key, "waiting in a batch job: re-run to collect" if stats.pending else "not answered"
            )
            failures.append(Failure(run.ids[n], reason, attempts, {f: row[f] for f in engine.task.inputs}))
    return EnrichResult(run.table, failures, stats)


def _chunks(rows: Iterable[Mapping[str, Any]], size: int | None) -> Iterator[list[Mapping[str, Any]]]:
    """``rows`` in lists of ``size`` (None: one list, even an empty one)."""
    if size is None:
        yield list(rows)
        return
    it = iter(rows)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


async def aenrich(rows: Iterable[Mapping[str, Any]], task: Task | str | Path, **options: Any) -> EnrichResult:
    """Enrich ``rows`` with the columns of ``task`` in one go; the options are ``aenrich_chunks``'s."""
    [result] = [chunk async for chunk in aenrich_chunks(rows, task, chunk_rows=None, **options)]
    return result


@dataclass(frozen=True)
class Plan:
    """What a run would do, found without spending anything (a dry run)."""

    provider: str
    model: str
    rows: int
    cache_hits: int
    duplicates: int
    to_send: int
    packs: list[int]
    prompt_tokens: int
    output_tokens: int
    tokens_counted: bool

    @property
    def calls(self) -> int:
        return len(self.packs)


async def aplan(
    rows: Iterable[Mapping[str, Any]],
    task: Task | str | Path,
    *,
    client: genai.Client | None = None,
    model: str | None = None,
    provider: Provider | None = None,
    batch_size: int = 20,
    echo: bool | None = None,
    cache_dir: str | Path | None = None,
    use_cache: bool = True,
) -> Plan:
    """The cache hits, packs and estimated tokens of a run, without calling the model.

    Prompt tokens are the provider's own count of the first pack (``countTokens`` is free on Gemini)
    scaled to all packs by length, or a four-characters-a-token estimate when it cannot count.
    """
    task = task if isinstance(task, Task) else Task.from_file(task)
    _check_batch_size(batch_size)
    primary = provider or resolve_provider(client, model)
    cache = RowCache(cache_dir if cache_dir is not None else default_dir()) if use_cache else None
    echo = primary.capabilities.echo if echo is None else echo
    try:
        stats = Stats()
        run = prepare(rows, task, primary, cache, echo, stats)
        size = min(batch_size, primary.capabilities.max_pack_size)
        engine = Engine(task, [primary], None, stats, batch_size=size, concurrency=1, retry=RetryPolicy(), echo=echo)
        packs = engine.plan(list(run.work.values()), size)
        requests = [engine.pack_request(pack)[1] for pack in packs]
        estimated = [estimate_tokens(r.system + r.prompt) for r in requests]
        counted = await primary.count_tokens(requests[0]) if requests else None
    finally:
        await primary.aclose()
        if cache is not None:
            cache.close()
    scale = counted / estimated[0] if counted and estimated else 1.0
    per_row = expected_output_tokens(task) + (ECHO_WORDS * 2 + 4 if echo else 0)
    return Plan(
        provider=primary.name,
        model=primary.model,
        rows=stats.rows,
        cache_hits=stats.cache_hits,
        duplicates=stats.duplicates,
        to_send=len(run.work),
        packs=[len(pack) for pack in packs],
        prompt_tokens=round(sum(estimated) * scale),
        output_tokens=sum(len(pack) * per_row for pack in packs),
        tokens_counted=counted is not None,
    )


def _sync(job: Coroutine[Any, Any, T]) -> T:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(job)
    with ThreadPoolExecutor(max_workers=1) as pool:  # called from inside an event loop (e.g. Jupyter)
        return pool.submit(asyncio.run, job).result()


def enrich(rows: Iterable[Mapping[str, Any]], task: Task | str | Path, **options: Any) -> EnrichResult:
    """Enrich ``rows`` (dicts) with the columns ``task`` describes.

    Cached rows cost nothing; the rest travel in packs of up to ``batch_size`` rows per call.
    ``client`` is a ready ``google.genai.Client``; without one, Gemini is used when GEMINI_API_KEY /
    GOOGLE_API_KEY is set and the embedded local model when not (or pass ``provider=``).
    ``fallback`` lists models (or providers) that get the rows the main model could not answer.
    Returns the rows in input order with the new fields (absent for failed rows), the failures with
    their last reason, and the run's figures.
    """
    return _sync(aenrich(rows, task, **options))


def plan(rows: Iterable[Mapping[str, Any]], task: Task | str | Path, **options: Any) -> Plan:
    """What ``enrich`` would send, and roughly how many tokens, without calling the model."""
    return _sync(aplan(rows, task, **options))
