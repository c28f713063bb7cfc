"""Any OpenAI-compatible chat endpoint (OpenAI, Groq, Ollama, vLLM, llama.cpp server) via the ``openai`` SDK."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx2
import pydantic

from enrichkit.errors import ProviderError, UserError
from enrichkit.providers.base import Capabilities, Reply, Request
from enrichkit.providers.chat import error_of, response_format, to_reply, wraps
from enrichkit.providers.classify import malformed, transport
from enrichkit.redact import redact_exception

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
        self._openai = _sdk()

    def settings(self) -> dict[str, Any]:
        return {"model": self.model, "temperature": self.temperature, "base_url": str(self.client.base_url)}

    def _body(self, request: Request) -> dict[str, Any]:
        return {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": request.max_output_tokens,
            "messages": [{"role": "system", "content": request.system}, {"role": "user", "content": request.prompt}],
            "response_format": response_format(request.schema),
        }

    async def generate(self, request: Request) -> Reply:
        deadline = {} if request.timeout is None else {"timeout": request.timeout}
        try:
            response = await self.client.chat.completions.create(**self._body(request), **deadline)
        except (self._openai.APIError, pydantic.ValidationError, json.JSONDecodeError) as exc:
            raise map_error(exc, self.model) from redact_exception(exc)
        return to_reply(response.model_dump(warnings=False), wrapped=wraps(request.schema))

    async def count_tokens(self, request: Request) -> int | None:
        return None

    def with_model(self, model: str) -> OpenAIProvider:
        """The same endpoint and client on ``model`` (a fallback); the client stays this provider's to close."""
        return OpenAIProvider(self.client, model, temperature=self.temperature)

    def on_tier(self, tier: str) -> OpenAIProvider:
        raise UserError(f"the openai provider has no service tier {tier!r}")

    def batches(self) -> None:
        return None

    async def aclose(self) -> None:
        """Close the client if this provider made it (a caller's client stays open)."""
        if self.owns_client:
            await self.client.close()


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date); None if absent."""
    if (millis := headers.get("retry-after-ms")) is not None:
        with contextlib.suppress(ValueError):
            return max(0.0, float(millis) / 1000)
    after = headers.get("retry-after")
    if after is None:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(after))
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, parsedate_to_datetime(after).timestamp() - time.time())
    return None


def map_error(exc: BaseException, model: str) -> ProviderError:
    """enrichkit's kind of error for what an openai SDK call raised (the rules: ``classify.by_status``),
    named after the endpoint's host."""
    openai = _sdk()
    request = getattr(exc, "request", None)
    host = request.url.host if isinstance(request, httpx2.Request) else "the endpoint"
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, Mapping) else {"message": str(exc.body or exc.message)}
        return error_of(exc.status_code, body, host, model, _retry_after(exc.response.headers))
    if isinstance(exc, openai.APIResponseValidationError | pydantic.ValidationError | json.JSONDecodeError):
        return malformed(exc, host)
    return transport(exc.__cause__ or exc, host, str(request.url) if isinstance(request, httpx2.Request) else "")


def openai_provider(model: str | None = None, base_url: str | None = None) -> OpenAIProvider:
    """A provider on ``base_url`` (default OpenAI) with the key from OPENAI_API_KEY (optional for local servers)."""
    openai = _sdk()
    key = os.environ.get(KEY_VARIABLE, "").strip()
    if not key and base_url is None:
        raise UserError(f"no OpenAI API key: set {KEY_VARIABLE} (or pass --base-url for a local server)")
    # No timeout of the client's own: each call carries its request's deadline.
    client = openai.AsyncOpenAI(api_key=key or "none", base_url=base_url, max_retries=0, timeout=None)
    return OpenAIProvider(client, model or DEFAULT_MODEL, owns_client=True)
