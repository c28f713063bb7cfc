"""The call log: every call a run made, one JSON line each in ``history/calls/<run>.jsonl`` (a segment a
run, so ``cache prune`` drops whole segments).

A line holds the call's time, run, provider and model, mode, kind (packed, single, repair, fallback),
ladder rung (rows a request, fallback model), the rows it carried (their ids), the outcome, latency
(the call as the run waited for it, retries included) and tokens; per row what came back (its values,
or why they were refused); and the request's prompt and raw answer. The system text and answer schema,
the same for most calls, are written once a segment and named by number. Secrets are redacted from
every line before it is written (``providers.redact``): the log never holds an API key.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from enrichkit.errors import ProviderError, os_cause
from enrichkit.history.files import history_dir, make_dir, read_lines, warn
from enrichkit.history.secrets import configured_keys, redacted
from enrichkit.providers.base import Reply, Request
from enrichkit.rows.work import Work

FOLDER = "calls"

SECOND = len("20261206-193012")  # the start of a run id that says when it started (``runs.new_run_id``)

FLUSH_LINES = 64  # lines buffered before they are written (and at the end of the run)


def calls_dir(cache_dir: Path) -> Path:
    return history_dir(cache_dir) / FOLDER


class CallLog:
    """The call log of one run, written a few lines at a time (``FLUSH_LINES``) and at ``close``."""

    def __init__(self, cache_dir: Path, run: str) -> None:
        self.path = calls_dir(cache_dir) / f"{run}.jsonl"
        self.run = run
        self.calls = 0
        self._lines: list[bytes] = []
        self._texts: dict[bytes, int] = {}  # system text and schema, as written, -> their number
        self._out: IO[bytes] | None = None
        self._broken = False
        self._secrets = configured_keys()

    def call(
        self,
        kind: str,
        mode: str,
        rung: tuple[int, int],
        model: str,
        provider: str,
        items: Sequence[Work],
        request: Request,
        outcome: Reply | ProviderError,
        seconds: float,
        valid: Mapping[Work, Mapping[str, Any]] | None = None,
        invalid: Mapping[Work, str] | None = None,
    ) -> None:
        """Log one call of ``items`` at ``rung`` (rows a request, model: 0 the main one, n the n-th fallback)
        and its ``outcome``: a reply (with the rows it made ``valid`` and those it left ``invalid``) or the
        error it ended in."""
        if self._broken:
            return
        self.calls += 1
        valid, invalid = valid or {}, invalid or {}
        results: list[Any] = []
        for w in items:
            if w in valid:
                results.append({"v": valid[w]})
            else:
                results.append({"error": invalid.get(w, "no answer")})
        doc: dict[str, Any] = {
            "run": self.run,
            "at": round(time.time() - seconds, 3),
            "provider": provider,
            "model": model,
            "mode": mode,
            "kind": kind,
            "rung": list(rung),
            "rows": [w.row_id for w in items],
            "seconds": round(seconds, 4),
            "system": self._text(request.system, request.schema),
            "prompt": request.prompt,
            "results": results,
        }
        if isinstance(outcome, Reply):
            usage = outcome.usage
            doc["outcome"] = _outcome(len(items), len(valid), outcome.finish)
            doc["finish"] = outcome.finish
            doc["tokens"] = [usage.prompt_tokens, usage.output_tokens, usage.cached_tokens]
            doc["answer"] = outcome.text
        else:
            doc["outcome"] = "error"
            doc["error"] = f"{type(outcome).__name__}: {outcome}"
        if dups := [w.rows for w in items if w.rows > 1]:
            doc["duplicates"] = sum(dups) - len(dups)
        self._lines.append(self._safe(orjson.dumps(doc, default=str)))
        if len(self._lines) >= FLUSH_LINES:
            self.flush()

    def _text(self, system: str, schema: Mapping[str, Any]) -> int:
        """The number of this system text and schema in the segment (written there the first time)."""
        text = orjson.dumps([system, schema], default=str)
        number = self._texts.get(text)
        if number is None:
            number = self._texts[text] = len(self._texts)
            doc = {"text": number, "system": system, "schema": schema}
            self._lines.append(self._safe(orjson.dumps(doc, default=str)))
        return number

    def _safe(self, line: bytes) -> bytes:
        return redacted(line, self._secrets) + b"\n"

    def flush(self) -> None:
        if not self._lines or self._broken:
            return
        lines, self._lines = b"".join(self._lines), []
        try:
            if self._out is None:
                make_dir(self.path.parent)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                self._out = os.fdopen(fd, "ab")
            self._out.write(lines)
            self._out.flush()
        except OSError as exc:
            warn(f"{self.path}: cannot log the run's calls ({os_cause(exc)}): the run goes on without its log")
            self._broken = True

    def close(self) -> None:
        self.flush()
        if self._out is not None:
            out, self._out = self._out, None
            try:
                out.close()
            except OSError as exc:
                warn(f"{self.path}: cannot log the run's calls ({os_cause(exc)})")


def _outcome(rows: int, valid: int, finish: str) -> str:
    if valid == rows:
        return "ok"
    if finish != "stop":
        return finish
    return "invalid" if not valid else f"{valid}/{rows} valid"


@dataclass(frozen=True)
class LoggedCall:
    """A call as the log holds it, with its system text and schema."""

    doc: dict[str, Any]
    system: str
    schema: Any


def read_calls(path: Path) -> Iterator[LoggedCall]:
    """The calls of a segment in the order they were logged (a damaged line skipped with a warning)."""
    texts: dict[Any, tuple[str, Any]] = {}
    for doc in read_lines(path):
        if "text" in doc:
            texts[doc["text"]] = (str(doc.get("system", "")), doc.get("schema"))
        elif "rows" in doc and "run" in doc:
            system, schema = texts.get(doc.get("system"), ("", None))
            yield LoggedCall(doc, system, schema)


def segments(cache_dir: Path) -> list[Path]:
    """The log's segments, newest run first: by their run id, which sorts by the second the run started,
    and among runs started in one second by their first call (a run id ends in random characters)."""
    folder = calls_dir(cache_dir)
    try:
        paths = list(folder.glob("*.jsonl"))
    except OSError:
        return []
    seconds = Counter(p.name[:SECOND] for p in paths)

    def started(path: Path) -> tuple[str, float, str]:
        first = 0.0
        if seconds[path.name[:SECOND]] > 1:
            at = next((call.doc.get("at") for call in read_calls(path)), None)
            first = float(at) if isinstance(at, int | float) else 0.0
        return path.name[:SECOND], first, path.name

    return sorted(paths, key=started, reverse=True)
