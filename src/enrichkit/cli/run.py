"""``enrichkit run``, and the options of every command that enriches rows (``enrichkit scrape``'s too)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click

from enrichkit.cli.common import guarded
from enrichkit.cli.flags import OUTPUT, csv_format, csv_options, enrich_options, output_target, split_options
from enrichkit.cli.task import one_line_options, task_path

RUN_EXAMPLES = """Examples:

\b
  enrichkit run rows.csv -t task.json -o enriched.csv
  enrichkit run rows.jsonl -t task.json -o enriched.jsonl --dry-run --show-prompt
  cat rows.csv | enrichkit run - --stdin-format csv -t task.json -o - --format csv > enriched.csv
"""


@click.command(epilog=RUN_EXAMPLES)
@click.argument("input_path", metavar="INPUT")
@click.option("-t", "--task", type=click.Path(path_type=Path, dir_okay=False), help="Task file (see schemas/).")
@one_line_options
@OUTPUT
@click.option(
    "--stdin-format",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="The format of INPUT - (stdin).",
)
@csv_options
@enrich_options
@guarded
def run(
    input_path: str,
    task: Path | None,
    instruction: str | None,
    inputs: tuple[str, ...],
    columns: tuple[str, ...],
    id_field: str | None,
    output: Path,
    stdin_format: str,
    delimiter: str | None,
    encoding: str | None,
    **kwargs: Any,
) -> int:
    """Enrich INPUT (.jsonl, .json, .csv, or - for stdin) into OUTPUT, with the task file -t or the one-line
    task --instruction/--input/--column."""
    from enrichkit.cli.runner import run_job
    from enrichkit.output.stdio import count_rows
    from enrichkit.rows.files import iter_rows

    is_csv = stdin_format == "csv" if input_path == "-" else input_path.lower().endswith(".csv")
    if (delimiter or encoding) and not is_csv:
        raise click.UsageError(f"--delimiter and --encoding are for CSV input; {input_path} is JSON (always UTF-8)")
    rows_format = csv_format(delimiter, encoding)
    target = output_target(output, kwargs)
    kwargs["total"] = count_rows(input_path, "utf-8-sig" if rows_format.utf8 else rows_format.encoding)
    kwargs["source"] = None if input_path == "-" else Path(input_path)
    kwargs["reread"] = (
        None if input_path == "-" else functools.partial(iter_rows, input_path, stdin_format, rows_format)
    )
    with task_path(task, instruction, inputs, columns, id_field) as path:
        return run_job(iter_rows(input_path, stdin_format, rows_format), path, target, *split_options(kwargs))
