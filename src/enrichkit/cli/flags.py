"""The flags every enrich command takes (``run``, ``scrape`` and scraper plugins), and how they become a
``RunOptions`` and the command line's own ``CliOptions``."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from enrichkit.cli.common import BASE_URL, CACHE, CACHE_DIR, MODEL, F, quiet_verbose
from enrichkit.errors import UserError
from enrichkit.options import (
    AUTO_BATCH_ROWS,
    MAX_MEDIA_MB,
    MAX_PACK_SIZE,
    MODES,
    POLL_SECONDS,
    STRAGGLERS,
    Escalate,
    RunOptions,
)
from enrichkit.providers import PROVIDERS

if TYPE_CHECKING:
    from enrichkit.rows.files import CsvFormat


@dataclass(frozen=True)
class CliOptions:
    """What only the command line has: where the receipt and failures go, ``--limit``, ``--dry-run``, ``-q``."""

    report: Path | None = None
    failures: Path | None = None
    limit: int | None = None
    dry_run: bool = False
    quiet: bool = False
    total: int | None = None  # the input's rows, when counted up front (for the progress bar)
    show_prompt: bool = False
    preview: int = 0  # rows of the output shown after the receipt
    preview_width: int | None = None  # the preview's width in characters (None: the terminal's; 0: no limit)
    source: Path | None = None  # the input file the rows come from (a big JSONL file may be ``sweep``-ed)
    reread: Callable[[], Iterator[dict[str, Any]]] | None = None  # a second reader of ``source``: its check


PROVIDER = click.option(
    "--provider", type=click.Choice(PROVIDERS), help="Default: gemini if an API key is set, else local."
)
MODEL_PATH = click.option(
    "--model-path", type=click.Path(path_type=Path, dir_okay=False), help="A GGUF file for --provider local."
)
PACK_SIZE = click.option(
    "--pack-size", type=int, default=20, show_default=True, help=f"Rows per call (1-{MAX_PACK_SIZE})."
)
ECHO = click.option(
    "--echo/--no-echo",
    default=None,
    help="Packed answers copy a few words of their row, so answers given to the wrong row are caught. Default:"
    " free text is checked against its row at no cost, and the echo is added only where answers may be too"
    " short to carry their row's words (no text field limited to more than 3 words). --no-echo turns both off.",
)
KEYED = [PROVIDER, MODEL, MODEL_PATH, PACK_SIZE, ECHO, BASE_URL]
"""The options that make a run's cache keys (``engine.context.run_fingerprint``), besides the task."""


_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """Seconds, from ``90``, ``90s``, ``30m``, ``2h`` or ``1d`` (None stays None)."""
    if value is None:
        return None
    text = value.strip().lower()
    number = text.rstrip("smhd")
    try:
        seconds = float(number) * _UNITS[text[len(number) :]]
    except (ValueError, KeyError):
        raise click.BadParameter(f"{value!r} is not a duration (e.g. 90s, 30m, 2h)") from None
    if seconds <= 0:
        raise click.BadParameter(f"{value!r} is not a positive duration")
    return seconds


def enrich_options(command: F) -> F:
    """The options every enrich run takes."""
    options = [
        PROVIDER,
        MODEL,
        MODEL_PATH,
        click.option(
            "--fallback-model",
            "fallback",
            multiple=True,
            help="Model for rows the main one could not answer; repeatable, cheapest first.",
        ),
        PACK_SIZE,
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
        click.option(
            "--confidence/--no-confidence",
            default=None,
            help="Add _confidence (the probability the model gave its least sure closed answer: enum, boolean,"
            " small integer) and _flags (repaired, fallback, crosswire, audit, escalated) to the rows. Default:"
            " where the model gives token log-probabilities, which cost nothing; --no-confidence never asks them.",
        ),
        click.option(
            "--escalate-below",
            type=float,
            metavar="P",
            help="After the main pass, ask the rows whose confidence is below P (0 < P <= 1) again, packed, on"
            " --escalate-model; its answers are kept and cached.",
        ),
        click.option(
            "--escalate-model",
            metavar="[PROVIDER:]MODEL",
            help="The stronger model --escalate-below asks (e.g. gemini:gemini-3.1-flash-lite).",
        ),
        click.option(
            "--check-against",
            metavar="FIELD=COLUMN[,...]",
            help="The rows already hold the right answer of FIELD in COLUMN (never sent): the receipt gives the"
            " answers' accuracy, overall and by confidence band.",
        ),
        click.option("--concurrency", type=click.IntRange(min=1), help="Calls in flight at once."),
        click.option(
            "--max-media-mb",
            type=click.FloatRange(min=0, min_open=True),
            default=MAX_MEDIA_MB,
            show_default=True,
            metavar="MB",
            help="A media input's image or PDF bigger than this fails its row (files, and URLs as they download).",
        ),
        click.option(
            "--max-cost",
            type=click.FloatRange(min=0, min_open=True),
            metavar="USD",
            help="Spend at most this many US$ (at prices.json's rates): a run stops cleanly before a call that"
            " could cross it (a batch run estimated above it is refused).",
        ),
        click.option(
            "--rpm",
            type=click.IntRange(min=1),
            help="Client-side limit: requests a minute (default none: the server's 429s are honoured).",
        ),
        click.option("--tpm", type=click.IntRange(min=1), help="Client-side limit: prompt tokens a minute."),
        ECHO,
        click.option("--timeout", type=click.FloatRange(min=1), help="Seconds before a call is given up and retried."),
        CACHE_DIR,
        CACHE,
        click.option(
            "--no-cache", "use_cache", flag_value=False, default=True, help="Neither read nor write the cache."
        ),
        click.option(
            "--no-log", "log", flag_value=False, default=True, help="Do not log the calls (see `enrichkit logs`)."
        ),
        BASE_URL,
        click.option("--limit", type=click.IntRange(min=1), help="Only the first N rows."),
        click.option(
            "--report", type=click.Path(path_type=Path, dir_okay=False), help="Write the receipt as JSON here."
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the receipt as JSON on stdout."),
        click.option(
            "--failures",
            type=click.Path(path_type=Path, dir_okay=False),
            help="Write failed rows as JSONL here, once a row failed; a run where none failed removes an earlier"
            " run's file there (default: OUTPUT's name with -failures.jsonl).",
        ),
        click.option("--dry-run", is_flag=True, help="Show cache hits, calls, tokens and price; send nothing."),
        click.option(
            "--preview",
            type=click.IntRange(min=0),
            default=0,
            metavar="N",
            help="After the receipt, show the first N rows of the output (id and the new columns).",
        ),
        click.option(
            "--preview-width",
            type=click.IntRange(min=0),
            metavar="COLUMNS",
            help="Cut the preview's longest cells to fit this many characters a line (default: the terminal's"
            " width; 0, or stderr not a terminal: no cut).",
        ),
        click.option(
            "--show-prompt",
            is_flag=True,
            help="With --dry-run: print the system and user prompt and the answer schema of the first pack.",
        ),
        click.option(
            "--format",
            "output_format",
            type=click.Choice(["jsonl", "json", "csv"]),
            help="The format of -o - (default jsonl).",
        ),
        click.option(
            "--mode",
            type=click.Choice(MODES),
            default="live",
            show_default=True,
            help="live: answers now; flex: Gemini Flex tier, about half price, slower; batch: one provider batch"
            f" job, half price, resumable; auto: batch from {AUTO_BATCH_ROWS:,} rows to send, else live.",
        ),
        click.option(
            "--no-wait",
            "wait",
            flag_value=False,
            default=True,
            help="Batch mode: submit the job and exit; re-run to collect.",
        ),
        click.option(
            "--realtime-fallback/--no-realtime-fallback",
            default=None,
            help="Batch mode: ask every row a job failed live / never pay the live price (default: only"
            " stragglers and rows left at --batch-timeout go live; the rest go to a further batch job).",
        ),
        click.option(
            "--stragglers",
            type=click.Choice(STRAGGLERS),
            default="live",
            show_default=True,
            help="Batch mode: the few rows left after a round (at most 2% of the job and 100 rows) are"
            " finished live at the live price, sent in another batch round, or failed.",
        ),
        click.option(
            "--batch-timeout",
            callback=duration,
            metavar="DURATION",
            help="Batch mode: wait this long (90s, 30m, 2h), then cancel the jobs not finished, keep what they"
            " answered and finish the rest live (--no-realtime-fallback: leave them for `enrichkit jobs collect`).",
        ),
        click.option(
            "--poll-interval",
            "poll",
            type=click.FloatRange(min=0),
            default=POLL_SECONDS,
            show_default=True,
            help="Batch mode: the most seconds between looks at a job (the first look comes after a second).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return quiet_verbose(command)


_RUN = {f.name for f in dataclasses.fields(RunOptions)}
_CLI = {f.name for f in dataclasses.fields(CliOptions)}


def split_options(kwargs: dict[str, Any]) -> tuple[RunOptions, CliOptions]:
    """The run's options and the command line's own from the flags."""
    from enrichkit.output.stdio import stdout_output

    if not 1 <= kwargs["pack_size"] <= MAX_PACK_SIZE:
        raise click.BadParameter(
            f"must be between 1 and {MAX_PACK_SIZE}, not {kwargs['pack_size']}", param_hint="--pack-size"
        )
    if kwargs["show_prompt"] and not kwargs["dry_run"]:
        raise click.UsageError("--show-prompt goes with --dry-run (it shows what a run would send)")
    if kwargs.pop("as_json"):
        if kwargs["report"] is not None:
            raise click.UsageError("--json and --report both write the receipt: choose one")
        kwargs["report"] = stdout_output("json")
    kwargs["escalate"] = escalation(kwargs.pop("escalate_below"), kwargs.pop("escalate_model"))
    if kwargs.get("source") is not None:  # a media input's relative paths are read from the input file's folder
        kwargs["media_root"] = kwargs["source"].parent
    run = RunOptions.of({k: v for k, v in kwargs.items() if k in _RUN})
    return run, CliOptions(**{k: v for k, v in kwargs.items() if k in _CLI})


def escalation(below: float | None, model: str | None) -> Escalate | None:
    """The ``Escalate`` of ``--escalate-below`` and ``--escalate-model`` (both or neither)."""
    if below is None and model is None:
        return None
    if below is None or model is None:
        raise UserError("--escalate-below P and --escalate-model [PROVIDER:]MODEL go together")
    return Escalate(model, below)


def output_target(output: Path, kwargs: dict[str, Any]) -> Path:
    """OUTPUT as a path; ``-`` is standard output, in ``--format`` (JSONL by default)."""
    from enrichkit.output.stdio import stdout_output

    fmt = kwargs.pop("output_format")
    if str(output) != "-":
        if fmt is not None:
            raise click.UsageError(f"--format is for -o - (the format of {output} is its extension)")
        return output
    if kwargs["as_json"]:
        raise click.UsageError("-o - and --json both write to stdout: give --report FILE for the receipt")
    return stdout_output(fmt or "jsonl")


def csv_options(command: F) -> F:
    """``--delimiter`` and ``--encoding``: how a CSV input is read."""
    options = [
        click.option(
            "--delimiter",
            metavar="CHAR",
            help="The CSV input's delimiter ('tab' for a tab; default: sniffed from the header line among , ; tab |).",
        ),
        click.option(
            "--encoding",
            help="The CSV input's text encoding (default utf-8; e.g. cp1252 or latin-1): never guessed.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def csv_format(delimiter: str | None, encoding: str | None) -> CsvFormat:
    """The ``CsvFormat`` of ``--delimiter`` and ``--encoding``."""
    from enrichkit.rows.files import CsvFormat

    if delimiter is not None:
        delimiter = "\t" if delimiter in ("tab", "\\t") else delimiter
        if len(delimiter) != 1 or delimiter in '"\r\n':
            raise click.BadParameter(f"{delimiter!r} is not one character (or 'tab')", param_hint="--delimiter")
    return CsvFormat(delimiter, encoding or "utf-8")


OUTPUT = click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
    help=".jsonl, .json, .csv, .parquet or .sqlite; - for stdout (JSONL, or --format; the receipt goes to stderr).",
)
