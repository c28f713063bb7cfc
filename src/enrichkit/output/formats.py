"""Writers of the binary output formats, a chunk of rows at a time: Parquet (row groups) and SQLite."""

from __future__ import annotations

import contextlib
import importlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from enrichkit.errors import UserError
from enrichkit.output.atomic import storage_errors

SQLITE = (".sqlite", ".sqlite3", ".db")

Row = dict[str, Any]


@contextmanager
def parquet_writer(path: Path, out: IO[bytes], names: list[str]) -> Iterator[Callable[[list[Row]], None]]:
    """Write chunks of rows to ``out`` as Parquet, a row group a chunk. The first chunk sets the column
    types (a column without a value in it is text); a later value of another type is a ``UserError``."""
    pyarrow, parquet = load_pyarrow(path)
    writer: Any = None

    def write(rows: list[Row]) -> None:
        nonlocal writer
        try:
            if writer is None:
                arrays = [(name, pyarrow.array([row.get(name) for row in rows])) for name in names]
                schema = pyarrow.schema(
                    [(name, pyarrow.string() if pyarrow.types.is_null(a.type) else a.type) for name, a in arrays]
                )
                with storage_errors(path):
                    writer = parquet.ParquetWriter(out, schema)
            table = pyarrow.Table.from_pylist(rows, schema=writer.schema)
        except (pyarrow.ArrowInvalid, pyarrow.ArrowTypeError) as exc:
            raise UserError(f"{path}: cannot write as Parquet: {exc} (write .jsonl instead)") from None
        with storage_errors(path):
            writer.write_table(table)

    try:
        yield write
        if writer is None:
            write([])
    except BaseException:
        if writer is not None:
            with contextlib.suppress(Exception):
                writer.close()  # the temp file is removed: the writer only must not close it again later
        raise
    with storage_errors(path):
        writer.close()


@contextmanager
def sqlite_writer(path: Path, out: IO[bytes], names: list[str]) -> Iterator[Callable[[list[Row]], None]]:
    """Write chunks of rows into one table of an SQLite database (named after ``path``), saved to ``out``
    at the end. Column types (INTEGER, REAL, TEXT) come from the first values; lists and objects are
    JSON text; a key the first rows did not have adds a column."""
    table = _quoted(path.stem or "rows")
    db = sqlite3.connect(":memory:")
    columns: list[str] = []

    def write(rows: list[Row]) -> None:
        if not columns:
            db.execute(f"CREATE TABLE {table} ({', '.join(f'{_quoted(n)} {_sql_type(rows, n)}' for n in names)})")
            columns.extend(names)
        for key in dict.fromkeys(k for row in rows for k in row):
            if key not in columns:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {_quoted(key)}")
                columns.append(key)
        marks = ", ".join("?" * len(columns))
        db.executemany(
            f"INSERT INTO {table} ({', '.join(map(_quoted, columns))}) VALUES ({marks})",
            ([_sql_value(row.get(c)) for c in columns] for row in rows),
        )

    try:
        yield write
        if not columns:
            write([])
        with storage_errors(path):
            out.write(db.serialize())
    finally:
        db.close()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_type(rows: list[Row], name: str) -> str:
    """The column's type from its first value (TEXT without one)."""
    value = next((row[name] for row in rows if row.get(name) is not None), None)
    if isinstance(value, int):
        return "INTEGER"
    return "REAL" if isinstance(value, float) else "TEXT"


def _sql_value(value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value


def load_pyarrow(path: Path) -> tuple[Any, Any]:
    """pyarrow and pyarrow.parquet (an optional extra)."""
    try:
        return importlib.import_module("pyarrow"), importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise UserError(f"{path}: writing .parquet needs pyarrow: pip install 'enrichkit[parquet]'") from None
