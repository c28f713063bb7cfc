"""A local OpenAI-compatible server: chat completions, and the Files + Batches APIs, for the real
``openai`` SDK (``base_url=stub.url``).

Every chat request, live or a batch line, is answered with valid JSON for its ``response_format``
json_schema (a pack's ``{"items": [...]}``, one item per id; a single row's object), unless a rule
(``stub.rule(fault)``) answers otherwise, e.g. ``json_validate_failed()`` as Groq sends it. A batch
is ``validating`` when created; with ``auto`` it is ``in_progress`` at its first retrieve and
``completed`` at its second, else only ``advance`` moves it (``expired``/``cancelled`` with the first
``answered`` lines answered, the rest in the error file; ``failed``). Answered lines go to the output
file, failed ones (the error answer as ``response``) and never-run ones (``error``) to the error file;
``shuffle_outputs`` mixes their order, ``unknown_ids`` adds results for ids the job never held.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import random
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from enrichkit.testing.faults import Outcome
from enrichkit.testing.wire import Asked, WireStub, tokens, unwrapped

_DONE = {"completed", "failed", "expired", "cancelled"}
_ROUTES = [
    (method, re.compile(rf"^{path}$"), action)
    for method, path, action in [
        ("POST", r"/chat/completions", "chat"),
        ("POST", r"/files", "upload"),
        ("GET", r"/files/([^/]+)", "file"),
        ("GET", r"/files/([^/]+)/content", "content"),
        ("POST", r"/batches", "create"),
        ("GET", r"/batches", "list"),
        ("GET", r"/batches/([^/]+)", "retrieve"),
        ("POST", r"/batches/([^/]+)/cancel", "cancel"),
    ]
]


@dataclass
class OpenAIJob:
    """One batch: its input lines and, once done, its output and error lines (in served order)."""

    id: str
    input_file_id: str
    metadata: dict[str, str]
    lines: list[dict[str, Any]]
    status: str = "validating"
    gets: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    completed: int = 0
    failed: int = 0
    created: int = field(default_factory=lambda: int(time.time()))


def error(
    status: int, message: str, *, code: str | None = None, kind: str = "invalid_request_error", **more: Any
) -> Outcome:
    """An error answer ``{"error": {"message", "type", "param", "code", ...}}`` as OpenAI and Groq send them."""
    return Outcome(status, {"error": {"message": message, "type": kind, "param": None, "code": code, **more}})


def json_validate_failed() -> Outcome:
    """Groq's answer when the model's output does not fit the schema."""
    message = "Failed to generate JSON. Please adjust your prompt. See 'failed_generation' for more details."
    return error(400, message, code="json_validate_failed", failed_generation='{"items": [')


def completion(content: str, model: str, prompt_tokens: int, finish: str = "stop") -> dict[str, Any]:
    """A ``chat.completion`` body carrying ``content``."""
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": tokens(content)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:8]}", "object": "chat.completion", "created": 0, "model": model,
            "choices": [choice], "usage": usage}  # fmt: skip


class OpenAIBatchStub(WireStub):
    def __init__(self, *, auto: bool = True, shuffle_outputs: bool = False, unknown_ids: int = 0) -> None:
        super().__init__()
        self.auto = auto
        self.shuffle_outputs = shuffle_outputs
        self.unknown_ids = unknown_ids
        self.jobs: dict[str, OpenAIJob] = {}
        self.files: dict[str, bytes] = {}
        self.file_info: dict[str, dict[str, Any]] = {}
        self.api: list[tuple[str, str]] = []
        """Every Files/Batches request: (action, path)."""

    @property
    def url(self) -> str:
        return f"{self.root}/v1"

    @property
    def live(self) -> list[Asked]:
        return [a for a in self.asked if a.job is None]

    def requests_of(self, job: str) -> list[Asked]:
        """The requests answered inside batch ``job``."""
        return [a for a in self.asked if a.job == job]

    def advance(self, name: str, status: str = "completed", answered: int | None = None) -> OpenAIJob:
        """Move batch ``name`` to ``status``; a done batch answers its first ``answered`` lines (all)."""
        with self.lock:
            job = self.jobs[name]
            self._move(job, status, answered)
            return job

    def serve(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Outcome:
        route = path[path.index("/v1/") + 3 :] if "/v1/" in path else path
        found = next(((m, a) for verb, pattern, a in _ROUTES if verb == method and (m := pattern.match(route))), None)
        if found is None:
            return error(404, f"no route {method} {path}", kind="not_found")
        match, action = found
        name = match.group(1) if match.groups() else ""
        if action == "chat":
            return self._chat(json.loads(raw))
        with self.lock:
            self.api.append((action, path))
        if action == "upload":
            return self._upload(headers.get("content-type", ""), raw)
        if action in ("file", "content"):
            if name not in self.files:
                return error(404, f"No such File object: {name}", kind="invalid_request_error")
            return Outcome(body=self.files[name] if action == "content" else self.file_info[name])
        if action == "create":
            return self._create(json.loads(raw))
        if action == "list":
            data = [self._json(job) for job in reversed(self.jobs.values())]
            return Outcome(body={"object": "list", "data": data, "has_more": False})
        if name not in self.jobs:
            return error(404, f"No batch found with id '{name}'.", kind="invalid_request_error")
        with self.lock:  # concurrent polls answer a job once
            job = self.jobs[name]
            if action == "cancel":
                if job.status not in _DONE:
                    self._move(job, "cancelled", 0)
            elif self.auto and job.status not in _DONE:
                job.gets += 1
                self._move(job, "in_progress" if job.gets == 1 else "completed", None)
            return Outcome(body=self._json(job))

    def _chat(self, body: dict[str, Any], job: str | None = None, custom_id: str | None = None) -> Outcome:
        messages = body.get("messages", [])
        system = "".join(str(m.get("content", "")) for m in messages if m.get("role") == "system")
        prompt = "".join(str(m.get("content", "")) for m in messages if m.get("role") == "user")
        schema = body.get("response_format", {}).get("json_schema", {}).get("schema", {})
        asked = Asked(str(body.get("model", "")), body, system, prompt, unwrapped(schema), job, custom_id)
        outcome = self.decide(asked)
        if outcome is not None:
            return outcome
        answer = {"items": asked.answer} if asked.packed else asked.answer
        return Outcome(body=completion(json.dumps(answer), asked.model, tokens(system + prompt)))

    def _upload(self, content_type: str, raw: bytes) -> Outcome:
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
        if "file" not in parts or "purpose" not in parts:
            return error(400, "a file and a purpose are required")
        purpose = str(parts["purpose"].get_content()).strip()
        if purpose != "batch":
            return error(400, f"purpose {purpose!r}: only batch files here")
        data = parts["file"].get_payload(decode=True)
        assert isinstance(data, bytes)
        return Outcome(body=self._store(data, str(parts["file"].get_filename() or "upload.jsonl"), "batch"))

    def _store(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        file_id = f"file-{uuid.uuid4().hex[:16]}"
        self.files[file_id] = data
        info = {"id": file_id, "object": "file", "bytes": len(data), "filename": filename, "purpose": purpose}
        self.file_info[file_id] = {**info, "created_at": int(time.time()), "status": "processed"}
        return self.file_info[file_id]

    def _create(self, body: dict[str, Any]) -> Outcome:
        file_id = str(body.get("input_file_id"))
        if file_id not in self.files:
            return error(404, f"No such File object: {file_id}")
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return error(400, "this stub runs /v1/chat/completions batches in a 24h window")
        job = OpenAIJob(f"batch_{uuid.uuid4().hex[:16]}", file_id, dict(body.get("metadata") or {}), [])
        try:
            job.lines = [json.loads(line) for line in self.files[file_id].decode().splitlines() if line.strip()]
        except ValueError:
            job.status, job.errors = "failed", [{"code": "invalid_json_line", "message": "not JSONL", "line": 1}]
        ids = [line.get("custom_id") for line in job.lines]
        if len(set(ids)) != len(ids):
            job.status, job.errors = "failed", [{"code": "duplicate_custom_id", "message": "custom_id repeated"}]
        with self.lock:
            self.jobs[job.id] = job
        return Outcome(body=self._json(job))

    def _move(self, job: OpenAIJob, status: str, answered: int | None) -> None:
        """Set ``job.status``; a batch that ends answers its lines (only the first ``answered``)."""
        if status in _DONE and status != "failed" and job.output_file_id is None and job.error_file_id is None:
            self._answer(job, status, len(job.lines) if answered is None else answered)
        job.status = status

    def _answer(self, job: OpenAIJob, status: str, answered: int) -> None:
        output: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for n, line in enumerate(job.lines):
            result: dict[str, Any] = {"id": f"batch_req_{n}", "custom_id": line.get("custom_id")}
            if n >= answered:
                code = "batch_expired" if status == "expired" else "batch_cancelled"
                errors.append({**result, "response": None, "error": {"code": code, "message": f"stub: {code}"}})
                continue
            outcome = self._chat(line.get("body", {}), job.id, str(line.get("custom_id")))
            response = {"status_code": outcome.status, "request_id": f"req_{n}", "body": outcome.body}
            (output if outcome.status == 200 else errors).append({**result, "response": response, "error": None})
        for n in range(self.unknown_ids):
            body = completion("{}", "stub", 0)
            output.append({"id": "x", "custom_id": f"unknown-{n}", "response": {"status_code": 200, "body": body}})
        job.completed, job.failed = len(output) - self.unknown_ids, len(errors)
        for lines, kind in ((output, "output"), (errors, "error")):
            if self.shuffle_outputs and len(lines) > 1:
                random.Random(job.id).shuffle(lines)
            if lines:
                data = "".join(json.dumps(line) + "\n" for line in lines).encode()
                file_id = self._store(data, f"{job.id}_{kind}.jsonl", "batch_output")["id"]
                setattr(job, f"{kind}_file_id", file_id)

    def _json(self, job: OpenAIJob) -> dict[str, Any]:
        """The batch object as the API sends it."""
        return {
            "id": job.id,
            "object": "batch",
            "endpoint": "/v1/chat/completions",
            "errors": {"object": "list", "data": job.errors} if job.errors else None,
            "input_file_id": job.input_file_id,
            "completion_window": "24h",
            "status": job.status,
            "output_file_id": job.output_file_id,
            "error_file_id": job.error_file_id,
            "created_at": job.created,
            "request_counts": {"total": len(job.lines), "completed": job.completed, "failed": job.failed},
            "metadata": job.metadata,
        }
