"""``enrichkit diff A B``: what changed between two runs' answers, each an output file or a run of the history.

Rows are matched by id (the task's id field, ``--id``, an ``id`` column, else their number). A row without
any of the task's fields failed; without a task (a file no recorded run wrote, no ``--task``) every column
but the id is compared and no row counts as failed. Per field:
how many of the rows answered on both sides changed, with examples; for closed fields (an enum, a
constant, a boolean) how the answers spread before and after. Rows added and removed, and rows that failed
on one side only, are counted apart. A run's answers come from what the history kept of it, else from its
output file while that is as the run wrote it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enrichkit.errors import UserError
from enrichkit.history.answers import answers_path, read_answers
from enrichkit.history.runs import RunHistory, RunRecord, stamp
from enrichkit.output.readback import read_output, textual
from enrichkit.rows.files import Row

EXAMPLES = 5

Id = str  # a row's id as matched across formats (a CSV file's "7" is JSON's 7)


@dataclass
class Side:
    """One side of a diff: the answered rows (id -> values), the failed ones, the fields and closed fields."""

    label: str
    answered: dict[Id, dict[str, Any]]
    failed: set[Id]
    fields: list[str]
    closed: dict[str, list[Any] | None]
    """Closed fields and their values in schema order (None: not listed, a boolean)."""
    textual: bool = False
    run: RunRecord | None = None

    @property
    def rows(self) -> int:
        return len(self.answered) + len(self.failed)


@dataclass
class FieldDiff:
    name: str
    compared: int = 0
    changed: int = 0
    examples: list[tuple[Id, Any, Any]] = field(default_factory=list)
    before: Counter[str] | None = None
    after: Counter[str] | None = None
    values: list[str] = field(default_factory=list)
    """A closed field's values in the order to show them."""

    @property
    def share(self) -> float:
        return self.changed / self.compared if self.compared else 0.0


@dataclass
class Diff:
    a: Side
    b: Side
    fields: list[FieldDiff]
    added: list[Id]
    removed: list[Id]
    failed_in_a: list[Id]
    """Rows failed in A, answered in B."""
    failed_in_b: list[Id]
    failed_in_both: int
    only_in_a: list[str]
    only_in_b: list[str]

    def over(self, fraction: float) -> list[FieldDiff]:
        """The fields with more than ``fraction`` of their compared values changed."""
        return [f for f in self.fields if f.share > fraction]


def id_of(value: Any) -> Id:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def closed_fields(schema: Mapping[str, Any]) -> dict[str, list[Any] | None]:
    """The fields of an output schema with a closed set of answers: enum, const, boolean."""
    out: dict[str, list[Any] | None] = {}
    for name, sub in schema.get("properties", {}).items():
        if not isinstance(sub, Mapping):
            continue
        if isinstance(sub.get("enum"), list):
            out[name] = list(sub["enum"])
        elif "const" in sub:
            out[name] = [sub["const"]]
        elif sub.get("type") == "boolean":
            out[name] = [True, False]
    return out


def load_side(ref: str, history: RunHistory | None, id_field: str | None, task: Mapping[str, Any] | None) -> Side:
    """``ref``: an output file, else a run of ``history`` (its id, a start of it, ``last``, ``last~N``)."""
    path = Path(ref)
    if path.is_file():
        run = history.written(path) if history is not None else None
        return _file_side(path, str(path) if run is None else f"{path} (run {run.run})", run, id_field, task)
    if history is None:
        raise UserError(f"{ref}: no such file (and no run history to look it up in)")
    run = history.find(ref)
    kept = answers_path(history.folder.parent, run.run)
    if run.answers is not None and kept.is_file():
        return _kept_side(run, kept)
    output = Path(run.output) if run.output else None
    if output is not None and run.output_stamp is not None and stamp(output) == run.output_stamp:
        return _file_side(output, f"run {run.run} ({output})", run, id_field, task)
    why = "its answers were not kept" if run.answers is None else "its kept answers are gone"
    raise UserError(f"run {run.run}: {why}, and its output file was changed since: diff two files instead")


def _kept_side(run: RunRecord, path: Path) -> Side:
    answered: dict[Id, dict[str, Any]] = {}
    failed: set[Id] = set()
    for rid, values in read_answers(path):
        if values is None:
            failed.add(id_of(rid))
        else:
            answered[id_of(rid)] = values
    schema = run.task.get("output", {})
    return Side(f"run {run.run}", answered, failed, run.fields, closed_fields(schema), run=run)


def _file_side(
    path: Path, label: str, run: RunRecord | None, id_field: str | None, task: Mapping[str, Any] | None
) -> Side:
    rows = read_output(path)
    task = task if task is not None else run.task if run is not None else None
    column = id_field or (task or {}).get("id_field") or ("id" if rows and "id" in rows[0] else None)
    if task is not None:
        fields = list(task.get("output", {}).get("properties", {}))
        closed = closed_fields(task.get("output", {}))
    else:
        fields = [c for c in dict.fromkeys(k for row in rows for k in row) if c != column]
        closed = _few_values(rows, fields)
    answered: dict[Id, dict[str, Any]] = {}
    failed: set[Id] = set()
    for n, row in enumerate(rows):
        if column is not None and column not in row:
            raise UserError(f"{path}: row {n + 1} has no id column {column!r} (choose one with --id)")
        rid = id_of(row[column] if column is not None else n)
        if task is None:  # no task to tell its columns: an empty value is a value
            answered[rid] = {f: row.get(f) for f in fields}
        elif values := {f: row[f] for f in fields if f in row and row[f] not in (None, "")}:
            answered[rid] = values
        else:
            failed.add(rid)
    return Side(label, answered, failed, fields, closed, textual(path), run)


def _few_values(rows: list[Row], fields: list[str], most: int = 10) -> dict[str, list[Any] | None]:
    """Without a task: the columns of few distinct values (at most ``most``, each seen twice on average)."""
    out: dict[str, list[Any] | None] = {}
    for name in fields:
        seen = Counter(_norm(row.get(name), True) for row in rows if row.get(name) not in (None, ""))
        if seen and len(seen) <= most and sum(seen.values()) >= 2 * len(seen):
            out[name] = None
    return out


def _norm(value: Any, text: bool) -> Any:
    """A value comparable across formats: with ``text`` (a side is CSV or SQLite) as the text such a file holds."""
    if not text:
        return value
    if isinstance(value, str):
        if value in ("True", "False", "true", "false"):
            return value.lower()
        if value[:1] in ("[", "{"):
            try:
                return json.dumps(json.loads(value), ensure_ascii=False, sort_keys=True)
            except ValueError:
                return value
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return "" if value is None else str(value)


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def diff(a: Side, b: Side) -> Diff:
    text = a.textual or b.textual
    fields = [f for f in b.fields if f in a.fields]
    out = []
    both = [rid for rid in a.answered if rid in b.answered]
    for name in fields:
        fd = FieldDiff(name)
        for rid in both:
            before, after = a.answered[rid].get(name), b.answered[rid].get(name)
            fd.compared += 1
            if _norm(before, text) != _norm(after, text):
                fd.changed += 1
                if len(fd.examples) < EXAMPLES:
                    fd.examples.append((rid, before, after))
        if name in a.closed or name in b.closed:
            fd.before = _spread(a.answered.values(), name, text)
            fd.after = _spread(b.answered.values(), name, text)
            listed = b.closed.get(name) or a.closed.get(name) or []
            order = [_shown(_norm(v, text)) for v in listed]
            fd.values = list(dict.fromkeys([*order, *sorted(fd.before | fd.after)]))
        out.append(fd)
    keys_a, keys_b = a.answered.keys() | a.failed, b.answered.keys() | b.failed
    return Diff(
        a,
        b,
        out,
        added=sorted(keys_b - keys_a),
        removed=sorted(keys_a - keys_b),
        failed_in_a=sorted(a.failed & b.answered.keys()),
        failed_in_b=sorted(b.failed & a.answered.keys()),
        failed_in_both=len(a.failed & b.failed),
        only_in_a=[f for f in a.fields if f not in b.fields],
        only_in_b=[f for f in b.fields if f not in a.fields],
    )


def changed_ids(a: Side, b: Side) -> set[Id]:
    """The rows of both sides whose answer differs: a field's value, or answered on one side and failed on the other."""
    text = a.textual or b.textual
    fields = [f for f in b.fields if f in a.fields]
    changed = (a.failed & b.answered.keys()) | (b.failed & a.answered.keys())
    for rid in a.answered.keys() & b.answered.keys():
        before, after = a.answered[rid], b.answered[rid]
        if any(_norm(before.get(f), text) != _norm(after.get(f), text) for f in fields):
            changed.add(rid)
    return changed


def _spread(rows: Iterable[Mapping[str, Any]], name: str, text: bool) -> Counter[str]:
    return Counter(_shown(_norm(row[name], text)) for row in rows if name in row)
