"""The budget (``max_cost=``, ``--max-cost``): a run never spends more than it allows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google import genai

from enrichkit import Task, UserError, enrich
from enrichkit.cli.flags import CliOptions
from enrichkit.cli.runner import STOPPED, run_job
from enrichkit.options import RunOptions
from enrichkit.rows.files import iter_rows
from enrichkit.testing import GeminiStub
from helpers import ROOT, topic_rows


def test_a_run_estimated_over_the_budget_is_refused_before_any_call(
    stub: GeminiStub, client: genai.Client, task: Task, cache_dir: Path
) -> None:
    with pytest.raises(UserError, match=r"would cost about \$0\.\d+, more than --max-cost \$0.001"):
        enrich(topic_rows(100), task, client=client, cache_dir=cache_dir, max_cost=0.001)
    assert stub.generate_calls == []


def test_the_budget_stops_the_run_before_a_call_that_could_cross_it_and_the_output_is_whole(
    stub: GeminiStub, tmp_path: Path
) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in topic_rows(300)), encoding="utf-8")
    out, report = tmp_path / "out.jsonl", tmp_path / "report.json"
    limit = 0.01  # the first chunk of 100 rows is estimated at about $0.008; the whole run would spend about $0.014
    options = RunOptions(
        provider="gemini",
        base_url=stub.url,
        cache_dir=tmp_path / "cache",
        chunk_rows=100,
        max_cost=limit,
        concurrency=1,
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GEMINI_API_KEY", "test-key")
        code = run_job(
            iter_rows(source), ROOT / "schemas" / "roadmap-topic.json", out, options, CliOptions(report, quiet=True)
        )
    assert code == STOPPED
    done = json.loads(report.read_text(encoding="utf-8"))
    assert done["stopped"].startswith("budget reached")
    assert sum(c["live_usd"] for c in done["cost"].values()) <= limit
    assert 100 < done["enriched"] < 300 and done["calls"] == len(stub.generate_calls) < 15
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(written) == 300 and sum(r["tldr"] is not None for r in written) == done["enriched"]
