"""Batch mode on OpenAI-compatible endpoints and on Anthropic, with the real SDKs against wire stubs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enrichkit import EnrichResult, Task, enrich
from enrichkit.engine.batch import JobStore
from enrichkit.providers.anthropic import anthropic_provider
from enrichkit.providers.base import Provider
from enrichkit.providers.openai import openai_provider
from enrichkit.testing import AnthropicStub, Asked, Fault, OpenAIStub, http_error, json_validate_failed
from helpers import FAST_RETRY, topic_rows

POLL = 0.01
Stubs = OpenAIStub | AnthropicStub


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")


def provider_on(stub: Stubs, model: str = "main-model") -> Provider:
    if isinstance(stub, OpenAIStub):
        return openai_provider(model, base_url=stub.url)
    assert isinstance(stub, AnthropicStub)
    return anthropic_provider(model, base_url=stub.url)


def run(stub: Stubs, task: Task, cache_dir: Path, rows: int, **kw: Any) -> EnrichResult:
    kw = {"mode": "batch", "poll": POLL, "retry": FAST_RETRY, **kw}
    return enrich(topic_rows(rows), task, provider=provider_on(stub), cache_dir=cache_dir, **kw)


GROQ_MESSAGE = "Failed to generate JSON. Please adjust your prompt. See 'failed_generation' for more details."


def request_failed(stub: Stubs) -> Fault:
    """What the provider answers a request the model cannot answer in the schema."""
    if isinstance(stub, OpenAIStub):
        return json_validate_failed(GROQ_MESSAGE, '{"items": [')
    return http_error(400, "stub: the output did not fit the tool's schema", code="invalid_request_error")


@pytest.fixture(params=["openai", "anthropic"])
def stub(request: pytest.FixtureRequest) -> Iterator[Stubs]:
    with OpenAIStub() if request.param == "openai" else AnthropicStub() as server:
        assert isinstance(server, OpenAIStub | AnthropicStub)
        yield server


def test_a_thousand_rows_are_one_job_of_fifty_requests_and_a_rerun_costs_nothing(
    stub: Stubs, task: Task, cache_dir: Path
) -> None:
    result = run(stub, task, cache_dir, 1000)
    [job] = stub.jobs
    assert len(stub.requests_of(job)) == 50 and all(len(a.answer) == 20 for a in stub.calls)
    assert stub.generate_calls == []  # nothing went live
    assert result.failures == [] and result.stats.enriched == 1000 and result.stats.calls_batch == 50
    assert result.stats.jobs == [job]
    by_id = {r["id"]: r for r in topic_rows(1000)}
    assert all(row["tldr"] == f"About {by_id[row['id']]['category']} {row['topic']} Synthetic" for row in result.rows)
    assert JobStore(cache_dir).all() == []
    again = run(stub, task, cache_dir, 1000)
    assert again.stats.calls == 0 and again.stats.cache_hits == 1000 and len(stub.jobs) == 1


def test_a_batch_line_is_the_live_request(stub: Stubs, task: Task, cache_dir: Path) -> None:
    enrich(topic_rows(20), task, provider=provider_on(stub), cache_dir=cache_dir / "live", retry=FAST_RETRY)
    run(stub, task, cache_dir, 20)
    live, batched = stub.calls
    assert live.job is None and batched.job is not None and live.body == batched.body


def test_failed_requests_go_down_the_ladder_to_a_job_on_the_fallback_model(
    stub: Stubs, task: Task, cache_dir: Path
) -> None:
    """10 of 50 packs (20 %) fail on the main model; the fallback answers them, two packs a request."""
    bad = {i for i in range(1000) if (i // 20) % 5 == 0}  # every fifth pack of 20 rows

    def cannot(asked: Asked) -> bool:
        rows = {int(n) for n in re.findall(r"Synthetic description (\d+) ", asked.prompt)}
        return asked.model == "main-model" and bool(rows & bad)

    stub.rule(request_failed(stub), when=cannot)
    result = run(stub, task, cache_dir, 1000, fallback=("fallback-model",))
    assert result.failures == [] and result.stats.enriched == 1000
    packs, fallback = result.stats.jobs  # the failed packs went to the fallback model still packed
    assert len(stub.requests_of(packs)) == 50
    assert len(stub.requests_of(fallback)) == 5 and all(a.rows == 40 for a in stub.requests_of(fallback))
    assert {a.model for a in stub.requests_of(fallback)} == {"fallback-model"}
    assert result.stats.by_model["fallback-model"].rows == 200
    assert [(r.model, r.size, r.requests, r.rows) for r in result.stats.batch_rungs] == [
        ("main-model", 20, 50, 1000),
        ("fallback-model", 40, 5, 200),
    ]


def test_results_out_of_order_and_unknown_ids_are_joined_on_their_keys(task: Task, cache_dir: Path) -> None:
    with OpenAIStub(shuffle_outputs=True, unknown_ids=3) as stub:
        result = run(stub, task, cache_dir, 200)
    assert result.failures == [] and result.stats.unknown_ids == 3
    assert all(row["tldr"].endswith(f"Topic number {row['id'][1:]} Synthetic") for row in result.rows)


def test_no_wait_then_an_expired_job_keeps_its_answers_and_the_rest_is_submitted_again(
    task: Task, cache_dir: Path
) -> None:
    with OpenAIStub(auto=False) as stub:
        first = run(stub, task, cache_dir, 60, wait=False)
        assert first.stats.pending == 60 and len(stub.jobs) == 1
        [name] = stub.jobs
        assert stub.jobs[name].metadata["display_name"] == JobStore(cache_dir).all()[0].display_name
        stub.advance(name, "expired", answered=2)  # 2 of 3 packs answered before the window closed
        second = run(stub, task, cache_dir, 60, wait=False)
        assert second.stats.enriched == 40 and second.stats.failed == 0 and second.stats.pending == 20
        assert [len(job.lines) for job in stub.jobs.values()] == [3, 1]  # the 20 unanswered rows again, packed
        third = run(stub, task, cache_dir, 60, wait=False)
        assert third.stats.cache_hits == 40 and third.stats.pending == 20 and len(stub.jobs) == 2  # re-attached


def test_a_run_killed_before_saving_the_job_name_finds_it_by_its_metadata(task: Task, cache_dir: Path) -> None:
    with OpenAIStub(auto=False) as stub:
        run(stub, task, cache_dir, 40, wait=False)
        store = JobStore(cache_dir)
        [manifest] = store.all()
        name, manifest.name = manifest.name, None
        store.save(manifest)
        assert name is not None
        stub.advance(name)
        result = run(stub, task, cache_dir, 40)
        assert len(stub.jobs) == 1 and result.stats.enriched == 40


def test_a_job_over_the_request_limit_is_split_into_several(
    task: Task, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("enrichkit.providers.openai.MAX_REQUESTS", 2)
    with OpenAIStub() as stub:
        result = run(stub, task, cache_dir, 100)
        assert [len(stub.jobs[j].lines) for j in result.stats.jobs] == [2, 2, 1]
    assert result.failures == [] and result.stats.enriched == 100


def test_the_error_file_reason_reaches_the_failure(task: Task, cache_dir: Path) -> None:
    with OpenAIStub() as stub:
        stub.rule(json_validate_failed(GROQ_MESSAGE, '{"items": ['))
        result = run(stub, task, cache_dir, 20, fallback=())
    assert result.stats.failed == 20 and len(result.stats.jobs) == 6  # 20, 10, 5, then each row alone 3 times
    assert [(r.size, r.requests) for r in result.stats.batch_rungs] == [(20, 1), (10, 2), (5, 4), (1, 60)]
    assert "400 json_validate_failed: Failed to generate JSON" in result.failures[0].reason


def test_anthropic_per_request_results_errored_expired_and_a_cancelled_job(task: Task, cache_dir: Path) -> None:
    with AnthropicStub(auto=False) as stub:
        run(stub, task, cache_dir, 60, wait=False)
        [name] = stub.jobs
        stub.advance(name, answered=1)  # one pack answered, two expired: those rows go on as they were
        result = run(stub, task, cache_dir, 60, wait=False)
        assert result.stats.enriched == 20 and result.stats.pending == 40 and len(stub.jobs) == 2
        again = result.stats.jobs[-1]
        assert len(stub.jobs[again].requests) == 2  # two packs of 20
        assert all(len(r["custom_id"]) <= 64 for r in stub.jobs[again].requests)
        stub.advance(again, answered=0, rest="canceled")
        last = run(stub, task, cache_dir, 60, wait=False, fallback=())
        assert last.stats.failed == 0 and last.stats.pending == 40 and len(stub.jobs) == 3  # a cancel may pass
