"""The OpenAI provider through ``enrich()``, on the real ``openai`` SDK against an OpenAI-compatible stub."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from enrichkit import EnrichResult, FatalProviderError, Task, aenrich, enrich
from enrichkit.cache.folder import RowCache
from enrichkit.engine.prompt import pack_prompt, pack_schema
from enrichkit.providers.base import Reply, Request
from enrichkit.providers.openai import OpenAIProvider, openai_provider
from enrichkit.testing import OpenAIStub, Wire, http_error, truncated
from enrichkit.testing.openai import error_body
from helpers import FAST_RETRY, topic_rows

Run = Callable[..., EnrichResult]


@pytest.fixture
def server() -> Iterator[OpenAIStub]:
    with OpenAIStub() as stub:
        yield stub


@pytest.fixture
def run(server: OpenAIStub, task: Task, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """``enrich`` on a fresh provider from ``openai_provider`` (as the CLI makes it; a run closes its provider)."""
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")

    def go(rows: list[dict[str, Any]], **kw: Any) -> EnrichResult:
        provider = openai_provider("stub-model", base_url=server.url)
        return enrich(rows, task, provider=provider, cache_dir=cache_dir, retry=FAST_RETRY, **kw)

    return go


def sizes(server: OpenAIStub) -> list[int]:
    return sorted((call.rows for call in server.calls), reverse=True)


def test_the_factory_makes_a_client_that_never_retries_by_itself(server: OpenAIStub) -> None:
    provider = openai_provider("stub-model", base_url=server.url)
    assert isinstance(provider, OpenAIProvider) and provider.client.max_retries == 0


def test_the_wrapped_pack_answer_reaches_the_engine_as_the_bare_array(server: OpenAIStub, task: Task) -> None:
    provider = openai_provider("stub-model", base_url=server.url)
    records = [(f"r{n}", {f: r[f] for f in task.inputs}) for n, r in enumerate(topic_rows(2), 1)]
    request = Request("system", pack_prompt(records), pack_schema(task, ["r1", "r2"]), 500)

    async def generate() -> Reply:
        try:
            return await provider.generate(request)
        finally:
            await provider.aclose()

    reply = asyncio.run(generate())
    assert reply.finish == "stop" and reply.usage.prompt_tokens == (len(request.system) + len(request.prompt)) // 4
    assert [item["id"] for item in json.loads(reply.text or "")] == ["r1", "r2"]


def test_a_pack_is_one_wrapped_call_and_every_row_is_valid(run: Run, server: OpenAIStub) -> None:
    rows = topic_rows(20)
    result = run(rows)
    [call] = server.calls
    assert call.headers["authorization"] == "Bearer test-key"
    assert call.body["model"] == "stub-model" and call.body["temperature"] == 0
    assert [m["role"] for m in call.body["messages"]] == ["system", "user"]
    assert call.body["response_format"]["type"] == "json_schema"
    wire_schema = call.body["response_format"]["json_schema"]["schema"]
    assert wire_schema["type"] == "object" and wire_schema["required"] == ["items"]
    assert call.packed and call.schema["items"]["properties"]["id"]["enum"] == [f"r{i}" for i in range(1, 21)]
    assert result.failures == [] and result.stats.calls == result.stats.calls_packed == 1
    assert [r["id"] for r in result.rows] == [r["id"] for r in rows]
    assert all(r["challenge"] in ("practice", "expert") and r["tldr"].startswith("About") for r in result.rows)
    assert result.rows[3]["tldr"] == "About Area 3 Topic number 3 Synthetic"  # row 3's own answer
    assert result.stats.prompt_tokens == call.prompt_tokens > 0 and result.stats.output_tokens > 0


def test_a_single_row_is_asked_with_the_plain_object_schema(run: Run, server: OpenAIStub) -> None:
    result = run(topic_rows(1))
    [call] = server.calls
    assert not call.packed and set(call.schema["properties"]) == {"tldr", "challenge"}
    assert result.failures == [] and result.stats.calls_single == 1


def test_a_cached_rerun_makes_no_call(run: Run, server: OpenAIStub, cache_dir: Path) -> None:
    first = run(topic_rows(45))
    assert sizes(server) == [20, 20, 5] and first.failures == []
    again = run(topic_rows(45))
    assert len(server.calls) == 3
    assert again.stats.cache_hits == 45 and again.stats.calls == 0 and again.rows == first.rows
    store = RowCache(cache_dir)
    try:
        assert len(store) == 45
    finally:
        store.close()


def test_a_429_waits_for_retry_after_then_retries_the_same_call(run: Run, server: OpenAIStub) -> None:
    server.script(lambda call: Wire(429, error_body(429, "Rate limit reached"), {"retry-after": "0.3"}))
    started = time.monotonic()
    result = run(topic_rows(20))
    assert time.monotonic() - started >= 0.3
    assert len(server.calls) == 2 and server.calls[0].body == server.calls[1].body
    assert result.failures == [] and result.stats.retries == 1  # retried by enrichkit, not by the SDK


@pytest.mark.parametrize(
    "headers",
    [{"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, {"retry-after-ms": "300", "retry-after": "soon"}],
)
def test_other_retry_after_forms_are_understood(run: Run, server: OpenAIStub, headers: dict[str, str]) -> None:
    server.script(lambda call: Wire(429, error_body(429, "Rate limit reached"), headers))
    started = time.monotonic()
    result = run(topic_rows(20))
    assert result.failures == [] and result.stats.retries == 1  # a date in the past means "now", not a crash
    assert ("retry-after-ms" not in headers) or time.monotonic() - started >= 0.3


def test_a_callers_client_stays_open_for_the_next_run(server: OpenAIStub, task: Task, cache_dir: Path) -> None:
    import openai

    async def two_runs() -> tuple[EnrichResult, EnrichResult, bool]:
        client = openai.AsyncOpenAI(api_key="test-key", base_url=server.url, max_retries=0)
        provider = OpenAIProvider(client, "stub-model")
        first = await aenrich(topic_rows(5), task, provider=provider, cache_dir=cache_dir, retry=FAST_RETRY)
        second = await aenrich(topic_rows(8), task, provider=provider, cache_dir=cache_dir, retry=FAST_RETRY)
        still_open = not client.is_closed()
        await client.close()
        return first, second, still_open

    first, second, still_open = asyncio.run(two_runs())
    assert first.failures == [] and second.failures == [] and second.stats.cache_hits == 5
    assert still_open


def test_finish_reason_length_keeps_the_whole_items_and_salvages_the_rest(run: Run, server: OpenAIStub) -> None:
    server.script(truncated())
    result = run(topic_rows(20))
    first, rest = sizes(server)
    assert first == 20 and 0 < rest <= 10  # the items before the cut are kept
    assert result.failures == [] and result.stats.calls == 2


def test_finish_reason_length_is_reported_as_max_tokens(run: Run, server: OpenAIStub) -> None:
    server.rule(truncated())
    result = run(topic_rows(1))
    [failure] = result.failures
    assert "MAX_TOKENS" in failure.reason and len(server.calls) == 3  # the row, then two more tries


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, "refused the API key \\(401 stub_error: Incorrect API key provided: \\[redacted\\]\\)"),
        (403, "refused the API key \\(403 stub_error: Incorrect API key provided: \\[redacted\\]\\)"),
        (404, "does not know model 'stub-model'"),
    ],
)
def test_a_refused_key_or_unknown_model_stops_the_run_after_one_call(
    run: Run, server: OpenAIStub, status: int, expected: str
) -> None:
    server.rule(http_error(status, "Incorrect API key provided: test-key"))
    with pytest.raises(FatalProviderError, match=expected) as info:
        run(topic_rows(100), concurrency=8)
    assert len(server.calls) == 1  # the first call goes alone: a bad key costs one call, not five
    assert "test-key" not in str(info.value)
