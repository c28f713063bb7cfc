"""The one-line column language: ``"sentiment: positive|negative|neutral"`` to a JSON Schema property.

A column is ``NAME: TYPE [-- description]`` (``NAME`` alone is text). ``TYPE`` is one of ``text``,
``text, at most N words``, ``text, at most N characters``, ``integer``/``number`` (optionally
``MIN-MAX``), ``yes/no`` (a boolean), ``A|B|C`` (one of these strings) or ``list of TYPE``
(optionally ``, at most N items``). simonw/llm's concise schemas are read too, several columns to a
string: ``"name, age int, bio: a short bio"`` (comma- or newline-separated ``NAME [TYPE][: description]``,
``TYPE`` one of ``str int float bool`` or the words above).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from enrichkit.errors import UserError
from enrichkit.task.hints import did_you_mean

TYPES = (
    "text; text, at most N words; text, at most N characters; integer [MIN-MAX]; number [MIN-MAX];"
    " yes/no; A|B|C; list of TYPE [, at most N items]"
)

RESERVED = ("id", "echo")  # the names enrichkit's packed answers use

_NAME = re.compile(r"[^\W\d][\w.-]*")

_NUMBER = r"-?\d+(?:\.\d+)?"

_RANGE = re.compile(rf"(?P<kind>[\w/]+)(?:\s+(?P<low>{_NUMBER})\s*(?:-|\.\.|to)\s*(?P<high>{_NUMBER}))?")

_AT_MOST = re.compile(r"(?P<rest>.*?),?\s+at most (?P<n>\d+) (?P<unit>words?|characters?|chars?|items?)")

_LLM_FIELD = re.compile(r"(?P<name>[^\W\d][\w.-]*)(?:\s+(?P<type>\w+))?\s*(?::\s*(?P<description>.*))?", re.S)

_LLM_TYPES = {"str": "text", "int": "integer", "float": "number", "bool": "yes/no"}

_SCALARS: dict[str, dict[str, Any]] = {
    "text": {"type": "string"},
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "int": {"type": "integer"},
    "number": {"type": "number"},
    "float": {"type": "number"},
    "yes/no": {"type": "boolean"},
    "boolean": {"type": "boolean"},
    "bool": {"type": "boolean"},
}

_LIMITS = {"word": "maxWords", "char": "maxLength", "item": "maxItems"}


class _Unreadable(ValueError):
    """The part of a type that could not be read."""


def parse_columns(specs: str | Iterable[str]) -> dict[str, dict[str, Any]]:
    """The output properties (name to JSON Schema, in order) of column specs; one string may hold several
    columns in llm's concise form. A spec that cannot be read is a one-line ``UserError``."""
    properties: dict[str, dict[str, Any]] = {}
    for spec in [specs] if isinstance(specs, str) else specs:
        for name, schema in _parse_spec(spec):
            if name in RESERVED:
                raise UserError(
                    f"column {spec!r}: the name {name!r} is reserved (enrichkit uses {' and '.join(RESERVED)})"
                )
            if name in properties:
                raise UserError(f"column {spec!r}: {name!r} is given twice")
            properties[name] = schema
    if not properties:
        raise UserError("no columns: give at least one, e.g. 'sentiment: positive|negative|neutral'")
    return properties


def _parse_spec(spec: str) -> list[tuple[str, dict[str, Any]]]:
    text, _, description = spec.partition(" -- ")
    head, colon, rest = text.partition(":")
    if _NAME.fullmatch(head.strip()) and "\n" not in spec.strip():
        try:
            schema = column_type(rest if colon else "text")
        except _Unreadable as exc:
            hint = did_you_mean(str(exc), _SCALARS, {"str": "text"})
            raise UserError(
                f"column {spec!r}: cannot read {str(exc)!r}{hint} (a column is NAME: TYPE [-- description];"
                f" TYPE: {TYPES})"
            ) from None
        return [(head.strip(), _described(schema, description))]
    return [_llm_field(part, spec) for part in re.split(r"\n" if "\n" in spec.strip() else ",", spec) if part.strip()]


def _llm_field(part: str, spec: str) -> tuple[str, dict[str, Any]]:
    """One field of llm's concise schema: ``NAME [TYPE][: description]``."""
    match = _LLM_FIELD.fullmatch(part.strip())
    kind = _LLM_TYPES.get(kind, kind) if match and (kind := (match["type"] or "str").lower()) else ""
    if match is None or kind not in _SCALARS:
        raise UserError(
            f"columns {spec!r}: cannot read {part.strip()!r} (llm's form is NAME [str|int|float|bool][: description],"
            " comma- or newline-separated; one column is NAME: TYPE [-- description])"
        )
    return match["name"], _described(dict(_SCALARS[kind]), match["description"] or "")


def _described(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {**schema, "description": description.strip()} if description.strip() else schema


def column_type(text: str) -> dict[str, Any]:
    """The JSON Schema of one TYPE (see the module's docstring); raises ``_Unreadable`` naming the part."""
    spec = " ".join(text.split())
    limit: tuple[str, int] | None = None
    if (at_most := _AT_MOST.fullmatch(spec)) is not None:
        spec, limit = at_most["rest"], (_LIMITS[at_most["unit"][:4]], int(at_most["n"]))
    lowered = spec.lower()
    if lowered.startswith("list of "):
        schema: dict[str, Any] = {"type": "array", "items": column_type(spec[len("list of ") :])}
    elif "|" in spec:
        options = [o.strip() for o in spec.split("|")]
        if not all(options) or len(set(options)) != len(options):
            raise _Unreadable(spec)
        schema = {"type": "string", "enum": options}
    elif (ranged := _RANGE.fullmatch(lowered)) is not None and ranged["kind"] in _SCALARS:
        schema = dict(_SCALARS[ranged["kind"]])
        if ranged["low"] is not None:
            if schema["type"] not in ("integer", "number"):
                raise _Unreadable(spec)
            low, high = (_bound(ranged[k], schema["type"], spec) for k in ("low", "high"))
            if low > high:
                raise _Unreadable(spec)
            schema |= {"minimum": low, "maximum": high}
    else:
        raise _Unreadable(spec)
    if limit is not None:
        keyword, n = limit
        target = schema["items"] if schema["type"] == "array" and keyword != "maxItems" else schema
        if target["type"] != ("array" if keyword == "maxItems" else "string") or n < 1:
            raise _Unreadable(text.strip())
        target[keyword] = n
    return schema


def _bound(text: str, kind: str, spec: str) -> int | float:
    """A range's end: an integer for ``integer`` (``1.5`` is unreadable), else as written."""
    if "." not in text:
        return int(text)
    if kind == "integer":
        raise _Unreadable(spec)
    return float(text)
