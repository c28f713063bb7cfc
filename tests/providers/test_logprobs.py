"""Token log-probabilities on each provider's wire: asked for, read back so they join to the reply's text,
and a model that refuses them asked again without (never a pack failure), through the real SDK clients
against the stubs."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import types
from hypothesis import given, settings
from hypothesis import strategies as st

from enrichkit import Task, enrich
from enrichkit.engine.prompt import pack_prompt, pack_schema, single_prompt
from enrichkit.errors import RequestRejected
from enrichkit.providers import gemini
from enrichkit.providers.anthropic import anthropic_provider
from enrichkit.providers.base import ALTERNATIVES, Capabilities, Reply, Request, Token
from enrichkit.providers.chat import unwrap
from enrichkit.providers.classify import LogprobsRefused, by_status
from enrichkit.providers.gemini import GeminiProvider, make_client
from enrichkit.providers.logprobs import aligned, cut, from_entries
from enrichkit.providers.openai import gives_logprobs, openai_provider
from enrichkit.testing import (
    Answer,
    AnthropicStub,
    FunctionProvider,
    GeminiStub,
    OpenAIStub,
    Probs,
    Wire,
    http_error,
    logprobs_refused,
    scripted,
    with_probs,
)
from enrichkit.testing.gemini import response
from enrichkit.testing.openai import completion
from helpers import ask, topic_rows

IDS = ["r1", "r2", "r3"]


@pytest.fixture
def request_(task: Task) -> Request:
    """A pack of three rows asking for log-probabilities."""
    records = [(rid, {f: r[f] for f in task.inputs}) for rid, r in zip(IDS, topic_rows(3), strict=True)]
    return Request("system", pack_prompt(records), pack_schema(task, IDS), 800, logprobs=True)


@pytest.fixture
def openai_stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[OpenAIStub]:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    with OpenAIStub() as server:
        yield server


def joined(reply: Reply) -> str:
    assert reply.tokens is not None
    return "".join(t.text for t in reply.tokens)


def item_probability(reply: Reply, rid: str, field: str) -> float:
    """The probability the tokens give the value of ``field`` in item ``rid`` (the tokens over that value)."""
    text, tokens = reply.text or "", reply.tokens or ()
    decoder = json.JSONDecoder()
    at = text.index("[") + 1
    while True:
        while text[at] in " ,\n":
            at += 1
        item, end = decoder.raw_decode(text, at)
        if item["id"] == rid:
            value = json.dumps(item[field])
            start = text.index(value, text.index(f'"{field}"', at, end))
            return _over(tokens, start, start + len(value))
        at = end


def _over(tokens: Sequence[Token], start: int, end: int) -> float:
    total, at = 0.0, 0
    for token in tokens:
        if at < end and at + len(token.text) > start:
            total += token.logprob
        at += len(token.text)
    return math.exp(total)


def first_token(reply: Reply, rid: str, field: str) -> Token:
    """The token that starts the string value of ``field`` in item ``rid`` (after its quote)."""
    text = reply.text or ""
    at = text.index(f'"{rid}"')
    start = text.index('"', text.index(f'"{field}":', at) + len(field) + 3) + 1
    offset = 0
    for token in reply.tokens or ():
        if offset <= start < offset + len(token.text):
            return token
        offset += len(token.text)
    raise AssertionError("no token")


def test_gemini_asks_for_the_tokens_with_alternatives_and_they_join_to_the_text(
    stub: GeminiStub, request_: Request
) -> None:
    stub.script(with_probs(ids={"r2": 0.3}))
    reply = ask(GeminiProvider(make_client("k", stub.url), "gemini-2.5-flash"), request_)
    [call] = stub.calls
    config = call.body["generationConfig"]
    assert config["responseLogprobs"] is True and config["logprobs"] == ALTERNATIVES
    assert joined(reply) == reply.text
    assert item_probability(reply, "r2", "challenge") == pytest.approx(0.3)
    assert item_probability(reply, "r1", "challenge") == pytest.approx(0.99)
    doubted = first_token(reply, "r2", "challenge")
    rival = {"practice": "expert", "expert": "practice"}[json.loads(reply.text or "")[1]["challenge"]]
    assert (doubted.text, doubted.logprob) in doubted.top
    assert dict(doubted.top)[rival] == pytest.approx(math.log(0.7))  # another allowed value, what 0.3 leaves


def test_gemini_not_asked_sends_no_request_for_them_and_gives_none(stub: GeminiStub, request_: Request) -> None:
    reply = ask(GeminiProvider(make_client("k", stub.url), "m"), dataclasses.replace(request_, logprobs=False))
    assert (
        all("responseLogprobs" not in c.body["generationConfig"] for c in stub.generate_calls) and reply.tokens is None
    )
    assert reply.text is not None


def test_gemini_tokens_that_do_not_join_to_the_text_are_not_passed_on(stub: GeminiStub, request_: Request) -> None:
    body = response('{"a": 1}')
    body["candidates"][0]["logprobsResult"] = {"chosenCandidates": [{"token": '{"b"', "logProbability": -0.1}]}
    stub.script(lambda asked: Wire(body=body))
    reply = ask(GeminiProvider(make_client("k", stub.url), "m"), request_)
    assert reply.text == '{"a": 1}' and reply.tokens is None


def test_a_gemini_model_that_refuses_them_is_asked_again_without_and_remembered(
    stub: GeminiStub, request_: Request
) -> None:
    stub.rule(logprobs_refused())
    provider = GeminiProvider(make_client("k", stub.url), "gemini-2.5-flash-lite")
    other = provider.with_model("gemini-2.5-flash-lite")

    async def twice() -> list[Reply]:
        try:
            return [await provider.generate(request_), await other.generate(request_)]
        finally:
            await provider.aclose()

    replies = asyncio.run(twice())
    assert all(r.text is not None and r.tokens is None for r in replies)
    asked = [c.body["generationConfig"].get("responseLogprobs", False) for c in stub.calls]
    assert asked == [True, False, False]  # refused once, asked again without; the derived provider knows
    assert (
        provider.logprobs_refused == {"gemini-2.5-flash-lite"} and other.logprobs_refused is provider.logprobs_refused
    )
    assert not provider.capabilities.logprobs and not provider.with_model("gemini-2.5-flash-lite").capabilities.logprobs
    assert provider.with_model("gemini-2.0-flash").capabilities.logprobs


def test_a_refusal_when_not_asked_is_an_ordinary_rejection(stub: GeminiStub, request_: Request) -> None:
    stub.script(http_error(400, "Logprobs is not enabled for models/m"))
    with pytest.raises(RequestRejected):
        ask(GeminiProvider(make_client("k", stub.url), "m"), dataclasses.replace(request_, logprobs=False))


def test_gemini_batch_requests_carry_them_inline_and_in_a_file(
    stub: GeminiStub, request_: Request, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub.probs = Probs(ids={"r3": 0.2})
    provider = GeminiProvider(make_client("k", stub.url), "gemini-2.0-flash")

    async def run(n: int) -> dict[str, Reply | str]:
        backend = provider.batches()
        name = await backend.submit([(f"k{i}", request_) for i in range(n)], f"job-{n}")
        while not (await backend.status(name)).done:
            pass
        return await backend.results(name)

    inline = asyncio.run(run(2))
    monkeypatch.setattr(gemini, "INLINE_LIMIT", 1)
    filed = asyncio.run(run(2))
    assert all(c.logprobs for c in stub.batch_requests) and len(stub.batch_requests) == 4
    for reply in [*inline.values(), *filed.values()]:
        assert isinstance(reply, Reply) and joined(reply) == reply.text
        assert item_probability(reply, "r3", "challenge") == pytest.approx(0.2)


def test_a_gemini_batch_request_refused_is_remembered_for_the_next_job(stub: GeminiStub, request_: Request) -> None:
    stub.rule(logprobs_refused())
    provider = GeminiProvider(make_client("k", stub.url), "gemini-3.5-flash")

    async def run() -> dict[str, Reply | str]:
        backend = provider.batches()
        name = await backend.submit([("k", request_)], "job")
        while not (await backend.status(name)).done:
            pass
        return await backend.results(name)

    [first] = asyncio.run(run()).values()
    assert isinstance(first, str) and "Logprobs is not enabled for models/gemini-3.5-flash" in first
    assert provider.logprobs_refused == {"gemini-3.5-flash"}
    [second] = asyncio.run(run()).values()
    assert isinstance(second, Reply) and second.tokens is None and second.text is not None
    assert [c.logprobs for c in stub.batch_requests] == [True, False]


def test_openai_tokens_cover_the_unwrapped_array_exactly(openai_stub: OpenAIStub, request_: Request) -> None:
    openai_stub.probs = Probs(values={"expert": 0.4}, default=0.95)
    reply = ask(openai_provider("gpt-4.1-mini", base_url=openai_stub.url), request_)
    [call] = openai_stub.calls
    assert call.body["logprobs"] is True and call.body["top_logprobs"] == ALTERNATIVES and call.wrapped
    assert joined(reply) == reply.text and (reply.text or "").startswith("[")
    for item in json.loads(reply.text or ""):
        expected = 0.4 if item["challenge"] == "expert" else 0.95
        assert item_probability(reply, item["id"], "challenge") == pytest.approx(expected)
        first = first_token(reply, item["id"], "challenge")
        rival = "practice" if item["challenge"] == "expert" else "expert"
        assert dict(first.top) == pytest.approx({first.text: math.log(expected), rival: math.log(1 - expected)})


def test_openai_characters_cut_between_tokens_are_rebuilt(openai_stub: OpenAIStub, request_: Request) -> None:
    text = '{"items": [{"id": "r1", "tldr": "Café naïve 東京", "challenge": "expert"}]}'
    openai_stub.script(lambda asked: Answer(text=text))
    reply = ask(openai_provider("m", base_url=openai_stub.url), request_)
    assert reply.text == '[{"id": "r1", "tldr": "Café naïve 東京", "challenge": "expert"}]'
    assert joined(reply) == reply.text
    assert any(t.text.endswith("é") and not t.top for t in reply.tokens or ())  # rebuilt: no alternatives
    assert all(t.top for t in reply.tokens or () if t.text.isascii())


@pytest.mark.parametrize("model", ["o1", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5.1", "openai/o3"])
def test_openai_reasoning_models_are_never_asked(openai_stub: OpenAIStub, request_: Request, model: str) -> None:
    provider = openai_provider(model, base_url=openai_stub.url)
    assert not provider.capabilities.logprobs and not gives_logprobs(model)
    reply = ask(provider, request_)
    assert "logprobs" not in openai_stub.calls[0].body and reply.tokens is None


@pytest.mark.parametrize("model", ["gpt-4.1-mini", "gpt-4o", "llama-3.1-8b-instant", "qwen2.5:7b", "olmo-2"])
def test_other_openai_compatible_models_are_asked(model: str) -> None:
    assert gives_logprobs(model)


def test_an_openai_compatible_refusal_is_asked_again_without_and_remembered(
    openai_stub: OpenAIStub, request_: Request
) -> None:
    openai_stub.rule(logprobs_refused())
    provider = openai_provider("gpt-4.1-mini", base_url=openai_stub.url)
    first = ask(provider, request_)
    assert first.tokens is None and first.text is not None
    assert [c.logprobs for c in openai_stub.calls] == [True, False]
    assert provider.logprobs_refused == {"gpt-4.1-mini"} and not provider.capabilities.logprobs
    fallback = provider.with_model("gpt-4.1-mini")
    assert fallback.logprobs_refused is provider.logprobs_refused and not fallback.asks_logprobs(request_)


def test_openai_batch_lines_carry_them_and_a_refusal_is_remembered(openai_stub: OpenAIStub, request_: Request) -> None:
    provider = openai_provider("gpt-4.1-mini", base_url=openai_stub.url)
    backend = provider.batches()

    async def job() -> dict[str, Reply | str]:
        name = await backend.submit([("k1", request_), ("k2", request_)], "job")
        while not (await backend.status(name)).done:
            pass
        return await backend.results(name)

    async def three() -> list[dict[str, Reply | str]]:
        try:
            answered = await job()
            openai_stub.rule(logprobs_refused())
            return [answered, await job(), await job()]
        finally:
            await provider.aclose()

    answered, refused, without = asyncio.run(three())
    for reply in answered.values():
        assert isinstance(reply, Reply) and joined(reply) == reply.text and reply.text.startswith("[")
    assert all(isinstance(r, str) and "logprobs" in r for r in refused.values())
    assert provider.logprobs_refused == {"gpt-4.1-mini"}
    assert all(isinstance(r, Reply) and r.tokens is None for r in without.values())
    assert [c.logprobs for c in openai_stub.batch_requests] == [True] * 4 + [False] * 2


def test_anthropic_gives_none(monkeypatch: pytest.MonkeyPatch, request_: Request) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    with AnthropicStub() as stub:
        provider = anthropic_provider("claude-haiku-4-5", base_url=stub.url)
        assert not provider.capabilities.logprobs
        reply = ask(provider, request_)
    assert reply.text is not None and reply.tokens is None
    assert not any("logprob" in key for key in stub.calls[0].body)


def test_the_seam_script_gives_tokens_too(request_: Request) -> None:
    provider = FunctionProvider(scripted(with_probs(ids={"r1": 0.5})), capabilities=Capabilities(logprobs=True))
    reply = ask(provider, request_)
    assert joined(reply) == reply.text and item_probability(reply, "r1", "challenge") == pytest.approx(0.5)
    assert len(first_token(reply, "r1", "challenge").top) == 2
    assert ask(provider, dataclasses.replace(request_, logprobs=False)).tokens is None


@pytest.mark.parametrize(
    "message",
    [
        "Logprobs is not enabled for models/gemini-2.5-flash-lite",
        "Unable to submit request because Logprobs is not supported for this model.",
        "Unsupported parameter: 'logprobs' is not supported with this model.",
    ],
)
def test_refusals_of_log_probabilities_are_recognised(message: str) -> None:
    assert isinstance(by_status(400, message, provider="p", model="m"), LogprobsRefused)
    assert not isinstance(by_status(400, "Invalid JSON payload", provider="p", model="m"), LogprobsRefused)


def test_a_run_that_does_not_ask_sends_the_request_as_before(stub: GeminiStub, task: Task, cache_dir: Path) -> None:
    client = make_client("k", stub.url)
    result = enrich(topic_rows(3), task, client=client, cache_dir=cache_dir, progress=False, confidence=False)
    assert result.failures == [] and all(
        "responseLogprobs" not in c.body["generationConfig"] for c in stub.generate_calls
    )


def test_log_probabilities_are_asked_only_for_a_task_with_a_closed_field(
    stub: GeminiStub, task: Task, cache_dir: Path
) -> None:
    client = make_client("k", stub.url)
    enrich(topic_rows(3), task.subset(("tldr",)), client=client, cache_dir=cache_dir, progress=False)
    calls = stub.generate_calls
    assert calls and all("responseLogprobs" not in c.body["generationConfig"] for c in calls)
    enrich(topic_rows(3), task, client=client, cache_dir=cache_dir, progress=False)  # "challenge" is an enum
    assert stub.generate_calls[-1].body["generationConfig"]["logprobs"] == ALTERNATIVES


def test_entries_rebuild_a_character_across_tokens_with_their_joint_probability() -> None:
    entries = [
        {"token": "Caf", "logprob": -0.1, "bytes": list(b"Caf")},
        {"token": "bytes:\\xc3", "logprob": -0.2, "bytes": [0xC3]},
        {"token": "bytes:\\xa9", "logprob": -0.3, "bytes": [0xA9]},
    ]
    caf, e = tuple(from_entries(entries) or ())
    assert caf == Token("Caf", -0.1) and e.text == "é" and e.logprob == pytest.approx(-0.5)
    assert from_entries([{"token": "x", "logprob": "?"}]) is None
    assert from_entries([{"token": "a", "logprob": -0.1, "bytes": [0xC3]}]) is None  # ends inside a character


def test_tokens_are_aligned_to_the_text_or_dropped() -> None:
    tokens = (Token("think", -1.0), Token('{"a', -0.1), Token('": 1}', -0.2))
    assert aligned(tokens[1:], '{"a": 1}') == tokens[1:]
    assert aligned(tokens, '{"a": 1}') == tokens[1:]  # text the reply leaves out before it
    assert aligned(tokens, '{"b": 1}') is None
    assert cut(tokens, 5, 7) == (Token('{"', -0.1),)
    assert cut(tokens, 7, 10) == (Token("a", -0.1), Token('":', -0.2))  # tokens across an edge cut to it


@pytest.mark.parametrize(
    ("text", "inside"),
    [
        ('{"items": [1, 2]}', "[1, 2]"),
        (' { "a" : 1 , "items" :[{"id":"r1"}] , "b": {"items": 3}} ', '[{"id":"r1"}]'),
        ('{"items": 1, "items": [5]}', "[5]"),
    ],
)
def test_the_unwrapped_array_is_its_own_text(text: str, inside: str) -> None:
    assert unwrap(text) == inside
    assert unwrap("[1]") == "[1]" and unwrap('{"x": 1}') == '{"x": 1}'


def test_the_gemini_stub_gives_top_candidates_when_asked(stub: GeminiStub) -> None:
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=stub.url, api_version="v1beta"))
    config = types.GenerateContentConfig(response_logprobs=True, logprobs=3)
    stub.script(lambda asked: Answer(text='{"label": "hard"}'))
    candidate = (client.models.generate_content(model="m", contents="x", config=config).candidates or [])[0]
    result = candidate.logprobs_result
    assert result is not None and result.chosen_candidates and result.top_candidates
    assert "".join(c.token or "" for c in result.chosen_candidates) == '{"label": "hard"}'
    assert all(1 <= len(top.candidates or []) <= 3 for top in result.top_candidates)
    assert [(top.candidates or [])[0].token for top in result.top_candidates] == [
        c.token for c in result.chosen_candidates
    ]
    assert candidate.avg_logprobs is not None


def test_the_seam_provider_handles_a_refusal_as_the_real_ones(request_: Request) -> None:
    script = scripted(rules=[logprobs_refused()])
    provider = FunctionProvider(script, model="gemini-2.5-flash-lite")
    replies = [ask(provider, request_), ask(provider.with_model("gemini-2.5-flash-lite"), request_)]
    assert all(r.text is not None and r.tokens is None for r in replies)
    assert [c.logprobs for c in script.calls] == [True, False, False]
    assert provider.logprobs_refused == {"gemini-2.5-flash-lite"}


def test_a_server_that_ignores_the_request_for_them_gives_none(openai_stub: OpenAIStub, request_: Request) -> None:
    openai_stub.script(lambda asked: Wire(body=completion('{"items": []}')))
    reply = ask(openai_provider("m", base_url=openai_stub.url), request_)
    assert openai_stub.calls[0].logprobs and reply.text == "[]" and reply.tokens is None
    assert ask(openai_provider("m", base_url=openai_stub.url), request_).tokens is not None  # the next answers


def test_a_row_is_doubted_by_its_record_packed_or_alone(stub: GeminiStub, request_: Request, task: Task) -> None:
    doubted = topic_rows(3)[1]["topic"]
    stub.probs = Probs(rows=lambda record: 0.25 if record.get("topic") == doubted else None)
    provider = GeminiProvider(make_client("k", stub.url), "m")
    packed = ask(provider, request_)
    assert item_probability(packed, "r2", "challenge") == pytest.approx(0.25)
    assert item_probability(packed, "r1", "challenge") == pytest.approx(0.99)
    schema = {"type": "object", "properties": {"challenge": {"type": "string", "enum": ["practice", "expert"]}}}
    alone = Request("system", single_prompt({f: topic_rows(3)[1][f] for f in task.inputs}), schema, 100, logprobs=True)
    reply = ask(GeminiProvider(make_client("k", stub.url), "m"), alone)
    assert joined(reply) == reply.text and math.exp(sum(t.logprob for t in reply.tokens or ())) == pytest.approx(0.25)


def _gemini_body(tokens: list[str], top_first: bool, indent: int | None) -> str:
    """A generateContent body whose answer is ``tokens`` joined, two alternatives a token (a rival and a
    made-up one), ``topCandidates`` before or after ``chosenCandidates``, written with ``indent``."""
    chosen: list[dict[str, Any]] = [
        {"token": t, "tokenId": n, "logProbability": -0.1 * n / len(tokens)} for n, t in enumerate(tokens)
    ]
    top = [{"candidates": [c, {"token": "rival" + c["token"], "tokenId": 1, "logProbability": -3.0}]} for c in chosen]
    result: dict[str, Any] = {"topCandidates": top} if top_first else {}
    result["chosenCandidates"] = chosen
    result.setdefault("topCandidates", top)
    body = response("".join(tokens))
    body["candidates"][0]["logprobsResult"] = result
    return json.dumps(body, indent=indent, ensure_ascii=indent is None)


@pytest.mark.parametrize("top_first", [True, False])
@pytest.mark.parametrize("indent", [None, 2])
def test_gemini_alternatives_read_only_where_looked_at_are_those_of_the_whole_body(
    top_first: bool, indent: int | None
) -> None:
    tokens = ['{"', "label", '":', ' "', "]}]", '\\"candidates\\":', "é", '"}', ' "candidates": [', "x"]
    body = _gemini_body(tokens, top_first, indent)
    doc, steps = gemini.loads(body)
    assert steps is not None and len(steps) == len(tokens)  # the alternatives were left out of the parse
    lazy, whole = gemini.wire_reply(doc, steps), gemini.wire_reply(json.loads(body))
    assert lazy.text == whole.text == "".join(tokens) and lazy.tokens is not None and whole.tokens is not None
    assert tuple(lazy.tokens) == tuple(whole.tokens) and all(len(t.top) == 2 for t in lazy.tokens)
    assert gemini.wire_reply(*gemini.loads(body.encode())) == whole


def test_a_gemini_body_laid_out_otherwise_is_parsed_whole() -> None:
    body = json.loads(_gemini_body(["a", "b"], True, None))
    steps = body["candidates"][0]["logprobsResult"]["topCandidates"]
    odd = ({"other": 1, "candidates": []}, {"candidates": [], "more": {"candidates": []}}, {"candidates": [], "x": 1})
    for step in odd:  # a step whose first key is another, one holding a key "candidates" of its own, a key after
        steps[0] = steps[-1] = step
        doc, found = gemini.loads(json.dumps(body))
        assert found is None and gemini.wire_reply(doc) == gemini.wire_reply(body)
    body["candidates"][0]["logprobsResult"]["topCandidates"] = []  # fewer steps than tokens: no alternatives
    reply = gemini.wire_reply(*gemini.loads(json.dumps(body)))
    assert reply.tokens is not None and [t.top for t in reply.tokens] == [(), ()]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.text(max_size=3), max_size=8),
    st.integers(min_value=0, max_value=20),
    st.integers(min_value=0, max_value=20),
)
def test_tokens_cut_to_a_span_as_each_token_is_looked_at(texts: list[str], start: int, length: int) -> None:
    tokens = tuple(Token(t, -0.5 * n, ((t, -0.5 * n), ("alt", -9.0))) for n, t in enumerate(texts))
    end = start + length
    expected, at = [], 0
    for token in tokens:  # each token over the span kept; one across an edge cut to it, without alternatives
        first, last = at, at + len(token.text)
        at = last
        if start <= first and last <= end:
            expected.append(token)
        elif max(first, start) < min(last, end):
            expected.append(Token(token.text[max(first, start) - first : min(last, end) - first], token.logprob))
    assert tuple(cut(tokens, start, end)) == tuple(expected)
