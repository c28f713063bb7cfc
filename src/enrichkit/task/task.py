"""A task: what to ask for every row, and the JSON Schema of the columns the model writes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from pydantic import BaseModel

from enrichkit.errors import UserError
from enrichkit.task.columns import parse_columns
from enrichkit.task.groups import field_groups, sub_schema
from enrichkit.task.hints import did_you_mean
from enrichkit.task.schema import OutputValidator, keyword_problem


@cache
def _meta_schema() -> dict[str, Any]:
    """The JSON Schema of task files (``task.schema.json``)."""
    schema: dict[str, Any] = json.loads(
        resources.files("enrichkit.task").joinpath("task.schema.json").read_text(encoding="utf-8")
    )
    return schema


@cache
def _meta_validator() -> Draft202012Validator:
    return Draft202012Validator(_meta_schema())


def _task_keys() -> list[str]:
    """The keys a task file may hold."""
    return list(_meta_schema()["properties"])


def _json_path(path: Sequence[str | int]) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _inline_refs(node: Any, defs: Mapping[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """Replace local ``$ref``s to ``$defs`` by their targets (pydantic nests models that way)."""
    if isinstance(node, list):
        return [_inline_refs(item, defs, seen) for item in node]
    if not isinstance(node, Mapping):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        if name in seen:
            raise UserError(f"output model: recursive type {name!r} is not supported")
        return _inline_refs(defs[name], defs, (*seen, name))
    return {k: _inline_refs(v, defs, seen) for k, v in node.items() if k != "$defs"}


def _schema_of(output: Mapping[str, Any] | type[BaseModel]) -> dict[str, Any]:
    if isinstance(output, type) and issubclass(output, BaseModel):
        raw = output.model_json_schema()
        return dict(_inline_refs(raw, raw.get("$defs", {})))
    copy: dict[str, Any] = json.loads(json.dumps(output))  # a deep, JSON-only copy
    return copy


@dataclass(frozen=True)
class Task:
    """An enrichment task.

    ``output`` is a JSON Schema object (``{"type": "object", "properties": {...}}``) or a pydantic
    model class; ``schema`` is it as a plain JSON Schema dict (a model's is generated, with its
    ``$ref``s inlined), ``model`` the pydantic class if one was given. Properties without an explicit
    ``required`` list are all required. An input is a field name, or a media input
    ``{"name": "photo", "media": "image"}`` (``image``, ``pdf``, or ``media`` for either): ``inputs`` keeps
    the names, ``media`` the media inputs' kinds by name.
    """

    instruction: str
    inputs: Sequence[str]
    output: InitVar[Mapping[str, Any] | type[BaseModel]]
    id_field: str | None = None
    name: str = "task"
    source: str = field(default="<task>", compare=False)
    together: Sequence[Sequence[str]] = ()
    """Groups of output fields asked, cached and re-asked together (besides those the schema ties: ``task.groups``)."""
    schema: dict[str, Any] = field(init=False)
    model: type[BaseModel] | None = field(init=False, compare=False)
    media: dict[str, str] = field(init=False, compare=False)

    def __post_init__(self, output: Mapping[str, Any] | type[BaseModel]) -> None:
        schema = _schema_of(output)
        schema.setdefault("required", list(schema.get("properties", {})))
        given: list[Any] = list(self.inputs)
        media = {str(i.get("name")): str(i.get("media")) for i in given if isinstance(i, Mapping)}
        object.__setattr__(self, "media", media)
        object.__setattr__(self, "inputs", tuple(str(i.get("name")) if isinstance(i, Mapping) else i for i in given))
        object.__setattr__(self, "together", tuple(tuple(names) for names in self.together))
        object.__setattr__(self, "schema", schema)
        is_model = isinstance(output, type) and issubclass(output, BaseModel)
        object.__setattr__(self, "model", output if is_model else None)
        doc: dict[str, Any] = {"instruction": self.instruction, "inputs": given, "output": schema}
        if self.id_field is not None:
            doc["id_field"] = self.id_field
        if self.together:
            doc["together"] = [list(names) for names in self.together]
        _check(doc, self.source)

    @classmethod
    def from_file(cls, path: str | Path) -> Task:
        """Load and validate a task file; problems name the file and the JSON path."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UserError(f"{p}: task file not found (looked at {p.resolve()})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{p}: cannot read task file: {exc}") from None
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{p}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
        _check(doc, str(p))
        return cls(
            instruction=doc["instruction"],
            inputs=doc["inputs"],
            output=doc["output"],
            id_field=doc.get("id_field"),
            name=doc.get("name", p.stem),
            source=str(p),
            together=doc.get("together", ()),
        )

    @classmethod
    def from_columns(
        cls,
        instruction: str,
        inputs: str | Sequence[str],
        columns: str | Sequence[str],
        *,
        id_field: str | None = None,
        name: str = "task",
    ) -> Task:
        """A task from one-line column specs (``enrichkit.columns``), e.g.
        ``Task.from_columns("Classify each review", "text", ["sentiment: positive|negative|neutral"])``; an
        input ``NAME:KIND`` (``photo:image``; ``pdf``, ``media``) is a media input."""
        if not instruction.strip():
            raise UserError("the instruction is empty: say what the model must do for each row")
        output = {"type": "object", "properties": parse_columns(columns)}
        specs: Any = [_input_spec(i) for i in ([inputs] if isinstance(inputs, str) else inputs)]
        return cls(instruction, specs, output, id_field, name, "columns")

    def document(self) -> dict[str, Any]:
        """The task as a task file holds it (``Task.from_file`` reads it back)."""
        doc: dict[str, Any] = {"name": self.name, "instruction": self.instruction, "inputs": self.input_specs}
        if self.id_field is not None:
            doc["id_field"] = self.id_field
        if self.together:
            doc["together"] = [list(names) for names in self.together]
        return doc | {"output": self.schema}

    @property
    def input_specs(self) -> list[str | dict[str, str]]:
        """The inputs as a task file lists them: names, and the media inputs as objects."""
        return [{"name": n, "media": self.media[n]} if n in self.media else n for n in self.inputs]

    @property
    def text_inputs(self) -> list[str]:
        """The inputs that are not media."""
        return [n for n in self.inputs if n not in self.media]

    @property
    def fields(self) -> list[str]:
        """Names of the output columns, in schema order."""
        return list(self.schema["properties"])

    @property
    def groups(self) -> list[tuple[str, ...]]:
        """The field groups: fields cached, and asked again, together (``task.groups``)."""
        return field_groups(self.schema, self.together)

    def subset(self, fields: Sequence[str]) -> Task:
        """This task asking only ``fields`` (a union of its groups)."""
        specs: Any = self.input_specs  # the media inputs as objects, as ``Task`` takes them
        return Task(self.instruction, specs, sub_schema(self.schema, fields), self.id_field, self.name, self.source)

    def fingerprint(self) -> dict[str, Any]:
        """Everything about the task that changes answers (not its name, id field or file path), and the fields it
        asks together (when it names any)."""
        doc = {"instruction": self.instruction, "inputs": self.input_specs, "output": self.schema}
        return doc | {"together": [list(names) for names in self.together]} if self.together else doc


MEDIA_KINDS = ("image", "pdf", "media")


def _input_spec(text: str) -> str | dict[str, str]:
    """A one-line input: ``name``, or ``name:kind`` for a media input."""
    name, colon, kind = text.rpartition(":")
    if colon and kind.strip() in MEDIA_KINDS and name.strip():
        return {"name": name.strip(), "media": kind.strip()}
    return text


def _check(doc: Any, source: str) -> None:
    if isinstance(doc, dict) and (unknown := [key for key in doc if key not in _task_keys()]):
        hint = did_you_mean(unknown[0], _task_keys())
        raise UserError(f"{source}: {_json_path([unknown[0]])}: unknown key {unknown[0]!r}{hint}")
    error = best_match(_meta_validator().iter_errors(doc))
    if error is not None:
        raise UserError(f"{source}: {_json_path(list(error.absolute_path))}: {error.message}")
    if (problem := keyword_problem(doc["output"], ["output"])) is not None:
        raise UserError(f"{source}: {_json_path(problem[0])}: {problem[1]}")
    try:
        OutputValidator.check_schema(doc["output"])
    except SchemaError as exc:
        path = _json_path(["output", *exc.absolute_path])
        raise UserError(f"{source}: {path}: not a valid JSON Schema: {exc.message}") from None
    props = doc["output"]["properties"]
    for i, name in enumerate(doc["output"].get("required", [])):
        if name not in props:
            raise UserError(f"{source}: $.output.required[{i}]: {name!r} is not a property")
    for i, names in enumerate(doc.get("together", [])):
        for j, name in enumerate(names):
            if name not in props:
                raise UserError(f"{source}: $.together[{i}][{j}]: {name!r} is not an output field")
    names = [i["name"] if isinstance(i, dict) else i for i in doc["inputs"]]
    if len(set(names)) < len(names):
        raise UserError(f"{source}: $.inputs: {next(n for n in names if names.count(n) > 1)!r} is listed twice")
    clash = sorted(set(props) & set(names))
    if clash:
        raise UserError(f"{source}: $.output.properties: {clash[0]!r} is also an input field")
