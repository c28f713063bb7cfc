"""``enrichkit logs``: the calls runs made, from the call log in the cache folder (``history.calls``)."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from enrichkit.cli.common import CACHE_DIR, guarded, quiet_verbose
from enrichkit.cli.runs import history_of

if TYPE_CHECKING:
    from enrichkit.history.calls import LoggedCall

LOGS_EXAMPLES = """Examples:

\b
  enrichkit logs                       # the latest calls
  enrichkit logs --run last --prompts  # every call of the last run, with its prompt and raw answer
  enrichkit logs --row t42             # one row's story: every call that carried it, and what came back
"""


@click.command(epilog=LOGS_EXAMPLES)
@click.option(
    "-n", "--limit", type=click.IntRange(min=0), default=20, show_default=True, help="The last N calls (0: all)."
)
@click.option("--run", "run_ref", metavar="RUN", help="Only this run's calls (its id, a start of it, last, last~1).")
@click.option("--row", "row_id", metavar="ID", help="Only the calls that carried this row, with what came back for it.")
@click.option("--prompts", is_flag=True, help="Show each call's system text, prompt and raw answer (secrets redacted).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line, as the log holds it.")
@CACHE_DIR
@quiet_verbose
@guarded
def logs(
    limit: int, run_ref: str | None, row_id: str | None, prompts: bool, as_json: bool, cache_dir: Path | None,
    **_: Any,
) -> int:  # fmt: skip
    """The calls runs made, oldest of the last N first: time, run, model, mode, kind, ladder rung (rows a
    call), rows, outcome, latency (retries and waits included) and tokens. Runs with --no-log (or --no-cache)
    log nothing; `enrichkit cache prune` drops old logs."""
    from enrichkit.history.calls import calls_dir, segments

    history = history_of(cache_dir)
    folder = history.folder.parent
    paths = segments(folder) if run_ref is None else [calls_dir(folder) / f"{history.find(run_ref).run}.jsonl"]
    chosen = _latest(_matching(paths, row_id), limit)
    for call in chosen:
        click.echo(_json(call, prompts) if as_json else _text(call, row_id, prompts))
    if not chosen:
        where = f" carried row {row_id!r}" if row_id is not None else ""
        click.echo(f"no logged call{where} in {calls_dir(folder)}", err=True)
    return 0


def _matching(paths: list[Path], row_id: str | None) -> Iterator[list[LoggedCall]]:
    """Each segment's calls (newest segment first) that carried ``row_id`` (any call without one)."""
    from enrichkit.history.calls import read_calls
    from enrichkit.output.diff import id_of

    for path in paths:
        calls = list(read_calls(path))
        if row_id is not None:
            calls = [c for c in calls if any(id_of(r) == row_id for r in c.doc.get("rows", []))]
        yield calls


def _latest(segments: Iterator[list[LoggedCall]], limit: int) -> list[LoggedCall]:
    """The last ``limit`` calls (0: all) in the order they were made, the newest segments read first."""
    out: list[LoggedCall] = []
    for calls in segments:
        out = calls + out
        if limit and len(out) >= limit:
            return out[-limit:]
    return out


def _json(call: LoggedCall, prompts: bool) -> str:
    doc = dict(call.doc)
    if prompts:
        doc |= {"system": call.system, "schema": call.schema}
    else:
        for name in ("system", "prompt", "answer"):
            doc.pop(name, None)
    return json.dumps(doc, ensure_ascii=False, default=str)


def _text(call: LoggedCall, row_id: str | None, prompts: bool) -> str:
    from enrichkit.output.diff import id_of

    d = call.doc
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(d.get("at", 0))))
    size, fallback = (d.get("rung") or [0, 0])[:2]
    rung = f"rung {size}" + (f" on fallback {fallback}" if fallback else "")
    rows = d.get("rows", [])
    tokens = d.get("tokens")
    used = f"{tokens[0]:,} in / {tokens[1]:,} out" if tokens else "no tokens"
    outcome = d.get("outcome", "?") + (f" ({d['error']})" if d.get("error") else "")
    lines = [
        f"{when}  run {d.get('run')}  {d.get('provider')}/{d.get('model')}  {d.get('mode')} {d.get('kind')}  {rung}"
        f"  {len(rows)} row{'s' if len(rows) != 1 else ''}  {outcome}  {float(d.get('seconds', 0)):.3f} s  {used}"
    ]
    results = d.get("results") or []
    for rid, result in zip(rows, results, strict=False):
        if row_id is not None and id_of(rid) != row_id:
            continue
        if row_id is None and not prompts:
            break
        got = result.get("v") if isinstance(result, dict) else None
        said = json.dumps(got, ensure_ascii=False) if got is not None else f"no answer: {result.get('error')}"
        lines.append(f"  {id_of(rid)} → {said}")
    if row_id is None and not prompts:
        lines[0] += f"  [{_ids([id_of(r) for r in rows])}]"
    if prompts:
        for name, text in (("system", call.system), ("prompt", d.get("prompt")), ("answer", d.get("answer"))):
            if text is not None:
                lines.append(f"  {name}:\n" + textwrap.indent(str(text), "    "))
    return "\n".join(lines)


def _ids(ids: list[str], most: int = 5) -> str:
    return ", ".join(ids[:most]) + (f", … (+{len(ids) - most})" if len(ids) > most else "")
