"""Row files in: JSONL, JSON (an array of objects) and CSV, from a file or stdin.

Every problem is a ``UserError`` of one line naming the file and where in it (line, byte offset).
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import json
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from enrichkit.errors import UserError
from enrichkit.rows.jsontext import is_exact, loads

READ_FORMATS = (".jsonl", ".json", ".csv")

Row = dict[str, Any]

SNIFFED = ",;\t|"  # the delimiters a CSV header line is sniffed for, the first one winning a tie

NOT_UTF8 = "a CSV file in another encoding needs it named (--encoding cp1252, --encoding latin-1, ...)"


@dataclass(frozen=True)
class CsvFormat:
    """How CSV text is read: ``delimiter`` (None: sniffed from the header line, see ``sniff_delimiter``) and
    ``encoding`` (UTF-8 by default, a BOM dropped; any other is named, never guessed: see the README)."""

    delimiter: str | None = None
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise UserError(f"unknown encoding {self.encoding!r} (e.g. utf-8, cp1252, latin-1, utf-16)") from None

    @property
    def utf8(self) -> bool:
        return codecs.lookup(self.encoding).name in ("utf-8", "utf-8-sig")


def sniff_delimiter(header: str) -> str:
    """The delimiter of a CSV header line: the one of ``SNIFFED`` found most often outside quotes (a comma
    when none is)."""
    bare = re.sub(r'"[^"]*"', "", header)
    count, _, found = max((bare.count(c), -i, c) for i, c in enumerate(SNIFFED))
    return found if count else ","


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


def iter_rows(source: str | Path, stdin_format: str = "jsonl", csv_format: CsvFormat | None = None) -> Iterator[Row]:
    """``read_rows`` one row at a time: JSONL and CSV are streamed (bounded memory), a JSON array is read whole.

    ``-`` reads stdin, as JSONL or (``stdin_format="csv"``) CSV. CSV is read as ``csv_format`` says (default:
    UTF-8, the delimiter sniffed). The file is checked on the first ``next``; an input without rows is an
    error once it is used up.
    """
    csv_format = csv_format or CsvFormat()
    if str(source) == "-":
        stdin = sys.stdin.buffer
        rows = _csv_of(stdin, "<stdin>", csv_format) if stdin_format == "csv" else _jsonl_bytes(stdin, "<stdin>")
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
            yield from _nonempty(_csv_of(stream, str(path), csv_format), str(path))


def _csv_of(stream: IO[bytes], origin: str, csv_format: CsvFormat) -> Iterator[Row]:
    """The rows of a CSV stream, read as ``csv_format`` says."""
    return _csv(_csv_lines(stream, origin, csv_format), origin, csv_format.delimiter)


def _csv_lines(stream: IO[bytes], origin: str, csv_format: CsvFormat) -> Iterator[str]:
    """The lines of a CSV stream as text: UTF-8 line by line (an error names the line and byte), else in
    ``csv_format``'s encoding."""
    encoding = csv_format.encoding
    if csv_format.utf8:
        try:
            yield from _decoded(stream, origin)
        except UserError as exc:
            raise UserError(f"{exc}; {NOT_UTF8}") from None
        return
    text = io.TextIOWrapper(stream, encoding=encoding, newline="")
    try:
        yield from text
    except UnicodeDecodeError as exc:
        raise UserError(f"{origin}: not {encoding} text ({exc.reason})") from None
    finally:
        text.detach()  # the stream is its opener's to close (stdin stays open)


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


def parse_rows(text: str, suffix: str, origin: str, delimiter: str | None = None) -> list[Row]:
    """Rows from the text of a file of format ``suffix``; an empty input is an error. ``delimiter``: CSV's
    (None: sniffed)."""
    if suffix == ".jsonl":
        rows = list(_jsonl(text.splitlines(), origin))
    elif suffix == ".json":
        rows = _json_array(text, origin)
    else:
        rows = list(_csv(io.StringIO(text, newline=""), origin, delimiter))
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


def _csv(lines: Iterable[str], origin: str, delimiter: str | None = None) -> Iterator[Row]:
    """The rows of CSV text; ``delimiter`` None: sniffed from the header line."""
    lines = iter(lines)
    first = next(lines, None)
    if first is None:
        return
    reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter or sniff_delimiter(first))
    header = next(reader)
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
