"""The review tests' output: a run's output through the seam, with the ``_confidence`` and ``_flags`` columns
the confidence work adds (written here as it will write them), and a review server on it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from enrichkit.cli.flags import CliOptions
from enrichkit.cli.runner import run_job
from enrichkit.options import RunOptions
from enrichkit.output.files import columns_of, write_rows
from enrichkit.providers.base import Reply, Request, Usage
from enrichkit.review.server import ReviewServer
from enrichkit.review.session import Session
from enrichkit.rows.files import iter_rows, read_rows
from enrichkit.task.task import Task
from enrichkit.testing import FunctionProvider, ids_of
from helpers import ROOT, topic_rows, write_jsonl

TASK = ROOT / "schemas" / "roadmap-topic.json"

ROWS = 30


def answer(request: Request) -> Reply:
    """The same answer for every row: a pack's items, or a single row's object."""
    one = {"tldr": "A short summary.", "challenge": "practice"}
    if not (ids := ids_of(request)):
        return Reply(json.dumps(one), usage=Usage(100, 10))
    return Reply(json.dumps([{"id": rid, **one} for rid in ids]), usage=Usage(100, 10 * len(ids)))


def run(source: Path, output: Path, cache: Path, model: str = "fn") -> tuple[dict[str, Any], int]:
    """A run through the seam; its report and the rows the model was asked for."""
    provider = FunctionProvider(answer, name="fn", model=model)
    report = output.with_name("report.json")
    options = RunOptions(provider=provider, cache_dir=cache, pack_size=10)
    code = run_job(iter_rows(source), TASK, output, options, CliOptions(report=report, quiet=True, source=source))
    assert code == 0
    return json.loads(report.read_text()), sum(len(ids_of(r)) or 1 for r in provider.requests)


def confidence(n: int) -> float:
    """Row ``n``'s confidence: spread over 0.05 .. 0.92, not in file order."""
    return round(0.05 + ((n * 7) % ROWS) * 0.03, 2)


def enriched(folder: Path) -> tuple[Path, Path, Path]:
    """The input, the output (CSV, with confidence and flags) and the cache folder of a run of ``ROWS`` rows."""
    source, output, cache = write_jsonl(folder / "rows.jsonl", topic_rows(ROWS)), folder / "out.csv", folder / "c"
    run(source, output, cache)
    rows = read_rows(output)
    for n, row in enumerate(rows):
        row["_confidence"] = confidence(n)
        row["_flags"] = "repaired" if n % 10 == 4 else ""
    write_rows(output, rows, columns_of(rows))
    return source, output, cache


@contextmanager
def serving(output: Path, cache: Path) -> Iterator[ReviewServer]:
    session = Session(output, Task.from_file(TASK), cache)
    server = ReviewServer(session)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        session.close()
