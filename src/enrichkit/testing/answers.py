"""The stubs' default answer: valid for the engine's answer schema, derived from each row's own record.

A row gets the same answer packed or alone, and the same on every run: text is "About" and the
record's first six words, an enum value, a boolean or a number is chosen by a hash of the record and
the field's name, an array is empty. An ``echo`` copies what its description asks for (the first
words of a field of the record), as the engine compares it (``echo_of``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from enrichkit.engine.prompt import echo_of
from enrichkit.providers.function import schema_ids


def default_answer(schema: Mapping[str, Any], records: Sequence[dict[str, Any]]) -> Any:
    """One item per pack id of an array ``schema`` (in its order, each for the record with that id), or
    one object for a single row's object ``schema`` (for the first record)."""
    if schema.get("type") != "array":
        return _object(schema, records[0] if records else {})
    by_id = {str(r.get("id")): r for r in records}
    items = []
    for position, rid in enumerate(schema_ids(schema)):
        item_schema = schema["prefixItems"][position] if "prefixItems" in schema else schema["items"]
        record = {k: v for k, v in by_id.get(rid, {}).items() if k != "id"}
        items.append({"id": rid, **_object(item_schema, record)})
    return items


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
        return schema["enum"][_stable(record, name) % len(schema["enum"])]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        return {k: _value(s, record, k) for k, s in schema.get("properties", {}).items()}
    if kind == "array":
        return []
    if kind == "boolean":
        return _stable(record, name) % 2 == 0
    if kind in ("integer", "number"):
        return _stable(record, name) % 100
    words = " ".join(str(v) for v in record.values() if v is not None).split()
    return " ".join(["About", *words[:6]]) if words else "About nothing"
