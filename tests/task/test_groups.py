"""Field groups: the fields a cache key is made per, tied by the schema or by the task."""

from __future__ import annotations

from typing import Any

import pytest

from enrichkit import Task
from enrichkit.errors import UserError
from enrichkit.task.groups import field_groups, sub_schema


def schema(**more: Any) -> dict[str, Any]:
    text = {"type": "string"}
    return {"type": "object", "properties": {"a": text, "b": text, "c": text, "d": text}, **more}


def test_untied_fields_are_a_group_each() -> None:
    assert field_groups(schema()) == [("a",), ("b",), ("c",), ("d",)]


@pytest.mark.parametrize(
    ("ties", "groups"),
    [
        ({"dependentRequired": {"c": ["a"]}}, [("a", "c"), ("b",), ("d",)]),
        ({"if": {"properties": {"b": {"const": "x"}}}, "then": {"required": ["d"]}}, [("a",), ("b", "d"), ("c",)]),
        ({"allOf": [{"anyOf": [{"required": ["a"]}, {"required": ["b"]}]}]}, [("a", "b"), ("c",), ("d",)]),
    ],
)
def test_fields_the_schema_ties_are_one_group(ties: dict[str, Any], groups: list[tuple[str, ...]]) -> None:
    assert field_groups(schema(**ties)) == groups


def test_fields_sharing_a_ref_and_fields_declared_together_are_one_group() -> None:
    shared = schema(**{"$defs": {"P": {"type": "object", "properties": {"x": {"type": "string"}}}}})
    shared["properties"]["b"] = shared["properties"]["d"] = {"$ref": "#/$defs/P"}
    assert field_groups(shared, [["a", "c"]]) == [("a", "c"), ("b", "d")]


def test_a_groups_schema_keeps_its_own_fields_and_ties() -> None:
    tied = schema(required=["a", "b", "c"], dependentRequired={"c": ["a"]}, allOf=[{"required": ["b"]}])
    part = sub_schema(tied, ["a", "c"])
    assert part == {
        "type": "object",
        "properties": {"a": {"type": "string"}, "c": {"type": "string"}},
        "required": ["a", "c"],
        "dependentRequired": {"c": ["a"]},
    }
    assert Task("Do it", ["x"], tied).subset(["b"]).schema["allOf"] == [{"required": ["b"]}]


def test_together_must_name_output_fields() -> None:
    with pytest.raises(UserError, match=r"\$.together\[0\]\[1\]: 'e' is not an output field"):
        Task("Do it", ["x"], schema(), together=[["a", "e"]])
