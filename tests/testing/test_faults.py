"""One fault means the same on every provider: each stub renders it in its wire format, the real SDK
and provider read it back, and ``scripted`` gives the same at the provider seam."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from enrichkit import Task, enrich
from enrichkit.engine.prompt import pack_prompt, pack_schema
from enrichkit.errors import FatalProviderError, ProviderError, RateLimited, RequestRejected, TransientError
from enrichkit.providers.anthropic import anthropic_provider
from enrichkit.providers.base import Provider, Reply, Request
from enrichkit.providers.gemini import GeminiProvider, make_client
from enrichkit.providers.openai import openai_provider
from enrichkit.testing import (
    Answer,
    AnthropicStub,
    Fault,
    FunctionProvider,
    GeminiStub,
    OpenAIStub,
    Wire,
    blocked,
    default_answer,
    drop_ids,
    hang,
    http_error,
    json_validate_failed,
    quota_exhausted,
    rate_limited,
    scripted,
    set_field,
    truncated,
)
from enrichkit.testing.script import Script
from helpers import FAST_RETRY, topic_rows
from helpers import ask as ask_once

Ask = tuple[Callable[[], Provider], Script]


@pytest.fixture(params=["gemini", "openai", "anthropic", "function"])
def ask(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ask]:
    """A fresh provider and the script that answers it: a stub through the real SDK, or ``scripted`` at
    the seam."""
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    if request.param == "function":
        script = scripted()
        yield lambda: FunctionProvider(script), script
        return
    with {"gemini": GeminiStub, "openai": OpenAIStub, "anthropic": AnthropicStub}[request.param]() as stub:
        if isinstance(stub, GeminiStub):
            yield lambda: GeminiProvider(make_client("test-key", stub.url), "m"), stub
        elif isinstance(stub, OpenAIStub):
            yield lambda: openai_provider("m", base_url=stub.url), stub
        else:
            yield lambda: anthropic_provider("m", base_url=stub.url), stub


def pack(task: Task, timeout: float | None = None) -> Request:
    records = [(f"r{n}", {f: r[f] for f in task.inputs}) for n, r in enumerate(topic_rows(3), 1)]
    return Request("system", pack_prompt(records), pack_schema(task, ["r1", "r2", "r3"]), 500, timeout)


def reply(ask: Ask, request: Request, *faults: Fault) -> Reply:
    make, script = ask
    script.script(*faults)
    return ask_once(make(), request)


def failure(ask: Ask, request: Request, fault: Fault) -> ProviderError:
    with pytest.raises(ProviderError) as info:
        reply(ask, request, fault)
    return info.value


def test_the_default_answer_is_the_same_everywhere(ask: Ask, task: Task) -> None:
    request = pack(task)
    got = reply(ask, request)
    [asked] = ask[1].calls
    assert got.finish == "stop" and got.usage.prompt_tokens == asked.prompt_tokens > 0
    assert json.loads(got.text or "") == asked.answer == default_answer(request.schema, asked.records)
    assert asked.ids == ["r1", "r2", "r3"] and asked.packed and asked.rows == 3


def test_item_faults_change_the_items_alike(ask: Ask, task: Task) -> None:
    clean = json.loads(reply(ask, pack(task)).text or "")
    spoiled = json.loads(reply(ask, pack(task), drop_ids("r2")).text or "")
    assert spoiled == [clean[0], clean[2]]
    changed = json.loads(reply(ask, pack(task), set_field("r3", "challenge", "hard")).text or "")
    assert changed == [*clean[:2], {**clean[2], "challenge": "hard"}]


@pytest.mark.parametrize(("fault", "finish"), [(truncated(), "max_tokens"), (blocked(), "blocked")])
def test_finishes_read_back_alike(ask: Ask, task: Task, fault: Fault, finish: str) -> None:
    got = reply(ask, pack(task), fault)
    assert got.finish == finish
    if finish == "blocked":
        assert got.text is None


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (http_error(503, "busy"), TransientError),
        (http_error(404, "no such model"), FatalProviderError),
        (quota_exhausted("GenerateRequestsPerDayPerProjectPerModel"), FatalProviderError),
        (http_error(400, "Request contains an invalid argument."), RequestRejected),
    ],
)
def test_errors_are_the_same_kind_everywhere(ask: Ask, task: Task, fault: Fault, kind: type[ProviderError]) -> None:
    assert type(failure(ask, pack(task), fault)) is kind


def test_a_rate_limit_carries_its_delay_everywhere(ask: Ask, task: Task) -> None:
    problem = failure(ask, pack(task), rate_limited(0.25))
    assert isinstance(problem, RateLimited) and problem.retry_after == 0.25


def test_json_validate_failed_is_a_refused_answer_everywhere(ask: Ask, task: Task) -> None:
    problem = failure(ask, pack(task), json_validate_failed())
    assert isinstance(problem, RequestRejected) and problem.invalid_answer


def test_a_hang_past_the_deadline_fails_as_a_timeout_everywhere(ask: Ask, task: Task) -> None:
    problem = failure(ask, pack(task, timeout=0.3), hang(2))
    assert type(problem) is TransientError and "did not answer in time" in str(problem)


# -- scripted: the fault language at the provider seam --------------------------------------------


def test_a_scripted_provider_runs_the_engine_on_faults(task: Task, cache_dir: Path) -> None:
    script = scripted(drop_ids("r3"))
    script.rule(http_error(503), when=lambda asked: not asked.packed and len(script.calls) == 2)
    provider = FunctionProvider(script)
    result = enrich(topic_rows(20), task, provider=provider, cache_dir=cache_dir, retry=FAST_RETRY)
    assert result.failures == [] and result.stats.invalid_items == 1 and result.stats.retries == 1
    assert [c.rows for c in script.calls] == [20, 1, 1]  # the pack, r3 alone (a 503), r3 again
    assert [len(r.prompt) > 0 for r in provider.requests] == [True] * 3
    assert result.rows[2]["tldr"] == "About Area 2 Topic number 2 Synthetic"


def test_rules_come_after_the_script_and_pass_on_none() -> None:
    seen: list[int] = []

    def count(asked: Any) -> None:
        seen.append(1)

    script = scripted(None, blocked(), rules=[count, blocked()])
    request = Request("s", 'Record:\n\n{"topic": "x"}', {"type": "object", "properties": {"t": {"type": "string"}}}, 9)
    replies = [asyncio.run(script(request)) for _ in range(3)]
    assert [r.finish for r in replies] == ["stop", "blocked", "blocked"] and seen == [1]
    assert json.loads(replies[0].text or "") == {"t": "About x"}


def test_a_wire_reply_needs_a_stub() -> None:
    script = scripted(lambda asked: Wire(200, "raw"))
    with pytest.raises(TypeError, match="needs a stub"):
        asyncio.run(script(Request("s", "p", {}, 9)))


def test_an_answer_of_raw_text_reaches_the_reply() -> None:
    script = scripted(lambda asked: Answer(text="not json", finish="max_tokens"))
    got = asyncio.run(script(Request("s", "p", {}, 9)))
    assert (got.text, got.finish, got.usage.output_tokens) == ("not json", "max_tokens", 2)
