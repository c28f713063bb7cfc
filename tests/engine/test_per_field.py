"""A cache per field group, through the Gemini stub: a column added asks that column alone, a reworded
description asks that column again, a changed instruction asks everything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google import genai

from enrichkit import EnrichResult, Task, dry_run, enrich
from enrichkit.testing import Asked, GeminiStub
from helpers import topic_rows

KIND = "kind: concept|tool|practice -- what the topic is"
SUMMARY = "summary: text, at most 12 words -- the topic in one line"
LEVEL = "level: beginner|intermediate|advanced -- who the topic is for"
INSTRUCTION = "Describe each roadmap topic."


def task_of(*columns: str, instruction: str = INSTRUCTION) -> Task:
    return Task.from_columns(instruction, ["topic", "description"], list(columns), id_field="id")


def run(task: Task, rows: list[dict[str, Any]], client: genai.Client, cache_dir: Path, **kw: Any) -> EnrichResult:
    return enrich(rows, task, client=client, cache_dir=cache_dir, progress=False, **kw)


def asked_since(stub: GeminiStub, before: int) -> list[Asked]:
    return [call for call in stub.calls[before:] if call.action == "generate"]


def fields_asked(call: Asked) -> set[str]:
    """The output fields a pack's answer schema asks for (its id and echo aside)."""
    return set(call.schema["items"]["properties"]) - {"id", "echo"}


def values(result: EnrichResult, *names: str) -> list[dict[str, Any]]:
    return [{n: row[n] for n in names} for row in result.rows]


def test_a_column_added_asks_that_column_alone(stub: GeminiStub, client: genai.Client, cache_dir: Path) -> None:
    rows = topic_rows(134)
    first = run(task_of(KIND, SUMMARY), rows, client, cache_dir)
    assert first.stats.enriched == 134
    before = len(stub.calls)
    second = run(task_of(KIND, SUMMARY, LEVEL), rows, client, cache_dir)
    asked = asked_since(stub, before)
    assert len(asked) == second.stats.calls == 7  # ceil(134 / 20)
    for call in asked:
        assert fields_asked(call) == {"level"}
        assert "summary" not in call.system and "12 words" not in call.system  # the prompt names the new field only
    assert values(second, "kind", "summary") == values(first, "kind", "summary")  # old answers unchanged
    assert {row["level"] for row in second.rows} <= {"beginner", "intermediate", "advanced"}
    assert [c for c in second.rows[0] if c in ("kind", "summary", "level")] == ["kind", "summary", "level"]

    before = len(stub.calls)
    third = run(task_of(KIND, SUMMARY, LEVEL), rows, client, cache_dir)
    assert third.stats.calls == 0 and third.stats.cache_hits == 134 and asked_since(stub, before) == []
    assert third.rows == second.rows


def test_a_reworded_description_asks_that_column_again(stub: GeminiStub, client: genai.Client, cache_dir: Path) -> None:
    rows = topic_rows(134)
    first = run(task_of(KIND, SUMMARY, LEVEL), rows, client, cache_dir)
    before = len(stub.calls)
    reworded = SUMMARY.replace("the topic in one line", "what a learner gets from the topic")
    second = run(task_of(KIND, reworded, LEVEL), rows, client, cache_dir)
    asked = asked_since(stub, before)
    assert len(asked) == 7 and all(fields_asked(call) == {"summary"} for call in asked)
    assert all("what a learner gets" in call.schema["items"]["properties"]["summary"]["description"] for call in asked)
    assert values(second, "kind", "level") == values(first, "kind", "level")

    before = len(stub.calls)
    run(task_of(KIND, reworded, LEVEL, instruction="Describe each topic for a beginner."), rows, client, cache_dir)
    asked = asked_since(stub, before)
    assert len(asked) == 7 and all(fields_asked(call) == {"kind", "summary", "level"} for call in asked)


def test_a_sample_then_a_wider_run_asks_the_sample_for_the_new_column_only(
    stub: GeminiStub, client: genai.Client, cache_dir: Path
) -> None:
    rows = topic_rows(134)
    run(task_of(KIND, SUMMARY), rows[:50], client, cache_dir)
    before = len(stub.calls)
    full = run(task_of(KIND, SUMMARY, LEVEL), rows, client, cache_dir)
    asked = asked_since(stub, before)
    assert len(asked) == 3 + 5  # the 50 sampled rows: level only; the 84 others: every field
    assert sum(fields_asked(call) == {"level"} for call in asked) == 3
    assert sum(fields_asked(call) == {"kind", "summary", "level"} for call in asked) == 5
    assert full.stats.enriched == 134 and full.failures == []


def test_a_batch_run_asks_a_new_column_alone(stub: GeminiStub, client: genai.Client, cache_dir: Path) -> None:
    rows = topic_rows(60)
    first = run(task_of(KIND, SUMMARY), rows, client, cache_dir)
    before = len(stub.calls)
    second = run(task_of(KIND, SUMMARY, LEVEL), rows, client, cache_dir, mode="batch", poll=0.01)
    asked = asked_since(stub, before)
    assert len(asked) == 3 and all(call.job is not None and fields_asked(call) == {"level"} for call in asked)
    assert second.stats.enriched == 60 and values(second, "kind", "summary") == values(first, "kind", "summary")


def test_fields_the_task_asks_together_are_asked_again_together(
    stub: GeminiStub, client: genai.Client, cache_dir: Path
) -> None:
    rows = topic_rows(40)
    output = Task.from_columns(INSTRUCTION, ["topic"], [KIND, SUMMARY, LEVEL]).schema
    together = Task(INSTRUCTION, ["topic", "description"], output, "id", together=[["kind", "level"]])
    run(together, rows, client, cache_dir)
    output["properties"]["level"]["description"] = "the reader the topic suits"
    reworded = Task(INSTRUCTION, ["topic", "description"], output, "id", together=[["kind", "level"]])
    before = len(stub.calls)
    run(reworded, rows, client, cache_dir)
    asked = asked_since(stub, before)
    assert len(asked) == 2 and all(fields_asked(call) == {"kind", "level"} for call in asked)


def test_the_dry_run_says_per_field_what_is_cached_and_why_the_rest_is_asked(
    stub: GeminiStub, client: genai.Client, cache_dir: Path
) -> None:
    rows = topic_rows(134)
    plan = dry_run(rows, task_of(KIND, SUMMARY), client=client, cache_dir=cache_dir)
    assert [str(f) for f in plan.fields] == [
        "kind: 134 to ask — no earlier run of this task in the cache folder",
        "summary: 134 to ask — no earlier run of this task in the cache folder",
    ]
    run(task_of(KIND, SUMMARY), rows[:100], client, cache_dir)
    before = len(stub.calls)
    plan = dry_run(rows, task_of(KIND, SUMMARY, LEVEL), client=client, cache_dir=cache_dir)
    assert asked_since(stub, before) == []  # nothing sent
    assert [str(f) for f in plan.fields] == [
        "kind: 34 to ask — new rows (or rows not answered before), 100 cached",
        "summary: 34 to ask — new rows (or rows not answered before), 100 cached",
        "level: 134 to ask — new field",
    ]
    assert plan.calls == 5 + 2 and plan.partly_cached == 100 and plan.since is not None
    full = dry_run(rows, task_of(KIND, SUMMARY, LEVEL), client=client, cache_dir=tmp_cache(cache_dir))
    assert plan.cost is not None and full.cost is not None and plan.cost.live_usd < full.cost.live_usd

    run(task_of(KIND, SUMMARY, LEVEL), rows, client, cache_dir)
    reworded = SUMMARY.replace("in one line", "for a learner")
    narrower = KIND.replace("|practice", "")
    plan = dry_run(rows, task_of(narrower, reworded, LEVEL), client=client, cache_dir=cache_dir)
    assert [str(f) for f in plan.fields] == [
        "kind: 134 to ask — its schema changed",
        "summary: 134 to ask — its description changed",
        "level: 134 cached",
    ]
    plan = dry_run(rows, task_of(KIND, SUMMARY, LEVEL, instruction="Other."), client=client, cache_dir=cache_dir)
    assert {f.why for f in plan.fields} == {"the instruction changed"} and plan.calls == 7
    plan = dry_run(rows, task_of(KIND, SUMMARY, LEVEL), client=client, cache_dir=cache_dir, model="gemini-9-pro")
    assert {f.why for f in plan.fields} == {"the model changed (was gemini / gemini-3.1-flash-lite)"}


def tmp_cache(cache_dir: Path) -> Path:
    return cache_dir.parent / "empty-cache"
