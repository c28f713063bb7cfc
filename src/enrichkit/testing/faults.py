"""What the stub answers: valid default answers built from the request, and the faults that spoil them."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from enrichkit.engine.prompt import echo_of
from enrichkit.testing.call import Call


@dataclass
class Outcome:
    """What the stub sends back: a JSON body (or raw text) with a status, after a delay."""

    status: int = 200
    body: Any = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


Fault = Callable[[Call], Outcome | None]


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


def answer_items(call: Call) -> Any:
    """A valid answer for ``call``: one item per id (in order), or one object for a single row.

    An item's ``echo`` (when its schema has one) copies its record's last input field, as the engine
    compares it (``echo_of``)."""
    schema = call.schema
    records = call.records
    if schema.get("type") != "array":
        record = records[0] if records else {}
        return {k: _value(s, record, k) for k, s in schema.get("properties", {}).items()}
    by_id = {str(r.get("id")): r for r in records}
    items = []
    for position, rid in enumerate(call.ids):
        item_schema = schema["prefixItems"][position] if "prefixItems" in schema else schema["items"]
        record = {k: v for k, v in by_id.get(rid, {}).items() if k != "id"}
        item: dict[str, Any] = {"id": rid}
        for name, value_schema in item_schema["properties"].items():
            if name == "echo":
                item[name] = echo_of(next(reversed(record.values()), ""))
            elif name != "id":
                item[name] = _value(value_schema, record, name)
        items.append(item)
    return items


def response(text: str | None, finish: str = "STOP", prompt_tokens: int = 0) -> dict[str, Any]:
    """A generateContent response body carrying ``text``."""
    candidate: dict[str, Any] = {"finishReason": finish, "index": 0}
    candidate["content"] = {"role": "model", "parts": [{"text": text}]} if text is not None else {"role": "model"}
    out_tokens = len(text or "") // 4
    return {
        "candidates": [candidate],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": out_tokens,
            "totalTokenCount": prompt_tokens + out_tokens,
        },
        "modelVersion": "stub",
    }


def error_body(status: int, message: str, retry_delay: str | None = None) -> dict[str, Any]:
    names = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
        504: "DEADLINE_EXCEEDED",
    }
    error: dict[str, Any] = {"code": status, "message": message, "status": names.get(status, "UNKNOWN")}
    if retry_delay is not None:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}]
    return {"error": error}


def prompt_tokens(call: Call) -> int:
    """The stub's token count of a call's texts (four characters a token)."""
    return (len(call.system) + len(call.prompt)) // 4


def answer(call: Call) -> Outcome:
    """The normal answer to ``call``: the default items as a response."""
    return Outcome(body=response(json.dumps(answer_items(call)), prompt_tokens=prompt_tokens(call)))


Target = str | Callable[[Mapping[str, Any]], bool] | None
"""Which items a fault changes: a pack id, a test on the row's record, or every item (None)."""


def _hit(target: Target, item: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    if target is None:
        return True
    if isinstance(target, str):
        return item.get("id") == target
    return target(record)


Items = list[dict[str, Any]]


def with_items(change: Callable[[Items, Items], Items]) -> Fault:
    """Answer with the default items after ``change(items, records)`` (a single row's answer is a
    one-item list whose item has no id)."""

    def fault(call: Call) -> Outcome:
        default = answer_items(call)
        single = isinstance(default, dict)
        items: Items = [default] if single else default
        by_id = {str(r.get("id")): r for r in call.records}
        records = call.records[:1] if single else [by_id.get(str(i.get("id")), {}) for i in items]
        changed = change(items, records)
        body = (changed[0] if changed else {}) if single else changed
        return Outcome(body=response(json.dumps(body), prompt_tokens=prompt_tokens(call)))

    return fault


def drop_ids(*ids: str) -> Fault:
    return with_items(lambda items, _: [i for i in items if i.get("id") not in ids])


def duplicate_id(rid: str) -> Fault:
    return with_items(lambda items, _: items + [dict(i) for i in items if i.get("id") == rid])


def add_unknown_id(rid: str = "r999") -> Fault:
    return with_items(lambda items, _: [*items, {**items[0], "id": rid}])


def set_field(target: Target, name: str, value: Any) -> Fault:
    return with_items(
        lambda items, records: [
            {**i, name: value} if _hit(target, i, r) else i for i, r in zip(items, records, strict=False)
        ]
    )


def shuffled(seed: int = 1) -> Fault:
    return with_items(lambda items, _: random.Random(seed).sample(items, len(items)))


def swap_answers(a: str, b: str) -> Fault:
    """Exchange the answers of two ids, keeping the ids valid (cross-wiring)."""

    def change(items: Items, _: Items) -> Items:
        by_id = {i["id"]: i for i in items}
        return [{**(by_id[b] if i["id"] == a else by_id[a] if i["id"] == b else i), "id": i["id"]} for i in items]

    return with_items(change)


def with_text(change: Callable[[str], str], finish: str = "STOP") -> Fault:
    """Answer with the default answer's JSON text after ``change``, and the given finish reason."""

    def fault(call: Call) -> Outcome:
        text = change(json.dumps(answer_items(call)))
        return Outcome(body=response(text, finish, prompt_tokens(call)))

    return fault


def fenced() -> Fault:
    return with_text(lambda t: f"Here is the JSON you asked for:\n```json\n{t}\n```\n")


def truncated() -> Fault:
    """The answer cut in the middle, as a model that ran out of output tokens sends it."""
    return with_text(lambda t: t[: len(t) // 2], finish="MAX_TOKENS")


def blocked() -> Fault:
    return lambda call: Outcome(body=response(None, "SAFETY", prompt_tokens(call)))


def http_error(status: int, message: str = "stub error", retry_delay: str | None = None) -> Fault:
    return lambda call: Outcome(status=status, body=error_body(status, message, retry_delay))


def hang(seconds: float) -> Fault:
    """Answer normally, but only after ``seconds`` (a hung server, for timeouts)."""
    return lambda call: Outcome(body=response(json.dumps(answer_items(call))), delay=seconds)
