"""Claude through the official ``anthropic`` SDK (``enrichkit[anthropic]``): one forced tool call a
request, live or in Message Batches.

The answer schema is the ``input_schema`` of a tool the model must call (``tool_choice``), so the
tool's input is the answer; a pack's array schema travels wrapped as ``{"items": [...]}`` (tool
inputs are objects) and is unwrapped before the engine sees it. Claude gives no token log-probabilities
(``Capabilities.logprobs`` False, ``Reply.tokens`` None).

A batch request travels as ``{"custom_id", "params"}``: ``params`` exactly the live call's
(``AnthropicProvider.body``), ``custom_id`` the request's key (``joblines.request_id``, at most 64 of
``[a-zA-Z0-9_-]``). Results are streamed (JSONL) and joined on ``custom_id`` only; each request
succeeded, errored (its error is the reason), expired or was canceled. ``split`` keeps a job under
100,000 requests and 256 MB. Message Batches carry no name of ours, so ``find`` cannot look a job up
by its display name: a run killed between creating a job and saving its id (one HTTP call) submits
those rows again.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import httpx2
import pydantic

from enrichkit.errors import FatalProviderError, ProviderError, UserError
from enrichkit.providers import keys
from enrichkit.providers.base import Capabilities, Finish, JobState, JobStatus, Media, Reply, Request, Usage
from enrichkit.providers.chat import unwrap, wrapped, wraps
from enrichkit.providers.classify import by_status, first_line, malformed, retry_after, transport
from enrichkit.providers.joblines import Keyed, fit, key_of, request_failed, request_id
from enrichkit.providers.media_cost import ANTHROPIC
from enrichkit.providers.redact import redact_exception

DEFAULT_MODEL = "claude-haiku-4-5"
TOOL = "answer"
FINISH: dict[str, Finish] = {
    "tool_use": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "max_tokens",
    "model_context_window_exceeded": "max_tokens",
    "refusal": "blocked",
}
_NO_CREDIT = "credit balance is too low"  # a 400 invalid_request_error, as Anthropic words it


def _sdk() -> Any:
    try:
        import anthropic
    except ImportError:
        raise UserError("the anthropic provider needs the anthropic SDK: pip install 'enrichkit[anthropic]'") from None
    return anthropic


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, client: Any, model: str, *, owns_client: bool = False) -> None:
        self.client = client
        self.owns_client = owns_client
        self.model = model
        self.capabilities = Capabilities(
            id_style="enum", max_pack_size=50, concurrency=8, timeout=120.0, media=ANTHROPIC
        )
        _sdk()  # a clear error now if the SDK is missing

    def settings(self) -> dict[str, Any]:
        return {"model": self.model, "base_url": str(self.client.base_url)}

    def body(self, request: Request) -> dict[str, Any]:
        """The Messages API parameters of ``request``: the live call's, and each batch request's ``params``
        (no ``temperature``: the SDK's Messages API no longer takes sampling parameters)."""
        return {
            "model": self.model,
            "max_tokens": request.max_output_tokens,
            "system": request.system,
            "messages": [{"role": "user", "content": content(request)}],
            "tools": [{"name": TOOL, "description": "Record the answer.", "input_schema": wrapped(request.schema)}],
            "tool_choice": {"type": "tool", "name": TOOL},
        }

    async def generate(self, request: Request) -> Reply:
        deadline = {} if request.timeout is None else {"timeout": request.timeout}
        with mapped_errors(self.model):
            message = await self.client.messages.create(**self.body(request), **deadline)
        return to_reply(message.model_dump(warnings=False), wrapped=wraps(request.schema))

    async def count_tokens(self, request: Request) -> int | None:
        return None

    def with_model(self, model: str) -> AnthropicProvider:
        """The same client on ``model`` (a fallback); the client stays this provider's to close."""
        return AnthropicProvider(self.client, model)

    def on_tier(self, tier: str) -> AnthropicProvider:
        raise UserError(f"the anthropic provider has no service tier {tier!r}")

    def batches(self) -> AnthropicBatches:
        """The Message Batches API."""

        return AnthropicBatches(self)

    async def aclose(self) -> None:
        if self.owns_client:
            await self.client.close()


def content(request: Request) -> str | list[dict[str, Any]]:
    """The user message's content: its text, or its blocks where it carries media (an ``image`` block, a
    PDF as a ``document`` block, each base64-encoded)."""
    if not request.media:
        return request.prompt
    return [_block(p) for p in request.parts()]


def _block(part: str | Media) -> dict[str, Any]:
    if isinstance(part, str):
        return {"type": "text", "text": part}
    kind = "document" if part.mime == "application/pdf" else "image"
    data = base64.b64encode(part.data).decode()
    return {"type": kind, "source": {"type": "base64", "media_type": part.mime, "data": data}}


def to_reply(doc: Mapping[str, Any], *, wrapped: bool) -> Reply:
    """A provider-neutral reply from a Message: the forced tool call's input as JSON text."""
    usage = doc.get("usage")
    usage = usage if isinstance(usage, Mapping) else {}
    read, written = _count(usage.get("cache_read_input_tokens")), _count(usage.get("cache_creation_input_tokens"))
    counted = Usage(_count(usage.get("input_tokens")) + read + written, _count(usage.get("output_tokens")), read)
    reason = str(doc.get("stop_reason") or "")
    blocks = doc.get("content")
    blocks = blocks if isinstance(blocks, list) else []
    call = next((b for b in blocks if isinstance(b, Mapping) and b.get("type") == "tool_use"), None)
    if call is None or "input" not in call:
        return Reply(None, FINISH.get(reason, "other"), counted, reason or "no tool call in the message")
    text = json.dumps(call["input"], ensure_ascii=False)
    return Reply(unwrap(text) if wrapped else text, FINISH.get(reason, "other"), counted, reason)


def _count(value: Any) -> int:
    return value if isinstance(value, int) else 0


def error_of(status: int, kind: str, message: str, model: str, wait: float | None = None) -> ProviderError:
    """The kind of an Anthropic error answer: no credit left stops the run, 529 overloaded may pass,
    the rest by ``classify.by_status``."""
    if status == 402 or kind == "billing_error" or _NO_CREDIT in message.lower():
        said = f"{status} {kind}".strip() + (f": {line}" if (line := first_line(message)) else "")
        return FatalProviderError(f"Anthropic credit exhausted ({said})")
    return by_status(status, message, provider="Anthropic", model=model, code=kind, retry_after=wait)


def map_error(exc: BaseException, model: str) -> ProviderError:
    """enrichkit's kind of error for what an anthropic SDK call raised."""
    anthropic = _sdk()
    if isinstance(exc, anthropic.APIStatusError):
        message = exc.api_message or str(exc.message)
        return error_of(exc.status_code, str(exc.type or ""), message, model, retry_after(exc.response.headers))
    if isinstance(exc, anthropic.APIResponseValidationError | pydantic.ValidationError | json.JSONDecodeError):
        return malformed(exc, "Anthropic")
    request = getattr(exc, "request", None)
    url = str(request.url) if isinstance(request, httpx2.Request) else ""
    return transport(exc.__cause__ or exc, "Anthropic", url)


@contextlib.contextmanager
def mapped_errors(model: str) -> Iterator[None]:
    """Raise what an anthropic SDK call raises inside as ``map_error`` says, from the original (redacted)."""
    anthropic = _sdk()
    try:
        yield
    except (anthropic.AnthropicError, pydantic.ValidationError, json.JSONDecodeError) as exc:
        raise map_error(exc, model) from redact_exception(exc)


def anthropic_provider(model: str | None = None, base_url: str | None = None) -> AnthropicProvider:
    """A provider with the key from ANTHROPIC_API_KEY, on ``base_url`` (default Anthropic's API)."""
    anthropic = _sdk()
    key = keys.from_env(keys.ANTHROPIC) or ""
    if not key:
        stub = f" (any value does for a local stub: {keys.ANTHROPIC}=stub)" if base_url else ""
        raise UserError(f"no Anthropic API key: set {keys.ANTHROPIC}{stub}")
    # No timeout or retries of the client's own: each call carries its deadline, the engine retries.
    client = anthropic.AsyncAnthropic(api_key=key, base_url=base_url, max_retries=0, timeout=None)
    return AnthropicProvider(client, model or DEFAULT_MODEL, owns_client=True)


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
        c = batch.request_counts
        failed = c.errored + c.expired + c.canceled
        return JobStatus(str(batch.id), _state(batch), "", c.processing + c.succeeded + failed, c.succeeded, failed)

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
