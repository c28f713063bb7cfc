"""The JSON Schema dialect of task outputs: Draft 2020-12 plus the ``maxWords`` keyword.

Providers support different subsets of JSON Schema, so constraints a provider cannot enforce while
decoding are spelled out in words (``field_hint``) and always checked here after the answer arrives.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError


def _max_words(validator: Any, limit: int, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if isinstance(instance, str):
        words = len(instance.split())
        if words > limit:
            yield ValidationError(f"has {words} words, more than {limit}")


OutputValidator = validators.extend(Draft202012Validator, {"maxWords": _max_words})  # type: ignore[no-untyped-call]


def make_validator(schema: Mapping[str, Any]) -> Any:
    """A validator for one output item (the task's output schema)."""
    return OutputValidator(schema)


def first_error(validator: Any, instance: Any) -> str | None:
    """The most relevant problem with ``instance`` as ``field: message``, or None when valid."""
    errors = sorted(validator.iter_errors(instance), key=lambda e: (list(e.absolute_path), e.message))
    if not errors:
        return None
    err = errors[0]
    where = ".".join(str(p) for p in err.absolute_path)
    message = err.message
    if err.validator == "enum":
        options = ", ".join(str(v) for v in err.validator_value)
        message = f"{err.instance!r} not in [{options}]"
    return f"{where}: {message}" if where else message


_WORDED = {
    "maxWords": "at most {} words",
    "maxLength": "at most {} characters",
    "minLength": "at least {} characters",
    "pattern": "matching the regular expression {}",
    "minimum": "at least {}",
    "maximum": "at most {}",
    "minItems": "at least {} items",
    "maxItems": "at most {} items",
}


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
