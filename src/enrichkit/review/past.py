"""What the run history knows of a reviewed output: the run that wrote it, each row's calls in the call log
(its story, and the model that wrote its answer), and the rows whose answer changed since the previous run
of the same task on these rows.

A row is matched to the log and to the previous run's answers by its id as the run kept it: the task's id
field, else its number in the file (``output.diff.id_of``). The log read is that of the runs of the task
up to the reviewed one, so a row served from the cache still shows the call that wrote it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enrichkit.cache.entry import Entry
from enrichkit.errors import UserError
from enrichkit.history.calls import calls_dir, read_calls
from enrichkit.history.runs import RunHistory, RunRecord
from enrichkit.output.diff import Id, Side, changed_ids, id_of, load_side
from enrichkit.output.readback import textual
from enrichkit.rows.files import Row
from enrichkit.rows.keys import fingerprint
from enrichkit.task.task import Task

OTHER_MODEL = frozenset({"fallback", "escalated", "reasked"})
"""The ``_flags`` of an answer a model other than the run's wrote (``engine.settle``, ``cascade``, ``reasked``)."""


def task_of(run: RunRecord) -> Task:
    """The task a run recorded (as its task file held it)."""
    doc = run.task
    try:
        return Task(
            doc["instruction"],
            doc["inputs"],
            doc["output"],
            doc.get("id_field"),
            doc.get("name", "task"),
            f"run {run.run}",
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"run {run.run}: its recorded task is damaged ({exc}): give --task") from None


def output_of(run: RunRecord) -> Path:
    """The output file ``run`` wrote (a ``UserError`` when it noted none, or it is gone)."""
    if not run.output:
        raise UserError(f"run {run.run}: no output file was noted for it: review the file it wrote")
    path = Path(run.output)
    if not path.is_file():
        raise UserError(f"run {run.run}: its output {path} is gone")
    return path


def row_ids(rows: Sequence[Row], task: Task) -> list[Id]:
    """Each row's id as the history keeps it: the task's id field, else its number."""
    if task.id_field is None:
        return [id_of(n) for n in range(len(rows))]
    return [id_of(row.get(task.id_field)) for row in rows]


@dataclass(frozen=True)
class Call:
    """One logged call that carried a row, and what came back for it."""

    at: float
    model: str
    mode: str
    kind: str
    rung: tuple[int, int]
    outcome: str
    value: Any  # the row's values (None: none came back)
    why: str  # without a value: why

    def line(self) -> str:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.at))
        size, fallback = self.rung
        rung = f"rung {size}" + (f" on fallback {fallback}" if fallback else "")
        said = "" if self.value is None else f" → {_compact(self.value)}"
        said = said or f" → no answer: {self.why}"
        return f"{when}  {self.model}  {self.mode} {self.kind}  {rung}  {self.outcome}{said}"


@dataclass
class Past:
    """The run reviewed (None: no recorded run wrote the output), its previous run, and the rows' calls."""

    run: RunRecord | None = None
    previous: RunRecord | None = None
    calls: dict[Id, list[Call]] = field(default_factory=dict)
    ids: list[Id] = field(default_factory=list)

    def story(self, n: int) -> str | None:
        """Row ``n``'s calls, oldest first, as ``enrichkit logs --row`` shows them (None: none logged)."""
        calls = self.calls.get(self.ids[n]) if n < len(self.ids) else None
        return "\n".join(c.line() for c in calls) if calls else None

    def model(self, n: int, entry: Entry | None = None, flags: str | None = None) -> str | None:
        """The model that wrote row ``n``'s answer: that of the last logged call that gave the row values;
        else that of ``entry``, the cache entry holding the answer shown; else the reviewed run's model if the
        row's ``flags`` (its ``_flags``; None: the output has none) say no other model answered it; else None
        (none known: never a model that did not write it)."""
        calls = self.calls.get(self.ids[n], []) if n < len(self.ids) else []
        wrote = next((c.model for c in reversed(calls) if c.value is not None), None)
        if wrote is not None:
            return wrote
        if entry is not None:
            return entry.model
        if self.run is None or flags is None or not OTHER_MODEL.isdisjoint(flags.split(",")):
            return None
        return self.run.model


def past_of(history: RunHistory, run: RunRecord | None, output: Path, rows: Sequence[Row], task: Task) -> Past:
    """What ``history`` holds of ``output`` (the rows of ``task`` that ``run`` wrote, or no recorded run)."""
    mark = run.task_fingerprint if run is not None else fingerprint(task.fingerprint())
    runs = [r for r in history.runs() if r.task_fingerprint == mark]
    if run is not None:
        runs = [r for r in runs if (r.at, r.run) <= (run.at, run.run)]
        previous = next((r for r in runs if r.run != run.run), None)
    else:
        previous = runs[0] if runs else None
    ids = row_ids(rows, task)
    return Past(run, previous, _calls(history.folder.parent, runs, set(ids)), ids)


def _calls(cache_dir: Path, runs: list[RunRecord], wanted: set[Id]) -> dict[Id, list[Call]]:
    """The calls of ``runs`` (newest first) that carried the ``wanted`` rows, per row oldest first."""
    out: dict[Id, list[Call]] = {}
    for record in reversed(runs):
        path = calls_dir(cache_dir) / f"{record.run}.jsonl"
        if not record.logged or not path.is_file():
            continue
        for logged in read_calls(path):
            doc = logged.doc
            rung = doc.get("rung") or [0, 0]
            results = doc.get("results") or []
            for i, rid in enumerate(doc.get("rows", [])):
                key = id_of(rid)
                if key not in wanted:
                    continue
                result = results[i] if i < len(results) and isinstance(results[i], Mapping) else {}
                outcome = str(doc.get("outcome", "?")) + (f" ({doc['error']})" if doc.get("error") else "")
                call = Call(
                    float(doc.get("at", 0)),
                    f"{doc.get('provider')}/{doc.get('model')}",
                    str(doc.get("mode", "")),
                    str(doc.get("kind", "")),
                    (int(rung[0]), int(rung[1])),
                    outcome,
                    result.get("v"),
                    str(result.get("error", "")),
                )
                out.setdefault(key, []).append(call)
    return out


def changed_rows(past: Past, history: RunHistory, output: Path, rows: Sequence[Row], task: Task) -> list[int]:
    """The rows whose answer differs from the previous run's (answered on one side only counts; a row the
    previous run did not have does not); nothing without a previous run whose answers are still at hand."""
    if past.previous is None:
        return []
    try:
        before = load_side(past.previous.run, history, task.id_field, task.document())
    except UserError:
        return []
    fields = task.fields
    answered: dict[Id, dict[str, Any]] = {}
    failed: set[Id] = set()
    for rid, row in zip(past.ids, rows, strict=True):
        if values := {f: row[f] for f in fields if f in row and row[f] not in (None, "")}:
            answered[rid] = values
        else:
            failed.add(rid)
    now = Side(str(output), answered, failed, fields, {}, textual(output))
    changed = changed_ids(before, now)
    return [n for n, rid in enumerate(past.ids) if rid in changed]


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
