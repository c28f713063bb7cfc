"""The cascade in batch mode (the doubtful rows go to a second batch job on the stronger model) and under a budget,
through the OpenAI stub."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enrichkit import EnrichResult, Task, UserError, dry_run, enrich
from enrichkit.calls.prices import cost_of
from enrichkit.engine.batch import JobStore
from enrichkit.engine.jobs import collect_job
from enrichkit.history.calls import calls_dir
from enrichkit.options import Escalate, RunOptions
from enrichkit.output.receipt import dry_run_report, dry_run_text, run_report, run_text
from enrichkit.providers.openai import openai_provider
from enrichkit.result import Cost, usd
from enrichkit.testing import OpenAIStub, Probs, set_field
from helpers import FAST_RETRY, topic_rows

DOUBTFUL = {f"t{i}" for i in range(0, 40, 4)}  # 10 of 40 rows written with probability 0.3


@pytest.fixture(params=[True])
def stub(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIStub]:
    """The stub, its jobs ending at once (``auto``; param False: when a test ``advance``s them)."""
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with OpenAIStub(auto=request.param) as server:
        server.probs = Probs(rows=lambda record: 0.3 if _number(record) % 4 == 0 else 0.99)
        server.rule(set_field(None, "challenge", "practice"), when=lambda asked: asked.model == "gpt-4o-mini")
        server.rule(set_field(None, "challenge", "expert"), when=lambda asked: asked.model == "gpt-4.1-mini")
        yield server


def _number(record: Any) -> int:
    return int(re.findall(r"\d+", str(record.get("topic", "")))[0])


def run(stub: OpenAIStub, task: Task, cache_dir: Path, **kw: Any) -> EnrichResult:
    kw = {"mode": "batch", "poll": 0.01, "retry": FAST_RETRY, "escalate": Escalate("gpt-4.1-mini", below=0.5), **kw}
    provider = openai_provider("gpt-4o-mini", base_url=stub.url)
    return enrich(topic_rows(40), task, provider=provider, cache_dir=cache_dir, progress=False, **kw)


def _models(stub: OpenAIStub, job: str) -> set[str]:
    return {a.model for a in stub.requests_of(job)}


def test_the_doubtful_rows_go_to_a_second_job_on_the_stronger_model_and_a_rerun_asks_nothing(
    stub: OpenAIStub, task: Task, cache_dir: Path
) -> None:
    result = run(stub, task, cache_dir)
    first, second = result.stats.jobs
    assert _models(stub, first) == {"gpt-4o-mini"} and _models(stub, second) == {"gpt-4.1-mini"}
    assert stub.generate_calls == []  # no live call
    escalated = {r["id"] for r in result.rows if r["_flags"] == "escalated"}
    assert escalated == DOUBTFUL
    assert {r["id"]: r["challenge"] for r in result.rows} == {
        r["id"]: "expert" if r["id"] in DOUBTFUL else "practice" for r in result.rows
    }
    summary = result.stats.escalation
    assert summary is not None
    assert (summary.rows, summary.answered, summary.changed, summary.waiting) == (10, 10, 10, 0)
    assert summary.calls == len(stub.requests_of(second)) and result.stats.calls_batch == result.stats.calls
    tokens = summary.prompt_tokens, summary.output_tokens
    priced = cost_of("gpt-4.1-mini", *tokens)
    assert priced is not None and summary.cost == Cost(priced.live_usd, priced.batch_usd, "batch")  # the batch price
    assert [(r.model, r.rows) for r in result.stats.batch_rungs] == [("gpt-4o-mini", 40), ("gpt-4.1-mini", 10)]
    text = run_text(run_report(result.stats, "openai", "gpt-4o-mini"))
    assert "escalated: 10 rows below 0.5 to openai:gpt-4.1-mini, 10 answers changed" in text
    assert f"est. cost {usd(summary.cost.batch_usd)} at the batch price" in text
    # a re-run: the stronger answers from the cache, no job, no call
    again = run(stub, task, cache_dir)
    assert again.stats.calls == 0 and again.stats.jobs == []
    assert [r["challenge"] for r in again.rows] == [r["challenge"] for r in result.rows]


@pytest.mark.parametrize("stub", [False], indirect=True)
def test_an_escalation_job_not_waited_for_keeps_the_first_answers_and_the_next_run_collects_it(
    stub: OpenAIStub, task: Task, cache_dir: Path
) -> None:
    run(stub, task, cache_dir, wait=False)
    [main] = stub.jobs
    stub.advance(main)
    waiting = run(stub, task, cache_dir, wait=False)  # the main job collected, the escalation job submitted
    summary, confidence = waiting.stats.escalation, waiting.stats.confidence
    assert summary is not None and confidence is not None
    assert len(stub.jobs) == 2 and waiting.failures == [] and summary.waiting == 10
    assert {r["challenge"] for r in waiting.rows} == {"practice"} and "escalated" not in confidence.flags
    text = run_text(run_report(waiting.stats, "openai", "gpt-4o-mini"))
    assert "10 rows waiting in a batch job (re-run to collect)" in text
    [escalation] = [name for name in stub.jobs if name != main]
    stub.advance(escalation)
    collected = run(stub, task, cache_dir, wait=False)  # re-attached to the escalation job: none submitted
    assert len(stub.jobs) == 2 and stub.generate_calls == []
    assert {r["id"] for r in collected.rows if r["challenge"] == "expert" and r["_flags"] == "escalated"} == DOUBTFUL


def test_the_dry_run_prices_the_most_the_escalation_may_ask(stub: OpenAIStub, task: Task, cache_dir: Path) -> None:
    def planned(below: float) -> Any:
        provider = openai_provider("gpt-4o-mini", base_url=stub.url)
        escalate = Escalate("gpt-4.1-mini", below=below)
        return dry_run(topic_rows(40), task, provider=provider, cache_dir=cache_dir, escalate=escalate).escalation

    before = planned(0.5)  # nothing answered yet: every row may fall below
    assert (before.model, before.rows) == ("openai:gpt-4.1-mini", 40)
    assert before.cost == cost_of("gpt-4.1-mini", before.prompt_tokens, before.output_tokens)
    run(stub, task, cache_dir)
    after = planned(0.995)  # the 30 sure rows (0.99) not escalated yet; the 10 escalated ones never again
    assert after.rows == 30 and 0 < after.prompt_tokens < before.prompt_tokens
    assert stub.generate_calls == []  # neither dry run sent anything
    provider = openai_provider("gpt-4o-mini", base_url=stub.url)
    dry = dry_run(topic_rows(40), task, provider=provider, cache_dir=cache_dir, escalate=Escalate("gpt-4.1-mini", 0.5))
    text = dry_run_text(dry_run_report(dry))
    assert "escalation: up to 0 rows on openai:gpt-4.1-mini (those whose confidence falls below 0.5" in text


@pytest.mark.parametrize("stub", [False], indirect=True)
def test_an_escalation_job_collected_by_enrichkit_jobs_keeps_its_answers_flagged(
    stub: OpenAIStub, task: Task, cache_dir: Path
) -> None:
    run(stub, task, cache_dir, wait=False)
    [main] = stub.jobs
    stub.advance(main)
    run(stub, task, cache_dir, wait=False)
    [manifest] = JobStore(cache_dir).all()
    assert (manifest.model, manifest.flags) == ("gpt-4.1-mini", ["escalated"])
    assert manifest.name is not None
    stub.advance(manifest.name)
    collected = collect_job(RunOptions(cache_dir=cache_dir, base_url=stub.url), manifest.name)
    assert collected.valid == 10
    again = run(stub, task, cache_dir, wait=False)  # the escalated answers from the cache: nothing asked again
    assert again.stats.calls == 0 and len(stub.jobs) == 2
    assert {r["id"] for r in again.rows if r["challenge"] == "expert" and r["_flags"] == "escalated"} == DOUBTFUL


def test_the_batch_requests_are_in_the_call_log_and_a_rows_story(stub: OpenAIStub, task: Task, cache_dir: Path) -> None:
    result = run(stub, task, cache_dir)
    first, second = result.stats.jobs
    log = calls_dir(cache_dir)
    lines = [json.loads(line) for path in log.glob("*.jsonl") for line in path.read_text().splitlines()]
    calls = [c for c in lines if c.get("kind") == "batch"]
    assert len(calls) == len(stub.requests_of(first)) + len(stub.requests_of(second))
    assert all(c["mode"] == "batch" and c["outcome"] == "ok" and c["tokens"][0] > 0 for c in calls)
    story = [c for c in calls if "t4" in c["rows"]]  # a doubtful row: its pack on each model
    assert [c["model"] for c in story] == ["gpt-4o-mini", "gpt-4.1-mini"]
    assert [c["results"][c["rows"].index("t4")]["v"]["challenge"] for c in story] == ["practice", "expert"]
    assert all('"Topic number 4"' in c["prompt"] for c in story)  # the request as it was sent


@pytest.fixture
def dear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Prices under which the main pass costs next to nothing and any call on the stronger model over $1."""
    prices = {
        "gpt-4o-mini": {"input": 0.01, "output": 0.01, "batch_input": 0.005, "batch_output": 0.005},
        "gpt-4.1-mini": {"input": 1e6, "output": 1e6, "batch_input": 5e5, "batch_output": 5e5},
    }
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"models": prices}), encoding="utf-8")
    monkeypatch.setenv("ENRICHKIT_PRICES", str(path))


@pytest.mark.parametrize("mode", ["live", "batch"])
def test_the_escalation_spends_from_the_budget_and_stops_where_it_would_pass_it(
    stub: OpenAIStub, task: Task, cache_dir: Path, dear: None, mode: str
) -> None:
    with pytest.warns(RuntimeWarning, match="budget reached"):
        result = run(stub, task, cache_dir, mode=mode, max_cost=1.0)
    assert {c.model for c in stub.calls if c.action == "generate"} == {"gpt-4o-mini"}  # none to the stronger model
    assert len(stub.jobs) == (1 if mode == "batch" else 0)
    assert result.stats.stopped.startswith("budget reached") and "escalate" in result.stats.hint
    assert result.failures == [] and {r["challenge"] for r in result.rows} == {"practice"}  # the first answers
    cost = result.stats.est_cost
    assert cost is not None and cost.usd <= 1.0
    if mode == "batch":
        assert "the escalation's batch job (10 rows on gpt-4.1-mini) would cost about" in result.stats.stopped
    again = run(stub, task, cache_dir, mode=mode)  # without the budget: only the doubtful rows are asked, now
    assert {r["id"] for r in again.rows if r["_flags"] == "escalated"} == DOUBTFUL


def test_an_escalation_model_without_a_price_is_refused_under_a_budget_before_anything_is_sent(
    stub: OpenAIStub, task: Task, cache_dir: Path
) -> None:
    with pytest.raises(UserError, match="--max-cost: no price is known for the escalation model 'gpt-unpriced'"):
        run(stub, task, cache_dir, mode="live", max_cost=1.0, escalate=Escalate("gpt-unpriced", below=0.5))
    assert stub.generate_calls == [] and stub.jobs == {}
