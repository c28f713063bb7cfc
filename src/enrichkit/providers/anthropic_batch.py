"""Claude batch jobs through the Message Batches API (``client.messages.batches``).

Each request travels as ``{"custom_id", "params"}``: ``params`` exactly the live call's
(``AnthropicProvider.body``), ``custom_id`` the request's key (``joblines.request_id``, at most 64 of
``[a-zA-Z0-9_-]``). Results are streamed (JSONL) and joined on ``custom_id`` only; each request
succeeded, errored (its error is the reason), expired or was canceled. ``split`` keeps a job under
100,000 requests and 256 MB.

Message Batches carry no name of ours, so ``find`` cannot look a job up by its display name: a run
killed between creating a job and saving its id (one HTTP call) submits those rows again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

from enrichkit.errors import UserError
from enrichkit.providers.anthropic import AnthropicProvider, mapped_errors, to_reply
from enrichkit.providers.base import JobState, JobStatus, Reply, Request
from enrichkit.providers.joblines import Keyed, fit, key_of, request_failed, request_id

T = TypeVar("T")
MAX_REQUESTS = 100_000
MAX_BYTES = 256 * 1000 * 1000
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class AnthropicBatches:
    """Submit, watch, collect and cancel Message Batches for one Anthropic provider (same model)."""

    def __init__(self, provider: AnthropicProvider) -> None:
        self.provider = provider
        self.client = provider.client

    @property
    def model(self) -> str:
        return self.provider.model

    def split(self, requests: Keyed) -> list[Keyed]:
        return fit(requests, lambda k, r: len(json.dumps(self._request(k, r)).encode()), MAX_REQUESTS, MAX_BYTES)

    async def submit(self, requests: Sequence[tuple[str, Request]], display_name: str) -> str:
        """Create ONE Message Batch holding ``requests``; its id (``display_name`` is not sent: no field takes it)."""
        batch = await self._call(
            self.client.messages.batches.create(requests=[self._request(key, r) for key, r in requests])
        )
        return str(batch.id)

    async def find(self, display_name: str) -> str | None:
        """Always None: a Message Batch carries no display name to look it up by."""
        return None

    async def status(self, name: str) -> JobStatus:
        batch = await self._call(self.client.messages.batches.retrieve(name))
        return JobStatus(str(batch.id), _state(batch))

    async def results(self, name: str) -> dict[str, Reply | str]:
        """Per request key: the reply, or why that request failed, expired or was canceled."""
        out: dict[str, Reply | str] = {}
        with mapped_errors(self.model):
            async for item in await self.client.messages.batches.results(name):
                key, wrapped = key_of(item.custom_id)
                result = item.result
                if result.type == "succeeded":
                    out[key] = to_reply(result.message.model_dump(warnings=False), wrapped=wrapped)
                elif result.type == "errored":
                    error = result.error.error
                    out[key] = request_failed(f"{error.type}: {error.message}")
                else:
                    out[key] = request_failed(f"request {result.type} before it was answered")
        return out

    async def cancel(self, name: str) -> None:
        await self._call(self.client.messages.batches.cancel(name))

    def _request(self, key: str, request: Request) -> dict[str, Any]:
        custom_id = request_id(key, request)
        if not CUSTOM_ID.match(custom_id):
            raise UserError(f"batch request id {custom_id!r} is not 1-64 of a-z, A-Z, 0-9, _ and -")
        return {"custom_id": custom_id, "params": self.provider.body(request)}

    async def _call(self, call: Awaitable[T]) -> T:
        """Await an SDK call, mapping its errors to enrichkit's provider errors."""
        with mapped_errors(self.model):
            return await call


def _state(batch: Any) -> JobState:
    """A Message Batch's state: ``ended`` is cancelled if a cancel was asked, expired if nothing was
    answered and requests expired, else succeeded (its requests say one by one how they went)."""
    if batch.processing_status != "ended":
        return "running"
    if batch.cancel_initiated_at is not None:
        return "cancelled"
    counts = batch.request_counts
    if counts.succeeded == 0 and counts.errored == 0 and counts.expired > 0:
        return "expired"
    return "succeeded"
