"""Schema mistakes in a task are one-line usage errors; ``format`` is checked on the answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from enrichkit import Task, UserError
from enrichkit.task.schema import first_error, make_validator


def output(**field: Any) -> dict[str, Any]:
    return {"type": "object", "properties": {"tldr": {"type": "string", **field}}}


@pytest.mark.parametrize(
    ("field", "message"),
    [
        (
            {"maxword": 3},
            r"\$\.output\.properties\.tldr\.maxword: unknown schema keyword 'maxword' \(did you mean 'maxWords'\?\)",
        ),
        ({"minlenght": 3}, r"unknown schema keyword 'minlenght' \(did you mean 'minLength'\?\)"),
        ({"colour": "red"}, r"unknown schema keyword 'colour'$"),
        ({"$ref": "https://example.org/s.json"}, r"only references inside the schema"),
        ({"$dynamicRef": "#x"}, r"\$dynamicRef: dynamic references are not supported"),
        ({"debias": True}, r"tldr\.debias: 'debias' is true or false, beside an enum of three or more strings"),
        ({"enum": ["yes", "no"], "debias": True}, r"beside an enum of three or more strings"),
        ({"enum": ["a", "b", "c"], "debias": "on"}, r"tldr\.debias: 'on' is not of type 'boolean'"),
    ],
)
def test_unknown_or_unsupported_keywords_are_named(field: dict[str, Any], message: str) -> None:
    with pytest.raises(UserError, match=message):
        Task("Summarise.", ["text"], output(**field))


def test_keywords_are_checked_inside_nested_schemas(tmp_path: Path) -> None:
    doc = {
        "instruction": "Tag it.",
        "inputs": ["text"],
        "output": {
            "type": "object",
            "properties": {"tags": {"type": "array", "items": {"type": "string", "enumm": ["a"]}}},
        },
    }
    path = tmp_path / "task.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(UserError, match=r"task\.json: \$\.output\.properties\.tags\.items\.enumm: .*'enum'"):
        Task.from_file(path)


def test_known_keywords_and_max_words_pass() -> None:
    task = Task("Summarise.", ["text"], output(maxWords=12, minLength=1, description="d", format="email", title="t"))
    assert task.schema["properties"]["tldr"]["maxWords"] == 12


def test_debias_on_an_enum_is_a_note_the_answers_are_not_checked_against() -> None:
    task = Task("Sort it.", ["text"], output(enum=["a", "b", "c"], debias=True))
    validator = make_validator(task.schema)
    assert first_error(validator, {"tldr": "b"}) is None
    assert first_error(validator, {"tldr": "d"}) is not None


@pytest.mark.parametrize(
    ("fmt", "good", "bad"),
    [
        ("email", "ada@example.org", "not an address"),
        ("date", "2024-02-29", "2024-02-30"),
        ("uri", "https://example.org/a?b=1", "example dot org"),
        ("date-time", "2024-01-01T10:00:00+00:00", "2024-01-01"),
    ],
)
def test_an_answer_breaking_its_format_is_invalid(fmt: str, good: str, bad: str) -> None:
    validator = make_validator(output(format=fmt))
    assert first_error(validator, {"tldr": good}) is None
    assert first_error(validator, {"tldr": bad}) == f"tldr: {bad!r} is not a {fmt!r}"
