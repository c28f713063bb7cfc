"""Standard output as an output "path" (``-o -``), counting an input's rows up front, and the preview of
the output's first rows fitted to the terminal."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from enrichkit.output.atomic import atomic, storage_errors
from enrichkit.task.task import Task

STDOUT = Path("/dev/stdout")  # ``-o -``: rows on standard output, in the format of the suffix (JSONL if none)

COUNT_LIMIT = 200_000_000  # input files up to this size are counted up front (a progress bar with a total)


def stdout_output(fmt: str = "jsonl") -> Path:
    """The output path that means "standard output, in format ``fmt``" (jsonl, json or csv)."""
    return STDOUT.with_suffix(f".{fmt}")


def is_stdout(path: Path) -> bool:
    return path.with_suffix("") == STDOUT


def shown(path: Path) -> str:
    """``path`` as a receipt names it: ``standard output`` for ``stdout_output`` paths."""
    return "standard output" if is_stdout(path) else str(path)


@contextmanager
def destination(path: Path) -> Iterator[IO[Any]]:
    """Standard output for ``stdout_output`` paths (flushed at the end), else ``atomic(path)``."""
    if is_stdout(path):
        yield sys.stdout
        with storage_errors(path):
            sys.stdout.flush()
        return
    with atomic(path) as out:
        yield out


def count_rows(source: str | Path, encoding: str = "utf-8-sig") -> int | None:
    """The rows of a JSONL or CSV file (of ``encoding``), counted cheaply up front; None for stdin, JSON, big
    or odd files."""
    path = Path(source)
    suffix = path.suffix.lower()
    if str(source) == "-" or suffix not in (".jsonl", ".ndjson", ".csv"):
        return None
    with contextlib.suppress(OSError, UnicodeDecodeError, csv.Error):
        if path.is_file() and path.stat().st_size <= COUNT_LIMIT:
            with path.open("rb") as stream:
                if suffix != ".csv":
                    return sum(1 for line in stream if line.strip())
                records = csv.reader(io.TextIOWrapper(stream, encoding=encoding, newline=""))
                return max(0, sum(1 for record in records if record) - 1)
    return None


NARROWEST = 8  # a preview's cells are cut to no fewer characters, however narrow the terminal


def terminal_width() -> int:
    """The columns of the terminal on stderr (``COLUMNS`` if set); 0 when stderr is not a terminal."""
    if (columns := os.environ.get("COLUMNS", "")).isdigit():
        return int(columns)
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return 0


def preview_text(rows: Sequence[Mapping[str, Any]], task: Task, width: int) -> str:
    """The first rows of the output as a small table: the row's id (or first input) and the new columns; the
    longest cells cut (with ``…``) so that a line fits in ``width`` characters (0: nothing is cut)."""
    columns = [task.id_field or task.inputs[0], *task.fields]
    table = [columns, *([_flat(row.get(c)) for c in columns] for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    if width:
        room, cap = width - 2 * (len(columns) - 1), max(widths)
        while cap > NARROWEST and sum(min(w, cap) for w in widths) > room:
            cap -= 1
        widths = [min(w, cap) for w in widths]
    lines = ["  ".join(_cut(v, w).ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in table]
    return "\n".join([f"first {len(rows)} rows:", *lines])


def _flat(value: Any) -> str:
    return "" if value is None else str(value).replace("\n", " ")


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
