"""``enrich`` and ``aenrich``: rows in, rows with new columns out (``RunOptions`` says how)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
import time
import warnings
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable, Iterator, Mapping, Sized
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tqdm.auto import tqdm

from enrichkit.cache.base import Cache
from enrichkit.cache.entry import Entry
from enrichkit.cache.folder import default_dir
from enrichkit.cache.open import open_cache
from enrichkit.calls.budget import Budget, BudgetReached
from enrichkit.calls.limits import open_limiter
from enrichkit.calls.scheduler import Scheduler
from enrichkit.engine.audit import audit_packed
from enrichkit.engine.batch import BatchRun, JobStore
from enrichkit.engine.codec import Packer
from enrichkit.engine.collector import fewer_collections
from enrichkit.engine.crosswire import text_fields
from enrichkit.engine.ladder import Ladder
from enrichkit.engine.live import LiveRun
from enrichkit.engine.prepare import Prepared, plan, run_fingerprint
from enrichkit.engine.sizing import PackSizer
from enrichkit.errors import FatalProviderError, StorageError, UserError
from enrichkit.options import Mode, RunOptions
from enrichkit.providers import PROVIDERS, Choice, choose_provider, resolve_provider
from enrichkit.providers.base import Provider
from enrichkit.result import EnrichResult, Failure, Stats
from enrichkit.rows.frames import source, with_columns
from enrichkit.rows.keys import key_rows
from enrichkit.rows.seen_ids import SeenIds
from enrichkit.rows.work import Work
from enrichkit.task.task import Task

if TYPE_CHECKING:
    from enrichkit.rows.frames import Rows

AUTO_BATCH_ROWS = 2_000  # --mode auto: a batch job from this many rows to send (100 packed requests) up
T = TypeVar("T")


def load_task(task: Task | str | Path) -> Task:
    return task if isinstance(task, Task) else Task.from_file(task)


def options_of(options: RunOptions | None, given: Mapping[str, Any]) -> RunOptions:
    """``options`` with the keyword arguments ``given`` on top (either may be empty)."""
    if options is None:
        return RunOptions.of(given)
    return options.replace(**given) if given else options


def choose(options: RunOptions) -> Choice:
    """The run's provider, as ``options`` name it; ``model`` and ``base_url`` default to the environment's
    ``ENRICHKIT_MODEL`` and ``ENRICHKIT_BASE_URL``, as on the command line (the cache folder to
    ``ENRICHKIT_CACHE_DIR``: ``cache.default_dir``)."""
    return resolve_provider(
        options.provider,
        client=options.client,
        model=options.model or os.environ.get("ENRICHKIT_MODEL") or None,
        base_url=options.base_url or os.environ.get("ENRICHKIT_BASE_URL") or None,
        model_path=options.model_path,
        cache_dir=options.cache_dir or default_dir(),
    )


def fallback_provider(primary: Provider, choice: str | Provider, cache_dir: Path | None = None) -> Provider:
    """A fallback: ``MODEL`` on the primary's provider, ``PROVIDER:MODEL`` on another provider (its key and
    endpoint from the environment, as the SDKs read them), or a provider as given."""
    if not isinstance(choice, str):
        return choice
    name, colon, model = choice.partition(":")
    if not colon or name not in PROVIDERS:  # a model name may hold a colon itself (llama3:8b)
        return primary.with_model(choice)
    if name == primary.name:
        return primary.with_model(model)
    return choose_provider(name, model=model, cache_dir=cache_dir).provider


def crosswire_checks(task: Task, echo: bool | None, pack_size: int) -> tuple[bool, bool]:
    """Whether packed answers echo their row, and whether their free text is checked against their row
    (``enrichkit.crosswire``, free). By default the free check where the task has free text, else the
    echo; ``echo=True`` adds the echo, ``echo=False`` turns both off. Single rows need neither."""
    text = bool(text_fields(task.schema))
    if echo is None:
        return pack_size > 1 and not text, text
    return echo, echo and text


MAX_CONCURRENCY = 64
"""The most calls in flight the adaptive concurrency grows to."""


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
    if mode == "flex" and "flex" not in provider.capabilities.tiers:
        raise UserError(f"--mode flex needs a provider with a Flex tier (gemini), not {provider.name}")
    if mode == "batch" and not has_batch:
        raise UserError(f"--mode batch is not available for {provider.name}")
    return mode


async def aenrich_chunks(
    rows: Iterable[Mapping[str, Any]],
    task: Task | str | Path,
    options: RunOptions | None = None,
    *,
    on_progress: Callable[[int, Stats], None] | None = None,
    numbers: Iterator[int] | None = None,
    stats: Stats | None = None,
    **given: Any,
) -> AsyncGenerator[EnrichResult, None]:
    """Enrich ``rows`` with the columns of ``task`` (see ``enrich``), ``chunk_rows`` rows at a time.

    Each chunk's result is yielded once all its rows settled, so memory stays bounded whatever the
    input's size (``chunk_rows=None``: every row in one chunk). ``batch`` and ``auto`` modes take every
    row as one chunk (one batch job). All chunks share one ``stats``: the last result's figures are the
    run's. ``on_progress(settled_rows, stats)`` is called once the cache was read and after every
    settled row. The options are ``RunOptions``' fields, as an object or as keyword arguments.
    When ``rows`` are some of a bigger input (``sweep``: the rows its cache did not hold), ``numbers``
    gives their numbers in it (default 0, 1, ...) and ``stats`` the figures of the others.
    """
    started = time.perf_counter()
    opts = options_of(options, given)
    task = load_task(task)
    primary = choose(opts).provider
    tiers = [primary, *(fallback_provider(primary, choice, opts.cache_dir) for choice in opts.fallback)]
    cache = open_cache(opts)
    stats = stats or Stats()
    limiter = open_limiter(opts, primary)
    size = min(opts.pack_size, primary.capabilities.max_pack_size)
    echo, affinity = crosswire_checks(task, opts.echo, size)
    sizer = PackSizer(size) if opts.adaptive else None
    stats.pack_size = sizer.sizes if sizer else None
    concurrency = opts.concurrency or default_concurrency(primary, limiter.rpm)
    adapts = opts.concurrency is None and concurrency > 1  # a given concurrency is kept as it is
    scheduler = Scheduler(
        stats,
        concurrency=concurrency,
        retry=opts.retry,
        limiter=limiter,
        max_concurrency=MAX_CONCURRENCY if adapts else None,
    )
    ladder = Ladder(size, len(tiers))
    chunk_rows = None if opts.mode in ("batch", "auto") else opts.chunk_rows
    seen = SeenIds(task.id_field) if task.id_field else None
    keyprint = run_fingerprint(task, primary, echo)
    done = 0

    def settled(n: int) -> None:
        nonlocal done
        done += n
        if on_progress is not None:
            on_progress(done, stats)

    held = contextlib.ExitStack()  # for the run: fewer garbage collections, one thread for the cache's I/O
    held.enter_context(fewer_collections())
    cache_thread = held.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix="enrichkit-cache"))
    previous: EnrichResult | None = None
    first = True
    try:
        for chunk in _chunks(rows, chunk_rows):
            at = stats.rows if numbers is None else list(itertools.islice(numbers, len(chunk)))
            keyed = key_rows(chunk, task, keyprint, seen, at)
            lookup = _lookup(cache, keyed.keys, cache_thread)
            if previous is not None:
                yield previous  # written while the cache looks this chunk up
            hits = stats.cache_hits
            run = plan(keyed, await lookup, stats)
            if first:
                first = False
                stats.mode = choose_mode(opts.mode, primary, len(run.work), opts.use_cache)
                if stats.mode == "flex":
                    tiers = [t.on_tier("flex") for t in tiers]
            settled(stats.cache_hits - hits)
            packer = Packer(
                task,
                stats,
                cache=cache,
                id_style=primary.capabilities.id_style,
                echo=echo,
                affinity=affinity,
                timeout=opts.timeout or tiers[0].capabilities.timeout,
                on_settled=settled,
                cache_thread=cache_thread,
            )
            live = LiveRun(packer, scheduler, tiers, ladder, sizer)
            if opts.max_cost is not None and scheduler.budget is None:  # the first chunk's estimate is checked
                scheduler.budget = _budget(opts.max_cost, stats.mode, packer, list(run.work.values()), size, primary)
            if not stats.stopped:
                try:
                    await _send(list(run.work.values()), opts, packer, live, task, primary, echo, cache)
                    await audit_packed(packer, scheduler, tiers[0], opts.audit)
                except (FatalProviderError, StorageError, BudgetReached) as exc:
                    if not stats.enriched:  # nothing was bought: the user's error is the whole story
                        raise
                    stats.stopped = str(exc)
                finally:
                    await packer.flush()
            stats.seconds = time.perf_counter() - started
            previous = _result(run, packer, stats)
        if previous is not None:
            yield previous
    finally:
        held.close()
        for tier in tiers:
            await tier.aclose()
        if cache is not None:
            cache.close()


def _lookup(cache: Cache | None, keys: list[str], thread: Executor) -> asyncio.Future[dict[str, Entry]]:
    """The cache's entries for ``keys``, looked up in ``thread`` from now on."""
    loop = asyncio.get_running_loop()
    if cache is None:
        nothing: asyncio.Future[dict[str, Entry]] = loop.create_future()
        nothing.set_result({})
        return nothing
    return loop.run_in_executor(thread, cache.get_many, set(keys))


def _budget(limit: float, mode: str, packer: Packer, work: list[Work], size: int, primary: Provider) -> Budget:
    """The run's budget, once the first chunk's estimate was found within it."""
    budget = Budget(limit, batch=mode in ("batch", "flex"))
    packs = packer.packs(work, size)
    requests = [packer.pack_request(pack)[1] for pack in packs]
    budget.check_estimate(primary.model, requests, sum(packer.expected_output_tokens(len(p)) for p in packs))
    return budget


async def _send(
    work: list[Work],
    opts: RunOptions,
    packer: Packer,
    live: LiveRun,
    task: Task,
    primary: Provider,
    echo: bool,
    cache: Cache | None,
) -> None:
    """Ask for ``work``: live, or as batch jobs."""
    stats = packer.stats
    if stats.mode != "batch":
        await live.run(work)
        return
    assert cache is not None
    backends = [b for t in live.tiers if (b := t.batches()) is not None]
    batch = BatchRun(
        packer,
        backends,
        Ladder(live.ladder.pack_size, len(backends), whole_jobs=True),
        JobStore(opts.cache_dir or default_dir()),
        run_fingerprint(task, primary, echo),
        primary.name,
        opts.wait,
        live if opts.realtime_fallback else None,
        opts.poll,
    )
    try:
        await batch(work)
    finally:
        stats.pending, stats.jobs = batch.pending, batch.jobs


def _result(run: Prepared, packer: Packer, stats: Stats) -> EnrichResult:
    """A chunk's rows with their answers, and its failures."""
    failures = []
    rows: list[dict[str, Any]] = []
    found, results = run.found, packer.results
    for n, (row, key) in enumerate(zip(run.table, run.keys, strict=True)):
        if (entry := found.get(key) or results.get(key)) is not None:
            rows.append(row | entry.values if type(row) is dict else {**row, **entry.values})
        else:
            rows.append(dict(row))
            attempts = run.work[key].attempts if key in run.work else 0
            if stats.stopped and key not in packer.failures:
                stats.failed += 1  # never asked: the run stopped first
            reason = packer.failures.get(key) or _unanswered(stats)
            failures.append(Failure(run.ids[n], reason, attempts, {f: row[f] for f in packer.task.inputs}))
    return EnrichResult(rows, failures, stats, model=packer.task.model)


def _unanswered(stats: Stats) -> str:
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


@contextlib.contextmanager
def progress_bar(rows: object, enabled: bool) -> Iterator[Callable[[int, Stats], None] | None]:
    """An ``on_progress`` drawing a bar over ``rows`` on stderr (a widget in a notebook), or None."""
    if not enabled:
        yield None
        return
    total = len(rows) if isinstance(rows, Sized) else None
    bar = tqdm(total=total, unit="row", file=sys.stderr, dynamic_ncols=True)

    def update(done: int, stats: Stats) -> None:
        bar.set_postfix(calls=stats.calls, failed=stats.failed, refresh=False)
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()


async def aenrich(
    rows: Rows,
    task: Task | str | Path,
    options: RunOptions | None = None,
    *,
    progress: bool = True,
    **given: Any,
) -> EnrichResult:
    """Enrich ``rows`` with the columns of ``task`` in one go (see ``enrich``)."""
    opts = options_of(options, given).replace(chunk_rows=None)
    task, given_rows = load_task(task), source(rows)  # a DataFrame in: result.frame out
    with progress_bar(rows, progress) as on_progress:
        [result] = [chunk async for chunk in aenrich_chunks(given_rows.rows, task, opts, on_progress=on_progress)]
    if result.stats.stopped:
        warnings.warn(f"enrichkit stopped early: {result.stats.stopped}", RuntimeWarning, stacklevel=2)
    if given_rows.frame is not None:
        result.frame = with_columns(given_rows.frame, result.rows, task.schema["properties"])
    return result


def run_sync(job: Coroutine[Any, Any, T]) -> T:
    """Run ``job`` to completion, also from inside a running event loop (e.g. Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(job)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, job).result()


def enrich(
    rows: Rows,
    task: Task | str | Path,
    options: RunOptions | None = None,
    *,
    progress: bool = True,
    **given: Any,
) -> EnrichResult:
    """Enrich ``rows`` (dicts, or a pandas or polars DataFrame or a pyarrow Table) with the columns ``task``
    describes.

    Cached rows cost nothing; the rest travel in packs of up to ``pack_size`` rows per call. The
    options are ``RunOptions``' fields (as an object, or as keyword arguments): e.g. ``client=`` a
    ready ``google.genai.Client``, ``provider=`` a provider or its name (default: Gemini when
    GEMINI_API_KEY / GOOGLE_API_KEY is set, else the embedded local model), ``fallback=`` models or
    providers for the rows the main model could not answer. Returns the rows in input order with the
    new fields (absent for failed rows), the failures with their last reason, and the run's figures;
    for a frame also ``result.frame``: the same kind of frame, its columns and order kept, the new
    columns added (null for failed rows); ``result.models``, pydantic instances, when the task's output
    is a model. A progress bar is drawn on stderr unless ``progress=False``.
    """
    return run_sync(aenrich(rows, task, options, progress=progress, **given))
