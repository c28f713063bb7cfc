"""OpenAI-compatible batch jobs (OpenAI, Groq, ...) through the openai SDK's ``files`` and ``batches``.

A job is one JSONL file of chat.completions requests uploaded with ``purpose="batch"``: each line's
``body`` is exactly the live call's (``OpenAIProvider.body``), its ``custom_id`` the request's key
(``joblines.request_id``); the job carries its display name in ``metadata``. Results come from the
output file (answered requests) and the error file (failed or expired ones, their error parsed into
the reason), joined on ``custom_id`` only; ids the job did not hold are left to ``collect``, which
ignores and counts them. ``split`` keeps each job under 50,000 requests and 200 MB.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, TypeVar

from enrichkit.errors import ProviderError
from enrichkit.providers.base import JobState, JobStatus, Reply, Request
from enrichkit.providers.chat import error_of, to_reply
from enrichkit.providers.joblines import Keyed, fit, key_of, request_failed, request_id
from enrichkit.providers.openai import OpenAIProvider, mapped_errors

T = TypeVar("T")
ENDPOINT = "/v1/chat/completions"
MAX_REQUESTS = 50_000
MAX_BYTES = 200 * 1000 * 1000
_STATES: dict[str, JobState] = {
    "validating": "pending",
    "in_progress": "running",
    "finalizing": "running",
    "cancelling": "running",
    "completed": "succeeded",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
}


class OpenAIBatches:
    """Submit, watch, collect and cancel batch jobs for one OpenAI-compatible provider (same model)."""

    def __init__(self, provider: OpenAIProvider) -> None:
        self.provider = provider
        self.client = provider.client
        self.host = str(provider.client.base_url.host or "the endpoint")

    @property
    def model(self) -> str:
        return self.provider.model

    def split(self, requests: Keyed) -> list[Keyed]:
        return fit(requests, lambda k, r: len(self._line(k, r).encode()) + 1, MAX_REQUESTS, MAX_BYTES)

    async def submit(self, requests: Sequence[tuple[str, Request]], display_name: str) -> str:
        """Upload ``requests`` as one JSONL file and create ONE batch on it; the batch's id."""
        data = "".join(self._line(key, request) + "\n" for key, request in requests).encode()
        upload = (f"{display_name}.jsonl", data, "application/jsonl")
        file = await self._call(self.client.files.create(file=upload, purpose="batch"))
        batch = await self._call(
            self.client.batches.create(
                input_file_id=file.id,
                endpoint=ENDPOINT,
                completion_window="24h",
                metadata={"display_name": display_name},
            )
        )
        return str(batch.id)

    async def find(self, display_name: str) -> str | None:
        """The batch created under ``display_name`` (its ``metadata``), newest first."""
        with mapped_errors(self.model):
            async for batch in self.client.batches.list(limit=100):
                if (batch.metadata or {}).get("display_name") == display_name:
                    return str(batch.id)
        return None

    async def status(self, name: str) -> JobStatus:
        batch = await self._call(self.client.batches.retrieve(name))
        shown = (batch.metadata or {}).get("display_name", "")
        return JobStatus(str(batch.id), _STATES.get(batch.status, "unknown"), shown)

    async def results(self, name: str) -> dict[str, Reply | str]:
        """Per request key: the reply, or why that request failed (from the output and error files)."""
        batch = await self._call(self.client.batches.retrieve(name))
        out: dict[str, Reply | str] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            content = await self._call(self.client.files.content(file_id))
            for line in content.text.splitlines():
                if line.strip() and (found := self._result(line)) is not None:
                    out[found[0]] = found[1]
        return out

    async def cancel(self, name: str) -> None:
        await self._call(self.client.batches.cancel(name))

    def _line(self, key: str, request: Request) -> str:
        """One JSONL input line: the live call's body under the request's id."""
        line = {"custom_id": request_id(key, request), "method": "POST", "url": ENDPOINT}
        return json.dumps({**line, "body": self.provider.body(request)}, ensure_ascii=False)

    def _result(self, line: str) -> tuple[str, Reply | str] | None:
        """The key and outcome of one output or error line; None for a line without a usable id."""
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            return None
        custom_id = doc.get("custom_id") if isinstance(doc, dict) else None
        if not isinstance(custom_id, str):
            return None
        key, wrapped = key_of(custom_id)
        response, error = doc.get("response"), doc.get("error")
        if isinstance(response, Mapping):
            return key, self._answer(response, wrapped)
        if isinstance(error, Mapping):  # never answered, e.g. ``batch_expired``
            return key, request_failed(f"{error.get('code') or 'error'}: {error.get('message') or ''}")
        return key, request_failed("")

    def _answer(self, response: Mapping[str, Any], wrapped: bool) -> Reply | str:
        """A line's ``response``: a chat completion, or an error answer (e.g. Groq's json_validate_failed)."""
        status = response.get("status_code")
        body = response.get("body")
        if not isinstance(body, Mapping):
            return request_failed(f"{status}: no body")
        try:
            if status == 200:
                return to_reply(body, wrapped=wrapped, provider=self.host)
            error = body.get("error")
            said = error if isinstance(error, Mapping) else {"message": json.dumps(body)}
            code = status if isinstance(status, int) else 500
            return request_failed(str(error_of(code, said, self.host, self.model)))
        except ProviderError as exc:
            return request_failed(str(exc))

    async def _call(self, call: Awaitable[T]) -> T:
        """Await an SDK call, mapping its errors to enrichkit's provider errors."""
        with mapped_errors(self.model):
            return await call
