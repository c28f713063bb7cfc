"""Row files in: JSONL, JSON (an array of objects) and CSV, from a file or stdin.

Every problem is a ``UserError`` of one line naming the file and where in it (line, byte offset).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from enrichkit.errors import UserError
from enrichkit.rows.jsontext import is_exact, loads

READ_FORMATS = (".jsonl", ".json", ".csv")

Row = dict[str, Any]


def file_format(path: Path) -> str:
    """A row file's format by its extension, lower case (``.ndjson`` is ``.jsonl``)."""
    suffix = path.suffix.lower()
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
    suffix = file_format(path)
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
