"""The stubs' default answer: valid for the engine's answer schema, derived from each row's own record.

A row gets the same answer packed or alone, and the same on every run: text is "About" and the
record's first six words, an enum value, a boolean or a number is chosen by a hash of the record and
the field's name, an array holds as few items as it may. The schema's limits hold: a number's range
(``minimum``, ``maximum``, the exclusive bounds, ``multipleOf``), a text's ``maxWords``, length and
``format``, an array's ``minItems``, in the wire's schema or stated in the prompt (``- tldr (string; at
most 12 words)``, where the wire cannot carry them); a ``pattern`` and ``uniqueItems`` are not followed. An
``echo`` copies what its description asks for (the first words of a field of the record), as the engine
compares it (``echo_of``). A record's media show in it as what the stub sees in them (``testing.media``): an
enum field takes the value its media shows where it is one of its values (a red photo's ``colour`` is red).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from enrichkit.engine.prompt import echo_of
from enrichkit.providers.function import schema_ids


def default_answer(schema: Mapping[str, Any], records: Sequence[dict[str, Any]], system: str = "") -> Any:
    """One item per pack id of an array ``schema`` (in its order, each for the record with that id), or
    one object for a single row's object ``schema`` (for the first record). The limits the ``system``
    prompt states for a field (where the wire's schema cannot carry them) hold too."""
    schema = _with_stated(schema, system)
    if schema.get("type") != "array":
        return _object(schema, records[0] if records else {})
    by_id = {str(r.get("id")): r for r in records}
    items = []
    for position, rid in enumerate(schema_ids(schema)):
        item_schema = schema["prefixItems"][position] if "prefixItems" in schema else schema["items"]
        record = {k: v for k, v in by_id.get(rid, {}).items() if k != "id"}
        items.append({"id": rid, **_object(item_schema, record)})
    return items


_FIELD_LINE = re.compile(r"^- ([\w.-]+)(.*)$", re.MULTILINE)  # "- tldr: at most 12 words", "- tldr (…): …"
_STATED = {
    "maxWords": re.compile(r"at most (\d+) words"),
    "maxLength": re.compile(r"at most (\d+) characters"),
    "minLength": re.compile(r"at least (\d+) characters"),
}


def _with_stated(schema: Mapping[str, Any], system: str) -> Mapping[str, Any]:
    """``schema`` with the text limits the prompt's field lines state (``- tldr: at most 12 words``)
    added to its fields (the items' fields of a pack's array)."""
    stated = {
        name: {key: int(m.group(1)) for key, pattern in _STATED.items() if (m := pattern.search(line))}
        for name, line in _FIELD_LINE.findall(system)
    }
    if not any(stated.values()):
        return schema

    def added(obj: Mapping[str, Any]) -> dict[str, Any]:
        fields = obj.get("properties", {})
        return {**obj, "properties": {n: {**stated.get(n, {}), **f} for n, f in fields.items()}}

    if schema.get("type") != "array":
        return added(schema)
    if "prefixItems" in schema:
        return {**schema, "prefixItems": [added(item) for item in schema["prefixItems"]]}
    return {**schema, "items": added(schema["items"])}


def _object(schema: Mapping[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    return {
        name: _echo(value, record) if name == "echo" else _value(value, record, name)
        for name, value in schema.get("properties", {}).items()
        if name != "id"
    }


_ECHO = re.compile(r'first (?:(\d+) words|word) of the record\'s "([^"]+)"')


def _echo(schema: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    """The echo the field's description asks for (``prompt.pack_schema``)."""
    found = _ECHO.search(str(schema.get("description", "")))
    assert found is not None, f"an echo field that names no input: {schema}"
    return echo_of(record.get(found[2], ""), int(found[1] or 1))


def _stable(*parts: Any) -> int:
    return int(hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:8], 16)


def _value(schema: Mapping[str, Any], record: Mapping[str, Any], name: str) -> Any:
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        shown = [v for v in record.get("_seen", ()) if v in schema["enum"]]  # what the row's media shows
        return shown[0] if shown else schema["enum"][_stable(record, name) % len(schema["enum"])]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        return {k: _value(s, record, k) for k, s in schema.get("properties", {}).items()}
    if kind == "array":
        item = schema.get("items", {})
        return [_value(item, record, f"{name}[{i}]") for i in range(int(schema.get("minItems", 0)))]
    if kind == "boolean":
        return _stable(record, name) % 2 == 0
    if kind in ("integer", "number"):
        return _number(schema, _stable(record, name))
    return _text(schema, record)


def _number(schema: Mapping[str, Any], seed: int) -> int | float:
    """A whole number from ``seed`` within the schema's bounds (0-99 where it sets none), a multiple of
    its ``multipleOf``."""
    step = schema.get("multipleOf", 1)
    low, high = schema.get("minimum"), schema.get("maximum")
    if "exclusiveMinimum" in schema:
        low = max(low, schema["exclusiveMinimum"] + step) if low is not None else schema["exclusiveMinimum"] + step
    if "exclusiveMaximum" in schema:
        high = min(high, schema["exclusiveMaximum"] - step) if high is not None else schema["exclusiveMaximum"] - step
    if low is None:
        low = 0 if high is None else min(0, high)
    high = low + 99 * step if high is None else max(low, high)
    first = math.ceil(low / step)
    value = (first + seed % max(1, math.floor(high / step) - first + 1)) * step
    return int(value) if schema.get("type") == "integer" or float(value).is_integer() else value


_FORMATS = {
    "date": "2026-01-31",
    "time": "12:30:00Z",
    "date-time": "2026-01-31T12:30:00Z",
    "duration": "P1D",
    "email": "someone@example.com",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uuid": "123e4567-e89b-42d3-a456-426614174000",
    "uri": "https://example.com/",
}


def _text(schema: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    if schema.get("format") in _FORMATS:
        return _FORMATS[schema["format"]]
    words = " ".join(str(v) for k, v in record.items() if v is not None and k != "_seen").split()
    text = " ".join(["About", *words[:6]][: schema.get("maxWords", 7)]) if words else "About nothing"
    text = text[: schema.get("maxLength", len(text))].rstrip() or text[: schema.get("maxLength")]
    return text.ljust(schema.get("minLength", 0), ".")
