"""A local HTTP server that speaks the Gemini REST API, for tests and benchmarks without a key.

Point the real google-genai client at it (``HttpOptions(base_url=stub.url)`` or enrichkit's
``--base-url``). By default it answers every ``generateContent`` with valid JSON derived from the
request's ``responseJsonSchema`` and the records in the prompt; ``script`` and ``rule`` inject
faults (bad JSON, missing or duplicated ids, 429 with RetryInfo, 5xx, hangs, MAX_TOKENS, ...).
It can simulate latency and enforce a requests-per-minute limit.

It also serves the Batch API (``batches.create/get/list/cancel/delete``) and the Files API
(resumable ``files.upload``, ``files.get``, ``files.download``, ``files.delete``). Each request of a
batch job is answered by the same machinery as a live call (``script``, ``rule``, defaults).

    with GeminiStub() as stub:
        stub.script(drop_ids("r3"))           # first call loses r3, later calls are normal
        enrich(rows, task, client=make_client("k", stub.url))
        assert len(stub.calls) == 2
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import hashlib
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import parse_qs

from enrichkit.prompt import ECHO_WORDS

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
_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."
_DONE = {"BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED"}
_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 429: 8, 500: 13, 503: 14, 504: 4}


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
    batch: str | None = None
    """The batch job that this request belongs to (None for a live call or an API request)."""

    @property
    def system(self) -> str:
        parts = self.body.get("systemInstruction", {}).get("parts", [])
        return "".join(p.get("text", "") for p in parts)

    @property
    def prompt(self) -> str:
        contents = self.body.get("contents", [])
        return "".join(p.get("text", "") for c in contents for p in c.get("parts", []))

    @property
    def service_tier(self) -> str | None:
        """The ``serviceTier`` the client asked for (``"flex"``, ...), if any."""
        tier: str | None = self.body.get("serviceTier")
        return tier

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


@dataclass
class StubJob:
    """One batch job. ``output`` holds ``(key, {"response": ...} | {"error": ...})`` in served order."""

    name: str
    model: str
    display_name: str
    requests: list[tuple[str, dict[str, Any]]]
    source: Literal["inline", "file"]
    state: str = "BATCH_STATE_PENDING"
    gets: int = 0
    output: list[tuple[str, dict[str, Any]]] | None = None
    input_file: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)

    @property
    def result_file(self) -> str:
        """The name of the JSONL results file of a file job."""
        return f"files/batch-{self.name.removeprefix('batches/')}"


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


def _batch_item(outcome: Outcome) -> dict[str, Any]:
    """A batch result item for a live call's outcome (the error code gRPC-style, no details)."""
    if outcome.status == 200:
        return {"response": outcome.body}
    error = outcome.body.get("error", {}) if isinstance(outcome.body, dict) else {}
    message = str(error.get("message", outcome.body))
    return {"error": {"code": _GRPC.get(outcome.status, outcome.status), "message": message}}


def _timestamp(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
        self.batch_auto = batch_auto
        self.shuffle_outputs = shuffle_outputs
        self.drop_inline_metadata = drop_inline_metadata
        self.calls: list[Call] = []
        self.api_calls: list[Call] = []
        """Batch and file requests (not in ``calls``), by action: "batchGenerateContent", "batches.get",
        "batches.list", "batches.cancel", "batches.delete", "files.upload" (the start; each data
        request is "files.upload.chunk"), "files.get", "files.download", "files.delete"."""
        self.jobs: dict[str, StubJob] = {}
        self.files: dict[str, bytes] = {}
        self._file_info: dict[str, dict[str, Any]] = {}
        self._uploads: dict[str, tuple[dict[str, Any], bytearray]] = {}
        self.rate_limited = 0
        self.refusal: Outcome | None = None
        self._script: collections.deque[Fault | None] = collections.deque()
        self._rules: list[tuple[Callable[[Call], bool], Fault]] = []
        self._recent: collections.deque[float] = collections.deque()
        self._lock = threading.RLock()  # reentrant: answering a batch job runs ``handle`` under it
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
            self._set_state(job, state)
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
                return Outcome(body={"totalTokens": _prompt_tokens(call)})
            limited = self._over_rpm() if call.batch is None else None
            fault = self._script.popleft() if self._script else next((f for when, f in self._rules if when(call)), None)
        if limited is not None:
            self.rate_limited += 1
            return Outcome(429, error_body(429, "stub rate limit", f"{limited:.3f}s"))
        outcome = fault(call) if fault is not None else None
        if outcome is None:
            outcome = Outcome(body=response(json.dumps(answer_items(call)), prompt_tokens=_prompt_tokens(call)))
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
        model = match.group(2) if action == "batchGenerateContent" else ""
        call = Call(method, path, model, "files.upload.chunk" if upload else action, body, headers)
        with self._lock:
            self.api_calls.append(call)
            if self.refusal is not None:
                return self.refusal
            if upload:
                return self._upload_chunk(upload, raw, headers)
            if action == "batchGenerateContent":
                return self._create_job(call)
            if action == "batches.list":
                return Outcome(body={"operations": [self._job_json(job) for job in self.jobs.values()]})
            if action == "files.upload":
                return self._upload_start(call, route)
            kind, _, verb = action.partition(".")
            name = f"{kind}/{match.group(2)}"
            if name not in (self.jobs if kind == "batches" else self.files):
                return Outcome(404, error_body(404, f"{name} not found"))
            return self._api(verb, name)

    def _api(self, action: str, name: str) -> Outcome:
        """A get, cancel, delete or download of the existing job or file ``name``."""
        if name.startswith("files/"):
            if action == "delete":
                del self.files[name], self._file_info[name]
                return Outcome(body={})
            return Outcome(body=self.files[name] if action == "download" else self._file_info[name])
        job = self.jobs[name]
        if action == "delete":
            del self.jobs[name]
            return Outcome(body={})
        if action == "cancel":
            if job.state not in _DONE:
                self._set_state(job, "BATCH_STATE_CANCELLED")
            return Outcome(body={})
        job.gets += 1
        if self.batch_auto and job.state in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"):
            self._set_state(job, "BATCH_STATE_RUNNING" if job.gets == 1 else "BATCH_STATE_SUCCEEDED")
        return Outcome(body=self._job_json(job))

    def _create_job(self, call: Call) -> Outcome:
        batch = call.body.get("batch", {})
        source = batch.get("inputConfig", {})
        input_file = source.get("fileName")
        if input_file is None:
            inline = source.get("requests", {}).get("requests", [])
            requests = [(str(r.get("metadata", {}).get("key", "")), r.get("request", {})) for r in inline]
        elif input_file not in self.files:
            return Outcome(404, error_body(404, f"{input_file} not found"))
        else:
            try:
                lines = [json.loads(line) for line in self.files[input_file].decode().splitlines() if line.strip()]
            except ValueError:
                return Outcome(400, error_body(400, f"{input_file} is not JSONL"))
            requests = [(str(line.get("key", "")), line.get("request", {})) for line in lines]
        job = StubJob(
            name=f"batches/{uuid.uuid4().hex[:12]}",
            model=call.model,
            display_name=batch.get("displayName", ""),
            requests=requests,
            source="inline" if input_file is None else "file",
            input_file=input_file,
            headers=call.headers,
        )
        self.jobs[job.name] = job
        return Outcome(body=self._job_json(job))

    def _set_state(self, job: StubJob, state: str) -> None:
        job.state = state
        job.updated = time.time()
        if state == "BATCH_STATE_SUCCEEDED" and job.output is None:
            self._answer(job)

    def _answer(self, job: StubJob) -> None:
        """Answer every request of ``job`` as a live call would be answered (delays ignored)."""
        output = []
        for key, request in job.requests:
            call = Call("POST", f"/{job.name}", job.model, "generateContent", request, job.headers, batch=job.name)
            output.append((key, _batch_item(self.handle(call))))
        if self.shuffle_outputs and len(output) > 1:
            mixed = random.Random(job.name).sample(output, len(output))
            output = mixed if mixed != output else output[::-1]
        job.output = output
        if job.source == "file":
            lines = "".join(json.dumps({"key": key, **item}) + "\n" for key, item in output)
            download = f"{self.url}/v1beta/{job.result_file}:download?alt=media"  # only generated files have one
            info = {"mimeType": "application/jsonl", "source": "GENERATED", "downloadUri": download}
            self._store(job.result_file, lines.encode(), info)

    def _job_json(self, job: StubJob) -> dict[str, Any]:
        """The job as the Batch API sends it: an operation whose ``metadata`` the SDK reads."""
        stats = {"requestCount": str(len(job.requests))}
        if job.output is None:
            stats["pendingRequestCount"] = str(len(job.requests))
        else:
            failed = sum("error" in item for _, item in job.output)
            stats |= {"successfulRequestCount": str(len(job.output) - failed), "failedRequestCount": str(failed)}
        metadata: dict[str, Any] = {
            "@type": _TYPE + "GenerateContentBatch",
            "model": f"models/{job.model}",
            "displayName": job.display_name,
            "name": job.name,
            "createTime": _timestamp(job.created),
            "updateTime": _timestamp(job.updated),
            "state": job.state,
            "batchStats": stats,
        }
        wire: dict[str, Any] = {"name": job.name, "metadata": metadata}
        if job.input_file is not None:
            metadata["inputConfig"] = {"fileName": job.input_file}
        if job.output is not None:
            if job.source == "file":
                output: dict[str, Any] = {"responsesFile": job.result_file}
            else:
                meta = [{} if self.drop_inline_metadata else {"metadata": {"key": key}} for key, _ in job.output]
                items = [{**item, **extra} for (_, item), extra in zip(job.output, meta, strict=True)]
                output = {"inlinedResponses": {"inlinedResponses": items}}
            metadata["output"] = output
            wire["response"] = {"@type": _TYPE + "GenerateContentBatchOutput", **output}
        if job.state in _DONE:
            metadata["endTime"] = _timestamp(job.updated)
            wire["done"] = True
        if job.state == "BATCH_STATE_FAILED":
            wire["error"] = {"code": 13, "message": "stub: the batch failed"}
        return wire

    def _upload_start(self, call: Call, route: str) -> Outcome:
        """Open a resumable upload session; the client sends the bytes to ``X-Goog-Upload-URL``."""
        meta = call.body.get("file", {})
        upload = uuid.uuid4().hex
        self._uploads[upload] = (meta, bytearray())
        url = f"{self.url}{route}?upload_id={upload}&upload_protocol=resumable"
        return Outcome(body={}, headers={"X-Goog-Upload-Status": "active", "X-Goog-Upload-URL": url})

    def _upload_chunk(self, upload: str, raw: bytes, headers: Mapping[str, str]) -> Outcome:
        if upload not in self._uploads:
            return Outcome(404, error_body(404, f"no upload {upload}"))
        meta, data = self._uploads[upload]
        data += raw
        command = next((v for k, v in headers.items() if k.lower() == "x-goog-upload-command"), "")
        if "finalize" not in command:
            return Outcome(body={}, headers={"X-Goog-Upload-Status": "active"})
        del self._uploads[upload]
        name = meta.get("name") or f"files/{uuid.uuid4().hex[:12]}"
        info = {
            "displayName": meta.get("display_name", meta.get("displayName")),
            "mimeType": meta.get("mime_type", meta.get("mimeType")),
            "source": "UPLOADED",
        }
        return Outcome(body={"file": self._store(name, bytes(data), info)}, headers={"X-Goog-Upload-Status": "final"})

    def _store(self, name: str, data: bytes, info: dict[str, Any]) -> dict[str, Any]:
        """Keep a file's bytes and its metadata (what ``files.get`` answers); return the metadata."""
        now = time.time()
        self.files[name] = data
        self._file_info[name] = {
            **{k: v for k, v in info.items() if v is not None},
            "name": name,
            "sizeBytes": str(len(data)),
            "createTime": _timestamp(now),
            "updateTime": _timestamp(now),
            "expirationTime": _timestamp(now + 48 * 3600),
            "uri": f"{self.url}/v1beta/{name}",
            "state": "ACTIVE",
        }
        return self._file_info[name]

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

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_DELETE(self) -> None:
            self._serve()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            self._send(stub.serve(self.command, self.path, dict(self.headers), raw))

        def _send(self, outcome: Outcome) -> None:
            if outcome.delay:
                time.sleep(outcome.delay)
            media = isinstance(outcome.body, bytes)
            payload = outcome.body if isinstance(outcome.body, str | bytes) else json.dumps(outcome.body)
            data = payload if isinstance(payload, bytes) else payload.encode()
            self.send_response(outcome.status)
            self.send_header("Content-Type", "application/octet-stream" if media else "application/json; charset=UTF-8")
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
    parser.add_argument("--shuffle-outputs", action="store_true", help="serve batch results out of order")
    parser.add_argument("--drop-inline-metadata", action="store_true", help="leave keys off inline batch results")
    args = parser.parse_args()
    stub = GeminiStub(
        latency=args.latency,
        per_output_token=args.per_output_token,
        jitter=args.jitter,
        rpm=args.rpm,
        window=args.window,
        port=args.port,
        shuffle_outputs=args.shuffle_outputs,
        drop_inline_metadata=args.drop_inline_metadata,
    )
    with stub:
        print(f"Gemini stub listening on {stub.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
