"""The JSON Schema dialect of task outputs: Draft 2020-12 plus the ``maxWords`` and ``debias`` keywords.

Providers support different subsets of JSON Schema, so constraints a provider cannot enforce while
decoding are spelled out in words (``field_hint``) and always checked here after the answer arrives.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError

from enrichkit.task.hints import did_you_mean
from enrichkit.task.scripts import word_count


def _max_words(validator: Any, limit: int, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if isinstance(instance, str):
        words = word_count(instance)
        if words > limit:
            yield ValidationError(f"has {words} words, more than {limit}")


OutputValidator = validators.extend(Draft202012Validator, {"maxWords": _max_words})  # type: ignore[no-untyped-call]

FORMATS = FormatChecker()  # jsonschema's own checks (date, email, ipv4, uuid ...) plus uri and date-time


@FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or bool(urlsplit(value).scheme and " " not in value)


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    return not isinstance(value, str) or datetime.datetime.fromisoformat(value).tzinfo is not None


# Every keyword of Draft 2020-12, ``maxWords``, ``debias``, Gemini's ``propertyOrdering``, pydantic's
# ``discriminator``.
KEYWORDS = frozenset(OutputValidator.VALIDATORS) | {
    "debias", "$schema", "$id", "$anchor", "$dynamicAnchor", "$vocabulary", "$comment", "$defs", "title", "description",
    "default", "examples", "deprecated", "readOnly", "writeOnly", "contentMediaType", "contentEncoding",
    "contentSchema", "propertyOrdering", "discriminator",
}  # fmt: skip

JSON_TYPES = ("string", "integer", "number", "boolean", "object", "array", "null")

# Type names other languages use (Python's, the one-line columns'), for "did you mean".
TYPE_ALIASES = {
    "str": "string", "text": "string", "int": "integer", "float": "number", "double": "number",
    "decimal": "number", "bool": "boolean", "dict": "object", "list": "array", "none": "null",
}  # fmt: skip

_UNSUPPORTED = {
    "$dynamicRef": "dynamic references are not supported",
    "$dynamicAnchor": "dynamic anchors are not supported",
}

_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")  # name -> subschema

_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")

_SCHEMAS = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames",
            "unevaluatedItems", "unevaluatedProperties", "contentSchema")  # fmt: skip


def keyword_problem(schema: Any, path: Sequence[str | int] = ()) -> tuple[list[str | int], str] | None:
    """The first unknown or unsupported keyword in ``schema``: its JSON path and what is wrong, or None.

    A near miss is named (``maxword``: did you mean 'maxWords'?); ``$ref`` must point inside the schema.
    """
    if not isinstance(schema, Mapping):
        return None
    for key, value in schema.items():
        where = [*path, key]
        if key not in KEYWORDS:
            return where, f"unknown schema keyword {key!r}{did_you_mean(key, KEYWORDS)}"
        if key in _UNSUPPORTED:
            return where, _UNSUPPORTED[key]
        if key == "$ref" and not (isinstance(value, str) and value.startswith("#")):
            return where, f"only references inside the schema (#/$defs/...) are supported, not {value!r}"
        if key == "type" and (unknown := _unknown_type(value)) is not None:
            return where, f"unknown type {unknown!r}{did_you_mean(unknown, JSON_TYPES, TYPE_ALIASES)}"
        if key == "debias" and not _debiasable(value, schema):
            return where, "'debias' is true or false, beside an enum of three or more strings"
        for sub, sub_path in _subschemas(key, value, where):
            if (found := keyword_problem(sub, sub_path)) is not None:
                return found
    return None


def _debiasable(value: Any, schema: Mapping[str, Any]) -> bool:
    """Whether ``debias: value`` fits ``schema``: a boolean, on an enum of three strings or more (the
    local provider's ``priors``)."""
    enum = schema.get("enum")
    strings = isinstance(enum, list) and len(enum) >= 3 and all(isinstance(v, str) for v in enum)
    return isinstance(value, bool) and strings


def _unknown_type(value: Any) -> str | None:
    """The first name in a ``type`` keyword's value that is not a JSON Schema type (None: all are)."""
    names = value if isinstance(value, list) else [value]
    return next((name for name in names if isinstance(name, str) and name not in JSON_TYPES), None)


def _subschemas(key: str, value: Any, where: list[str | int]) -> Iterator[tuple[Any, list[str | int]]]:
    """The subschemas under keyword ``key`` (whose value is ``value``), with their paths."""
    if key in _SCHEMA_MAPS and isinstance(value, Mapping):
        yield from ((sub, [*where, name]) for name, sub in value.items())
    elif key in _SCHEMA_LISTS and isinstance(value, list):
        yield from ((sub, [*where, n]) for n, sub in enumerate(value))
    elif key in _SCHEMAS:
        yield value, where


Check = Callable[[Any], bool]


@dataclass(frozen=True)
class Validator:
    """The output schema's validator, with a compiled fast check for flat schemas.

    ``fast(item)`` is True only for items that are certainly valid; anything else (and every schema
    the fast check does not cover) goes through jsonschema, which also words the error.
    """

    full: Any
    fast: Check | None


def make_validator(schema: Mapping[str, Any]) -> Validator:
    """A validator for one output item (the task's output schema)."""
    return Validator(OutputValidator(schema, format_checker=FORMATS), _compile_object(schema))


def first_error(validator: Validator, instance: Any) -> str | None:
    """The most relevant problem with ``instance`` as ``field: message``, or None when valid."""
    if validator.fast is not None and validator.fast(instance):
        return None
    errors = sorted(validator.full.iter_errors(instance), key=lambda e: (list(e.absolute_path), e.message))
    if not errors:
        return None
    err = errors[0]
    where = ".".join(str(p) for p in err.absolute_path)
    message = err.message
    if err.validator == "enum":
        options = ", ".join(str(v) for v in err.validator_value)
        message = f"{err.instance!r} not in [{options}]"
    return f"{where}: {message}" if where else message


_NOTES = frozenset({"description", "title", "default", "examples", "propertyOrdering", "$comment", "debias"})

_TYPES: dict[str, Check] = {
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
}


def _of_types(kinds: list[str]) -> Check:
    tests = [_TYPES[k] for k in kinds]
    return tests[0] if len(tests) == 1 else lambda v: any(t(v) for t in tests)


def _every(checks: list[Check]) -> Check:
    """One check that all of ``checks`` pass (the usual one or two called directly: a field is checked per row)."""
    if not checks:
        return lambda v: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda v: first(v) and second(v)
    return lambda v: all(check(v) for check in checks)


def _one_of(options: frozenset[str]) -> Check:
    return lambda v: isinstance(v, str) and v in options


def _sized(size: Callable[[str], int], low: int, high: float) -> Check:
    return lambda v: not isinstance(v, str) or low <= size(v) <= high


def _matches(pattern: re.Pattern[str]) -> Check:
    return lambda v: not isinstance(v, str) or pattern.search(v) is not None


def _within(low: float, high: float) -> Check:
    return lambda v: not _TYPES["number"](v) or low <= v <= high


def _compile_field(schema: Any) -> Check | None:
    """A check for a scalar field's schema, or None when it uses anything beyond the common keywords."""
    if not isinstance(schema, Mapping):
        return None
    checks: list[Check] = []
    inf = float("inf")
    for key, value in schema.items():
        if key in _NOTES:
            continue
        if key == "type":
            kinds = value if isinstance(value, list) else [value]
            if not all(isinstance(k, str) and k in _TYPES for k in kinds):
                return None
            checks.append(_of_types(kinds))
        elif key == "enum" and isinstance(value, list) and all(isinstance(o, str) for o in value):
            checks.append(_one_of(frozenset(value)))
        elif key in ("maxLength", "minLength", "maxWords") and _TYPES["integer"](value):
            size = word_count if key == "maxWords" else len
            checks.append(_sized(size, value, inf) if key == "minLength" else _sized(size, 0, value))
        elif key == "pattern" and isinstance(value, str):
            checks.append(_matches(re.compile(value)))
        elif key in ("minimum", "maximum") and _TYPES["number"](value):
            checks.append(_within(-inf, value) if key == "maximum" else _within(value, inf))
        else:
            return None
    return _every(checks)


def _compile_object(schema: Mapping[str, Any]) -> Check | None:
    """A check for an object of scalar fields (the usual task output), or None."""
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), Mapping):
        return None
    if not set(schema) <= {"type", "properties", "required", "additionalProperties"} | _NOTES:
        return None
    if schema.get("additionalProperties", False) not in (True, False):
        return None
    fields = {name: _compile_field(sub) for name, sub in schema["properties"].items()}
    compiled = [(name, check) for name, check in fields.items() if check is not None]
    if len(compiled) < len(fields):
        return None
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(name, str) for name in required):
        return None
    required = frozenset(required)
    closed = schema.get("additionalProperties") is False

    def check(item: Any) -> bool:
        if not isinstance(item, dict) or not item.keys() >= required:
            return False
        if closed and not item.keys() <= fields.keys():
            return False
        for name, check in compiled:  # noqa: SIM110 (a loop, not a generator: this runs for every answer)
            if name in item and not check(item[name]):
                return False
        return True

    return check


_WORDED = {
    "maxWords": "at most {} words",
    "maxLength": "at most {} characters",
    "minLength": "at least {} characters",
    "pattern": "matching the regular expression {}",
    "minimum": "at least {}",
    "maximum": "at most {}",
    "minItems": "at least {} items",
    "maxItems": "at most {} items",
    "format": "a valid {}",
}


def is_free_text(field: Mapping[str, Any]) -> bool:
    """Whether an output field is free text: a string (or a nullable one) without an enum, const, format or
    pattern. The one definition: the cross-wiring check reads these fields, the audit compares them by
    similarity, the local model writes them first."""
    kind = field.get("type")
    strings = kind == "string" or (isinstance(kind, list) and "string" in kind)
    return strings and not {"enum", "const", "format", "pattern"} & set(field)


def field_hint(schema: Mapping[str, Any]) -> str:
    """A one-line English description of a field's type and constraints, for the prompt."""
    parts: list[str] = []
    if "enum" in schema:
        parts.append("one of: " + ", ".join(str(v) for v in schema["enum"]))
    elif "type" in schema:
        kind = schema["type"]
        parts.append(" or ".join(kind) if isinstance(kind, list) else str(kind))
    parts.extend(text.format(schema[key]) for key, text in _WORDED.items() if key in schema)
    return "; ".join(parts)


def restrict(schema: Any, allowed: frozenset[str]) -> Any:
    """A copy of ``schema`` keeping only the keywords in ``allowed`` (recursively).

    Keys of ``properties`` and ``$defs`` are names, not keywords, and are kept.
    """
    if isinstance(schema, list):
        return [restrict(item, allowed) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("properties", "$defs"):
            out[key] = {name: restrict(sub, allowed) for name, sub in value.items()}
        elif key in allowed:
            literal = key in ("enum", "const", "required", "propertyOrdering")
            out[key] = value if literal else restrict(value, allowed)
    return out
