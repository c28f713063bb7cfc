"""A whole enrich job as the CLI runs it: rows in, output file, failures file, report and receipt out."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from enrichkit.api import Mode, aenrich, aplan
from enrichkit.batch import POLL_SECONDS
from enrichkit.cache import default_dir
from enrichkit.errors import UserError
from enrichkit.files import check_output, columns_of, write_json, write_jsonl, write_rows
from enrichkit.providers.choose import ProviderName, choose_provider
from enrichkit.receipt import plan_report, plan_text, run_report, run_text
from enrichkit.result import EnrichResult, Stats
from enrichkit.task import Task

INTERRUPTED = 130


@dataclass(frozen=True)
class JobOptions:
    """Every option of an enrich run (the CLI's flags)."""

    provider: ProviderName | None = None
    model: str | None = None
    fallback: tuple[str, ...] = ()
    batch_size: int = 20
    concurrency: int | None = None
    rpm: int | None = None
    echo: bool | None = None
    tpm: int | None = None
    timeout: float | None = None
    cache_dir: Path | None = None
    use_cache: bool = True
    base_url: str | None = None
    model_path: Path | None = None
    limit: int | None = None
    report: Path | None = None
    failures: Path | None = None
    dry_run: bool = False
    quiet: bool = False
    mode: Mode = "live"
    wait: bool = True
    realtime_fallback: bool = False
    poll: float = POLL_SECONDS
    audit: float = 0.0
    adaptive: bool = False


@dataclass
class _Progress:
    """A tqdm bar over rows; keeps the latest stats so an interrupted run can still print a receipt."""

    total: int
    quiet: bool
    stats: Stats = field(default_factory=Stats)
    bar: tqdm[Any] | None = None

    def __call__(self, done: int, stats: Stats) -> None:
        self.stats = stats
        if self.bar is None:
            self.bar = tqdm(total=self.total, unit="row", disable=self.quiet, file=sys.stderr, dynamic_ncols=True)
        self.bar.set_postfix(calls=stats.calls, failed=stats.failed, refresh=False)
        self.bar.update(done - self.bar.n)  # redraws at most every 0.1 s

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def say(text: str, quiet: bool = False) -> None:
    if not quiet:
        print(text, file=sys.stderr)


def _check_paths(output: Path, options: JobOptions) -> None:
    check_output(output)
    for extra in (options.report, options.failures):
        if extra is not None and not extra.parent.is_dir():
            raise UserError(f"{extra}: directory {str(extra.parent)!r} does not exist")


def write_plain(rows: Sequence[dict[str, Any]], output: Path, quiet: bool) -> int:
    """Scrape without enrichment: the rows as they are."""
    check_output(output)
    write_rows(output, rows, columns_of(rows))
    say(f"wrote {len(rows):,} rows to {output}", quiet)
    return 0


def run_job(rows: Sequence[dict[str, Any]], task_path: Path, output: Path, options: JobOptions) -> int:
    """Enrich ``rows`` with the task at ``task_path`` into ``output``; the exit code (0 ok, 1 some failed)."""
    task = Task.from_file(task_path)
    _check_paths(output, options)
    if options.limit is not None:
        rows = rows[: options.limit]
    cache_dir = options.cache_dir or default_dir()
    choice = choose_provider(
        options.provider,
        model=options.model,
        base_url=options.base_url,
        model_path=options.model_path,
        cache_dir=cache_dir,
    )
    provider = choice.provider
    where = f"cache: {cache_dir}" if options.use_cache else "no cache"
    say(f"enrichkit: {len(rows):,} rows · {provider.name} / {provider.model} ({choice.why}) · {where}", options.quiet)
    common: dict[str, Any] = {
        "provider": provider,
        "batch_size": options.batch_size,
        "echo": options.echo,
        "cache_dir": cache_dir,
        "use_cache": options.use_cache,
    }
    if options.dry_run:
        plan = asyncio.run(aplan(rows, task, **common))
        report = plan_report(plan)
        _write_report(options.report, report)
        print(plan_text(report), file=sys.stderr)
        return 0
    progress = _Progress(len(rows), options.quiet)
    try:
        result = asyncio.run(
            aenrich(
                rows,
                task,
                fallback=options.fallback,
                concurrency=options.concurrency,
                rpm=options.rpm,
                tpm=options.tpm,
                timeout=options.timeout,
                on_progress=progress,
                mode=options.mode,
                wait=options.wait,
                realtime_fallback=options.realtime_fallback,
                poll=options.poll,
                audit=options.audit,
                adaptive=options.adaptive,
                **common,
            )
        )
    except KeyboardInterrupt:
        progress.close()
        report = run_report(progress.stats, provider.name, provider.model, interrupted=True)
        _write_report(options.report, report)
        print(
            run_text(report) + "\nno output written; every validated row is cached: re-run to resume", file=sys.stderr
        )
        return INTERRUPTED
    finally:
        progress.close()
    return _finish(result, task, output, options, provider.name, provider.model)


def _finish(result: EnrichResult, task: Task, output: Path, options: JobOptions, provider: str, model: str) -> int:
    if result.stats.pending:
        report = run_report(result.stats, provider, model)
        _write_report(options.report, report)
        say(run_text(report), options.quiet)
        say(
            f"{result.stats.pending:,} rows wait in batch job {', '.join(result.stats.jobs)}: no output written yet;"
            " run the same command again to collect them (`enrichkit jobs list` shows their state)",
            options.quiet,
        )
        return 0
    write_rows(output, result.rows, columns_of(result.rows, task.fields))
    if options.failures is not None:
        write_jsonl(
            options.failures,
            [
                {"id": f.row_id, "input": dict(f.inputs), "error": f.reason, "attempts": f.attempts}
                for f in result.failures
            ],
        )
    report = run_report(result.stats, provider, model)
    _write_report(options.report, report)
    say(run_text(report), options.quiet)
    say(
        f"output: {output}" + (f" · failures: {options.failures}" if result.failures and options.failures else ""),
        options.quiet,
    )
    return 1 if result.failures else 0


def _write_report(path: Path | None, report: dict[str, Any]) -> None:
    if path is not None:
        write_json(path, report)
