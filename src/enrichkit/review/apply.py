"""The reviewed values taken out of the cache folder: written into the output file (``apply``, atomically,
in its own format) or as labelled examples (``export``: inputs, task field, value, one JSON line each)."""

from __future__ import annotations

from pathlib import Path

from enrichkit.engine.reviewed import REVIEWED_COLUMN, FieldCheck, ReviewStore, overlaid, review_key, task_id
from enrichkit.output.files import check_output, columns_of, jsonl_writer, write_rows
from enrichkit.review.session import as_field_type
from enrichkit.review.table import read_output
from enrichkit.task.task import Task


def apply(output: Path, task: Task, cache_dir: Path) -> tuple[int, int]:
    """Write the reviewed values of ``output``'s rows into it (each row's ``_reviewed`` column naming them);
    the rows and the values changed."""
    rows = read_output(output)
    check_output(output)
    store = ReviewStore(cache_dir)
    try:
        keys = [review_key({f: row.get(f) for f in task.inputs}) for row in rows]
        stored = store.values(task_id(task), keys)
    finally:
        store.close()
    schemas = FieldCheck(task).properties
    changed_rows = changed_values = 0
    for row, key in zip(rows, keys, strict=True):
        kept = {f: stored[key][f] for f in task.fields if f in stored[key]} if key in stored else None
        differs = {f: v for f, v in (kept or {}).items() if as_field_type(schemas.get(f), row.get(f)) != v}
        changed_rows += bool(differs)
        changed_values += len(differs)
        overlaid(row, kept)
    write_rows(output, rows, columns_of(rows[:1], [REVIEWED_COLUMN]) if rows else [REVIEWED_COLUMN])
    return changed_rows, changed_values


def export_examples(target: Path, task: Task, cache_dir: Path) -> int:
    """Write every reviewed value of ``task`` kept in ``cache_dir`` as a labelled example; how many."""
    store = ReviewStore(cache_dir)
    try:
        reviews = store.reviews(task_id(task))
    finally:
        store.close()
    examples = [
        {
            "inputs": review.inputs,
            "field": name,
            "value": value,
            "corrected": name in review.corrected,
            "model_value": review.originals.get(name),
        }
        for review in reviews.values()
        for name, value in review.values.items()
    ]
    with jsonl_writer(target) as write:
        write(examples)
    return len(examples)
