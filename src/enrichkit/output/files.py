"""Output files: the enriched rows written as JSONL, JSON, CSV, Parquet or SQLite, atomically (or to
stdout). A disk that fails while writing (full, read-only) is a ``StorageError`` naming the file."""

from __future__ import annotations

import csv
import io
import json
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from enrichkit.errors import UserError
from enrichkit.output.atomic import atomic, checked, storage_errors, sweep_temps, unwritable
from enrichkit.output.formats import SQLITE, load_pyarrow, parquet_writer, sqlite_writer
from enrichkit.output.stdio import destination, is_stdout
from enrichkit.rows.files import Row, file_format
from enrichkit.rows.jsontext import csv_cell

WRITE_FORMATS = (".jsonl", ".json", ".csv", ".parquet", *SQLITE)


def _suffix(path: Path) -> str:
    return ".jsonl" if not path.suffix and is_stdout(path) else file_format(path)


def check_output(path: Path) -> None:
    """Refuse, before any work, an output path that could not be written; delete the temp files
    killed runs left beside it (``sweep_temps``)."""
    suffix = _suffix(path)
    if suffix not in WRITE_FORMATS:
        raise UserError(
            f"{path}: unknown output format {path.suffix or '(none)'!r} (use .jsonl, .json, .csv, .parquet or .sqlite)"
        )
    if is_stdout(path):
        if suffix == ".parquet":
            raise UserError("-o -: standard output takes jsonl, json or csv, not parquet")
        return
    if suffix == ".parquet":
        load_pyarrow(path)
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise UserError(f"{path}: {str(parent)!r} is a file, not a directory")
    if not parent.is_dir():
        raise UserError(f"{path}: directory {str(parent)!r} does not exist")
    if path.is_dir():
        raise UserError(f"{path}: is a directory")
    sweep_temps(path)
    if (cause := unwritable(path)) is not None:
        raise UserError(f"{path}: cannot write in {str(parent)!r} ({cause})")


META_COLUMNS = ("_confidence", "_flags", "_reviewed")

"""What the run says of each answer: always the last columns, after the task's fields."""


def columns_of(rows: Sequence[Row], extra: Sequence[str] = ()) -> list[str]:
    """Every column in first-seen order, then ``extra`` columns not already present, then ``META_COLUMNS``
    present (so a failed first row, which has no answer fields, does not put them before the answers)."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    seen.update(dict.fromkeys(extra))
    meta = [name for name in META_COLUMNS if name in seen]
    return [name for name in seen if name not in meta] + meta


def write_rows(path: Path, rows: Sequence[Row], columns: Sequence[str]) -> None:
    """Write ``rows`` (missing columns as null/empty) in the format of ``path``'s extension, atomically."""
    with row_writer(path, columns) as write:
        write(rows)


@contextmanager
def row_writer(path: Path, columns: Sequence[str]) -> Iterator[Callable[[Sequence[Row]], None]]:
    """Write rows in chunks to a temp file that replaces ``path`` only when the block ends without error.

    Every row gets ``columns`` (missing ones as null/empty). JSON and JSONL rows keep any other key
    they have, SQLite gets a column more; in CSV and Parquet a row with a column the first rows did
    not have is an error. Parquet gets a row group a chunk, its types those of the first chunk.
    SQLite: one table named after the file (``out.sqlite``: ``out``), nested values as JSON text;
    the database is built in memory and written at the end.
    """
    suffix = _suffix(path)
    if suffix in (".csv", ".jsonl"):
        header, render = line_renderer(path, columns)
        with destination(path) as out:
            with storage_errors(path):
                out.write(header)
            yield checked(path, lambda rows: _write(out, render(rows)))
        return
    full = _filled(path, columns)
    if suffix == ".parquet":
        with atomic(path, binary=True) as binary, parquet_writer(path, binary, list(columns)) as write_table:
            yield lambda rows: write_table(list(full(rows)))
        return
    if suffix in SQLITE:
        with atomic(path, binary=True) as binary, sqlite_writer(path, binary, list(columns)) as write_records:
            yield lambda rows: write_records(list(full(rows)))
        return
    with destination(path) as out:
        first = True

        def items(rows: Sequence[Row]) -> None:
            nonlocal first
            for row in full(rows):
                out.write(("[\n" if first else ",\n") + json.dumps(row, ensure_ascii=False))
                first = False

        yield checked(path, items)
        with storage_errors(path):
            out.write("[]\n" if first else "\n]\n")


def _write(out: IO[str], text: str) -> None:
    out.write(text)


def line_renderer(path: Path, columns: Sequence[str]) -> tuple[str, Callable[[Sequence[Row]], str]]:
    """The header and a renderer of rows as the lines of a ``.csv`` or ``.jsonl`` file (see ``row_writer``)."""
    full = _filled(path, columns)
    if _suffix(path) == ".jsonl":
        return "", lambda rows: "".join([json.dumps(r, ensure_ascii=False) + "\n" for r in full(rows)])
    cells = _cells(list(columns))

    def render(rows: Sequence[Row]) -> str:
        text = io.StringIO()
        csv.writer(text, lineterminator="\n").writerows(map(cells, full(rows)))
        return text.getvalue()

    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(columns)
    return header.getvalue(), render


def _filled(path: Path, columns: Sequence[str]) -> Callable[[Sequence[Row]], Iterator[Row]]:
    """Rows with every one of ``columns`` (missing ones as None); in CSV and Parquet a row with another column is
    a ``UserError`` (rows are counted across calls, for the message)."""
    suffix = _suffix(path)
    names = list(columns)
    known = set(names)
    written = 0

    def full(rows: Sequence[Row]) -> Iterator[Row]:
        nonlocal written
        for row in rows:
            written += 1
            if row.keys() == known:  # the usual case: exactly the columns (key order is immaterial in JSON)
                yield row
                continue
            extra = [k for k in row if k not in known]
            if extra and suffix in (".csv", ".parquet"):
                raise UserError(
                    f"{path}: row {written} has column {extra[0]!r}, not among the first rows' columns"
                    " (write .jsonl or .json instead)"
                )
            yield {c: row.get(c) for c in names} | {k: row[k] for k in extra}

    return full


@contextmanager
def jsonl_writer(path: Path) -> Iterator[Callable[[Iterable[Row]], None]]:
    """Append records as JSON lines, in chunks, to a temp file that replaces ``path`` at the end."""
    with atomic(path) as out:
        yield checked(
            path, lambda records: out.writelines(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
        )


def write_json(path: Path, doc: Any) -> None:
    with destination(path) as out, storage_errors(path):
        json.dump(doc, out, indent=1, ensure_ascii=False)
        out.write("\n")


def _cells(names: Sequence[str]) -> Callable[[Row], Sequence[Any]]:
    """A row's CSV cells (``csv_cell``), in ``names``' order (a row has them all). The csv module itself writes
    text, numbers and booleans as ``csv_cell`` gives them, and None as empty: those rows go as they are."""
    if len(names) < 2:
        return lambda row: [csv_cell(row[name]) for name in names]
    pick = operator.itemgetter(*names)
    plain = {str, int, float, bool, type(None)}

    def cells(row: Row) -> Sequence[Any]:
        values: tuple[Any, ...] = pick(row)
        return values if plain.issuperset(map(type, values)) else [csv_cell(v) for v in values]

    return cells
