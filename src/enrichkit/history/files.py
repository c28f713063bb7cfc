"""The history folder (``<cache folder>/history``) and its JSON-lines files: appended, read back line by
line with damaged lines skipped and one ``HistoryWarning`` a file."""

from __future__ import annotations

import gzip
import io
import os
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from enrichkit.errors import os_cause
from enrichkit.history.secrets import configured_keys, redacted

FOLDER = "history"


class HistoryWarning(UserWarning):
    """The run history or call log could not be read or written: skipped, the run goes on."""


def warn(text: str) -> None:
    warnings.warn(text, HistoryWarning, stacklevel=3)


def history_dir(cache_dir: Path) -> Path:
    return cache_dir / FOLDER


def make_dir(folder: Path) -> None:
    """``folder`` and the folders above it that are missing, owner-only."""
    if not folder.is_dir():
        make_dir(folder.parent)
        folder.mkdir(mode=0o700, exist_ok=True)


def append(path: Path, docs: list[dict[str, Any]]) -> bool:
    """Append ``docs`` to ``path`` as JSON lines (owner-only file, API keys redacted); False, with a warning,
    when it cannot."""
    try:
        make_dir(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            keys = configured_keys()
            os.write(fd, b"".join(redacted(orjson.dumps(doc, default=str), keys) + b"\n" for doc in docs))
        finally:
            os.close(fd)
    except OSError as exc:
        warn(f"{path}: cannot record the run ({os_cause(exc)}): the run goes on without it")
        return False
    return True


def opened(path: Path) -> io.BufferedIOBase:
    """``path`` opened to read, gzip-compressed or not."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of ``path``'s lines; a damaged line (or a file cut short) is skipped with one warning."""
    damaged = 0
    try:
        with opened(path) as lines:
            for line in lines:
                try:
                    doc = orjson.loads(line)
                except orjson.JSONDecodeError:
                    damaged += line.strip() != b""
                    continue
                if type(doc) is dict:
                    yield doc
                else:
                    damaged += 1
    except FileNotFoundError:
        return
    except (OSError, EOFError, zlib.error) as exc:
        warn(f"{path}: damaged, the rest of it is skipped ({exc})")
    if damaged:
        warn(f"{path}: {damaged:,} damaged line{'s' if damaged > 1 else ''} skipped")
