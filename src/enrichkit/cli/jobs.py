"""``enrichkit jobs``: the batch jobs a cache directory waits for (each command imports the engine when it runs:
``enrichkit --help`` stays quick)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from enrichkit.cli.common import BASE_URL, CACHE, CACHE_DIR, guarded, quiet_verbose
from enrichkit.options import POLL_SECONDS, RunOptions

if TYPE_CHECKING:
    from enrichkit.engine.jobs import JobLine


@click.group()
def jobs() -> None:
    """Batch jobs this cache directory waits for (from --mode batch)."""


def _job_line(line: JobLine) -> str:
    m = line.manifest
    state = line.status.state if line.status else "not created (the run was killed while submitting)"
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(m.created))
    return f"{m.name or m.display_name}  {state}  {m.rows:,} rows in {len(m.packs):,} requests  {m.model}  {when}"


def _options(cache_dir: Path | None, base_url: str | None, cache: str | None = None, **more: Any) -> RunOptions:
    return RunOptions(cache_dir=cache_dir, base_url=base_url, cache=cache, **more)


@jobs.command("list")
@CACHE_DIR
@BASE_URL
@quiet_verbose
@guarded
def jobs_list(cache_dir: Path | None, base_url: str | None, **_: Any) -> int:
    """Every job with its state (asks the provider)."""
    from enrichkit.engine.jobs import list_jobs

    lines = list_jobs(_options(cache_dir, base_url))
    for line in lines:
        click.echo(_job_line(line))
    if not lines:
        click.echo("no batch jobs")
    return 0


@jobs.command("status")
@click.argument("name")
@CACHE_DIR
@BASE_URL
@quiet_verbose
@guarded
def jobs_status(name: str, cache_dir: Path | None, base_url: str | None, **_: Any) -> int:
    """The state of job NAME (batches/... or its display name)."""
    from enrichkit.engine.jobs import job_status

    click.echo(_job_line(job_status(_options(cache_dir, base_url), name)))
    return 0


@jobs.command("collect")
@click.argument("name")
@click.option("--wait", is_flag=True, help="Wait for the job to finish.")
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0),
    default=POLL_SECONDS,
    show_default=True,
    help="With --wait: the most seconds between looks (the first comes after a second).",
)
@CACHE_DIR
@CACHE
@BASE_URL
@quiet_verbose
@guarded
def jobs_collect(
    name: str,
    wait: bool,
    poll_interval: float,
    cache_dir: Path | None,
    cache: str | None,
    base_url: str | None,
    **_: Any,
) -> int:
    """Check and cache the answers of job NAME; the next run then writes its output from the cache."""
    from enrichkit.engine.jobs import collect_job

    got = collect_job(_options(cache_dir, base_url, cache, poll=poll_interval), name, wait=wait)
    if not got.status.done:
        click.echo(f"{got.status.name} is {got.status.state}: nothing to collect yet")
        return 0
    click.echo(f"{got.status.name} {got.status.state}: {got.valid:,} of {got.rows:,} rows valid and cached")
    return 0


@jobs.command("cancel")
@click.argument("name")
@CACHE_DIR
@BASE_URL
@quiet_verbose
@guarded
def jobs_cancel(name: str, cache_dir: Path | None, base_url: str | None, **_: Any) -> int:
    """Cancel job NAME and forget it (the next run submits its rows again)."""
    from enrichkit.engine.jobs import cancel_job

    manifest = cancel_job(_options(cache_dir, base_url), name)
    click.echo(f"cancelled {manifest.name or manifest.display_name} ({manifest.rows:,} rows)")
    return 0
