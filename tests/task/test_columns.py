"""The one-line column language, Task.from_columns and `enrichkit task new`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from enrichkit import Task, UserError
from enrichkit.cli import main
from enrichkit.task.columns import parse_columns
from helpers import ROOT


@pytest.mark.parametrize(
    ("spec", "schema"),
    [
        ("sentiment: positive|negative|neutral", {"type": "string", "enum": ["positive", "negative", "neutral"]}),
        ("summary: text, at most 10 words", {"type": "string", "maxWords": 10}),
        ("title: text, at most 80 characters", {"type": "string", "maxLength": 80}),
        ("stars: integer 1-5", {"type": "integer", "minimum": 1, "maximum": 5}),
        ("score: number 0-0.5", {"type": "number", "minimum": 0, "maximum": 0.5}),
        ("price: number", {"type": "number"}),
        ("spam: yes/no", {"type": "boolean"}),
        ("tags: list of text", {"type": "array", "items": {"type": "string"}}),
        ("tags: list of a|b, at most 2 items",
         {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "maxItems": 2}),
        ("note", {"type": "string"}),
        ("why: text -- one sentence", {"type": "string", "description": "one sentence"}),
    ],
)  # fmt: skip
def test_one_column(spec: str, schema: dict[str, Any]) -> None:
    name = spec.partition(":")[0].partition(" ")[0]
    assert parse_columns([spec]) == {name: schema}


def test_llm_concise_form_in_one_string() -> None:
    expected = {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "bio": {"type": "string", "description": "a short bio"},
    }
    assert parse_columns("name, age int, bio: a short bio") == expected
    assert parse_columns(["name\nage int\nbio: a short bio\n"]) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("stars: integr 1-5", r"column 'stars: integr 1-5': cannot read 'integr 1-5' \(a column is NAME: TYPE"),
        ("stars: integer 5-1", "cannot read 'integer 5-1'"),
        ("n: integer, at most 3 words", "cannot read 'integer, at most 3 words'"),
        ("bio: a short bio", "cannot read 'a short bio'"),
        ("name, age integr", r"cannot read 'age integr' \(llm's form is NAME \[str\|int\|float\|bool\]"),
        ("id: text", "the name 'id' is reserved"),
    ],
)
def test_an_unreadable_spec_is_one_line_naming_the_part(spec: str, message: str) -> None:
    with pytest.raises(UserError, match=message) as info:
        parse_columns([spec])
    assert "\n" not in str(info.value)


def test_from_columns_builds_a_task_the_meta_schema_accepts() -> None:
    task = Task.from_columns("Classify each review", "text", ["sentiment: positive|negative", "summary: text"])
    assert task.inputs == ("text",) and task.fields == ["sentiment", "summary"]
    assert task.schema["required"] == ["sentiment", "summary"]
    with pytest.raises(UserError, match="'text' is also an input field"):
        Task.from_columns("Classify", ["text"], ["text: text"])


def test_task_new_writes_a_valid_task_file(tmp_path: Path) -> None:
    out = tmp_path / "reviews.json"
    args = ["task", "new", "-o", str(out), "--instruction", "Classify each review", "--input", "text",
            "--column", "sentiment: positive|negative|neutral", "--column", "stars: integer 1-5"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text(encoding="utf-8"))
    meta = json.loads((ROOT / "schemas" / "task.schema.json").read_text(encoding="utf-8"))
    assert not list(Draft202012Validator(meta).iter_errors(doc))
    assert doc["name"] == "reviews" and doc["inputs"] == ["text"]
    assert doc["$schema"] == meta["$id"] and out.read_text(encoding="utf-8").endswith("}\n")
    assert "2 columns (sentiment, stars)" in result.output
    assert Task.from_file(out) == Task.from_columns("Classify each review", "text", args[9::2], name="reviews")
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 2 and "exists (--force overwrites it)" in again.output
    assert CliRunner().invoke(main, [*args, "--force"]).exit_code == 0


def test_an_unreadable_column_type_names_the_close_one() -> None:
    with pytest.raises(UserError, match=r"cannot read 'str' \(did you mean 'text'\?\)"):
        parse_columns(["name: str"])
    with pytest.raises(UserError, match=r"cannot read 'intger' \(did you mean 'integer'\?\)"):
        parse_columns(["stars: intger"])


def test_task_new_needs_all_three(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["task", "new", "-o", str(tmp_path / "t.json"), "--instruction", "x"])
    assert result.exit_code == 2 and "needs --instruction, --input and --column (missing --input)" in result.output
