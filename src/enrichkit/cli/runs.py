"""``enrichkit runs``: the runs recorded in the cache folder, newest first."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from enrichkit.cli.common import CACHE_DIR, guarded, quiet_verbose

if TYPE_CHECKING:
    from enrichkit.history.runs import RunHistory


def history_of(cache_dir: Path | None) -> RunHistory:
    from enrichkit.cache.folder import default_dir
    from enrichkit.history.runs import RunHistory

    return RunHistory(cache_dir or default_dir())


@click.command()
@click.option(
    "-n", "--limit", type=click.IntRange(min=0), default=20, show_default=True, help="At most N runs (0: all)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line: the whole record.")
@CACHE_DIR
@quiet_verbose
@guarded
def runs(limit: int, as_json: bool, cache_dir: Path | None, **_: Any) -> int:
    """The runs recorded in the cache folder, newest first: time, task, model, counts, cost, output.

    A run's id names it to `enrichkit diff` and `enrichkit logs --run` (a start of it, `last` or `last~1` too)."""
    from enrichkit.result import usd

    history = history_of(cache_dir)
    records = history.runs()
    shown = records[:limit] if limit else records
    for r in shown:
        if as_json:
            click.echo(json.dumps(r.document(), ensure_ascii=False, default=str))
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.at))
        c = r.counts
        cost = r.cost if r.cost_usd is None else usd(r.cost_usd)
        head = f"{r.run}  {when}  {r.task.get('name', 'task')}  {r.provider}/{r.model}  {r.options.get('mode', 'live')}"
        figures = (
            "no result"
            if not c
            else (
                f"{c.get('rows', 0):,} rows · {c.get('cache_hits', 0):,} cached · {c.get('enriched', 0):,} enriched"
                f" · {c.get('failed', 0):,} failed · {c.get('calls', 0):,} calls · {cost} · {r.seconds:.1f} s"
            )
        )
        output = f"  → {r.output}" if r.output else ""
        stopped = f"  stopped: {r.stopped}" if r.stopped else ""
        click.echo(f"{head}  {figures}{output}{stopped}")
    if not records:
        click.echo(f"no runs recorded in {history.path}", err=True)
    elif limit and len(records) > limit and not as_json:
        click.echo(f"(the {limit} most recent of {len(records):,} shown: -n 0 for all)", err=True)
    return 0
