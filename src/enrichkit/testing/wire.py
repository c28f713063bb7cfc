"""What the OpenAI and Anthropic stubs share: a threaded local HTTP server, the requests they
received, and valid default answers built from a request's schema and prompt."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, Self

from enrichkit.testing.call import Call
from enrichkit.testing.faults import Outcome, answer_items


@dataclass
class Asked:
    """One model request a stub answered: live (``job`` None) or inside a batch job."""

    model: str
    body: dict[str, Any]
    system: str
    prompt: str
    schema: dict[str, Any]
    """The answer schema as the engine made it (unwrapped: a pack's array, a single row's object)."""
    job: str | None = None
    custom_id: str | None = None
    received: float = field(default_factory=time.monotonic)

    @property
    def packed(self) -> bool:
        return self.schema.get("type") == "array"

    @property
    def answer(self) -> Any:
        """A valid answer: one item per pack id (echoes included), or one object for a single row."""
        body = {
            "systemInstruction": {"parts": [{"text": self.system}]},
            "contents": [{"parts": [{"text": self.prompt}]}],
            "generationConfig": {"responseJsonSchema": self.schema},
        }
        return answer_items(Call("POST", "", self.model, "generateContent", body, {}))


Fault = Callable[[Asked], Outcome | None]
"""What a stub answers instead of the default for one request (None: the default)."""


def unwrapped(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's schema inside a wire schema ``{"items": [...]}`` (an object schema as is)."""
    items = schema.get("properties", {}).get("items")
    if schema.get("required") == ["items"] and isinstance(items, dict) and items.get("type") == "array":
        return items
    return dict(schema)


def tokens(text: str) -> int:
    """The stubs' token count: four characters a token."""
    return len(text) // 4


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128


class WireStub:
    """A local server in a thread; ``serve(method, path, headers, body)`` answers each HTTP request."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.asked: list[Asked] = []
        self.rules: list[Fault] = []
        self._server = _Server(
            ("127.0.0.1", 0), http_handler(lambda m, path, h, raw: self.serve(m, path.split("?")[0], h, raw))
        )
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def rule(self, fault: Fault) -> None:
        """Answer with ``fault`` wherever it returns an outcome (rules are tried in order)."""
        with self.lock:
            self.rules.append(fault)

    def decide(self, asked: Asked) -> Outcome | None:
        """Record ``asked``; the first rule's outcome for it, or None for the default answer."""
        with self.lock:
            self.asked.append(asked)
            rules = list(self.rules)
        return next((outcome for rule in rules if (outcome := rule(asked)) is not None), None)

    def serve(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Outcome:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class Sent(Protocol):
    """What a stub answers one HTTP request with."""

    status: int
    body: Any
    headers: dict[str, str]
    delay: float


Serve = Callable[[str, str, dict[str, str], bytes], Sent]
"""A stub's answer to (method, path with its query, lower-cased headers, raw body)."""


def http_handler(serve: Serve) -> type[BaseHTTPRequestHandler]:
    """The request handler every stub runs over: read the request, ask ``serve``, send its answer
    (JSON for a dict or list, the bytes as they are for a file download), after its delay."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_DELETE(self) -> None:
            self._serve()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            sent = serve(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, raw)
            if sent.delay:
                time.sleep(sent.delay)
            body = sent.body
            data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(sent.status)
            kind = "application/octet-stream" if isinstance(body, bytes) else "application/json; charset=UTF-8"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for name, value in sent.headers.items():
                self.send_header(name, value)
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

    return Handler
