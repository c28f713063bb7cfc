"""Each closed field is described once: in the answer schema for a model that reads it, in words for one
held to the schema by a grammar it never reads (its provider names the values itself)."""

from __future__ import annotations

import json
from pathlib import Path

from google import genai

from enrichkit import Task, enrich
from enrichkit.providers.base import Capabilities
from enrichkit.testing import FunctionProvider, GeminiStub, scripted
from helpers import FAST_RETRY, generated, topic_rows

GROUPS = ["Basics", "Tooling", "Practice", "Theory"]

TASK = Task(
    "Sort each topic into its group and summarise it.",
    ["topic", "description"],
    {
        "type": "object",
        "properties": {
            "group": {"type": "string", "enum": GROUPS, "description": "Where a learner meets the topic first."},
            "tldr": {"type": "string", "maxWords": 12, "description": "What it is, in plain words."},
        },
    },
)


def test_a_model_reading_the_schema_finds_values_and_descriptions_there_alone(
    stub: GeminiStub, client: genai.Client, cache_dir: Path
) -> None:
    result = enrich(topic_rows(20), TASK, client=client, cache_dir=cache_dir, retry=FAST_RETRY, progress=False)
    assert result.failures == []
    [call] = stub.generate_calls
    schema = json.dumps(call.body["generationConfig"]["responseJsonSchema"])
    text = call.system + call.prompt
    for value in GROUPS:
        assert (text.count(value), schema.count(f'"{value}"')) == (0, 1)
    assert "Where a learner" not in text and schema.count("Where a learner meets the topic first.") == 1
    assert "at most 12 words" in call.system  # a limit Gemini's schema leaves out is said in words


def test_a_model_held_to_the_schema_without_reading_it_gets_the_fields_in_words(cache_dir: Path) -> None:
    script = scripted()
    provider = FunctionProvider(script, capabilities=Capabilities(reads_schema=False))
    result = enrich(topic_rows(20), TASK, provider=provider, cache_dir=cache_dir, retry=FAST_RETRY, progress=False)
    assert result.failures == []
    [call] = generated(script)
    assert "- group (string): Where a learner meets the topic first." in call.system
    assert "- tldr (string; at most 12 words): What it is, in plain words." in call.system
    assert not any(value in call.system + call.prompt for value in GROUPS)  # the provider's notes name them
    assert call.schema["items"]["properties"]["group"]["enum"] == GROUPS  # its grammar enforces them
