"""``enrichkit task new``, and the one-line task options (``--instruction/--input/--column``) of ``run``."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from enrichkit.cli.common import F, guarded
from enrichkit.task.columns import TYPES

if TYPE_CHECKING:
    from enrichkit.task.task import Task


def one_line_options(command: F) -> F:
    """``--instruction``, ``--input``, ``--column`` and ``--id-field``: a task without a file."""
    options = [
        click.option("--instruction", help="What the model must do for each row (instead of a task file)."),
        click.option(
            "--input",
            "inputs",
            multiple=True,
            help="A row field the model reads; repeatable. NAME:image, NAME:pdf or NAME:media: the field holds an"
            " image or PDF (a path, an http(s) or data: URL).",
        ),
        click.option(
            "--column",
            "columns",
            multiple=True,
            help=f"A new column, NAME: TYPE [-- description]; repeatable. TYPE: {TYPES}.",
        ),
        click.option(
            "--id-field", help="The row field that names a row in failures and errors (values must be unique)."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def one_line_task(instruction: str | None, inputs: Sequence[str], columns: Sequence[str], **more: Any) -> Task:
    """The task the one-line options describe (all three are needed); ``more``: ``Task.from_columns``'."""
    missing = [
        flag
        for flag, given in (("--instruction", instruction), ("--input", inputs), ("--column", columns))
        if not given
    ]
    if missing:
        raise click.UsageError(
            f"a task without a file needs --instruction, --input and --column (missing {missing[0]})"
        )
    assert instruction is not None
    from enrichkit.task.task import Task

    return Task.from_columns(instruction, inputs, columns, **more)


@contextlib.contextmanager
def task_path(
    task: Path | None, instruction: str | None, inputs: Sequence[str], columns: Sequence[str], id_field: str | None
) -> Iterator[Path]:
    """The task file ``-t/--task`` names, or a temporary one written from the one-line options; one line if
    both or neither are given."""
    if task is not None:
        if instruction or inputs or columns:
            raise click.UsageError("give either -t/--task or --instruction/--input/--column, not both")
        if id_field:
            raise click.UsageError(f'--id-field goes with a one-line task: name it in {task} ("id_field")')
        yield task
        return
    if not (instruction or inputs or columns):
        raise click.UsageError("no task: give -t/--task FILE, or --instruction, --input and --column")
    built = one_line_task(instruction, inputs, columns, id_field=id_field)
    with tempfile.TemporaryDirectory(prefix="enrichkit-task-") as folder:
        path = Path(folder) / "task.json"
        path.write_text(json.dumps(built.document()), encoding="utf-8")
        yield path


def schema_id() -> str:
    """The ``$id`` of the task file's JSON Schema (``enrichkit/task/task.schema.json``), for ``$schema``."""
    text = resources.files("enrichkit.task").joinpath("task.schema.json").read_text(encoding="utf-8")
    return str(json.loads(text)["$id"])


@click.group()
def task() -> None:
    """Write task files."""


@task.command()
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path, dir_okay=False), help="The task file.")
@one_line_options
@click.option("--name", help="A short name, shown in receipts (default: the file's stem).")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@guarded
def new(output: Path, instruction: str | None, inputs: tuple[str, ...], columns: tuple[str, ...], **kwargs: Any) -> int:
    """Write the task that --instruction, --input and --column describe to OUTPUT (validated)."""
    if output.exists() and not kwargs["force"]:
        raise click.UsageError(f"{output} exists (--force overwrites it)")
    if not output.parent.is_dir():
        raise click.UsageError(f"{output}: directory {str(output.parent)!r} does not exist")
    built = one_line_task(instruction, inputs, columns, id_field=kwargs["id_field"], name=kwargs["name"] or output.stem)
    from enrichkit.output.files import write_json
    from enrichkit.result import counted

    write_json(output, {"$schema": schema_id()} | built.document())
    click.echo(f"wrote {output}: {counted(len(built.fields), 'column')} ({', '.join(built.fields)})", err=True)
    return 0
