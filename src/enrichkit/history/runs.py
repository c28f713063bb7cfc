"""The run history: one JSON line a run in ``<cache folder>/history/runs.jsonl``, written when the run ends,
and a later line where the command line notes the output file the run wrote.

A record holds the run's id and time, the task as its file holds it and the task's fingerprint, provider,
model, options, counts, cost, wall time, output path, and how many of its answers were kept for ``diff``.
``field_fingerprints`` holds each output field's group fingerprint and ``key_fingerprint`` what every cache key
of the run shares (``engine.fieldkeys``): the dry run tells by them what a change to the task will ask again.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from enrichkit.errors import UserError
from enrichkit.history.files import append, history_dir, read_lines
from enrichkit.providers.redact import redacted_url
from enrichkit.result import Stats

RUNS = "runs.jsonl"

COUNTS = ("rows", "cache_hits", "duplicates", "enriched", "failed", "pending", "calls", "retries")

OPTIONS = ("mode", "pack_size", "concurrency", "fallback", "audit", "adaptive", "echo", "max_cost", "cache", "log")


def new_run_id() -> str:
    """A run id that sorts by time: ``20261206-193012-a1b2`` (UTC)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(2)


@dataclass
class RunRecord:
    run: str
    at: float
    """When the run started (epoch seconds)."""
    task: dict[str, Any]
    """The task as a task file holds it (``Task.document``)."""
    task_fingerprint: str
    field_fingerprints: dict[str, str] | None
    """Each output field's group fingerprint (``engine.fieldkeys``)."""
    provider: str
    model: str
    options: dict[str, Any]
    counts: dict[str, int]
    tokens: dict[str, int]
    cost_usd: float | None
    """At ``prices.json``'s rates; None: a model has no price."""
    cost: str
    seconds: float
    stopped: str = ""
    answers: int | None = None
    """Rows whose answers were kept for ``diff`` (None: none kept, see ``answers.KEPT_ROWS``)."""
    logged: bool = False
    output: str | None = None
    output_stamp: list[int] | None = None
    """The output file's size and modification time (ns) just after the run wrote it."""
    notes: dict[str, Any] = field(default_factory=dict)
    key_fingerprint: str | None = None
    """What every cache key of the run holds besides the row's inputs (``engine.context.run_fingerprint``)."""

    def document(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, doc: Mapping[str, Any]) -> RunRecord:
        known = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @property
    def fields(self) -> list[str]:
        return list(self.task.get("output", {}).get("properties", {}))


def counts_of(stats: Stats) -> tuple[dict[str, int], dict[str, int]]:
    """A run's counts and tokens as its record holds them."""
    counts = {name: int(getattr(stats, name)) for name in COUNTS}
    tokens = {"prompt": stats.prompt_tokens, "output": stats.output_tokens, "cached": stats.cached_tokens}
    return counts, tokens


def options_of(options: Any) -> dict[str, Any]:
    """The options of a run worth recalling (names and numbers; a provider object as its class name)."""
    out: dict[str, Any] = {}
    for name in OPTIONS:
        value = getattr(options, name, None)
        if isinstance(value, tuple):
            value = [v if isinstance(v, str) else type(v).__name__ for v in value]
        elif name == "cache" and isinstance(value, str):
            value = redacted_url(value)  # a Redis URL's password
        out[name] = value
    return out


def stamp(path: Path) -> list[int] | None:
    """A file's size and modification time (None: no such file)."""
    try:
        info = path.stat()
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns]


class RunHistory:
    """The runs recorded in one cache folder."""

    def __init__(self, cache_dir: Path) -> None:
        self.folder = history_dir(cache_dir)
        self.path = self.folder / RUNS

    def add(self, record: RunRecord) -> bool:
        return append(self.path, [record.document()])

    def note_output(self, run: str, output: Path) -> bool:
        """The output file ``run`` wrote (its absolute path, size and time)."""
        doc = {"run": run, "output": str(output.resolve()), "output_stamp": stamp(output)}
        return append(self.path, [doc])

    def runs(self) -> list[RunRecord]:
        """Every run recorded, newest first (a note merged into its run; a damaged line skipped)."""
        records: dict[str, dict[str, Any]] = {}
        for doc in read_lines(self.path):
            run = doc.get("run")
            if not isinstance(run, str):
                continue
            if run in records:
                records[run].update(doc)
            elif "task" in doc:
                records[run] = doc
        out = []
        for doc in records.values():
            try:
                out.append(RunRecord.of(doc))
            except TypeError:
                continue  # a line missing fields: damaged
        return sorted(out, key=lambda r: (r.at, r.run), reverse=True)

    def __iter__(self) -> Iterator[RunRecord]:
        return iter(self.runs())

    def find(self, ref: str) -> RunRecord:
        """The run ``ref`` names: its id or the start of it, ``last``, or ``last~N`` (N runs before the last)."""
        runs = self.runs()
        if ref == "last" or ref.startswith("last~"):
            back = ref.removeprefix("last").removeprefix("~") or "0"
            if not back.isdigit() or int(back) >= len(runs):
                raise UserError(f"{ref}: the history at {self.path} holds {len(runs):,} runs")
            return runs[int(back)]
        found = [r for r in runs if r.run.startswith(ref)]
        if len(found) == 1:
            return found[0]
        if not found:
            raise UserError(f"{ref}: no such run in {self.path} (see `enrichkit runs`)")
        raise UserError(f"{ref}: starts the ids of {len(found)} runs: give more of it")

    def written(self, output: Path) -> RunRecord | None:
        """The newest run that wrote ``output`` as it is now (same path, size and time), or None."""
        where, now = str(output.resolve()), stamp(output)
        return next((r for r in self.runs() if r.output == where and r.output_stamp == now), None)
