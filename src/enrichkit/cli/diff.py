"""``enrichkit diff A B``: what changed between two output files or two runs of the history."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from enrichkit.cli.common import CACHE_DIR, guarded, quiet_verbose
from enrichkit.cli.runs import history_of

DIFF_EXAMPLES = """Examples:

\b
  enrichkit diff last~1 last                      # the last two runs
  enrichkit diff before.csv after.csv --fail-above 0.1
  enrichkit diff 20261206-1930 out.jsonl --html diff.html
"""


@click.command(epilog=DIFF_EXAMPLES)
@click.argument("a")
@click.argument("b")
@click.option(
    "--fail-above",
    type=click.FloatRange(0, 1),
    metavar="FRACTION",
    help="Exit 1 when more than this share of one field's values changed (a gate for CI).",
)
@click.option("--html", "html_path", type=click.Path(path_type=Path, dir_okay=False), help="Also write a page here.")
@click.option("--json", "as_json", is_flag=True, help="The diff as JSON on stdout.")
@click.option("--id", "id_field", metavar="COLUMN", help="The column that identifies rows (default: the task's).")
@click.option(
    "-t",
    "--task",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The task of two files no recorded run wrote (its fields and closed values).",
)
@CACHE_DIR
@quiet_verbose
@guarded
def diff(
    a: str, b: str, fail_above: float | None, html_path: Path | None, as_json: bool, id_field: str | None,
    task: Path | None, cache_dir: Path | None, **_: Any,
) -> int:  # fmt: skip
    """Compare A and B, each an output file (.jsonl, .json, .csv, .parquet, .sqlite) or a run of the history
    (its id or a start of it, `last`, `last~1`): rows matched by id; per field how many values changed,
    examples, and for closed fields (enum, boolean) the answers before and after; rows added, removed and
    failed on one side only; the cost of each run."""
    from enrichkit.output.atomic import atomic
    from enrichkit.output.diff import diff as compare
    from enrichkit.output.diff import load_side
    from enrichkit.output.diff_report import diff_doc, diff_html, diff_text
    from enrichkit.task.task import Task

    history = history_of(cache_dir)
    schema = Task.from_file(task).document() if task is not None else None
    result = compare(load_side(a, history, id_field, schema), load_side(b, history, id_field, schema))
    if as_json:
        json.dump(diff_doc(result, fail_above), sys.stdout, ensure_ascii=False, default=str)
        sys.stdout.write("\n")
    else:
        click.echo(diff_text(result, fail_above))
    if html_path is not None:
        with atomic(html_path) as out:
            out.write(diff_html(result, fail_above))
    if fail_above is not None and (over := result.over(fail_above)):
        names = ", ".join(f"{f.name} {f.share:.1%}" for f in over)
        click.echo(f"changed more than {fail_above:.1%}: {names}", err=True)
        return 1
    return 0
