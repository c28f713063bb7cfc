"""``enrichkit cache``: look after the cache directory."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from enrichkit.cache import RowCache, default_dir
from enrichkit.cli.common import CACHE_DIR, guarded, quiet_verbose

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@click.group()
def cache() -> None:
    """Look after the cache directory."""


@contextmanager
def _opened(cache_dir: Path | None) -> Iterator[RowCache]:
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
    with _opened(cache_dir) as rows:
        click.echo(f"{rows.directory}: {len(rows):,} cached rows, {rows.volume() / 1e6:,.1f} MB")
    return 0


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
    """Delete cached rows stored longer ago than --older-than."""
    with _opened(cache_dir) as rows:
        click.echo(f"{rows.directory}: deleted {rows.prune(older_than):,} cached rows, {len(rows):,} left")
    return 0
