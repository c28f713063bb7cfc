"""``enrichkit scrape``: rows from a source, written as they are or, with --enrich, enriched in the same run.

``json`` and ``csv`` are built in (``enrichkit.rows.documents``). Other scrapers are plugins: a package registers
a click command under the entry-point group ``enrichkit.scrapers``, and the entry point's name is the subcommand's:

.. code-block:: toml

    [project.entry-points."enrichkit.scrapers"]
    roadmap = "enrichkit_roadmap:command"

``scraper_command`` makes that command out of a function that returns the rows, adding ``-o``, ``--enrich`` and
every option of an enrich run (``examples/roadmap`` is the worked example). Plugins are looked up only when a
``scrape`` subcommand that is not built in is asked for, or ``enrichkit scrape --help`` lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import click

from enrichkit.cli.common import USAGE_ERROR, guarded
from enrichkit.cli.flags import OUTPUT, csv_format, csv_options, enrich_options, output_target, split_options
from enrichkit.cli.task import one_line_options, task_path

ENTRY_POINTS = "enrichkit.scrapers"

Row = dict[str, Any]
Scrape = Callable[..., Iterable[Row]]

ENRICH = click.option(
    "--enrich",
    "--task",
    "task",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Task file: enrich the scraped rows in the same run (--task is the same flag; or a one-line task).",
)
EXAMPLES = """Examples:

\b
  enrichkit scrape json data.json --records items -o rows.jsonl
  enrichkit scrape csv https://example.org/table.csv --enrich task.json -o enriched.csv
  enrichkit scrape csv table.csv --instruction "Classify" --input text --column "kind: a|b" -o enriched.csv
"""


def scraper_command(name: str | None = None, **attrs: Any) -> Callable[[Scrape], click.Command]:
    """A ``scrape`` subcommand from a function that returns rows (dicts), like ``click.command``.

    The function takes its own click arguments and options (put their decorators under this one); the command adds
    ``-o/--output``, ``--enrich/--task``, the one-line task (``--instruction/--input/--column/--id-field``) and the
    options of an enrich run (``--provider``, ``--dry-run``, ``--limit``, ...). Without a task the rows are written
    as they are, else enriched with it. An ``enrichkit.errors.UserError`` the function raises is one line on stderr
    and exit 2. ``name`` and ``attrs`` (``help``, ``epilog``, ...) go to ``click.command``; the help defaults to the
    function's docstring. A plugin's subcommand is named by its entry point, whatever ``name`` says::

        @scraper_command(epilog="Example: enrichkit scrape things shelf -o things.jsonl")
        @click.argument("shelf")
        def command(shelf: str) -> list[dict[str, Any]]:
            \"\"\"One row per thing on SHELF.\"\"\"
            return [{"id": thing.id, "name": thing.name} for thing in things_on(shelf)]
    """

    def decorate(rows_of: Scrape) -> click.Command:
        command = click.command(name, cls=click.Command, **attrs)(rows_of)
        own = [param.name for param in command.params if param.name]

        @OUTPUT
        @ENRICH
        @one_line_options
        @enrich_options
        @guarded
        def enrich(
            output: Path,
            task: Path | None,
            instruction: str | None,
            inputs: tuple[str, ...],
            columns: tuple[str, ...],
            id_field: str | None,
            **kwargs: Any,
        ) -> int:
            mine = {key: kwargs.pop(key) for key in own}
            from enrichkit.cli.runner import run_job, write_plain

            target = output_target(output, kwargs)
            options = split_options(kwargs)
            rows = rows_of(**mine)
            if task is None and not (instruction or inputs or columns or id_field):
                return write_plain(list(rows), target, options[1].quiet)
            with task_path(task, instruction, inputs, columns, id_field) as path:
                return run_job(rows, path, target, *options)

        shared = click.command()(enrich)
        taken = {word for param in shared.params for word in _words(param)}
        if clashes := sorted({word for param in command.params for word in _words(param)} & taken):
            raise TypeError(f"scraper {command.name!r}: {', '.join(clashes)} already taken by enrichkit's options")
        command.params.extend(shared.params)
        command.callback = shared.callback
        return command

    return decorate


def _words(param: click.Parameter) -> list[str]:
    return [word for word in (param.name, *param.opts, *param.secondary_opts) if word]


class PluginError(click.ClickException):
    """A scraper plugin that cannot be loaded: one line ``error: ...``, exit 2 (see ``common.Main``)."""

    exit_code = USAGE_ERROR

    def __init__(self, name: str, found: list[EntryPoint], reason: str) -> None:
        where = " and ".join(f"{_package(entry)} ({entry.value})" for entry in found)
        super().__init__(f"scraper {name!r} from {where}: {reason}")
        self.reason = reason


class Scrapers(click.Group):
    """The built-in subcommands, then the plugins' (entry points of ``ENTRY_POINTS``), loaded when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_plugins(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        found = _plugins(ctx).get(cmd_name)
        return None if found is None else _load(cmd_name, found)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Click's listing, but a plugin that does not load is listed with why instead of failing the help."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names), default=0)
        rows = []
        for name in names:
            try:
                command = self.get_command(ctx, name)
            except PluginError as exc:
                text = f"unusable: {exc.reason}"
                rows.append((name, text if len(text) <= limit else f"{text[: limit - 3]}..."))
                continue
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _plugins(ctx: click.Context) -> dict[str, list[EntryPoint]]:
    """The entry points of ``ENTRY_POINTS`` by name (read once per command line)."""
    found: dict[str, list[EntryPoint]] | None = ctx.meta.get(ENTRY_POINTS)
    if found is None:
        found = {}
        for entry in entry_points(group=ENTRY_POINTS):
            found.setdefault(entry.name, []).append(entry)
        ctx.meta[ENTRY_POINTS] = found
    return found


def _load(name: str, found: list[EntryPoint]) -> click.Command:
    if len({entry.value for entry in found}) > 1:
        raise PluginError(name, found, "registered by more than one package (uninstall all but one)")
    try:
        command = found[0].load()
    except Exception as exc:
        raise PluginError(name, found, " ".join(f"cannot load ({type(exc).__name__}: {exc})".split())) from None
    if not isinstance(command, click.Command):
        raise PluginError(name, found, f"not a click command but a {type(command).__name__}")
    return command


def _package(entry: EntryPoint) -> str:
    dist = entry.dist
    return "a package" if dist is None else f"{dist.name} {dist.version}"


@click.group(cls=Scrapers)
def scrape() -> None:
    """Turn a source into rows (and, with --enrich, enrich them in the same run). Installed packages add
    scrapers (entry points in the group enrichkit.scrapers)."""


@scraper_command("json", epilog=EXAMPLES)
@click.argument("source")
@click.option(
    "--records",
    help="JSON pointer (/data/items) or dotted path (data.items) of the array; / the whole document (an object is"
    " one row). Default: the document if it is an array, else its only array of objects.",
)
def json_command(source: str, records: str | None) -> list[Row]:
    """Rows from the array at --records in the JSON document SOURCE (a file or an http(s) URL)."""
    from enrichkit.rows.documents import json_records

    rows, path = json_records(source, records)
    if records is None and path != "/" and not click.get_current_context().params["quiet"]:
        click.echo(f"records: {path} (the document's only array of objects)", err=True)
    return rows


@scraper_command("csv", epilog=EXAMPLES)
@click.argument("source")
@csv_options
def csv_command(source: str, delimiter: str | None, encoding: str | None) -> list[Row]:
    """Rows from the CSV file SOURCE (a file or an http(s) URL)."""
    from enrichkit.rows.documents import csv_records

    return csv_records(source, csv_format(delimiter, encoding))


scrape.add_command(json_command)
scrape.add_command(csv_command)
