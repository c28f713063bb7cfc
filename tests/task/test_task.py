"""Task files: loading, the meta-schema, errors that name the file and the JSON path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from enrichkit import Task, UserError
from helpers import ROOT


def write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "task.json"
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc, encoding="utf-8")
    return path


def valid_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((ROOT / "schemas" / "roadmap-topic.json").read_text(encoding="utf-8"))
    return doc


def test_every_example_task_file_is_valid() -> None:
    examples = [p for p in (ROOT / "schemas").glob("*.json") if p.name != "task.schema.json"]
    assert examples
    for path in examples:
        task = Task.from_file(path)
        assert task.fields and task.inputs


def test_the_roadmap_task_reads_as_documented() -> None:
    task = Task.from_file(ROOT / "schemas" / "roadmap-topic.json")
    assert task.inputs == ("category", "topic", "description")
    assert task.id_field == "id"
    assert task.schema["properties"]["tldr"]["maxWords"] == 12
    assert task.schema["properties"]["challenge"]["enum"] == ["practice", "expert"]


def test_a_missing_file_names_the_path_it_looked_at(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"nope\.json: task file not found \(looked at .*nope\.json\)"):
        Task.from_file(tmp_path / "nope.json")


def test_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '{\n  "instruction": "x",\n  "inputs": [,]\n}')
    with pytest.raises(UserError, match=r"task\.json: not valid JSON: .* \(line 3, column 14\)"):
        Task.from_file(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("instruction"), r"\$: 'instruction' is a required property"),
        (lambda d: d.update(inputs=[]), r"\$\.inputs: \[\] should be non-empty"),
        (lambda d: d.update(inputs=["a", "a"]), r"\$\.inputs: .* non-unique"),
        (lambda d: d["output"]["properties"]["tldr"].update(maxWords=0), r"\$\.output\.properties\.tldr\.maxWords: 0"),
        (
            lambda d: d["output"]["properties"].update(score={"type": "integer", "maxWords": 3}),
            r"\$\.output\.properties\.score\.type: 'string' was expected",
        ),
        (lambda d: d["output"]["properties"].update(id={"type": "string"}), r"\$\.output\.properties: 'id'"),
        (lambda d: d["output"].update(type="array"), r"\$\.output\.type: 'object' was expected"),
        (lambda d: d.update(extra=1), r"\$\.extra: unknown key 'extra'$"),
        (lambda d: d.update(input=d.pop("inputs")), r"\$\.input: unknown key 'input' \(did you mean 'inputs'\?\)"),
        (
            lambda d: d["output"].update(required=["tldr", "nope"]),
            r"\$\.output\.required\[1\]: 'nope' is not a property",
        ),
        (
            lambda d: d["output"]["properties"]["challenge"].update(type="strnig"),
            r"\$\.output\.properties\.challenge\.type: unknown type 'strnig' \(did you mean 'string'\?\)",
        ),
        (
            lambda d: d["output"]["properties"]["challenge"].update(type="str"),
            r"\$\.output\.properties\.challenge\.type: unknown type 'str' \(did you mean 'string'\?\)",
        ),
        (
            lambda d: d["output"]["properties"]["challenge"].update(type=["null", "int"]),
            r"\$\.output\.properties\.challenge\.type: unknown type 'int' \(did you mean 'integer'\?\)",
        ),
        (
            lambda d: d["output"]["properties"]["challenge"].update(type=3),
            r"\$\.output\.properties\.challenge\.type: not a valid JSON Schema",
        ),
        (
            lambda d: d["output"]["properties"].update(topic={"type": "string"}),
            r"\$\.output\.properties: 'topic' is also an input field",
        ),
    ],
)
def test_a_bad_task_file_names_the_json_path_of_the_problem(tmp_path: Path, change: Any, message: str) -> None:
    doc = valid_doc()
    change(doc)
    path = write(tmp_path, doc)
    with pytest.raises(UserError, match=f"^{path}: {message}"):
        Task.from_file(path)


def test_properties_are_required_unless_the_task_says_otherwise() -> None:
    task = Task(instruction="x", inputs=["a"], output={"type": "object", "properties": {"b": {"type": "string"}}})
    assert task.schema["required"] == ["b"]


class Rating(BaseModel):
    tldr: str = Field(description="summary", json_schema_extra={"maxWords": 12})
    challenge: Literal["practice", "expert"]


class Nested(BaseModel):
    rating: Rating
    tags: list[str]


def test_a_task_can_be_built_from_a_pydantic_model() -> None:
    task = Task(instruction="rate", inputs=["topic"], output=Rating)
    props = task.schema["properties"]
    assert props["tldr"]["maxWords"] == 12
    assert props["challenge"]["enum"] == ["practice", "expert"]
    nested = Task(instruction="rate", inputs=["topic"], output=Nested)
    assert "$ref" not in json.dumps(nested.schema)  # inlined, so the schema can be embedded in a pack
    assert nested.schema["properties"]["rating"]["properties"]["challenge"]["enum"] == ["practice", "expert"]


def test_the_fingerprint_ignores_name_and_id_field() -> None:
    doc = valid_doc()
    a = Task(doc["instruction"], doc["inputs"], doc["output"], id_field="id", name="a")
    b = Task(doc["instruction"], doc["inputs"], doc["output"], id_field=None, name="b")
    assert a.fingerprint() == b.fingerprint()
    c = Task(doc["instruction"] + "!", doc["inputs"], doc["output"])
    assert a.fingerprint() != c.fingerprint()
