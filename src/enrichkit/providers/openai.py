"""Any OpenAI-compatible chat endpoint (OpenAI, Groq, Ollama, vLLM, llama.cpp server) via the ``openai`` SDK."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import httpx2
import pydantic

from enrichkit.errors import ProviderError, UserError
from enrichkit.providers.base import Capabilities, Reply, Request
from enrichkit.providers.chat import error_of, response_format, to_reply, wraps
from enrichkit.providers.classify import malformed, retry_after, transport
from enrichkit.redact import redact_exception

if TYPE_CHECKING:
    from enrichkit.providers.openai_batch import OpenAIBatches

KEY_VARIABLE = "OPENAI_API_KEY"
DEFAULT_MODEL = "gpt-4.1-mini"


def _sdk() -> Any:
    try:
        import openai
    except ImportError:
        raise UserError("the openai provider needs the openai SDK: pip install 'enrichkit[openai]'") from None
    return openai


class OpenAIProvider:
    name = "openai"

    def __init__(self, client: Any, model: str, *, temperature: float = 0.0, owns_client: bool = False) -> None:
        self.client = client
        self.owns_client = owns_client
        self.model = model
        self.temperature = temperature
        self.capabilities = Capabilities(id_style="enum", max_pack_size=50, concurrency=8, timeout=120.0)
        _sdk()  # a clear error now if the SDK is missing

    def settings(self) -> dict[str, Any]:
        return {"model": self.model, "temperature": self.temperature, "base_url": str(self.client.base_url)}

    def body(self, request: Request) -> dict[str, Any]:
        """The chat.completions body of ``request``: the live call's, and each line of a batch file."""
        return {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": request.max_output_tokens,
            "messages": [{"role": "system", "content": request.system}, {"role": "user", "content": request.prompt}],
            "response_format": response_format(request.schema),
        }

    async def generate(self, request: Request) -> Reply:
        deadline = {} if request.timeout is None else {"timeout": request.timeout}
        with mapped_errors(self.model):
            response = await self.client.chat.completions.create(**self.body(request), **deadline)
        return to_reply(response.model_dump(warnings=False), wrapped=wraps(request.schema))

    async def count_tokens(self, request: Request) -> int | None:
        return None

    def with_model(self, model: str) -> OpenAIProvider:
        """The same endpoint and client on ``model`` (a fallback); the client stays this provider's to close."""
        return OpenAIProvider(self.client, model, temperature=self.temperature)

    def on_tier(self, tier: str) -> OpenAIProvider:
        raise UserError(f"the openai provider has no service tier {tier!r}")

    def batches(self) -> OpenAIBatches:
        """The endpoint's Files + Batches API (OpenAI, Groq; a server without one answers 404 at submit)."""
        from enrichkit.providers.openai_batch import OpenAIBatches

        return OpenAIBatches(self)

    async def aclose(self) -> None:
        """Close the client if this provider made it (a caller's client stays open)."""
        if self.owns_client:
            await self.client.close()


def map_error(exc: BaseException, model: str) -> ProviderError:
    """enrichkit's kind of error for what an openai SDK call raised (the rules: ``classify.by_status``),
    named after the endpoint's host."""
    openai = _sdk()
    request = getattr(exc, "request", None)
    host = request.url.host if isinstance(request, httpx2.Request) else "the endpoint"
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, Mapping) else {"message": str(exc.body or exc.message)}
        return error_of(exc.status_code, body, host, model, retry_after(exc.response.headers))
    if isinstance(exc, openai.APIResponseValidationError | pydantic.ValidationError | json.JSONDecodeError):
        return malformed(exc, host)
    return transport(exc.__cause__ or exc, host, str(request.url) if isinstance(request, httpx2.Request) else "")


@contextlib.contextmanager
def mapped_errors(model: str) -> Iterator[None]:
    """Raise what an openai SDK call raises inside as ``map_error`` says, from the original (redacted)."""
    openai = _sdk()
    try:
        yield
    except (openai.APIError, pydantic.ValidationError, json.JSONDecodeError) as exc:
        raise map_error(exc, model) from redact_exception(exc)


def openai_provider(model: str | None = None, base_url: str | None = None) -> OpenAIProvider:
    """A provider on ``base_url`` (default OpenAI) with the key from OPENAI_API_KEY (optional for local servers)."""
    openai = _sdk()
    key = os.environ.get(KEY_VARIABLE, "").strip()
    if not key and base_url is None:
        raise UserError(f"no OpenAI API key: set {KEY_VARIABLE} (or pass --base-url for a local server)")
    # No timeout of the client's own: each call carries its request's deadline.
    client = openai.AsyncOpenAI(api_key=key or "none", base_url=base_url, max_retries=0, timeout=None)
    return OpenAIProvider(client, model or DEFAULT_MODEL, owns_client=True)
