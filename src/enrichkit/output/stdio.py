"""Standard output as an output "path" (``-o -``), and counting an input's rows up front."""

from __future__ import annotations

import contextlib
import csv
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from enrichkit.output.atomic import atomic, storage_errors

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
