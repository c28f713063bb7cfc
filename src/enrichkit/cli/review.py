"""``enrichkit review OUTPUT``: an output (a file, or a run of the history) in the browser, doubtful rows first;
corrections kept."""

from __future__ import annotations

import sys
import webbrowser
from pathlib import Path
from typing import Any

import click

from enrichkit.cli.common import CACHE_DIR, guarded, quiet_verbose
from enrichkit.errors import UserError


@click.command()
@click.argument("output")
@click.option(
    "-t",
    "--task",
    "task_file",
    type=click.Path(path_type=Path),
    help="The task the output answers (default: the task of the run that wrote it).",
)
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port on 127.0.0.1 (default: a free one).")
@click.option("--no-open", is_flag=True, help="Print the address only; do not open a browser.")
@click.option("--apply", "apply_", is_flag=True, help="Write the reviewed values into OUTPUT (same format) and exit.")
@click.option(
    "--export",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the reviewed values as labelled examples (JSONL: inputs, field, value) and exit.",
)
@CACHE_DIR
@quiet_verbose
@guarded
def review(
    output: str,
    task_file: Path | None,
    port: int,
    no_open: bool,
    apply_: bool,
    export: Path | None,
    cache_dir: Path | None,
    quiet: bool,
    **_: Any,
) -> int:
    """Review OUTPUT in the browser: the doubtful rows first (failed, lowest confidence, flagged); accept rows
    and correct fields. OUTPUT is an output file or a run of the history (its id or a start of it, `last`,
    `last~1`). Corrections are kept in the cache folder, and every later run serves them."""
    from enrichkit.cache.folder import default_dir
    from enrichkit.history.runs import RunHistory
    from enrichkit.review.apply import apply, export_examples
    from enrichkit.review.past import output_of, task_of
    from enrichkit.task.task import Task

    folder = cache_dir or default_dir()
    history = RunHistory(folder)
    path = Path(output)
    if path.is_file():
        run = history.written(path)
    elif path.suffix:
        raise UserError(f"{path}: no such file")
    else:
        run = history.find(output)
        path = output_of(run)
    if task_file is not None:
        task = Task.from_file(task_file)
    elif run is not None:
        task = task_of(run)
    else:
        raise UserError(f"{path}: no recorded run wrote it as it is now: give its task with --task")
    if apply_ or export is not None:
        if export is not None:
            click.echo(f"wrote {export_examples(export, task, folder):,} reviewed values to {export}", err=quiet)
        if apply_:
            rows, values = apply(path, task, folder)
            if run is not None:  # still the run's output, its reviewed values on top: reviewed as the run's
                history.note_output(run.run, path)
            click.echo(f"{path}: {values:,} reviewed values written into {rows:,} rows", err=quiet)
        return 0
    return _serve(path, task, folder, history, run, port, no_open)


def _serve(output: Path, task: Any, folder: Path, history: Any, run: Any, port: int, no_open: bool) -> int:
    from enrichkit.review.past import changed_rows, past_of
    from enrichkit.review.server import ReviewServer
    from enrichkit.review.session import Session

    session = Session(output, task, folder, run)
    try:
        rows = session.table.rows
        past = past_of(history, run, output, rows, task)
        session.table.mark_changed(changed_rows(past, history, output, rows, task))
        try:
            server = ReviewServer(session, port, past)
        except OSError as exc:
            click.echo(f"error: cannot listen on 127.0.0.1:{port} ({exc.strerror})", err=True)
            return 2
        click.echo(f"enrichkit review: {len(session.table.rows):,} rows of {output} at {server.url}", err=True)
        click.echo("Ctrl-C to stop", err=True)
        sys.stderr.flush()
        if not no_open:
            webbrowser.open(server.url)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    finally:
        session.close()
    return 0
