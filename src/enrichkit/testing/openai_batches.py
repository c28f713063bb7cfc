"""The OpenAI stub's Files and Batches APIs: JSONL uploads, batches of chat-completion lines, output and
error files.

A batch that ends answers its lines (``answer(job, line)``, as live calls are answered): answered lines
go to the output file, failed ones (the error answer as ``response``) and never-run ones (``error``,
when it expired or was cancelled first) to the error file.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from enrichkit.testing.faults import Error, Wire

_DONE = {"completed", "failed", "expired", "cancelled"}


@dataclass
class OpenAIJob:
    """One batch: its input lines and, once done, its output and error files."""

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


class OpenAIBatches:
    """The Files and Batches state of one stub (the caller holds its lock around every method)."""

    def __init__(
        self,
        answer: Callable[[OpenAIJob, dict[str, Any]], Wire],
        *,
        auto: bool = True,
        shuffle_outputs: bool = False,
        unknown_ids: int = 0,
    ) -> None:
        self.answer = answer
        self.auto = auto
        self.shuffle_outputs = shuffle_outputs
        self.unknown_ids = unknown_ids
        self.jobs: dict[str, OpenAIJob] = {}
        self.files: dict[str, bytes] = {}
        self.file_info: dict[str, dict[str, Any]] = {}

    def serve(self, action: str, name: str, headers: dict[str, str], raw: bytes) -> Wire | Error:
        """Answer one Files or Batches request; ``name`` is the file or batch it names."""
        if action == "upload":
            return self._upload(headers.get("content-type", ""), raw)
        if action in ("file", "content"):
            if name not in self.files:
                return Error(404, f"No such File object: {name}")
            return Wire(body=self.files[name] if action == "content" else self.file_info[name])
        if action == "create":
            return self._create(json.loads(raw))
        if action == "list":
            data = [self._json(job) for job in reversed(self.jobs.values())]
            return Wire(body={"object": "list", "data": data, "has_more": False})
        if name not in self.jobs:
            return Error(404, f"No batch found with id '{name}'.")
        job = self.jobs[name]
        if action == "cancel":
            if job.status not in _DONE:
                self.move(job, "cancelled", 0)
        elif self.auto and job.status not in _DONE:
            job.gets += 1
            self.move(job, "in_progress" if job.gets == 1 else "completed", None)
        return Wire(body=self._json(job))

    def move(self, job: OpenAIJob, status: str, answered: int | None) -> None:
        """Set ``job.status``; a batch that ends answers its lines (only the first ``answered``)."""
        if status in _DONE and status != "failed" and job.output_file_id is None and job.error_file_id is None:
            self._answer(job, status, len(job.lines) if answered is None else answered)
        job.status = status

    def _upload(self, content_type: str, raw: bytes) -> Wire | Error:
        head = f"Content-Type: {content_type}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
        if "file" not in parts or "purpose" not in parts:
            return Error(400, "a file and a purpose are required")
        purpose = str(parts["purpose"].get_content()).strip()
        if purpose != "batch":
            return Error(400, f"purpose {purpose!r}: only batch files here")
        data = parts["file"].get_payload(decode=True)
        assert isinstance(data, bytes)
        return Wire(body=self._store(data, str(parts["file"].get_filename() or "upload.jsonl"), "batch"))

    def _store(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        file_id = f"file-{uuid.uuid4().hex[:16]}"
        self.files[file_id] = data
        info = {"id": file_id, "object": "file", "bytes": len(data), "filename": filename, "purpose": purpose}
        self.file_info[file_id] = {**info, "created_at": int(time.time()), "status": "processed"}
        return self.file_info[file_id]

    def _create(self, body: dict[str, Any]) -> Wire | Error:
        file_id = str(body.get("input_file_id"))
        if file_id not in self.files:
            return Error(404, f"No such File object: {file_id}")
        if body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            return Error(400, "this stub runs /v1/chat/completions batches in a 24h window")
        job = OpenAIJob(f"batch_{uuid.uuid4().hex[:16]}", file_id, dict(body.get("metadata") or {}), [])
        try:
            job.lines = [json.loads(line) for line in self.files[file_id].decode().splitlines() if line.strip()]
        except ValueError:
            job.status, job.errors = "failed", [{"code": "invalid_json_line", "message": "not JSONL", "line": 1}]
        ids = [line.get("custom_id") for line in job.lines]
        if len(set(ids)) != len(ids):
            job.status, job.errors = "failed", [{"code": "duplicate_custom_id", "message": "custom_id repeated"}]
        self.jobs[job.id] = job
        return Wire(body=self._json(job))

    def _answer(self, job: OpenAIJob, status: str, answered: int) -> None:
        output: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for n, line in enumerate(job.lines):
            result: dict[str, Any] = {"id": f"batch_req_{n}", "custom_id": line.get("custom_id")}
            if n >= answered:
                code = "batch_expired" if status == "expired" else "batch_cancelled"
                errors.append({**result, "response": None, "error": {"code": code, "message": f"stub: {code}"}})
                continue
            sent = self.answer(job, line)
            response = {"status_code": sent.status, "request_id": f"req_{n}", "body": sent.body}
            (output if sent.status == 200 else errors).append({**result, "response": response, "error": None})
        job.completed, job.failed = len(output), len(errors)
        if output:  # an answered line again, under ids the job never held
            output += [{**output[0], "id": "x", "custom_id": f"unknown-{n}"} for n in range(self.unknown_ids)]
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
