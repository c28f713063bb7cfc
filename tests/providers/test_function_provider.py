"""``enrich()`` through a ``FunctionProvider``: the engine at the Provider seam, no HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from enrichkit import FatalProviderError, Task, UserError, enrich
from enrichkit.errors import TransientError
from enrichkit.providers.base import Capabilities, Provider, Reply, Request
from enrichkit.testing import FunctionProvider, ids_of, records_of
from helpers import FAST_RETRY, topic_rows


def notes(request: Request) -> list[dict[str, Any]] | dict[str, Any]:
    """A valid answer: a note per record of a pack, or the one object of a single row."""
    if not ids_of(request):
        return {"tldr": f"Notes on {records_of(request)[0]['topic']}", "challenge": "practice"}
    return [{"id": r["id"], "tldr": f"Notes on {r['topic']}", "challenge": "practice"} for r in records_of(request)]


def run(rows: list[dict[str, Any]], task: Task, provider: Provider, cache_dir: Path) -> Any:
    return enrich(rows, task, provider=provider, cache_dir=cache_dir, retry=FAST_RETRY)


def test_a_clean_run_sends_one_pack_and_writes_every_row(task: Task, cache_dir: Path) -> None:
    provider = FunctionProvider(notes)
    result = run(topic_rows(5), task, provider, cache_dir)
    assert result.failures == [] and result.stats.calls == 1
    assert [row["tldr"] for row in result.rows] == [f"Notes on Topic number {i}" for i in range(5)]
    request = provider.requests[0]
    assert ids_of(request) == ["r1", "r2", "r3", "r4", "r5"]
    assert [r["topic"] for r in records_of(request)] == [f"Topic number {i}" for i in range(5)]


def test_a_dropped_id_is_asked_again_on_its_own(task: Task, cache_dir: Path) -> None:
    async def drop_r3_once(request: Request) -> Any:
        await asyncio.sleep(0)
        answer = notes(request)
        if len(provider.requests) == 1 and isinstance(answer, list):
            answer = [item for item in answer if item["id"] != "r3"]
        return answer

    provider = FunctionProvider(drop_r3_once)
    result = run(topic_rows(5), task, provider, cache_dir)
    assert result.failures == [] and result.stats.invalid_items == 1
    assert [len(records_of(r)) for r in provider.requests] == [5, 1]
    assert records_of(provider.requests[1])[0]["topic"] == "Topic number 2" and ids_of(provider.requests[1]) == []
    assert result.rows[2]["tldr"] == "Notes on Topic number 2"


def test_a_provider_error_raised_by_the_function_is_retried(task: Task, cache_dir: Path) -> None:
    def flaky(request: Request) -> Any:
        if len(provider.requests) == 1:
            raise TransientError("stub: a 503")
        return notes(request)

    provider = FunctionProvider(flaky)
    result = run(topic_rows(3), task, provider, cache_dir)
    assert result.failures == [] and result.stats.retries == 1 and len(provider.requests) == 2


def test_a_fatal_provider_error_stops_the_run(task: Task, cache_dir: Path) -> None:
    def refused(request: Request) -> Any:
        raise FatalProviderError("stub: bad key")

    with pytest.raises(FatalProviderError, match="bad key"):
        run(topic_rows(3), task, FunctionProvider(refused), cache_dir)


def test_answers_may_be_text_or_a_reply_and_derived_providers_share_the_record() -> None:
    replies: list[Any] = ['{"a": 1}', Reply("raw", finish="max_tokens"), [1, 2]]
    provider = FunctionProvider(
        lambda request: replies.pop(0), capabilities=Capabilities(service_tiers=frozenset({"flex"}))
    )
    request = Request("system", "Enrich this record.\n\n{}", {"type": "object"}, 100)
    strong, flex = provider.with_model("strong"), provider.on_tier("flex")
    texts = [asyncio.run(p.generate(request)) for p in (provider, strong, flex)]
    assert [r.text for r in texts] == ['{"a": 1}', "raw", "[1, 2]"] and texts[1].finish == "max_tokens"
    assert (strong.model, strong.settings(), flex.model, flex.service_tier) == (
        "strong",
        {"model": "strong"},
        "function",
        "flex",
    )
    assert len(provider.requests) == 3 and asyncio.run(provider.count_tokens(request)) is None
    assert provider.batches() is None
    with pytest.raises(UserError, match="no service tier 'batch'"):
        provider.on_tier("batch")


def test_records_are_found_wherever_the_prompt_puts_them() -> None:
    pack = {"type": "array", "items": {"properties": {"id": {"enum": ["r1", "r2"]}}}}
    prompt = 'Answer like [{"id": "x"}] or {"id": "y"}: [{"id": "r2", "a": "[1"}, {"id": "r1", "a": "}"}] done'
    assert records_of(Request("", prompt, pack, 100)) == [{"id": "r2", "a": "[1"}, {"id": "r1", "a": "}"}]
    assert records_of(Request("", 'One record: {"a": {"b": 1}} {"c": 2}', {"type": "object"}, 100)) == [{"a": {"b": 1}}]
    assert records_of(Request("", "no JSON [here", pack, 100)) == []
