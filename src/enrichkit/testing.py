"""A local HTTP server that speaks the Gemini REST API, for tests and benchmarks without a key.

Point the real google-genai client at it (``HttpOptions(base_url=stub.url)`` or enrichkit's
``--base-url``). By default it answers every ``generateContent`` with valid JSON derived from the
request's ``responseJsonSchema`` and the records in the prompt; ``script`` and ``rule`` inject
faults (bad JSON, missing or duplicated ids, 429 with RetryInfo, 5xx, hangs, MAX_TOKENS, ...).
It can simulate latency and enforce a requests-per-minute limit.

    with GeminiStub() as stub:
        stub.script(drop_ids("r3"))           # first call loses r3, later calls are normal
        enrich(rows, task, client=make_client("k", stub.url))
        assert len(stub.calls) == 2
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from enrichkit.prompt import ECHO_WORDS

_ROUTE = re.compile(r"^/(?:.*/)?(v[0-9a-z]+)/models/([^/:]+):(\w+)$")


@dataclass
class Call:
    """One request the stub received."""

    method: str
    path: str
    model: str
    action: str
    body: dict[str, Any]
    headers: dict[str, str]
    received: float = field(default_factory=time.monotonic)

    @property
    def system(self) -> str:
        parts = self.body.get("systemInstruction", {}).get("parts", [])
        return "".join(p.get("text", "") for p in parts)

    @property
    def prompt(self) -> str:
        contents = self.body.get("contents", [])
        return "".join(p.get("text", "") for c in contents for p in c.get("parts", []))

    @property
    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = self.body.get("generationConfig", {})
        return config

    @property
    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = self.config.get("responseJsonSchema") or self.config.get("responseSchema") or {}
        return schema

    @property
    def ids(self) -> list[str]:
        """The pack ids the answer schema allows (empty for a single-row call)."""
        schema = self.schema
        if "prefixItems" in schema:
            return [item["properties"]["id"]["const"] for item in schema["prefixItems"]]
        if schema.get("type") == "array":
            return list(schema["items"]["properties"]["id"]["enum"])
        return []

    @property
    def records(self) -> list[dict[str, Any]]:
        """The records in the prompt (a pack's JSON array, or a single record's object)."""
        text = self.prompt
        start = text.find("\n\n")
        if start < 0:
            return []
        try:
            value = json.loads(text[start:])
        except json.JSONDecodeError:
            return []
        return value if isinstance(value, list) else [value]


@dataclass
class Outcome:
    """What the stub sends back: a JSON body (or raw text) with a status, after a delay."""

    status: int = 200
    body: Any = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


Fault = Callable[[Call], Outcome | None]


_QUOTED = re.compile(r'"([^"]+)"')


def _stable(*parts: Any) -> int:
    return int(hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:8], 16)


def _value(schema: Mapping[str, Any], record: Mapping[str, Any], name: str) -> Any:
    if name == "echo" and (quoted := _QUOTED.search(str(schema.get("description", "")))):
        return " ".join(str(record.get(quoted.group(1), "")).split()[:ECHO_WORDS])  # as told: copy the words
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
    """A valid answer for ``call``: one item per id (in order), or one object for a single row."""
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
        item = {k: _value(s, record, k) for k, s in item_schema["properties"].items() if k != "id"}
        items.append({"id": rid, **item})
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


def _prompt_tokens(call: Call) -> int:
    return (len(call.system) + len(call.prompt)) // 4


# -- faults --------------------------------------------------------------------------------------


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
        answer = answer_items(call)
        single = isinstance(answer, dict)
        items: Items = [answer] if single else answer
        by_id = {str(r.get("id")): r for r in call.records}
        records = call.records[:1] if single else [by_id.get(str(i.get("id")), {}) for i in items]
        changed = change(items, records)
        body = (changed[0] if changed else {}) if single else changed
        return Outcome(body=response(json.dumps(body), prompt_tokens=_prompt_tokens(call)))

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
        return Outcome(body=response(text, finish, _prompt_tokens(call)))

    return fault


def fenced() -> Fault:
    return with_text(lambda t: f"Here is the JSON you asked for:\n```json\n{t}\n```\n")


def truncated() -> Fault:
    """The answer cut in the middle, as a model that ran out of output tokens sends it."""
    return with_text(lambda t: t[: len(t) // 2], finish="MAX_TOKENS")


def blocked() -> Fault:
    return lambda call: Outcome(body=response(None, "SAFETY", _prompt_tokens(call)))


def http_error(status: int, message: str = "stub error", retry_delay: str | None = None) -> Fault:
    return lambda call: Outcome(status=status, body=error_body(status, message, retry_delay))


def hang(seconds: float) -> Fault:
    """Answer normally, but only after ``seconds`` (a hung server, for timeouts)."""
    return lambda call: Outcome(body=response(json.dumps(answer_items(call))), delay=seconds)


# -- server --------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog of 5 drops concurrent connects (1 s SYN retry)


class GeminiStub:
    """The stub server; a context manager that serves on a free local port in a thread."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        per_output_token: float = 0.0,
        jitter: float = 0.0,
        rpm: int | None = None,
        window: float = 60.0,
        port: int = 0,
    ) -> None:
        self.latency = latency
        self.per_output_token = per_output_token
        self.jitter = jitter
        self.rpm = rpm
        self.window = window
        self.calls: list[Call] = []
        self.rate_limited = 0
        self.refusal: Outcome | None = None
        self._script: collections.deque[Fault | None] = collections.deque()
        self._rules: list[tuple[Callable[[Call], bool], Fault]] = []
        self._recent: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, *faults: Fault | None) -> None:
        """Use these faults for the next calls, in order (``None`` = answer normally)."""
        with self._lock:
            self._script.extend(faults)

    def refuse(self, status: int, message: str) -> None:
        """Answer every call, token counts included, with this error (a bad key, an unknown model)."""
        self.refusal = Outcome(status, error_body(status, message))

    def rule(self, when: Callable[[Call], bool], fault: Fault) -> None:
        """Use ``fault`` for every call matching ``when`` (after the script is used up)."""
        with self._lock:
            self._rules.append((when, fault))

    @property
    def generate_calls(self) -> list[Call]:
        return [c for c in self.calls if c.action == "generateContent"]

    def start(self) -> GeminiStub:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> GeminiStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle(self, call: Call) -> Outcome:
        """Decide the outcome of one call (runs in the server's request thread)."""
        with self._lock:
            self.calls.append(call)
            if self.refusal is not None:
                return self.refusal
            if call.action == "countTokens":  # free, and outside the generation quota and the script
                return Outcome(body={"totalTokens": _prompt_tokens(call)})
            limited = self._over_rpm()
            fault = self._script.popleft() if self._script else next((f for when, f in self._rules if when(call)), None)
        if limited is not None:
            self.rate_limited += 1
            return Outcome(429, error_body(429, "stub rate limit", f"{limited:.3f}s"))
        outcome = fault(call) if fault is not None else None
        if outcome is None:
            outcome = Outcome(body=response(json.dumps(answer_items(call)), prompt_tokens=_prompt_tokens(call)))
        if outcome.status == 200 and isinstance(outcome.body, dict) and outcome.delay == 0:
            tokens = outcome.body.get("usageMetadata", {}).get("candidatesTokenCount", 0)
            outcome.delay = self.latency + self.per_output_token * tokens + random.uniform(0, self.jitter)
        return outcome

    def _over_rpm(self) -> float | None:
        """Seconds until a request slot frees, when the last window already had ``rpm`` requests."""
        if self.rpm is None:
            return None
        now = time.monotonic()
        while self._recent and now - self._recent[0] >= self.window:
            self._recent.popleft()
        if len(self._recent) >= self.rpm:
            return self.window - (now - self._recent[0])
        self._recent.append(now)
        return None


def _handler(stub: GeminiStub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            match = _ROUTE.match(self.path.split("?")[0])
            if not match:
                self._send(Outcome(404, error_body(404, f"no route {self.path}")))
                return
            body = json.loads(raw) if raw else {}
            call = Call("POST", self.path, match.group(2), match.group(3), body, dict(self.headers))
            self._send(stub.handle(call))

        def _send(self, outcome: Outcome) -> None:
            if outcome.delay:
                time.sleep(outcome.delay)
            payload = outcome.body if isinstance(outcome.body, str) else json.dumps(outcome.body)
            data = payload.encode()
            self.send_response(outcome.status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in outcome.headers.items():
                self.send_header(name, value)
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

    return Handler


def main() -> None:
    """``python -m enrichkit.testing``: serve the stub until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per call")
    parser.add_argument("--per-output-token", type=float, default=0.0, help="seconds per output token")
    parser.add_argument("--jitter", type=float, default=0.0, help="up to this many extra seconds per call")
    parser.add_argument("--rpm", type=int, default=None, help="requests per window before 429")
    parser.add_argument("--window", type=float, default=60.0, help="the rate-limit window in seconds")
    args = parser.parse_args()
    stub = GeminiStub(
        latency=args.latency,
        per_output_token=args.per_output_token,
        jitter=args.jitter,
        rpm=args.rpm,
        window=args.window,
        port=args.port,
    )
    with stub:
        print(f"Gemini stub listening on {stub.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
