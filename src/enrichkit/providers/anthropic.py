"""Claude through the official ``anthropic`` SDK (``enrichkit[anthropic]``): one forced tool call a request.

The answer schema is the ``input_schema`` of a tool the model must call (``tool_choice``), so the
tool's input is the answer; a pack's array schema travels wrapped as ``{"items": [...]}`` (tool
inputs are objects) and is unwrapped before the engine sees it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import httpx2
import pydantic

from enrichkit.errors import FatalProviderError, ProviderError, UserError
from enrichkit.providers.base import Capabilities, Finish, Reply, Request, Usage
from enrichkit.providers.chat import unwrap, wrapped, wraps
from enrichkit.providers.classify import by_status, first_line, malformed, retry_after, transport
from enrichkit.redact import redact_exception

if TYPE_CHECKING:
    from enrichkit.providers.anthropic_batch import AnthropicBatches

KEY_VARIABLE = "ANTHROPIC_API_KEY"
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
        self.capabilities = Capabilities(id_style="enum", max_pack_size=50, concurrency=8, timeout=120.0)
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
            "messages": [{"role": "user", "content": request.prompt}],
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
        from enrichkit.providers.anthropic_batch import AnthropicBatches

        return AnthropicBatches(self)

    async def aclose(self) -> None:
        if self.owns_client:
            await self.client.close()


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
    key = os.environ.get(KEY_VARIABLE, "").strip()
    if not key:
        raise UserError(f"no Anthropic API key: set {KEY_VARIABLE}")
    # No timeout or retries of the client's own: each call carries its deadline, the engine retries.
    client = anthropic.AsyncAnthropic(api_key=key, base_url=base_url, max_retries=0, timeout=None)
    return AnthropicProvider(client, model or DEFAULT_MODEL, owns_client=True)
