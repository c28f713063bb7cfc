"""The stub's HTTP server: routing, the calls it received, scripted faults, latency and a rate limit."""

from __future__ import annotations

import collections
import json
import random
import re
import threading
import time
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs

from enrichkit.testing.batch import BatchFiles, StubJob
from enrichkit.testing.call import Call
from enrichkit.testing.faults import Fault, Outcome, answer, error_body, prompt_tokens
from enrichkit.testing.wire import http_handler

_ROUTE = re.compile(r"^/(?:.*/)?(v[0-9a-z]+)/models/([^/:]+):(\w+)$")

_API = [
    (method, re.compile(rf"^/(?:.*/)?{path}$"), action)
    for method, path, action in [
        ("POST", r"(v[0-9a-z]+)/models/([^/:]+):batchGenerateContent", "batchGenerateContent"),
        ("GET", r"(v[0-9a-z]+)/batches", "batches.list"),
        ("GET", r"(v[0-9a-z]+)/batches/([^/:]+)", "batches.get"),
        ("POST", r"(v[0-9a-z]+)/batches/([^/:]+):cancel", "batches.cancel"),
        ("DELETE", r"(v[0-9a-z]+)/batches/([^/:]+)", "batches.delete"),
        ("POST", r"upload/(v[0-9a-z]+)/files", "files.upload"),
        ("GET", r"(v[0-9a-z]+)/files/([^/:]+)", "files.get"),
        ("GET", r"(v[0-9a-z]+)/files/([^/:]+):download", "files.download"),
        ("DELETE", r"(v[0-9a-z]+)/files/([^/:]+)", "files.delete"),
    ]
]


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog of 5 drops concurrent connects (1 s SYN retry)


class GeminiStub:
    """The stub server; a context manager that serves on a free local port in a thread.

    Batch jobs are PENDING at create; with ``batch_auto`` a job is RUNNING on its first GET and
    SUCCEEDED on its second, otherwise only ``advance`` changes its state. ``shuffle_outputs`` serves
    results out of request order; ``drop_inline_metadata`` leaves the keys off inline results.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        per_output_token: float = 0.0,
        jitter: float = 0.0,
        rpm: int | None = None,
        window: float = 60.0,
        fixed_window: bool = False,
        port: int = 0,
        batch_auto: bool = True,
        shuffle_outputs: bool = False,
        drop_inline_metadata: bool = False,
    ) -> None:
        self.latency = latency
        self.per_output_token = per_output_token
        self.jitter = jitter
        self.rpm = rpm
        self.window = window
        self.fixed_window = fixed_window
        """``rpm`` requests per ``window`` seconds counted in a window that opens at the first request and
        then resets whole (``fixed_window``), else in a sliding window."""
        self.calls: list[Call] = []
        self.api_calls: list[Call] = []
        """Batch and file requests (not in ``calls``), by action: "batchGenerateContent", "batches.get",
        "batches.list", "batches.cancel", "batches.delete", "files.upload" (the start; each data
        request is "files.upload.chunk"), "files.get", "files.download", "files.delete"."""
        self.rate_limited = 0
        self.refusal: Outcome | None = None
        self._script: collections.deque[Fault | None] = collections.deque()
        self._rules: list[tuple[Callable[[Call], bool], Fault]] = []
        self._recent: collections.deque[float] = collections.deque()
        self._lock = threading.RLock()  # reentrant: answering a batch job runs ``handle`` under it
        self._server = _Server(("127.0.0.1", port), http_handler(self.serve))
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._thread: threading.Thread | None = None
        self.batches = BatchFiles(
            self.handle,
            self.url,
            auto=batch_auto,
            shuffle_outputs=shuffle_outputs,
            drop_inline_metadata=drop_inline_metadata,
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def jobs(self) -> dict[str, StubJob]:
        return self.batches.jobs

    @property
    def files(self) -> dict[str, bytes]:
        return self.batches.files

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
        """Live generateContent calls (not the requests answered inside batch jobs)."""
        return [c for c in self.calls if c.action == "generateContent" and c.batch is None]

    @property
    def batch_requests(self) -> list[Call]:
        """The requests answered inside batch jobs (``call.batch`` is the job's name)."""
        return [c for c in self.calls if c.batch is not None]

    def advance(self, name: str, state: str = "BATCH_STATE_SUCCEEDED") -> StubJob:
        """Move job ``name`` to a wire ``state`` (answering its requests when it succeeds)."""
        with self._lock:
            job = self.jobs[name]
            self.batches.set_state(job, state)
            return job

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
                return Outcome(body={"totalTokens": prompt_tokens(call)})
            limited = self._over_rpm() if call.batch is None else None
            fault = self._script.popleft() if self._script else next((f for when, f in self._rules if when(call)), None)
        if limited is not None:
            self.rate_limited += 1
            return Outcome(429, error_body(429, "stub rate limit", f"{limited:.3f}s"))
        outcome = fault(call) if fault is not None else None
        if outcome is None:
            outcome = answer(call)
        if outcome.status == 200 and isinstance(outcome.body, dict) and outcome.delay == 0 and call.batch is None:
            tokens = outcome.body.get("usageMetadata", {}).get("candidatesTokenCount", 0)
            outcome.delay = self.latency + self.per_output_token * tokens + random.uniform(0, self.jitter)
        return outcome

    def serve(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Outcome:
        """Answer one HTTP request (runs in the server's request thread)."""
        route, _, query = path.partition("?")
        upload = parse_qs(query).get("upload_id", [""])[0]
        body = json.loads(raw) if raw and not upload else {}
        live = _ROUTE.match(route)
        if method == "POST" and live and live.group(3) != "batchGenerateContent":
            return self.handle(Call(method, path, live.group(2), live.group(3), body, headers))
        found = next(((m, a) for verb, pattern, a in _API if verb == method and (m := pattern.match(route))), None)
        if found is None:
            return Outcome(404, error_body(404, f"no route {method} {path}"))
        match, action = found
        name = match.group(2) if (match.lastindex or 0) > 1 else ""
        model = name if action == "batchGenerateContent" else ""
        call = Call(method, path, model, "files.upload.chunk" if upload else action, body, headers)
        with self._lock:
            self.api_calls.append(call)
            if self.refusal is not None:
                return self.refusal
            return self.batches.serve(call, route, name, upload, raw)

    def _over_rpm(self) -> float | None:
        """Seconds until a request slot frees, when the last window already had ``rpm`` requests."""
        if self.rpm is None:
            return None
        now = time.monotonic()
        if self.fixed_window and self._recent and now - self._recent[0] >= self.window:
            self._recent.clear()
        while self._recent and now - self._recent[0] >= self.window:
            self._recent.popleft()
        if len(self._recent) >= self.rpm:
            return self.window - (now - self._recent[0])
        self._recent.append(now)
        return None
