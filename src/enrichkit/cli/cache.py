"""``enrichkit cache``: look after the cache directory (stats, clear, prune, salvage, inspect, forget)."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from enrichkit.cli.common import CACHE, CACHE_DIR, F, guarded, quiet_verbose
from enrichkit.cli.flags import KEYED, csv_format, csv_options
from enrichkit.cli.task import one_line_options, task_path
from enrichkit.errors import UserError

if TYPE_CHECKING:
    from enrichkit.cache.entry import Entry
    from enrichkit.cache.folder import RowCache

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

INPUTS_SHOWN = 60  # characters of a row's inputs `cache lookup` shows (--json: all)


def keyed_options(command: F) -> F:
    """The options that make a run's cache keys (``flags.KEYED``)."""
    for option in reversed(KEYED):
        command = option(command)
    return command


@click.group()
def cache() -> None:
    """Look after the cache directory."""


@contextmanager
def _opened(cache_dir: Path | None) -> Iterator[RowCache]:
    from enrichkit.cache.folder import RowCache, default_dir

    rows = RowCache(cache_dir or default_dir())
    try:
        yield rows
    finally:
        rows.close()


@cache.command()
@CACHE_DIR
@quiet_verbose
@guarded
def stats(cache_dir: Path | None, **_: Any) -> int:
    """Entries and size of the cache."""
    from enrichkit.providers.local.prefix import prefixes_dir
    from enrichkit.providers.local.weights import models_dir

    with _opened(cache_dir) as rows:
        directory, count = rows.directory, len(rows)
    click.echo(f"{directory}: {count:,} cached rows, {_size(_bytes(directory))} on disk")
    click.echo(f"{models_dir()}: {_size(_bytes(models_dir()))} of local models (shared by every folder)")
    if (prefixes := prefixes_dir()).is_dir():
        click.echo(f"{prefixes}: {_size(_bytes(prefixes))} of system prompts the local model processed (shared)")
    return 0


def _bytes(folder: Path) -> int:
    """The size of every file under ``folder`` (0 if there is none)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,} bytes"


@cache.command()
@CACHE_DIR
@quiet_verbose
@guarded
def clear(cache_dir: Path | None, **_: Any) -> int:
    """Delete every cached row (the next run pays for all of them again)."""
    with _opened(cache_dir) as rows:
        click.echo(f"{rows.directory}: deleted {rows.clear():,} cached rows")
    return 0


def _duration(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    match = _DURATION.match(value.strip())
    if not match:
        raise click.BadParameter(f"{value!r} is not a duration like 30d, 12h, 90m or 45s")
    return float(match.group(1)) * _UNIT[match.group(2)]


@cache.command()
@click.option("--older-than", required=True, callback=_duration, help="Age, e.g. 30d, 12h, 90m.")
@CACHE_DIR
@quiet_verbose
@guarded
def prune(older_than: float, cache_dir: Path | None, **_: Any) -> int:
    """Delete cached rows stored longer ago than --older-than, and the call logs and kept answers of runs as old."""
    from enrichkit.history.prune import prune_history

    with _opened(cache_dir) as rows:
        click.echo(f"{rows.directory}: deleted {rows.prune(older_than):,} cached rows, {len(rows):,} left")
        logs = prune_history(rows.directory, older_than)
    click.echo(f"{rows.directory}: deleted the call logs of {logs:,} runs and their kept answers")
    return 0


@cache.command()
@CACHE_DIR
@quiet_verbose
@guarded
def salvage(cache_dir: Path | None, **_: Any) -> int:
    """Salvage every readable entry of a damaged cache into a new one (the damaged one is kept aside).

    Run it while no other enrichkit command uses the cache."""
    from enrichkit.cache.folder import default_dir
    from enrichkit.cache.salvage import salvage as salvaged

    directory = cache_dir or default_dir()
    done = salvaged(directory)
    lost = "an unknown number" if done.lost is None else f"{done.lost:,}"
    click.echo(f"{directory}: saved {done.saved:,} cached rows, lost {lost}; the damaged copy is at {done.aside}")
    return 0


@cache.command()
@click.argument("keys", nargs=-1, metavar="[KEY]...")
@click.option("--contains", metavar="TEXT", help="Only entries whose stored JSON contains TEXT (ASCII case ignored).")
@click.option("--model", help="Only entries written by this model.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Show at most N entries.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line, with the whole key.")
@CACHE_DIR
@quiet_verbose
@guarded
def inspect(
    keys: tuple[str, ...], contains: str | None, model: str | None, limit: int, as_json: bool, cache_dir: Path | None,
    **_: Any,
) -> int:  # fmt: skip
    """Show cached entries, most recently stored first: all, or those whose key starts with a KEY.

    An entry holds the answer, its model and time, not its row's id or inputs (its key is their hash with
    the task's and model's; keeping the inputs would grow every entry by their size). Find a bad answer by
    what it says (--contains), or each row's answer and key with `enrichkit cache lookup INPUT -t TASK`;
    drop it with `enrichkit cache forget KEY`."""
    with _opened(cache_dir) as rows:
        found = (item for item in rows.find(keys, contains) if model is None or (item[1] and item[1].model == model))
        shown = list(itertools.islice(found, limit + 1))
    for key, entry in shown[:limit]:
        click.echo(_entry_line(key, entry, as_json))
    if len(shown) > limit and not as_json:
        click.echo(f"(the {limit} most recent shown: --limit for more)", err=True)
    if not shown:
        click.echo("no cached rows match", err=True)
    return 0


def _entry_line(key: str, entry: Entry | None, as_json: bool) -> str:
    if as_json:
        doc = {"key": key, "damaged": True} if entry is None else {"key": key} | entry._asdict()
        return json.dumps(doc, ensure_ascii=False)
    if entry is None:
        return f"{key[:16]}  damaged: not an entry enrichkit wrote (it is asked again; forget it or repair)"
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.stored_at))
    return f"{key[:16]}  {entry.model}  {when}  {json.dumps(entry.values, ensure_ascii=False)}"


@cache.command(epilog="Example: enrichkit cache lookup reviews.csv -t task.json --limit 5")
@click.argument("input_path", metavar="INPUT")
@click.option("-t", "--task", type=click.Path(path_type=Path, dir_okay=False), help="The run's task file.")
@one_line_options
@keyed_options
@csv_options
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="The first N rows only.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line: id or row, key, inputs, entry.")
@CACHE_DIR
@CACHE
@quiet_verbose
@guarded
def lookup(
    input_path: str, task: Path | None, instruction: str | None, inputs: tuple[str, ...], columns: tuple[str, ...],
    id_field: str | None, delimiter: str | None, encoding: str | None, limit: int, as_json: bool, **kwargs: Any,
) -> int:  # fmt: skip
    """The cached answer of each row of INPUT, with the row's id (or number), inputs and cache key: the keys
    `enrichkit run` makes with the same task and --provider/--model/--pack-size/--echo/--base-url."""
    from enrichkit.cache.folder import default_dir
    from enrichkit.engine.context import RunContext
    from enrichkit.options import RunOptions
    from enrichkit.rows.files import iter_rows
    from enrichkit.rows.keys import key_rows
    from enrichkit.task.task import Task

    given = {k: v for k, v in kwargs.items() if k not in ("quiet", "verbose")}
    root = None if input_path == "-" else Path(input_path).parent  # where a media input's paths are read from
    options = RunOptions.of(given).replace(cache_dir=given["cache_dir"] or default_dir(), media_root=root)
    with task_path(task, instruction, inputs, columns, id_field) as path:
        run = Task.from_file(path)
    rows = list(itertools.islice(iter_rows(input_path, csv_format=csv_format(delimiter, encoding)), limit))
    context = RunContext.open(run, options)
    try:
        keyed = key_rows(rows, run, context.fingerprint, media=context.media)
        found = {} if context.cache is None else context.cache.get_many(keyed.keys)
    finally:
        asyncio.run(context.aclose())
    if not kwargs["quiet"]:
        provider = context.provider
        click.echo(f"the keys of {provider.name} / {provider.model}, packs of {context.pack_size}:", err=True)
    for n, (rid, key, values) in enumerate(zip(keyed.ids, keyed.keys, keyed.inputs, strict=True)):
        named = {"id": rid} if run.id_field else {"row": n + 1}
        click.echo(_row_line(named, key, values, found.get(key), as_json))
    if not kwargs["quiet"]:
        click.echo(f"{len(found):,} of {len(rows):,} rows cached", err=True)
    return 0


def _row_line(named: dict[str, Any], key: str, inputs: dict[str, Any], entry: Entry | None, as_json: bool) -> str:
    if as_json:
        cached = None if entry is None else entry._asdict()
        return json.dumps(named | {"key": key, "inputs": inputs, "entry": cached}, ensure_ascii=False, default=str)
    name = f"id {named['id']!r}" if "id" in named else f"row {named['row']}"
    shown = json.dumps(inputs, ensure_ascii=False, default=str)
    shown = shown if len(shown) <= INPUTS_SHOWN else shown[: INPUTS_SHOWN - 1] + "…"
    if entry is None:
        return f"{name}  {key[:16]}  not cached  inputs {shown}"
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.stored_at))
    answer = json.dumps(entry.values, ensure_ascii=False)
    return f"{name}  {key[:16]}  {entry.model}  {when}  {answer}  inputs {shown}"


@cache.command()
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@CACHE_DIR
@quiet_verbose
@guarded
def forget(keys: tuple[str, ...], cache_dir: Path | None, **_: Any) -> int:
    """Delete the entries whose keys start with each KEY (as `cache inspect` shows them); the next run
    asks their rows again. Each KEY must match exactly one entry; nothing is deleted otherwise."""
    with _opened(cache_dir) as rows:
        chosen: list[str] = []
        for prefix in keys:
            matches = [key for key, _ in itertools.islice(rows.find([prefix]), 2)]
            if not matches:
                raise UserError(f"no cached row has a key starting {prefix!r} (see `enrichkit cache inspect`)")
            if len(matches) > 1:
                raise UserError(f"{prefix!r} starts the keys of several cached rows: give more of the key")
            chosen += matches
        click.echo(f"{rows.directory}: forgot {rows.forget(chosen):,} cached rows (the next run asks them again)")
    return 0
