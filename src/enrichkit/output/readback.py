"""Output files read back (for ``enrichkit diff``): JSONL, JSON, CSV, Parquet and SQLite, as enrichkit
writes them. CSV and SQLite hold text where the others hold lists and objects (``textual``)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from enrichkit.errors import UserError
from enrichkit.output.formats import SQLITE, load_pyarrow
from enrichkit.rows.files import READ_FORMATS, Row, file_format, read_rows

TEXTUAL = (".csv", *SQLITE)


def textual(path: Path) -> bool:
    """Whether ``path``'s format keeps every value as text or a plain number (lists and objects as JSON text)."""
    return file_format(path) in TEXTUAL


def read_output(path: Path) -> list[Row]:
    """The rows of an output file, by its extension."""
    kind = file_format(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    if kind in READ_FORMATS:
        return read_rows(path)
    if kind == ".parquet":
        _, parquet = load_pyarrow(path)
        try:
            rows: list[Row] = parquet.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow's errors share no base class worth naming
            raise UserError(f"{path}: cannot read as Parquet ({exc})") from None
        return rows
    if kind in SQLITE:
        return _sqlite_rows(path)
    raise UserError(f"{path}: not an output file enrichkit reads (.jsonl, .json, .csv, .parquet, .sqlite)")


def _sqlite_rows(path: Path) -> list[Row]:
    """The rows of the table enrichkit wrote (named after the file), or of the database's only table."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            table = path.stem if path.stem in tables else tables[0] if len(tables) == 1 else None
            if table is None:
                raise UserError(f"{path}: holds {len(tables)} tables and none is named {path.stem!r}")
            cursor = db.execute(f'SELECT * FROM "{table.replace(chr(34), chr(34) * 2)}"')
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, values, strict=True)) for values in cursor]
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise UserError(f"{path}: cannot read as SQLite ({exc})") from None
