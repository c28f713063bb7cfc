"""A whole enrich job as the CLI runs it: rows in, output file, failures file, report and receipt out."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import sys
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable, Sequence
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from enrichkit.cache.folder import default_dir
from enrichkit.cache.journal import Journal, journal_path
from enrichkit.calls.prices import run_cost
from enrichkit.cli import collector
from enrichkit.cli.flags import CliOptions
from enrichkit.engine.chunks import local_models, run_chunks
from enrichkit.engine.context import RunContext
from enrichkit.engine.dry_run import dry_run, first_prompt
from enrichkit.engine.interrupt import Interrupt
from enrichkit.engine.recorded import history_folder, recorded
from enrichkit.errors import UserError
from enrichkit.history.runs import RunHistory
from enrichkit.options import RunOptions
from enrichkit.output import sweep
from enrichkit.output.files import check_output, columns_of, jsonl_writer, row_writer, write_json, write_rows
from enrichkit.output.receipt import (
    count_reasons,
    dry_run_report,
    dry_run_text,
    failures_report,
    failures_text,
    run_report,
    run_text,
)
from enrichkit.output.stdio import is_stdout, preview_text, shown, terminal_width
from enrichkit.output.sweep import Swept
from enrichkit.providers.redact import redacted_url
from enrichkit.result import EnrichResult, Failure, Stats, counted
from enrichkit.rows.precheck import check_input
from enrichkit.task.task import Task

if TYPE_CHECKING:
    from tqdm import tqdm

Write = Callable[[Sequence[dict[str, Any]]], None]
T = TypeVar("T")

STOPPED = 3  # a fatal error or the budget stopped the run: output and failures hold what settled

INTERRUPTED = 130


@dataclass
class _Progress:
    """A tqdm bar over rows; keeps the latest stats so an interrupted run can still print a receipt."""

    total: int | None
    quiet: bool
    stats: Stats = field(default_factory=Stats)
    bar: tqdm[Any] | None = None
    shown: tuple[int, int] = (-1, -1)  # the calls and failures the bar says
    waiting: str = ""

    def __call__(self, done: int, stats: Stats) -> None:
        self.stats = stats
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm  # here: a quiet run does not load it

            self.bar = tqdm(total=self.total, unit="row", file=sys.stderr, dynamic_ncols=True)
        if (counts := (stats.calls, stats.failed)) != self.shown:  # called for every row: set what changed
            self.shown = counts
            self.bar.set_postfix(calls=stats.calls, failed=stats.failed, refresh=False)
        if stats.waiting != self.waiting:  # batch mode: the jobs waited for, as the bar's description
            self.waiting = stats.waiting
            self.bar.set_description_str(stats.waiting, refresh=True)
        self.bar.update(done - self.bar.n)  # redraws at most every 0.1 s

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def say(text: str, quiet: bool = False) -> None:
    if not quiet:
        print(text, file=sys.stderr)


def _check_paths(output: Path, cli: CliOptions) -> None:
    check_output(output)
    for extra in (cli.report, cli.failures):
        if extra is not None and not extra.parent.is_dir():
            raise UserError(f"{extra}: directory {str(extra.parent)!r} does not exist")


def write_plain(rows: Sequence[dict[str, Any]], output: Path, quiet: bool) -> int:
    """Scrape without enrichment: the rows as they are."""
    check_output(output)
    write_rows(output, rows, columns_of(rows))
    say(f"wrote {counted(len(rows), 'row')} to {shown(output)}", quiet)
    return 0


def run_job(rows: Iterable[dict[str, Any]], task_path: Path, output: Path, options: RunOptions, cli: CliOptions) -> int:
    """Enrich ``rows`` with the task at ``task_path`` into ``output``; the exit code (0 ok, 1 some failed).

    ``rows`` may be an iterator (``rows.files.iter_rows``): live and flex runs read, enrich and write it
    ``chunk_rows`` rows at a time, into a temp file renamed over ``output`` at the end.
    """
    task = Task.from_file(task_path)
    _check_paths(output, cli)
    if cli.limit is not None:
        rows = rows[: cli.limit] if isinstance(rows, Sequence) else itertools.islice(rows, cli.limit)
    options = options.replace(cache_dir=options.cache_dir or default_dir())
    context = RunContext.open(task, options)
    collector.started()
    try:
        _journal(context, output, cli.quiet)
        return _run(context, rows, output, cli)
    finally:
        if not context.closed:  # a user error before the run's event loop closed it
            asyncio.run(context.aclose())


def _journal(context: RunContext, output: Path, quiet: bool) -> None:
    """Answers an earlier run into ``output`` could not cache, stored now; later ones go to the same journal."""
    if context.cache is None or is_stdout(output):
        return
    context.journal = Journal(journal_path(output))
    if stored := context.journal.replay(context.cache):
        say(f"enrichkit: cached {stored:,} answers an earlier run kept in {context.journal.path}", quiet)


def _run(context: RunContext, rows: Iterable[dict[str, Any]], output: Path, cli: CliOptions) -> int:
    options, provider = context.options, context.provider
    where = f"cache: {redacted_url(options.cache or str(options.cache_dir))}" if options.use_cache else "no cache"
    count = len(rows) if isinstance(rows, Sequence) else cli.total
    if count is not None and cli.limit is not None:
        count = min(count, cli.limit)
    head = f"{counted(count, 'row')} · " if count is not None else ""
    say(f"enrichkit: {head}{provider.name} / {provider.model} ({context.why}) · {where}", cli.quiet)
    if cli.dry_run:
        return _within(context, _dry_run(context, list(rows) if cli.show_prompt else rows, cli))
    progress = _Progress(count, cli.quiet)
    started = time.perf_counter()
    earlier = _written_at(output)
    failures = cli.failures or (None if is_stdout(output) else default_failures(output))
    reasons: Counter[str] = Counter()
    try:
        first: list[dict[str, Any]] = []
        with _swept(context, output, cli) as swept:
            opened: Callable[[list[str]], ContextManager[Write]] | None = None  # None: ``row_writer``
            interrupt = Interrupt()
            if swept is None:
                _check_input(context, cli)
                chunks = recorded(context, run_chunks(context, rows, on_progress=progress, interrupt=interrupt))
            else:
                chunks, opened = _after_sweep(context, swept, progress, interrupt)
            written = write_chunks(
                chunks,
                context.task,
                output,
                failures,
                reasons=reasons,
                first=(first, cli.preview),
                opened=opened,
            )
            stats = _within(context, _interruptible(interrupt, written))
        stats.seconds = time.perf_counter() - started
    except KeyboardInterrupt:
        progress.close()
        progress.stats.seconds = time.perf_counter() - started
        progress.stats.est_cost = run_cost(progress.stats, local_models(context.models))
        report = run_report(progress.stats, provider.name, provider.model, interrupted=True)
        _write_report(cli.report, report)
        wrote = _written_at(output) not in (None, earlier)  # a first Ctrl-C's stop wrote it before this one
        where = f"output: {shown(output)}" if wrote else "no output written"
        print(f"{run_text(report)}\n{where}; every validated row is cached: re-run to resume", file=sys.stderr)
        return INTERRUPTED
    finally:
        progress.close()
    if failures is not None and not stats.failed and not stats.pending:
        failures.unlink(missing_ok=True)  # an earlier run's failures: none are left
    code = _finish(stats, output, dataclasses.replace(cli, failures=failures), provider.name, provider.model, reasons)
    _note_output(context, output, stats)
    if context.journal is not None and context.journal.path.is_file():
        say(f"answers the cache could not take are kept in {context.journal.path}: the next run stores them", cli.quiet)
    if first:
        width = terminal_width() if cli.preview_width is None else cli.preview_width
        say(preview_text(first, context.task, width), cli.quiet)
    return code


def _note_output(context: RunContext, output: Path, stats: Stats) -> None:
    """The output file the run wrote, in its line of the run history."""
    folder = history_folder(context.options)
    if folder is not None and not stats.pending and not is_stdout(output):
        RunHistory(folder).note_output(context.run_id, output)


def _written_at(output: Path) -> int | None:
    """When ``output`` was last written (None: it is not a file there is)."""
    if is_stdout(output):
        return None
    with contextlib.suppress(OSError):
        return output.stat().st_mtime_ns
    return None


def _within(context: RunContext, job: Coroutine[Any, Any, T]) -> T:
    """Run ``job`` in an event loop of its own, then close the run's context in it."""

    async def closing() -> T:
        try:
            return await job
        finally:
            await context.aclose()

    return asyncio.run(closing())


async def _dry_run(context: RunContext, rows: Iterable[dict[str, Any]], cli: CliOptions) -> int:
    if cli.show_prompt:
        print(await first_prompt(context, rows) or "nothing to send: every row is a cache hit")
    report = dry_run_report(await dry_run(context, rows))
    _write_report(cli.report, report)
    print(dry_run_text(report), file=sys.stderr)
    return 0


async def _interruptible(interrupt: Interrupt, job: Coroutine[Any, Any, T]) -> T:
    """``job`` with ``interrupt`` as the SIGINT handler: a first Ctrl-C in a live run stops it cleanly."""
    with interrupt.installed():
        return await job


def _swept(context: RunContext, output: Path, cli: CliOptions) -> ContextManager[Swept | None]:
    """The input swept by several processes, where it is a big JSONL file of a live or flex run with the
    local cache, nothing but the output asked (no --limit, --preview, confidence, escalation or known
    answers: the sweep writes cached answers as they are) (else None: the usual way)."""
    options, source = context.options, cli.source
    if (
        source is None
        or options.mode not in ("live", "flex")
        or not options.use_cache
        or options.cache is not None
        or cli.limit is not None
        or cli.preview
        or context.shows_confidence
        or options.escalate is not None
        or options.check_against
        or is_stdout(output)
        or not sweep.eligible(source, output)
        or (columns := sweep.columns(source, context.task)) is None
        or context.reviewing is not None  # the sweep reads the cache alone: reviewed values go the usual way
        or context.task.media  # its keys need the media read: the usual way reads them once
    ):
        return contextlib.nullcontext()
    assert options.cache_dir is not None
    return sweep.sweep(sweep.Run(source, output, context.task, context.fingerprint, options.cache_dir, columns))


def _check_input(context: RunContext, cli: CliOptions) -> None:
    """The input file checked whole before the first paid call (a swept file was, by its sweep; stdin is
    read as it comes)."""
    if cli.source is not None and cli.reread is not None:
        check_input(cli.source, cli.reread(), context.task, cli.limit)


def _after_sweep(
    context: RunContext, swept: Swept, progress: Callable[[int, Stats], None], interrupt: Interrupt
) -> tuple[AsyncGenerator[EnrichResult, None], Callable[[list[str]], ContextManager[Write]]]:
    """The swept file's misses enriched (their output rows written between the parts' by ``sweep.joined``)."""
    counted = Stats(rows=swept.hits, cache_hits=swept.hits)
    progress(swept.hits, counted)
    chunks = run_chunks(
        context,
        swept.misses,
        on_progress=lambda done, stats: progress(swept.hits + done, stats),
        numbers=iter(swept.numbers),
        stats=counted,
        whole=not swept.misses,  # one result, even an empty one
        interrupt=interrupt,
    )
    return recorded(context, chunks, keep=False), lambda columns: sweep.joined(swept)


def default_failures(output: Path) -> Path:
    """Where failed rows go when no --failures was given: ``<output stem>-failures.jsonl`` beside the output."""
    return output.with_name(f"{output.stem}-failures.jsonl")


async def write_chunks(
    chunks: AsyncGenerator[EnrichResult, None],
    task: Task,
    output: Path,
    failures: Path | None,
    *,
    reasons: Counter[str] | None = None,
    first: tuple[list[dict[str, Any]], int] = ([], 0),
    opened: Callable[[list[str]], ContextManager[Write]] | None = None,
) -> Stats:
    """Write each chunk's rows (and failures) as it comes; nothing at all while rows wait in a batch job.

    ``failures`` is written only once a row failed (none is written when no row failed); ``reasons``
    counts the failures by kind (``receipt.reason_kind``); ``first`` (a list, n) keeps the first n rows written;
    ``opened(columns)`` opens the writer of the rows (default: ``row_writer`` of ``output``)."""
    stats = Stats()
    with contextlib.ExitStack() as files:
        write: Write | None = None
        write_failures: Callable[[Iterable[dict[str, Any]]], None] | None = None
        async with contextlib.aclosing(chunks):
            async for result in chunks:
                stats = result.stats
                if stats.pending:
                    return stats
                if write is None:
                    columns = columns_of(result.rows, task.fields)
                    write = files.enter_context(opened(columns) if opened else row_writer(output, columns))
                if write_failures is None and failures is not None and result.failures:
                    write_failures = files.enter_context(jsonl_writer(failures))
                if reasons is not None:
                    reasons.update(count_reasons(f.reason for f in result.failures))
                write(result.rows)
                kept, wanted = first
                kept.extend(result.rows[: max(0, wanted - len(kept))])
                if write_failures is not None:
                    write_failures(failure_record(f, task) for f in result.failures)
        if write is None:  # no rows at all
            write_rows(output, [], task.fields)
    return stats


def failure_record(failure: Failure, task: Task) -> dict[str, Any]:
    """A line of the failures file: the row's id (its ``id_field``'s value) or, without an id field, its
    number in the input (from 1); its inputs, the last reason it failed and the attempts."""
    named = {"id": failure.row_id} if task.id_field else {"row": failure.row_id + 1}
    return named | {"input": dict(failure.inputs), "error": failure.reason, "attempts": failure.attempts}


def _finish(stats: Stats, output: Path, cli: CliOptions, provider: str, model: str, reasons: Counter[str]) -> int:
    report = run_report(stats, provider, model)
    report.update(failures_report(reasons, cli.failures if reasons else None))
    _write_report(cli.report, report)
    say(run_text(report), cli.quiet and not stats.interrupted)  # -q: an interrupted run still says so
    if reasons:
        say(failures_text(report), cli.quiet)
    if stats.interrupted:
        failed = f" · failures: {cli.failures}" if cli.failures else ""
        say(f"output: {output}{failed}; every validated row is cached: re-run to ask the rest")
        return INTERRUPTED
    if stats.stopped and cli.quiet:
        say(f"stopped: {stats.stopped}")  # the one line -q still prints
    if stats.pending:
        say(
            f"{stats.pending:,} rows wait in batch job {', '.join(stats.jobs)}: no output written yet;"
            " run the same command again to collect them (`enrichkit jobs list` shows their state)",
            cli.quiet,
        )
        return 0
    failed = f" · failures: {cli.failures}" if stats.failed and cli.failures else ""
    say(f"output: {shown(output)}{failed}", cli.quiet)
    if stats.stopped:
        return STOPPED
    return 1 if stats.failed else 0


def _write_report(path: Path | None, report: dict[str, Any]) -> None:
    if path is not None:
        write_json(path, report)
