"""A tiny OpenAI-compatible chat server for tests: ``POST /v1/chat/completions``.

By default every request is answered with valid JSON for its ``response_format`` json_schema (a
pack's ``{"items": [...]}`` with one item per record in the prompt, or one object for a single
row); a row gets the same answer packed or on its own. ``script`` and ``rule`` inject errors
(Groq's ``json_validate_failed``, 429 with ``retry-after-ms``, 5xx), hangs, cut-off answers and
spoiled items (dropped, duplicated or unknown ids, a bad value, two answers swapped).

    with OpenAIStub() as stub:
        stub.script(drop_ids("r3"))                      # first call loses r3
        stub.rule(json_validate_failed(), when=lambda call: call.rows > 10)
        enrich(rows, task, provider=openai_provider("m", stub.url))
"""

from __future__ import annotations

import collections
import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from enrichkit.engine.prompt import echo_of
from enrichkit.providers.function import find_records, schema_ids
from enrichkit.testing.wire import http_handler


@dataclass
class Received:
    """One request the stub received."""

    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def records(self) -> list[dict[str, Any]]:
        """The records in the user message (a pack's JSON array, or a single record's object)."""
        pack = self.pack
        return find_records(str(self.body["messages"][-1]["content"]), schema_ids(pack) if pack is not None else [])

    @property
    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = self.body["response_format"]["json_schema"]["schema"]
        return schema

    @property
    def pack(self) -> dict[str, Any] | None:
        """The array schema of a pack (wrapped as ``{"items": [...]}``), or None for a single row."""
        items: dict[str, Any] | None = self.schema.get("properties", {}).get("items")
        return items if items is not None and items.get("type") == "array" else None

    @property
    def rows(self) -> int:
        return len(self.records)

    @property
    def ids(self) -> list[str]:
        """The pack ids of the records (empty for a single row)."""
        return [str(r.get("id")) for r in self.records] if self.pack is not None else []


@dataclass
class Answer:
    """A JSON body (or raw text) with a status, sent after ``delay`` seconds."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Fault = Callable[[Received], Answer]


def _value(schema: Mapping[str, Any], record: Mapping[str, Any], name: str) -> Any:
    if "enum" in schema:
        digest = hashlib.sha256(json.dumps([record, name], sort_keys=True).encode()).digest()
        return schema["enum"][digest[0] % len(schema["enum"])]
    kind = schema.get("type")
    if kind == "boolean":
        return True
    if kind in ("integer", "number"):
        return 1
    words = " ".join(str(v) for v in record.values()).split()
    return " ".join(["About", *words[:6]])


def _object(schema: Mapping[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    """The answer for ``record`` without its pack id (so it is the same packed or alone); an ``echo``
    copies the record's last input field, as the engine compares it (``echo_of``)."""
    values = {k: v for k, v in record.items() if k != "id"}
    return {
        name: echo_of(next(reversed(values.values()), "")) if name == "echo" else _value(s, values, name)
        for name, s in schema["properties"].items()
        if name != "id"
    }


def answer_of(call: Received) -> dict[str, Any]:
    """A valid answer document for ``call``."""
    if call.pack is None:
        return _object(call.schema, call.records[0])
    return {"items": [{"id": r["id"], **_object(call.pack["items"], r)} for r in call.records]}


def completion(content: str, finish: str = "stop") -> dict[str, Any]:
    """A ``chat.completion`` body carrying ``content``."""
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": "stub",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": len(content) // 4,
            "total_tokens": 100 + len(content) // 4,
        },
    }


def error(
    status: int,
    message: str = "stub error",
    headers: dict[str, str] | None = None,
    *,
    code: str | None = None,
    type: str = "stub_error",
    **fields: Any,
) -> Fault:
    """An error answer ``{"error": {"message", "type", "param", "code", **fields}}``, as OpenAI (and Groq,
    e.g. ``code="json_validate_failed", failed_generation=""``) send them."""
    body = {"error": {"message": message, "type": type, "param": None, "code": code, **fields}}
    return lambda call: Answer(status, body, headers or {})


def json_validate_failed(failed_generation: str = "") -> Fault:
    """Groq's 400 for an answer its own decoder could not fit to the schema (an unrecognised 400 elsewhere)."""
    return error(
        400,
        "Failed to validate JSON",
        code="json_validate_failed",
        type="invalid_request_error",
        failed_generation=failed_generation,
    )


def rate_limited(seconds: float) -> Fault:
    """A 429 asking to wait ``seconds`` (``retry-after-ms``, as OpenAI and Groq send it)."""
    return error(
        429,
        "Rate limit reached for requests",
        {"retry-after-ms": str(round(seconds * 1000))},
        code="rate_limit_exceeded",
        type="requests",
    )


def raw(status: int, text: str) -> Fault:
    """``text`` as the body, not JSON-encoded (an HTML error page, a broken answer)."""
    return lambda call: Answer(status, text)


def hang(seconds: float) -> Fault:
    """Answer normally, but only after ``seconds`` (a hung server, for timeouts)."""
    return lambda call: Answer(body=completion(json.dumps(answer_of(call))), delay=seconds)


def cut_off() -> Fault:
    """The default answer cut in the middle, with ``finish_reason: length``."""

    def fault(call: Received) -> Answer:
        text = json.dumps(answer_of(call))
        return Answer(body=completion(text[: len(text) // 2], finish="length"))

    return fault


Items = list[dict[str, Any]]


def with_items(change: Callable[[Items], Items]) -> Fault:
    """Answer with the default items after ``change(items)`` (a single row's answer is a one-item list
    whose item has no id)."""

    def fault(call: Received) -> Answer:
        doc = answer_of(call)
        single = call.pack is None
        changed = change([doc] if single else doc["items"])
        body = (changed[0] if changed else {}) if single else {"items": changed}
        return Answer(body=completion(json.dumps(body)))

    return fault


def drop_ids(*ids: str) -> Fault:
    return with_items(lambda items: [i for i in items if i.get("id") not in ids])


def duplicate_id(rid: str) -> Fault:
    return with_items(lambda items: items + [dict(i) for i in items if i.get("id") == rid])


def add_unknown_id(rid: str = "r999") -> Fault:
    return with_items(lambda items: [*items, {**items[0], "id": rid}])


def set_field(target: str | None, name: str, value: Any) -> Fault:
    """Set field ``name`` of the item with id ``target`` (every item: None) to ``value``."""
    return with_items(lambda items: [{**i, name: value} if target in (None, i.get("id")) else i for i in items])


def swap_answers(a: str, b: str) -> Fault:
    """Exchange the answers of two ids, keeping the ids valid (cross-wiring)."""

    def change(items: Items) -> Items:
        by_id = {i["id"]: i for i in items}
        return [{**(by_id[b] if i["id"] == a else by_id[a] if i["id"] == b else i), "id": i["id"]} for i in items]

    return with_items(change)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 64


class OpenAIStub:
    """The stub server; a context manager serving on a free local port in a thread."""

    def __init__(self) -> None:
        self.calls: list[Received] = []
        self._script: collections.deque[Fault | None] = collections.deque()
        self._rules: list[tuple[Callable[[Received], bool], Fault]] = []
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), http_handler(self.serve))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def script(self, *faults: Fault | None) -> None:
        """Use these faults for the next calls, in order (``None`` = answer normally)."""
        with self._lock:
            self._script.extend(faults)

    def rule(self, fault: Fault, when: Callable[[Received], bool] | None = None) -> None:
        """Use ``fault`` for every call (matching ``when``) once the script is used up; the first rule
        added that matches wins."""
        with self._lock:
            self._rules.append((when or (lambda call: True), fault))

    def handle(self, call: Received) -> Answer:
        with self._lock:
            self.calls.append(call)
            fault = self._script.popleft() if self._script else next((f for w, f in self._rules if w(call)), None)
        if fault is not None:
            return fault(call)
        return Answer(body=completion(json.dumps(answer_of(call))))

    def serve(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        if method != "POST" or path.split("?")[0] != "/v1/chat/completions":
            return error(404, f"no route {method} {path}")(Received({}, {}))
        return self.handle(Received(json.loads(raw), headers))

    def __enter__(self) -> OpenAIStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
