"""``enrichkit run`` and ``enrichkit scrape``: the commands that enrich rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from enrichkit.api import AUTO_BATCH_ROWS, MAX_BATCH_SIZE, MODES
from enrichkit.audit import check_fraction
from enrichkit.batch import POLL_SECONDS
from enrichkit.cli.common import F, guarded, quiet_verbose
from enrichkit.files import iter_rows
from enrichkit.providers.choose import PROVIDERS
from enrichkit.runner import JobOptions, run_job, write_plain
from enrichkit.scrape.records import csv_records, json_records
from enrichkit.scrape.roadmap import scrape_roadmap


def _enrich_options(command: F) -> F:
    """The options every enrich run takes."""
    options = [
        click.option(
            "--provider", type=click.Choice(PROVIDERS), help="Default: gemini if an API key is set, else local."
        ),
        click.option("--model", help="Model name (default: gemini-3.1-flash-lite, or the embedded local model)."),
        click.option(
            "--model-path", type=click.Path(path_type=Path, dir_okay=False), help="A GGUF file for --provider local."
        ),
        click.option(
            "--fallback-model",
            "fallback",
            multiple=True,
            help="Model for rows the main one could not answer; repeatable, cheapest first.",
        ),
        click.option(
            "--batch-size", type=int, default=20, show_default=True, help=f"Rows per call (1-{MAX_BATCH_SIZE})."
        ),
        click.option(
            "--adaptive",
            is_flag=True,
            help="Halve the rows per call while packed answers come back invalid, double them back when clean.",
        ),
        click.option(
            "--audit",
            type=float,
            default=0.0,
            metavar="FRACTION",
            help="Re-ask this share (0-1) of the rows answered in packs one at a time, and report how the"
            " answers agree (costs a call a row; never cached).",
        ),
        click.option("--concurrency", type=click.IntRange(min=1), help="Calls in flight at once."),
        click.option(
            "--rpm",
            type=click.IntRange(min=1),
            help="Client-side limit: requests a minute (default none: the server's 429s are honoured).",
        ),
        click.option("--tpm", type=click.IntRange(min=1), help="Client-side limit: prompt tokens a minute."),
        click.option(
            "--echo/--no-echo",
            default=None,
            help="Packed answers copy their row's first words, so answers given to the wrong row are caught"
            " (default: off; costs about 9 output tokens a row).",
        ),
        click.option("--timeout", type=click.FloatRange(min=1), help="Seconds before a call is given up and retried."),
        click.option(
            "--cache-dir",
            type=click.Path(path_type=Path, file_okay=False),
            envvar="ENRICHKIT_CACHE_DIR",
            help="Default ./cache.",
        ),
        click.option("--no-cache", is_flag=True, help="Neither read nor write the cache."),
        click.option(
            "--base-url",
            envvar="ENRICHKIT_BASE_URL",
            help="API endpoint (a proxy, a test server, an OpenAI-compatible server).",
        ),
        click.option("--limit", type=click.IntRange(min=1), help="Only the first N rows."),
        click.option(
            "--report", type=click.Path(path_type=Path, dir_okay=False), help="Write the receipt as JSON here."
        ),
        click.option(
            "--failures", type=click.Path(path_type=Path, dir_okay=False), help="Write failed rows as JSONL here."
        ),
        click.option("--dry-run", is_flag=True, help="Show cache hits, calls, tokens and price; send nothing."),
        click.option(
            "--mode",
            type=click.Choice(MODES),
            default="live",
            show_default=True,
            help="live: answers now; flex: Gemini Flex tier, about half price, slower; batch: one Gemini batch"
            f" job, half price, resumable; auto: batch from {AUTO_BATCH_ROWS:,} rows to send, else live.",
        ),
        click.option("--no-wait", is_flag=True, help="Batch mode: submit the job and exit; re-run to collect."),
        click.option(
            "--realtime-fallback",
            is_flag=True,
            help="Batch mode: ask the rows a job failed live (default: in a further batch job).",
        ),
        click.option(
            "--poll-interval",
            type=click.FloatRange(min=0),
            default=POLL_SECONDS,
            show_default=True,
            help="Batch mode: seconds between the first looks at a job (growing to 5 minutes).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return quiet_verbose(command)


def _job(kwargs: dict[str, Any]) -> JobOptions:
    if not 1 <= kwargs["batch_size"] <= MAX_BATCH_SIZE:
        raise click.BadParameter(
            f"must be between 1 and {MAX_BATCH_SIZE}, not {kwargs['batch_size']}", param_hint="--batch-size"
        )
    check_fraction(kwargs["audit"])
    return JobOptions(
        provider=kwargs["provider"],
        model=kwargs["model"],
        fallback=tuple(kwargs["fallback"]),
        batch_size=kwargs["batch_size"],
        concurrency=kwargs["concurrency"],
        rpm=kwargs["rpm"],
        echo=kwargs["echo"],
        tpm=kwargs["tpm"],
        timeout=kwargs["timeout"],
        cache_dir=kwargs["cache_dir"],
        use_cache=not kwargs["no_cache"],
        base_url=kwargs["base_url"],
        model_path=kwargs["model_path"],
        limit=kwargs["limit"],
        report=kwargs["report"],
        failures=kwargs["failures"],
        dry_run=kwargs["dry_run"],
        quiet=kwargs["quiet"],
        mode=kwargs["mode"],
        wait=not kwargs["no_wait"],
        realtime_fallback=kwargs["realtime_fallback"],
        poll=kwargs["poll_interval"],
        audit=kwargs["audit"],
        adaptive=kwargs["adaptive"],
    )


def _scraped(rows: list[dict[str, Any]], output: Path, task: Path | None, kwargs: dict[str, Any]) -> int:
    if task is None:
        return write_plain(rows, output, kwargs["quiet"])
    return run_job(rows, task, output, _job(kwargs))


OUTPUT = click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help=".jsonl, .json, .csv or .parquet",
)
ENRICH = click.option(
    "--enrich",
    "task",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Task file: enrich the scraped rows in the same run.",
)


@click.command()
@click.argument("input_path", metavar="INPUT")
@click.option(
    "-t", "--task", required=True, type=click.Path(path_type=Path, dir_okay=False), help="Task file (see schemas/)."
)
@OUTPUT
@_enrich_options
@guarded
def run(input_path: str, task: Path, output: Path, **kwargs: Any) -> int:
    """Enrich INPUT (.jsonl, .json, .csv, or - for JSONL on stdin) into OUTPUT."""
    options = _job(kwargs)
    return run_job(iter_rows(input_path), task, output, options)


@click.group()
def scrape() -> None:
    """Turn a source into rows (and, with --enrich, enrich them in the same run)."""


@scrape.command()
@click.argument("name")
@click.option(
    "--from",
    "source",
    type=click.Path(path_type=Path, file_okay=False),
    help="A local roadmap folder (default: fetch from GitHub).",
)
@OUTPUT
@ENRICH
@_enrich_options
@guarded
def roadmap(name: str, source: Path | None, output: Path, task: Path | None, **kwargs: Any) -> int:
    """A roadmap.sh roadmap NAME (e.g. engineering-manager): one row per topic, keyed by node id."""
    _job(kwargs)
    return _scraped(scrape_roadmap(name, source), output, task, kwargs)


@scrape.command("json")
@click.argument("source")
@click.option("--records", default="", help="JSON pointer (/data/items) or dotted path (data.items) of the array.")
@OUTPUT
@ENRICH
@_enrich_options
@guarded
def json_command(source: str, records: str, output: Path, task: Path | None, **kwargs: Any) -> int:
    """Rows from the array at --records in the JSON document SOURCE (a file or an http(s) URL)."""
    _job(kwargs)
    return _scraped(json_records(source, records), output, task, kwargs)


@scrape.command("csv")
@click.argument("source")
@OUTPUT
@ENRICH
@_enrich_options
@guarded
def csv_command(source: str, output: Path, task: Path | None, **kwargs: Any) -> int:
    """Rows from the CSV file SOURCE (a file or an http(s) URL)."""
    _job(kwargs)
    return _scraped(csv_records(source), output, task, kwargs)
