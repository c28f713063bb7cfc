"""Row files: read JSONL / JSON / CSV (or JSONL or CSV on stdin); write those, Parquet or SQLite atomically (or
to stdout).

Every problem is a ``UserError`` of one line naming the file and where in it (line, byte offset);
a disk that fails while writing (full, read-only) is a ``StorageError`` naming the file.
"""

from __future__ import annotations

import csv
import io
import json
import operator
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import orjson

from enrichkit.disk import atomic, checked, storage_errors, unwritable
from enrichkit.disk import sweep_temps as sweep_temps
from enrichkit.errors import UserError
from enrichkit.jsontext import is_exact, loads
from enrichkit.stdio import destination, is_stdout
from enrichkit.writers import SQLITE, load_pyarrow, parquet_writer, sqlite_writer

READ_FORMATS = (".jsonl", ".json", ".csv")
WRITE_FORMATS = (".jsonl", ".json", ".csv", ".parquet", *SQLITE)
Row = dict[str, Any]


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if not suffix and is_stdout(path):
        return ".jsonl"
    return ".jsonl" if suffix == ".ndjson" else suffix


def decode(data: bytes, origin: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{origin}: not UTF-8 text (bad byte at offset {exc.start})") from None


def read_rows(source: str | Path) -> list[Row]:
    """The rows of a ``.jsonl``, ``.json`` (array of objects) or ``.csv`` file; ``-`` reads JSONL from stdin."""
    return list(iter_rows(source))


def iter_rows(source: str | Path, stdin_format: str = "jsonl") -> Iterator[Row]:
    """``read_rows`` one row at a time: JSONL and CSV are streamed (bounded memory), a JSON array is read whole.

    ``-`` reads stdin, as JSONL or (``stdin_format="csv"``) CSV. The file is checked on the first
    ``next``; an input without rows is an error once it is used up.
    """
    if str(source) == "-":
        stdin = sys.stdin.buffer
        rows = _csv(_decoded(stdin, "<stdin>"), "<stdin>") if stdin_format == "csv" else _jsonl_bytes(stdin, "<stdin>")
        yield from _nonempty(rows, "<stdin>")
        return
    path = Path(source)
    suffix = _suffix(path)
    if suffix not in READ_FORMATS:
        raise UserError(f"{path}: unknown input format {path.suffix or '(none)'!r} (use .jsonl, .json or .csv)")
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    with stream:
        if suffix == ".json":
            yield from _nonempty(iter(_json_array(decode(stream.read(), str(path)), str(path))), str(path))
        elif suffix == ".jsonl":
            yield from _nonempty(_jsonl_bytes(stream, str(path)), str(path))
        else:
            yield from _nonempty(_csv(_decoded(stream, str(path)), str(path)), str(path))


def _decoded(stream: IO[bytes], origin: str) -> Iterator[str]:
    """The lines of a binary stream as UTF-8 text (a BOM at the start is dropped)."""
    offset = 0
    for number, raw in enumerate(stream, 1):
        line = _decode_line(raw, number, offset, origin)
        offset += len(raw)
        yield line


def _decode_line(raw: bytes, number: int, offset: int, origin: str) -> str:
    """Line ``number`` (at byte ``offset``) as UTF-8 text (a BOM at the start of the first is dropped)."""
    try:
        return raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{origin}:{number}: not UTF-8 text (bad byte at offset {offset + exc.start})") from None


def _nonempty(rows: Iterator[Row], origin: str) -> Iterator[Row]:
    empty = True
    for row in rows:
        empty = False
        yield row
    if empty:
        raise UserError(f"{origin}: no rows")


def parse_rows(text: str, suffix: str, origin: str) -> list[Row]:
    """Rows from the text of a file of format ``suffix``; an empty input is an error."""
    if suffix == ".jsonl":
        rows = list(_jsonl(text.splitlines(), origin))
    elif suffix == ".json":
        rows = _json_array(text, origin)
    else:
        rows = list(_csv(io.StringIO(text, newline=""), origin))
    if not rows:
        raise UserError(f"{origin}: no rows")
    return rows


def _jsonl(lines: Iterable[str], origin: str) -> Iterator[Row]:
    for number, line in enumerate(lines, 1):
        if (row := _row(line, number, origin)) is not None:
            yield row


def _jsonl_bytes(stream: IO[bytes], origin: str) -> Iterator[Row]:
    """``_jsonl`` of a binary stream: a line orjson reads as an object as ``json`` would is taken as it is;
    any other (a BOM, a blank line, a float or text orjson reads otherwise, a mistake) goes the careful
    way, ``_decode_line`` and ``_row``, which find the mistake and name it."""
    offset = 0
    for number, raw in enumerate(stream, 1):
        try:
            row = orjson.loads(raw)
        except orjson.JSONDecodeError:
            row = None
        if type(row) is not dict or not is_exact(row):
            row = _row(_decode_line(raw, number, offset, origin), number, origin)
        offset += len(raw)
        if row is not None:
            yield row


def _row(line: str, number: int, origin: str) -> Row | None:
    """The row on line ``number`` (None: a blank line)."""
    if not line.strip():
        return None
    try:
        row = loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"{origin}:{number}: malformed JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(row, dict):
        raise UserError(f"{origin}:{number}: a row must be a JSON object, not {type(row).__name__}")
    return row


def load_json(text: str, origin: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{origin}:{exc.lineno}: malformed JSON ({exc.msg} at column {exc.colno})") from None


def _json_array(text: str, origin: str) -> list[Row]:
    doc = load_json(text, origin)
    if not isinstance(doc, list):
        raise UserError(f"{origin}: expected a JSON array of objects, found {type(doc).__name__}")
    return check_objects(doc, origin)


def check_objects(items: list[Any], origin: str) -> list[Row]:
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise UserError(f"{origin}: item {n} is not a JSON object but {type(item).__name__}")
    return items


def _csv(lines: Iterable[str], origin: str) -> Iterator[Row]:
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        return
    if len(set(header)) != len(header):
        repeated = next(name for name in header if header.count(name) > 1)
        raise UserError(f"{origin}:1: column {repeated!r} appears twice in the header")
    for record in reader:
        if not record:
            continue
        if len(record) != len(header):
            raise UserError(
                f"{origin}:{reader.line_num}: {len(record)} fields, but the header has {len(header)} (ragged CSV)"
            )
        yield dict(zip(header, record, strict=True))


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


def columns_of(rows: Sequence[Row], extra: Sequence[str] = ()) -> list[str]:
    """Every column in first-seen order, then ``extra`` columns not already present."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    seen.update(dict.fromkeys(extra))
    return list(seen)


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
    """A row's CSV cells (``_cell``), in ``names``' order (a row has them all). The csv module itself writes
    text, numbers and booleans as ``_cell`` gives them, and None as empty: those rows go as they are."""
    if len(names) < 2:
        return lambda row: [_cell(row[name]) for name in names]
    pick = operator.itemgetter(*names)
    plain = {str, int, float, bool, type(None)}

    def cells(row: Row) -> Sequence[Any]:
        values: tuple[Any, ...] = pick(row)
        return values if plain.issuperset(map(type, values)) else [_cell(v) for v in values]

    return cells


def _cell(value: Any) -> Any:
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value
