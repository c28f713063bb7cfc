"""Gemini Batch API jobs through google-genai's ``client.batches`` (and ``client.files`` for big jobs).

Requests travel keyed: inline as ``InlinedRequest.metadata["key"]``, in a file as the JSONL line's
``"key"``. Results are joined on that key only (never on order, which the service does not promise);
a result without its key is dropped, and its pack is asked again like any failed pack.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

import pydantic
from google.genai import types

from enrichkit.providers.base import JobState, JobStatus, Reply, Request
from enrichkit.providers.classify import first_line
from enrichkit.providers.gemini import GeminiProvider, mapped_errors, rest_request, to_reply

INLINE_LIMIT = 200  # requests; bigger jobs upload a JSONL file (inline requests are capped at ~20 MB)
_STATES: dict[str, JobState] = {
    "JOB_STATE_QUEUED": "pending",
    "JOB_STATE_PENDING": "pending",
    "JOB_STATE_RUNNING": "running",
    "JOB_STATE_SUCCEEDED": "succeeded",
    "JOB_STATE_PARTIALLY_SUCCEEDED": "succeeded",
    "JOB_STATE_FAILED": "failed",
    "JOB_STATE_CANCELLED": "cancelled",
    "JOB_STATE_EXPIRED": "expired",
}


class GeminiBatches:
    """Submit, watch, collect and cancel batch jobs for one Gemini provider (same model and settings)."""

    def __init__(self, provider: GeminiProvider) -> None:
        self.provider = provider

    @property
    def model(self) -> str:
        return self.provider.model

    def split(self, requests: Sequence[tuple[str, Request]]) -> list[Sequence[tuple[str, Request]]]:
        """One job for all: inline up to ``INLINE_LIMIT`` requests, else a JSONL file (up to 2 GB)."""
        return [requests]

    async def submit(self, requests: Sequence[tuple[str, Request]], display_name: str) -> str:
        """Create ONE job holding ``requests`` (key, request); its name (``batches/...``)."""
        config = types.CreateBatchJobConfig(display_name=display_name)
        src: Any
        if len(requests) <= INLINE_LIMIT:
            src = [self._inlined(key, request) for key, request in requests]
        else:
            src = await self._upload(requests, display_name)
        job = await _guard(
            self.provider.client.aio.batches.create(model=self.model, src=src, config=config), self.model
        )
        return str(job.name)

    async def find(self, display_name: str) -> str | None:
        """The name of the job created under ``display_name`` (a run killed before it saved the name)."""
        pager = await _guard(
            self.provider.client.aio.batches.list(config=types.ListBatchJobsConfig(page_size=100)), self.model
        )
        async for job in pager:
            if job.display_name == display_name:
                return str(job.name)
        return None

    async def status(self, name: str) -> JobStatus:
        job = await _guard(self.provider.client.aio.batches.get(name=name), self.model)
        return _status(job)

    async def results(self, name: str) -> dict[str, Reply | str]:
        """Per request key: the reply, or why that request failed."""
        job = await _guard(self.provider.client.aio.batches.get(name=name), self.model)
        dest = job.dest
        out: dict[str, Reply | str] = {}
        if dest is not None and dest.inlined_responses:
            for item in dest.inlined_responses:
                key = (item.metadata or {}).get("key")
                if key is None:
                    continue
                if item.error is not None or item.response is None:
                    out[key] = _failed(item.error.message if item.error else None)
                else:
                    out[key] = to_reply(item.response)
        elif dest is not None and dest.file_name:
            data = await _guard(self.provider.client.aio.files.download(file=dest.file_name), self.model)
            for line in data.decode("utf-8").splitlines():
                if line.strip():
                    key, value = _result_line(line)
                    if key is not None:
                        out[key] = value
        return out

    async def cancel(self, name: str) -> None:
        await _guard(self.provider.client.aio.batches.cancel(name=name), self.model)

    def _config(self, request: Request) -> types.GenerateContentConfig:
        return self.provider.config(request).model_copy(update={"http_options": None})

    def _inlined(self, key: str, request: Request) -> types.InlinedRequest:
        return types.InlinedRequest(
            contents=[types.Content(role="user", parts=[types.Part(text=request.prompt)])],
            config=self._config(request),
            metadata={"key": key},
        )

    def _line(self, key: str, request: Request) -> str:
        """One JSONL input line: the REST body of the live call's request."""
        body = rest_request(request.prompt, self._config(request))
        return json.dumps({"key": key, "request": body}, ensure_ascii=False)

    async def _upload(self, requests: Sequence[tuple[str, Request]], display_name: str) -> str:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"{display_name}.jsonl"
            path.write_text("".join(self._line(k, r) + "\n" for k, r in requests), encoding="utf-8")
            config = types.UploadFileConfig(mime_type="jsonl", display_name=display_name)
            uploaded = await _guard(self.provider.client.aio.files.upload(file=str(path), config=config), self.model)
        return str(uploaded.name)


def _status(job: types.BatchJob) -> JobStatus:
    state = job.state.value if job.state is not None else ""
    return JobStatus(str(job.name), _STATES.get(state, "unknown"), job.display_name or "")


def _result_line(line: str) -> tuple[str | None, Reply | str]:
    try:
        doc = json.loads(line)
        key = doc.get("key") if isinstance(doc, dict) else None
        if not isinstance(key, str):
            return None, ""
        if "response" in doc:
            return key, to_reply(types.GenerateContentResponse.model_validate(doc["response"]))
        return key, _failed(doc.get("error", {}).get("message"))
    except (json.JSONDecodeError, pydantic.ValidationError, AttributeError):
        return None, ""


def _failed(message: str | None) -> str:
    """Why one request of a job failed, in the service's own (redacted) words."""
    return f"batch request failed: {first_line(message or '') or 'no response'}"


async def _guard(call: Awaitable[Any], model: str) -> Any:
    """Await an SDK call, mapping its errors to enrichkit's provider errors."""
    with mapped_errors(model):
        return await call
