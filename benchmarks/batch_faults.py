"""Batch runs finish (issue 31, item 1): 1,000 rows in ``--mode batch`` under faulty requests and jobs.

    .venv/bin/python benchmarks/batch_faults.py              # seeds 1..3, well under a minute
    .venv/bin/python benchmarks/batch_faults.py --seed 7     # one seed

The real SDKs against the in-process stubs (Gemini Batch API; OpenAI Files + Batches), a fresh cache
each run, no fallback model, default flags. Scenarios:

1. ~15 % of the requests inside the jobs faulty, drawn as ``resilience.py`` draws them (400, bad enum,
   dropped, duplicated or unknown ids, swapped answers, cut off, 429, 500, 503; per seed, prompt and
   repeat).
2. The first job ends ``expired`` with a quarter of its requests answered (``failed``: none answered),
   then the run goes on as usual (``--no-wait``, the stub moves the job, the same run again).

Printed per run: rows correct / cross-wired / wrong / failed (a row is correct when its answer is the
stub's own answer for that row), the jobs, the batch requests, the rows finished live (stragglers) and
the live calls. Target: every row correct, none failed, exit 0.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from enrichkit import EnrichResult, enrich
from enrichkit.providers.gemini import make_client
from enrichkit.providers.openai import openai_provider
from enrichkit.testing import GeminiStub, OpenAIStub
from resilience import RETRY, TASK, Mix, random_fault, score, synthetic_rows

ROWS = 1_000
RATE = 0.15


def enriched(stub: GeminiStub | OpenAIStub, rows: list[dict[str, Any]], cache: Path, **options: Any) -> EnrichResult:
    common: dict[str, Any] = {"cache_dir": cache, "retry": RETRY, "mode": "batch", "poll": 0.05, "progress": False}
    if isinstance(stub, GeminiStub):
        return enrich(rows, TASK, client=make_client("benchmark", stub.url), **common, **options)
    return enrich(rows, TASK, provider=openai_provider("stub-model", stub.url), **common, **options)


def show(name: str, stub: GeminiStub | OpenAIStub, rows: list[dict[str, Any]], result: EnrichResult) -> None:
    correct, crosswired, wrong, failed = score(rows, result)
    s = result.stats
    sent = sum(r.requests for r in s.batch_rungs)
    print(
        f"{name:<34} {correct:>7} {crosswired:>6} {wrong:>5} {failed:>6} {len(s.jobs):>5} {sent:>9}"
        f" {s.finished_live:>5} {len(stub.generate_calls):>5}"
    )


def faulty(kind: str, seed: int, rows: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as cache, GeminiStub() if kind == "gemini" else OpenAIStub() as stub:
        stub.rule(random_fault(Mix(seed, RATE), groq=kind != "gemini"))
        show(f"{kind} ~15 % faulty, seed {seed}", stub, rows, enriched(stub, rows, Path(cache)))


def job_ends(state: str, rows: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as cache, OpenAIStub(auto=False) as stub:
        enriched(stub, rows, Path(cache), wait=False)
        [name] = stub.jobs
        stub.advance(name, state, answered=len(stub.jobs[name].lines) // 4 if state == "expired" else None)
        stub.batches.auto = True  # the later jobs finish as usual
        show(f"openai first job {state}", stub, rows, enriched(stub, rows, Path(cache)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, action="append", help="a fault seed (repeatable; default 1, 2, 3)")
    seeds = parser.parse_args().seed or [1, 2, 3]
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    os.environ.setdefault("OPENAI_API_KEY", "stub-key")
    rows = synthetic_rows(ROWS)
    print(f"{ROWS:,} rows, --mode batch, packs of 20, no fallback model, default flags")
    head = f"{'run':<34} {'correct':>7} {'xwired':>6} {'wrong':>5} {'failed':>6} {'jobs':>5} {'requests':>9}"
    print(f"{head} {'live rows':>5} {'live calls':>5}")
    for seed in seeds:
        for kind in ("gemini", "openai"):
            faulty(kind, seed, rows)
    for state in ("expired", "failed"):
        job_ends(state, rows)


if __name__ == "__main__":
    main()
