"""Which free-text fields ask for a summary: named so by the field, or by the instruction."""

from __future__ import annotations

from enrichkit.task.summaries import summary_fields


def test_summary_fields_are_those_the_task_asks_a_summary_for() -> None:
    text = {"type": "string"}
    assert summary_fields({"name": text, "note": text}, "Extract the product.") == []
    assert summary_fields({"gist": {**text, "description": "in your own words"}}, "Read the review.") == ["gist"]
    assert summary_fields({"tldr": {**text, "maxWords": 12}, "kind": {"type": "string", "enum": ["a"]}}, "") == ["tldr"]
    short = {"type": "string", "maxWords": 2}
    assert summary_fields({"name": short, "summary": text}, "Summarise each review.") == ["summary"]
    assert summary_fields({"name": short, "note": text}, "Summarise each review.") == ["note"]  # not a 2-word name
