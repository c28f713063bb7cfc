"""A run's answers kept for ``enrichkit diff``: ``history/answers/<run>.jsonl.gz``, a line a chunk of rows,
by column: ``{"ids": [...], "values": {field: [...]}, "failed": [[id, why], ...]}`` (an id is the row's id,
or its number from 0 without an id field).

Kept for runs of up to ``KEPT_ROWS`` rows (a bigger run is diffed by its output file); a run whose cached
rows were swept by other processes (``output.sweep``) keeps none, as it never sees them.
"""

from __future__ import annotations

import contextlib
import gzip
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from enrichkit.errors import os_cause
from enrichkit.history.files import history_dir, make_dir, read_lines, warn
from enrichkit.history.secrets import configured_keys, redacted
from enrichkit.result import EnrichResult

KEPT_ROWS = 100_000

FOLDER = "answers"


def answers_path(cache_dir: Path, run: str) -> Path:
    return history_dir(cache_dir) / FOLDER / f"{run}.jsonl.gz"


class AnswerKeeper:
    """Writes one run's answers as its chunks come; gives up (and deletes them) past ``KEPT_ROWS`` rows."""

    def __init__(self, path: Path, fields: Sequence[str], id_field: str | None) -> None:
        self.path = path
        self.fields = list(fields)
        self.id_field = id_field
        self.rows = 0
        self.given_up = False
        self._file: IO[bytes] | None = None
        self._out: gzip.GzipFile | None = None
        self._secrets = configured_keys()

    def keep(self, result: EnrichResult) -> None:
        if self.given_up:
            return
        if self.rows + len(result.rows) > KEPT_ROWS:
            self.drop()
            return
        rows, id_field = result.rows, self.id_field
        ids = [row.get(id_field) for row in rows] if id_field else list(range(self.rows, self.rows + len(rows)))
        columns = {f: [row.get(f) for row in rows] for f in self.fields}
        failed = {f.row_id: f.reason for f in result.failures}
        self.rows += len(rows)
        line = orjson.dumps({"ids": ids, "values": columns, "failed": list(failed.items())}, default=str) + b"\n"
        try:
            if self._out is None:
                make_dir(self.path.parent)
                self._file = os.fdopen(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb")
                self._out = gzip.GzipFile(fileobj=self._file, mode="wb", compresslevel=1)
            self._out.write(redacted(line, self._secrets))
        except OSError as exc:
            warn(f"{self.path}: cannot keep the run's answers ({os_cause(exc)}): diff its output file instead")
            self.drop()

    def drop(self) -> None:
        """Keep nothing of this run."""
        self.given_up = True
        self.close()
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)

    def close(self) -> int | None:
        """Finish the file; the rows kept (None: none)."""
        if self._out is not None:
            out, self._out = self._out, None
            try:
                out.close()
                if self._file is not None:
                    self._file.close()
            except OSError as exc:
                warn(f"{self.path}: cannot keep the run's answers ({os_cause(exc)})")
                self.drop()
        return None if self.given_up else self.rows


def read_answers(path: Path) -> Iterator[tuple[Any, dict[str, Any] | None]]:
    """The rows a run kept: id and values (None: it failed); a value None is one the answer left out."""
    for doc in read_lines(path):
        ids, columns = doc.get("ids"), doc.get("values")
        if not isinstance(ids, list) or not isinstance(columns, dict):
            continue
        failed = {json_key(pair[0]) for pair in doc.get("failed", []) if isinstance(pair, list) and pair}
        for n, rid in enumerate(ids):
            if json_key(rid) in failed:
                yield rid, None
            else:
                yield rid, {f: values[n] for f, values in columns.items() if n < len(values) and values[n] is not None}


def json_key(value: Any) -> str:
    """A JSON value as a set member (ids may be lists or objects)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
