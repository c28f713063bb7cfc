"""The Anthropic stub's Message Batches: jobs of ``{"custom_id", "params"}`` requests, results as JSONL.

A batch is ``in_progress`` when created; with ``auto`` it ends at its second retrieve, else only
``end`` ends it (the first ``answered`` requests answered by ``answer(job, request)`` as live calls,
the rest ``expired`` or ``canceled``). ``cancel`` ends it at once with every request canceled.
``shuffle_outputs`` mixes the order of results.
"""

from __future__ import annotations

import datetime
import json
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from enrichkit.testing.faults import Error, Wire

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


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


def _iso(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat().replace("+00:00", "Z")


class MessageBatches:
    """The Message Batches state of one stub (the caller holds its lock around every method)."""

    def __init__(
        self, answer: Callable[[AnthropicJob, dict[str, Any]], Wire], url: str, *, auto: bool, shuffle_outputs: bool
    ) -> None:
        self.answer = answer
        self.url = url
        self.auto = auto
        self.shuffle_outputs = shuffle_outputs
        self.jobs: dict[str, AnthropicJob] = {}

    def serve(self, action: str, name: str, raw: bytes) -> Wire | Error:
        """Answer one Message Batches request; ``name`` is the batch it names."""
        if action == "create":
            return self._create(json.loads(raw))
        if action == "list":
            data = [self._json(job) for job in reversed(self.jobs.values())]
            return Wire(body={"data": data, "has_more": False, "first_id": None, "last_id": None})
        job = self.jobs.get(name)
        if job is None:
            return Error(404, f"no batch {name}")
        if action == "cancel" and job.results is None:
            job.cancelled = True
            self.end(job, 0, "canceled")
        elif action == "retrieve" and self.auto and job.results is None:
            job.gets += 1
            if job.gets >= 2:
                self.end(job, None, "expired")
        elif action == "results":
            if job.results is None:
                return Error(400, f"batch {job.id} is still in progress")
            return Wire(body="".join(json.dumps(r) + "\n" for r in job.results).encode())
        return Wire(body=self._json(job))

    def _create(self, body: dict[str, Any]) -> Wire | Error:
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            return Error(400, "requests: a non-empty list is required")
        ids = [r.get("custom_id") for r in requests]
        if bad := [i for i in ids if not isinstance(i, str) or not CUSTOM_ID.match(i)]:
            return Error(400, f"custom_id {bad[0]!r} does not match ^[a-zA-Z0-9_-]{{1,64}}$")
        if len(set(ids)) != len(ids):
            return Error(400, "custom_id values must be unique within a batch")
        job = AnthropicJob(f"msgbatch_{uuid.uuid4().hex[:20]}", requests)
        self.jobs[job.id] = job
        return Wire(body=self._json(job))

    def end(self, job: AnthropicJob, answered: int | None, rest: str) -> None:
        """End ``job``: its first ``answered`` requests (all) answered, the others ``rest``."""
        results = []
        for n, request in enumerate(job.requests):
            custom_id = str(request["custom_id"])
            if answered is not None and n >= answered:
                results.append({"custom_id": custom_id, "result": {"type": rest}})
                continue
            sent = self.answer(job, request)
            if sent.status == 200:
                result = {"type": "succeeded", "message": sent.body}
            else:
                result = {"type": "errored", "error": sent.body}
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
            "results_url": None if job.results is None else f"{self.url}/v1/messages/batches/{job.id}/results",
        }
