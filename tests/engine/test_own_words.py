"""Own words: on a provider with ``Capabilities.own_words`` (the local one), a summary that nearly copies
its row is refused once and asked again with the reason; the repair's answer is kept whatever it is."""

from __future__ import annotations

from pathlib import Path

from enrichkit import EnrichResult, Task, aenrich
from enrichkit.engine.own_words import copied
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


def test_a_copy_is_near_the_whole_input_not_a_shared_phrase() -> None:
    row = {"text": "A fast HTTP client for Python with connection pooling and retries."}
    assert copied({"s": "A fast HTTP client for Python with connection pooling, retries."}, ["s"], row)
    assert copied({"s": "Sends web requests quickly, reusing connections."}, ["s"], row) is None
    assert copied({"s": "HTTP client"}, ["s"], {"text": "HTTP client"}) is None  # too short to copy a sentence
