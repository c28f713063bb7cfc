"""The Anthropic provider live, on the real ``anthropic`` SDK against the Messages stub."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from enrichkit import Task, enrich
from enrichkit.engine.prompt import pack_prompt, pack_schema
from enrichkit.errors import FatalProviderError, ProviderError, RateLimited, RequestRejected, TransientError
from enrichkit.providers import choose_provider
from enrichkit.providers.anthropic import anthropic_provider
from enrichkit.providers.base import Request
from enrichkit.testing import AnthropicStub, Asked, Fault, Outcome, Wire, http_error, rate_limited
from enrichkit.testing.anthropic import message
from helpers import FAST_RETRY, ask, topic_rows


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[AnthropicStub]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    with AnthropicStub() as server:
        yield server


def pack_request(task: Task) -> Request:
    records = [(f"r{n}", {f: r[f] for f in task.inputs}) for n, r in enumerate(topic_rows(2), 1)]
    return Request("system", pack_prompt(records), pack_schema(task, ["r1", "r2"]), 500)


def test_a_pack_is_one_forced_tool_call_and_every_row_is_valid(
    stub: AnthropicStub, task: Task, cache_dir: Path
) -> None:
    provider = choose_provider("anthropic", model="claude-haiku-4-5", base_url=stub.url).provider
    result = enrich(topic_rows(20), task, provider=provider, cache_dir=cache_dir, retry=FAST_RETRY)
    [asked] = stub.calls
    tool = asked.body["tools"][0]
    assert asked.body["tool_choice"] == {"type": "tool", "name": tool["name"]}
    assert tool["input_schema"]["type"] == "object" and tool["input_schema"]["required"] == ["items"]
    assert asked.body["system"] and asked.model == "claude-haiku-4-5"
    assert result.failures == [] and result.stats.calls_packed == 1 and result.stats.prompt_tokens > 0
    assert all(r["tldr"].startswith("About") for r in result.rows)


def test_the_wrapped_tool_input_reaches_the_engine_as_the_bare_array(stub: AnthropicStub, task: Task) -> None:
    reply = ask(anthropic_provider("m", base_url=stub.url), pack_request(task))
    assert reply.finish == "stop" and [item["id"] for item in json.loads(reply.text or "")] == ["r1", "r2"]


@pytest.mark.parametrize(("stop", "finish"), [("max_tokens", "max_tokens"), ("refusal", "blocked")])
def test_stop_reasons_map_to_finishes(stub: AnthropicStub, task: Task, stop: str, finish: str) -> None:
    stub.rule(lambda asked: Wire(body=message("answer", {"items": []}, asked.model, 10, stop)))
    assert ask(anthropic_provider("m", base_url=stub.url), pack_request(task)).finish == finish


@pytest.mark.parametrize(
    ("fault", "kind", "words"),
    [
        (http_error(529, "Overloaded", code="overloaded_error"), TransientError, "529 overloaded_error"),
        (http_error(401, "invalid x-api-key", code="authentication_error"), FatalProviderError, "refused the API key"),
        (http_error(403, "no access", code="permission_error"), FatalProviderError, "refused the API key"),
        (http_error(402, "add credits", code="billing_error"), FatalProviderError, "credit exhausted"),
        (
            http_error(
                400, "Your credit balance is too low to access the Anthropic API.", code="invalid_request_error"
            ),
            FatalProviderError,
            "credit exhausted",
        ),
        (http_error(400, "tools.0: bad schema", code="invalid_request_error"), RequestRejected, "rejected the request"),
    ],
)
def test_errors_are_mapped(
    stub: AnthropicStub, task: Task, fault: Fault, kind: type[ProviderError], words: str
) -> None:
    stub.rule(fault)
    with pytest.raises(kind, match=words):
        ask(anthropic_provider("m", base_url=stub.url), pack_request(task))


def test_a_rate_limit_carries_retry_after(stub: AnthropicStub, task: Task) -> None:
    stub.rule(rate_limited(7, "slow down"))
    with pytest.raises(RateLimited) as caught:
        ask(anthropic_provider("m", base_url=stub.url), pack_request(task))
    assert caught.value.retry_after == 7


def test_an_overloaded_call_is_retried(stub: AnthropicStub, task: Task, cache_dir: Path) -> None:
    calls: list[int] = []

    def once(asked: Asked) -> Outcome | None:
        calls.append(1)
        return http_error(529, "Overloaded", code="overloaded_error")(asked) if len(calls) == 1 else None

    stub.rule(once)
    provider = anthropic_provider("m", base_url=stub.url)
    result = enrich(topic_rows(5), task, provider=provider, cache_dir=cache_dir, retry=FAST_RETRY)
    assert result.failures == [] and result.stats.retries == 1 and len(stub.calls) == 2


def test_no_key_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(Exception, match="set ANTHROPIC_API_KEY"):
        anthropic_provider()
