"""A local Anthropic server: Messages and Message Batches, for the real ``anthropic`` SDK
(``base_url=stub.url``).

Every message request, live or inside a batch, is answered with the forced tool call its
``tool_choice`` names, whose ``input`` is valid for the tool's ``input_schema`` (a pack's
``{"items": [...]}``, one item per id; a single row's object), unless a rule (``stub.rule(fault)``)
answers otherwise (``error(529, "overloaded_error", ...)``). A batch is ``in_progress`` when
created; with ``auto`` it ends at its second retrieve, else only ``advance`` ends it (the first
``answered`` requests answered, the rest ``expired`` or ``canceled``). ``cancel`` ends it at once
with every request canceled. Results stream as JSONL, shuffled with ``shuffle_outputs``.
"""

from __future__ import annotations

import datetime
import json
import random
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from enrichkit.testing.faults import Outcome
from enrichkit.testing.wire import Asked, WireStub, tokens, unwrapped

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ROUTES = [
    (method, re.compile(rf"^/v1/{path}$"), action)
    for method, path, action in [
        ("POST", r"messages", "message"),
        ("POST", r"messages/batches", "create"),
        ("GET", r"messages/batches", "list"),
        ("GET", r"messages/batches/([^/]+)", "retrieve"),
        ("POST", r"messages/batches/([^/]+)/cancel", "cancel"),
        ("GET", r"messages/batches/([^/]+)/results", "results"),
    ]
]


@dataclass
class AnthropicJob:
    """One Message Batch: its requests and, once ended, one result per request (in served order)."""

    id: str
    requests: list[dict[str, Any]]
    gets: int = 0
    results: list[dict[str, Any]] | None = None
    cancelled: bool = False
    created: float = field(default_factory=time.time)
    ended: float | None = None


def error(status: int, kind: str, message: str) -> Outcome:
    """An error answer as Anthropic sends it (``overloaded_error`` 529, ``rate_limit_error`` 429, ...)."""
    return Outcome(status, {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_stub"})


def message(tool: str, answer: Any, model: str, prompt_tokens: int, stop: str = "tool_use") -> dict[str, Any]:
    """A Message whose one content block calls ``tool`` with ``answer``."""
    call = {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:12]}", "name": tool, "input": answer}
    usage = {"input_tokens": prompt_tokens, "output_tokens": tokens(json.dumps(answer))}
    return {"id": f"msg_{uuid.uuid4().hex[:12]}", "type": "message", "role": "assistant", "model": model,
            "content": [call], "stop_reason": stop, "stop_sequence": None, "usage": usage}  # fmt: skip


def _iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat().replace("+00:00", "Z")


class AnthropicStub(WireStub):
    def __init__(self, *, auto: bool = True, shuffle_outputs: bool = False) -> None:
        super().__init__()
        self.auto = auto
        self.shuffle_outputs = shuffle_outputs
        self.jobs: dict[str, AnthropicJob] = {}
        self.api: list[tuple[str, str]] = []
        """Every Message Batches request: (action, path)."""

    @property
    def url(self) -> str:
        return self.root

    @property
    def live(self) -> list[Asked]:
        return [a for a in self.asked if a.job is None]

    def requests_of(self, job: str) -> list[Asked]:
        """The requests answered inside batch ``job``."""
        return [a for a in self.asked if a.job == job]

    def advance(self, name: str, answered: int | None = None, rest: str = "expired") -> AnthropicJob:
        """End batch ``name``: its first ``answered`` requests (all) answered, the others ``rest``."""
        with self.lock:
            job = self.jobs[name]
            self._end(job, answered, rest)
            return job

    def serve(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Outcome:
        found = next(((m, a) for verb, pattern, a in _ROUTES if verb == method and (m := pattern.match(path))), None)
        if found is None:
            return error(404, "not_found_error", f"no route {method} {path}")
        match, action = found
        if action == "message":
            return self._message(json.loads(raw))
        with self.lock:
            self.api.append((action, path))
            if action == "create":
                return self._create(json.loads(raw))
            if action == "list":
                data = [self._json(job) for job in reversed(self.jobs.values())]
                return Outcome(body={"data": data, "has_more": False, "first_id": None, "last_id": None})
            job = self.jobs.get(match.group(1))
            if job is None:
                return error(404, "not_found_error", f"no batch {match.group(1)}")
            if action == "cancel" and job.results is None:
                job.cancelled = True
                self._end(job, 0, "canceled")
            elif action == "retrieve" and self.auto and job.results is None:
                job.gets += 1
                if job.gets >= 2:
                    self._end(job, None, "expired")
            elif action == "results":
                if job.results is None:
                    return error(400, "invalid_request_error", f"batch {job.id} is still in progress")
                return Outcome(body="".join(json.dumps(r) + "\n" for r in job.results).encode())
            return Outcome(body=self._json(job))

    def _message(self, body: dict[str, Any], job: str | None = None, custom_id: str | None = None) -> Outcome:
        tool = str(body.get("tool_choice", {}).get("name", ""))
        spec = next((t for t in body.get("tools", []) if t.get("name") == tool), None)
        if spec is None or body.get("tool_choice", {}).get("type") != "tool":
            return error(400, "invalid_request_error", "this stub answers forced tool calls only")
        system = body.get("system", "")
        system = system if isinstance(system, str) else "".join(b.get("text", "") for b in system)
        prompt = "".join(str(m.get("content", "")) for m in body.get("messages", []) if m.get("role") == "user")
        asked = Asked(str(body.get("model", "")), body, system, prompt, unwrapped(spec["input_schema"]), job, custom_id)
        outcome = self.decide(asked)
        if outcome is not None:
            return outcome
        answer = {"items": asked.answer} if asked.packed else asked.answer
        return Outcome(body=message(tool, answer, asked.model, tokens(system + prompt)))

    def _create(self, body: dict[str, Any]) -> Outcome:
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return error(400, "invalid_request_error", "requests: a non-empty list is required")
        ids = [r.get("custom_id") for r in requests]
        if bad := [i for i in ids if not isinstance(i, str) or not CUSTOM_ID.match(i)]:
            return error(400, "invalid_request_error", f"custom_id {bad[0]!r} does not match ^[a-zA-Z0-9_-]{{1,64}}$")
        if len(set(ids)) != len(ids):
            return error(400, "invalid_request_error", "custom_id values must be unique within a batch")
        job = AnthropicJob(f"msgbatch_{uuid.uuid4().hex[:20]}", requests)
        self.jobs[job.id] = job
        return Outcome(body=self._json(job))

    def _end(self, job: AnthropicJob, answered: int | None, rest: str) -> None:
        results = []
        for n, request in enumerate(job.requests):
            custom_id = str(request["custom_id"])
            if answered is not None and n >= answered:
                results.append({"custom_id": custom_id, "result": {"type": rest}})
                continue
            outcome = self._message(request.get("params", {}), job.id, custom_id)
            if outcome.status == 200:
                result = {"type": "succeeded", "message": outcome.body}
            else:
                result = {"type": "errored", "error": outcome.body}
            results.append({"custom_id": custom_id, "result": result})
        if self.shuffle_outputs and len(results) > 1:
            random.Random(job.id).shuffle(results)
        job.results, job.ended = results, time.time()

    def _json(self, job: AnthropicJob) -> dict[str, Any]:
        """The MessageBatch object as the API sends it."""
        counts = dict.fromkeys(("processing", "succeeded", "errored", "canceled", "expired"), 0)
        if job.results is None:
            counts["processing"] = len(job.requests)
        else:
            for r in job.results:
                counts[r["result"]["type"]] += 1
        return {
            "id": job.id,
            "type": "message_batch",
            "processing_status": "in_progress" if job.results is None else "ended",
            "request_counts": counts,
            "created_at": _iso(job.created),
            "expires_at": _iso(job.created + 24 * 3600),
            "ended_at": None if job.ended is None else _iso(job.ended),
            "cancel_initiated_at": _iso(job.ended or time.time()) if job.cancelled else None,
            "archived_at": None,
            "results_url": None if job.results is None else f"{self.root}/v1/messages/batches/{job.id}/results",
        }
