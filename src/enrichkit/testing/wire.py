"""What every stub shares: a threaded local HTTP server, the requests it received, the script and rules
that decide each answer (``Script``), and latency and a requests-per-minute limit to simulate.

A subclass names its ``routes``, reads a model request (``model_request``, which ``answer``s it) and
serves its batch and file requests (``api_request``), and renders outcomes in its wire format
(``answer_wire``, ``error_wire``).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import random
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, NamedTuple, Self, TypedDict, Unpack

from enrichkit.calls.prices import price_table
from enrichkit.testing.faults import Answer, Asked, Error, Outcome, RequestWindow, Wire, tokens
from enrichkit.testing.script import Script


class Pacing(TypedDict, total=False):
    """How a stub paces live answers: ``latency`` seconds a call, plus ``per_output_token`` seconds an
    output token and up to ``jitter`` more; ``rpm`` requests per ``window`` seconds before a 429, counted
    in a sliding window, or in one that opens at the first request and resets whole (``fixed_window``)."""

    latency: float
    per_output_token: float
    jitter: float
    rpm: int | None
    window: float
    fixed_window: bool
    port: int


class ApiCall(NamedTuple):
    """A batch or file request a stub received: its action (the stub's name for it) and path."""

    action: str
    path: str


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # the default backlog of 5 drops concurrent connects (1 s SYN retry)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet when a client hung up (a run that stopped); any other error as usual."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


ANY_MODEL = None
"""``models=ANY_MODEL`` (the default): a stub that answers for any model name."""

PRICED: tuple[str, ...] = ()
"""``models=PRICED``: a stub that knows the models ``prices.json`` prices (``ENRICHKIT_PRICES`` too)."""


class WireStub(Script):
    """A stub server; a context manager serving on a local port (a free one by default) in a thread.
    Given ``models`` (names, or ``PRICED``), it answers for those only and refuses any other name as its
    API does (``unknown_model``), so a wrong ``--model`` stops at the free preflight as it would for real;
    ``python -m enrichkit.testing`` does so by default."""

    prefix = ""
    """The path of ``url`` below the server's root."""
    routes: ClassVar[list[tuple[str, re.Pattern[str], str]]] = []
    """(HTTP method, path pattern, action); a model request's action is ``generate`` or ``count``."""

    def __init__(self, *, models: Iterable[str] | None = ANY_MODEL, **pacing: Unpack[Pacing]) -> None:
        super().__init__()
        self.models = None if models is None else frozenset(models or price_table())
        """The model names it answers for (None: any)."""
        self.latency = pacing.get("latency", 0.0)
        self.per_output_token = pacing.get("per_output_token", 0.0)
        self.jitter = pacing.get("jitter", 0.0)
        rpm, window, fixed = pacing.get("rpm"), pacing.get("window", 60.0), pacing.get("fixed_window", False)
        self.limit = None if rpm is None else RequestWindow(rpm, window, fixed)
        self.rate_limited = 0
        """Requests answered 429 by the ``rpm`` limit."""
        self.api_calls: list[ApiCall] = []
        self._api_faults: dict[str, collections.deque[Error]] = {}
        self.filled = False
        """Log-probabilities carry as many alternatives a token as asked, as the real APIs give them (made-up
        unlikely tokens after the chosen one and its rival; off by default: bodies stay small for the tests)."""
        self._server = _Server(("127.0.0.1", pacing.get("port", 0)), http_handler(self.serve))
        self._thread: threading.Thread | None = None

    @property
    def root(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def url(self) -> str:
        """The base URL to give the SDK."""
        return self.root + self.prefix

    @property
    def generate_calls(self) -> list[Asked]:
        """Live model requests (not token counts, nor the requests answered inside batch jobs)."""
        return [c for c in self.calls if c.action == "generate" and c.job is None]

    @property
    def batch_requests(self) -> list[Asked]:
        """The requests answered inside batch jobs."""
        return [c for c in self.calls if c.job is not None]

    def requests_of(self, job: str) -> list[Asked]:
        """The requests answered inside batch ``job``."""
        return [c for c in self.calls if c.job == job]

    def answer(self, asked: Asked) -> Wire:
        """Record a model request and answer it: the refusal, a 429 over ``rpm``, or what the script
        decides, paced (a batch job's requests are not limited or paced)."""
        with self.lock:
            self.calls.append(asked)
            refusal = (
                self.refusal or self._unknown(asked.model) or (Error(400, asked.malformed) if asked.malformed else None)
            )
            limited = None
            if refusal is None and asked.job is None and self.limit is not None:
                limited = self.limit.refuse(time.monotonic())
            self.rate_limited += limited is not None
            faults = self.pick(asked) if refusal is None and limited is None else []
        outcome: Outcome
        if refusal is not None:
            outcome = refusal
        elif limited is not None:
            outcome = Error(429, "stub rate limit", retry_after=limited)
        else:
            outcome = self.decide(faults, asked)
        if isinstance(outcome, Answer) and outcome.delay == 0 and asked.job is None:
            paced = self.latency + self.per_output_token * tokens(outcome.content(asked) or "")
            outcome = dataclasses.replace(outcome, delay=paced + random.uniform(0, self.jitter))
        return self.render(outcome, asked)

    def count(self, asked: Asked) -> Wire | None:
        """Record a token count; the refusal to send for it, if any."""
        with self.lock:
            self.calls.append(asked)
        refusal = self.refusal or self._unknown(asked.model)
        return None if refusal is None else self.error_wire(refusal)

    def _unknown(self, model: str) -> Error | None:
        """The error for a model this stub does not know (None: it knows it)."""
        name = model.removeprefix("models/")
        return None if self.models is None or name in self.models else self.unknown_model(name)

    def unknown_model(self, model: str) -> Error:
        """The API's error for an unknown ``model``."""
        raise NotImplementedError

    def fail_api(self, action: str, *errors: Error) -> None:
        """Answer the next batch or file requests of ``action`` with these errors, in order."""
        with self.lock:
            self._api_faults.setdefault(action, collections.deque()).extend(errors)

    def api(self, action: str, path: str) -> Wire | None:
        """Record a batch or file request; the refusal (or scripted fault, ``fail_api``) to send for it, if any."""
        with self.lock:
            self.api_calls.append(ApiCall(action, path))
            faults = self._api_faults.get(action)
            fault = faults.popleft() if faults else self.refusal
        return None if fault is None else self.error_wire(fault)

    def render(self, outcome: Outcome, asked: Asked) -> Wire:
        if isinstance(outcome, Wire):
            return outcome
        if isinstance(outcome, Error):
            return self.error_wire(outcome)
        return self.answer_wire(outcome, asked)

    def serve(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Wire:
        """Answer one HTTP request: ``path`` with its query, ``headers`` lower-cased (in a server thread)."""
        found = self.route(method, path)
        if found is None:
            return self.error_wire(Error(404, f"no route {method} {path}"))
        action, match = found
        if action in ("generate", "count"):
            return self.model_request(action, match, headers, raw)
        refused = self.api(action, path.split("?")[0])
        if refused is not None:
            return refused
        with self.lock:  # concurrent polls answer a job once
            sent = self.api_request(action, match, path, headers, raw)
        return sent if isinstance(sent, Wire) else self.error_wire(sent)

    def route(self, method: str, path: str) -> tuple[str, re.Match[str]] | None:
        """The action of the first route that matches (the path without its query), and the match."""
        route = path.split("?")[0]
        return next(
            ((a, m) for verb, pattern, a in self.routes if verb == method and (m := pattern.match(route))), None
        )

    def model_request(self, action: str, match: re.Match[str], headers: dict[str, str], raw: bytes) -> Wire:
        """Read a model request and ``answer`` it (or ``count`` it)."""
        raise NotImplementedError

    def api_request(
        self, action: str, match: re.Match[str], path: str, headers: dict[str, str], raw: bytes
    ) -> Wire | Error:
        """Serve a batch or file request (under ``lock``)."""
        raise NotImplementedError

    def answer_wire(self, answer: Answer, asked: Asked) -> Wire:
        raise NotImplementedError

    def error_wire(self, error: Error) -> Wire:
        raise NotImplementedError

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def unwrapped(schema: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """The engine's schema inside a wire schema ``{"items": [...]}`` (an object schema as is), and
    whether it was wrapped."""
    items = schema.get("properties", {}).get("items")
    if schema.get("required") == ["items"] and isinstance(items, dict) and items.get("type") == "array":
        return items, True
    return dict(schema), False


def http_handler(serve: Callable[[str, str, dict[str, str], bytes], Wire]) -> type[BaseHTTPRequestHandler]:
    """The request handler: read the request, ask ``serve``, send its answer after its delay (JSON for a
    dict or list, text or bytes as they are)."""

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
