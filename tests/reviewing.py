"""The review tests' outputs: a run's output through the seam or through the Gemini stub (``run_on_stub``), its
``_confidence`` from the log-probabilities the model gave each row's ``challenge`` (``confidence``), its
``_flags`` written here; a typed task's output in any format (``typed_output``); and a review server on it."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from enrichkit.cli.flags import CliOptions
from enrichkit.cli.runner import run_job
from enrichkit.history.runs import RunRecord
from enrichkit.options import RunOptions
from enrichkit.output.files import columns_of, write_rows
from enrichkit.providers.base import Capabilities, Reply, Request
from enrichkit.review.server import TOKEN_HEADER, ReviewServer
from enrichkit.review.session import Session
from enrichkit.rows.files import iter_rows, read_rows
from enrichkit.task.task import Task
from enrichkit.testing import FunctionProvider, GeminiStub, Probs, ids_of, records_of, scored
from helpers import ROOT, invoke, topic_rows, write_jsonl

TASK = ROOT / "schemas" / "roadmap-topic.json"

ROWS = 30


def answer(request: Request) -> Reply:
    """The same answer for every row (a pack's items, or a single row's object), its ``challenge`` given the
    row's ``confidence`` (the free-text ``tldr`` has none)."""
    one = {"tldr": "A short summary.", "challenge": "practice"}
    sure = {r.get("id"): confidence(int(r["topic"].rsplit(" ", 1)[1])) for r in records_of(request)}
    if not (ids := ids_of(request)):
        return scored(one, {"challenge": sure[None]})
    return scored(
        [{"id": rid, **one} for rid in ids], lambda item, name: sure[item["id"]] if name == "challenge" else None
    )


def run(source: Path, output: Path, cache: Path, model: str = "fn") -> tuple[dict[str, Any], int]:
    """A run through the seam (a model that gives log-probabilities); its report and the rows the model was
    asked for."""
    provider = FunctionProvider(answer, name="fn", model=model, capabilities=Capabilities(logprobs=True))
    report = output.with_name("report.json")
    options = RunOptions(provider=provider, cache_dir=cache, pack_size=10)
    code = run_job(iter_rows(source), TASK, output, options, CliOptions(report=report, quiet=True, source=source))
    assert code == 0
    return json.loads(report.read_text()), sum(len(ids_of(r)) or 1 for r in provider.requests)


def run_on_stub(stub: GeminiStub, source: Path, output: Path, cache: Path, *flags: str) -> tuple[dict[str, Any], str]:
    """A run of the roadmap task through ``stub`` (the CLI, the real Gemini SDK), each row's values written with
    its ``confidence``; its report and what it printed."""
    stub.probs = Probs(rows=lambda record: confidence(int(record["topic"].rsplit(" ", 1)[1])))
    report = output.with_name(output.stem + "-report.json")
    args = ["run", str(source), "-t", str(TASK), "-o", str(output), "--cache-dir", str(cache), "--report", str(report)]
    result = invoke(stub, *args, "--pack-size", "10", *flags)
    assert result.exit_code == 0, result.output
    return json.loads(report.read_text()), result.output


def confidence(n: int) -> float:
    """Row ``n``'s confidence: spread over 0.05 .. 0.92, not in file order."""
    return round(0.05 + ((n * 7) % ROWS) * 0.03, 2)


def enriched(folder: Path) -> tuple[Path, Path, Path]:
    """The input, the output (CSV, with confidence and flags) and the cache folder of a run of ``ROWS`` rows."""
    source, output, cache = write_jsonl(folder / "rows.jsonl", topic_rows(ROWS)), folder / "out.csv", folder / "c"
    run(source, output, cache)
    rows = read_rows(output)
    for n, row in enumerate(rows):
        row["_flags"] = "repaired" if n % 10 == 4 else ""
    write_rows(output, rows, columns_of(rows))
    return source, output, cache


TYPED_ROWS = 12

TYPED_TASK = {
    "name": "repos",
    "instruction": "Describe each repository.",
    "inputs": ["name", "stars"],
    "id_field": "id",
    "output": {
        "type": "object",
        "properties": {
            "tldr": {"type": "string", "description": "What it is for."},
            "challenge": {"type": "string", "enum": ["practice", "expert"]},
            "typed": {"type": "boolean"},
        },
        "required": ["tldr", "challenge", "typed"],
    },
}
"""A task with two closed fields, one of them not text, on rows with a number input."""


def sure(n: int) -> dict[str, float]:
    """Row ``n``'s probabilities (of ``TYPED_TASK``): now one closed field is the less sure, now the other."""
    return {"challenge": round(0.1 + 0.07 * n, 2), "typed": round(0.95 - 0.06 * n, 2)}


def typed_answer(request: Request) -> Reply:
    records = records_of(request)
    number = {r.get("id"): int(r["name"].removeprefix("repo")) for r in records}
    one = {"tldr": "A repository.", "challenge": "practice", "typed": True}
    if not (ids := ids_of(request)):
        return scored(one, sure(number[None]))
    return scored([{"id": rid, **one} for rid in ids], lambda item, name: sure(number[item["id"]]).get(name))


def typed_output(folder: Path, suffix: str, logprobs: bool = True) -> tuple[Path, Path, Task]:
    """A run of ``TYPED_TASK`` on ``TYPED_ROWS`` rows (their ``stars`` numbers, so a CSV output holds them as
    text) into an output of ``suffix``; the output, the cache folder and the task."""
    (folder / "task.json").write_text(json.dumps(TYPED_TASK))
    rows = [{"id": f"r{n}", "name": f"repo{n}", "stars": 10 * n} for n in range(TYPED_ROWS)]
    source, output, cache = write_jsonl(folder / "rows.jsonl", rows), folder / f"out{suffix}", folder / "cache"
    capabilities = Capabilities(logprobs=logprobs)
    provider = FunctionProvider(typed_answer, name="fn", model="fn", capabilities=capabilities)
    options = RunOptions(provider=provider, cache_dir=cache, pack_size=5)
    assert run_job(iter_rows(source), folder / "task.json", output, options, CliOptions(quiet=True)) == 0
    return output, cache, Task.from_file(folder / "task.json")


@contextmanager
def serving(
    output: Path, cache: Path, task: Task | None = None, run: RunRecord | None = None
) -> Iterator[ReviewServer]:
    """A review server of ``output`` (rows answering ``task``, by default the roadmap task; written by ``run``)
    on a thread of its own, stopped and closed after."""
    session = Session(output, task or Task.from_file(TASK), cache, run)
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


def request(
    server: ReviewServer, method: str, path: str, doc: Any = None, token: str | None = None, host: str | None = None
) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)  # a hang guard only
    headers = {"Host": host or f"127.0.0.1:{server.port}", "Content-Type": "application/json"}
    if token is not None:
        headers[TOKEN_HEADER] = token
    connection.request(method, path, body=None if doc is None else json.dumps(doc), headers=headers)
    reply = connection.getresponse()
    body = reply.read().decode()
    connection.close()
    return reply.status, body
