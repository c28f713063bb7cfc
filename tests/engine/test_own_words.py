"""Own words: on a provider with ``Capabilities.own_words`` (the local one), a summary that nearly copies
its row is refused once and asked again with the reason; the repair's answer is kept whatever it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from enrichkit import EnrichResult, Task, aenrich
from enrichkit.engine.own_words import copied, summary_fields
from enrichkit.providers.base import Capabilities
from enrichkit.providers.function import FunctionProvider
from enrichkit.testing import scripted, set_field
from enrichkit.testing.script import Scripted
from helpers import FAST_RETRY, generated, in_virtual_time, topic_rows

ROW = topic_rows(1)[0]

COPY = ROW["description"].replace("enough", "many")  # one word changed: 90 % alike


def run(script: Scripted, task: Task, cache_dir: Path, own_words: bool = True) -> EnrichResult:
    provider = FunctionProvider(script, capabilities=Capabilities(own_words=own_words))
    job = aenrich([ROW], task, provider=provider, retry=FAST_RETRY, cache_dir=cache_dir, progress=False)
    return in_virtual_time(job)


def test_a_copied_summary_is_repaired_with_the_reason(task: Task, cache_dir: Path) -> None:
    script = scripted(set_field(None, "tldr", COPY))  # the first answer copies
    result = run(script, task, cache_dir)
    assert result.failures == [] and result.rows[0]["tldr"] != COPY
    assert "'tldr' copies the record's 'description' (" in generated(script)[1].prompt
    assert (result.stats.invalid_items, result.stats.repaired, result.stats.calls) == (1, 1, 2)


def test_a_repair_that_copies_again_is_kept(task: Task, cache_dir: Path) -> None:
    result = run(scripted(rules=[set_field(None, "tldr", COPY)]), task, cache_dir)
    assert result.failures == [] and result.rows[0]["tldr"] == COPY and result.stats.calls == 2


def test_other_providers_keep_a_copy(task: Task, cache_dir: Path) -> None:
    result = run(scripted(rules=[set_field(None, "tldr", COPY)]), task, cache_dir, own_words=False)
    assert result.rows[0]["tldr"] == COPY and result.stats.calls == 1


def task_of(instruction: str, **fields: dict[str, Any]) -> Task:
    output = {"type": "object", "properties": fields, "required": list(fields)}
    return Task(instruction=instruction, inputs=["text"], output=output)


def test_summary_fields_are_those_the_task_asks_a_summary_for() -> None:
    text = {"type": "string"}
    assert summary_fields(task_of("Extract the product.", name=text, note=text)) == []
    assert summary_fields(task_of("Read the review.", gist={**text, "description": "in your own words"})) == ["gist"]
    short = {"type": "string", "maxWords": 2}
    assert summary_fields(task_of("Summarise each review.", name=short, summary=text)) == ["summary"]
    assert summary_fields(task_of("Summarise each review.", name=short, note=text)) == ["note"]  # not a 2-word name


def test_a_copy_is_near_the_whole_input_not_a_shared_phrase() -> None:
    row = {"text": "A fast HTTP client for Python with connection pooling and retries."}
    assert copied({"s": "A fast HTTP client for Python with connection pooling, retries."}, ["s"], row)
    assert copied({"s": "Sends web requests quickly, reusing connections."}, ["s"], row) is None
    assert copied({"s": "HTTP client"}, ["s"], {"text": "HTTP client"}) is None  # too short to copy a sentence
