"""Any OpenAI-compatible chat endpoint (OpenAI, Groq, Ollama, vLLM, llama.cpp server) via the ``openai`` SDK.

Structured outputs want an object at the root, so a pack's array schema travels wrapped as
``{"items": [...]}`` and the reply is unwrapped before the engine sees it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from enrichkit.errors import FatalProviderError, PromptTooLong, RateLimited, TransientError, Unreachable, UserError
from enrichkit.providers.base import Capabilities, Finish, Reply, Request, Usage

KEY_VARIABLE = "OPENAI_API_KEY"
DEFAULT_MODEL = "gpt-4.1-mini"
_FINISH: dict[str, Finish] = {"stop": "stop", "length": "max_tokens", "content_filter": "blocked"}


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
        wrapped = request.schema.get("type") == "array"
        schema = {"type": "object", "properties": {"items": request.schema}, "required": ["items"]}
        return {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": request.max_output_tokens,
            "messages": [{"role": "system", "content": request.system}, {"role": "user", "content": request.prompt}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema if wrapped else request.schema},
            },
        }

    async def generate(self, request: Request) -> Reply:
        openai = self._openai
        try:
            response = await self.client.chat.completions.create(**self._body(request))
        except openai.RateLimitError as exc:
            raise RateLimited(f"rate limited ({exc.status_code})", _retry_after(exc.response.headers)) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise FatalProviderError(f"the endpoint refused the API key ({exc.status_code})") from None
        except openai.NotFoundError as exc:
            raise FatalProviderError(f"unknown model {self.model!r} or endpoint ({exc.status_code})") from None
        except openai.BadRequestError as exc:
            if "context" in str(exc.message).lower() or "too long" in str(exc.message).lower():
                raise PromptTooLong(f"prompt too long ({exc.status_code})") from None
            raise FatalProviderError(f"the endpoint rejected the request ({exc.status_code})") from None
        except openai.APITimeoutError:
            raise TransientError("the endpoint did not answer in time") from None
        except openai.APIConnectionError as exc:
            raise Unreachable(f"cannot connect to {self.client.base_url}: {type(exc.__cause__).__name__}") from None
        except openai.APIStatusError as exc:
            raise TransientError(f"endpoint error {exc.status_code}") from None
        choice = response.choices[0] if response.choices else None
        usage = response.usage
        counted = Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage()
        if choice is None:
            return Reply(None, "other", counted, "no choices")
        text = choice.message.content
        if request.schema.get("type") == "array" and text:
            text = _unwrap(text)
        return Reply(text, _FINISH.get(choice.finish_reason or "stop", "other"), counted, choice.finish_reason or "")

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


def _unwrap(text: str) -> str:
    """The array inside ``{"items": [...]}``; anything else is passed on for validation to reject."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return text
    return json.dumps(doc["items"]) if isinstance(doc, dict) and "items" in doc else text


def openai_provider(model: str | None = None, base_url: str | None = None) -> OpenAIProvider:
    """A provider on ``base_url`` (default OpenAI) with the key from OPENAI_API_KEY (optional for local servers)."""
    openai = _sdk()
    key = os.environ.get(KEY_VARIABLE, "").strip()
    if not key and base_url is None:
        raise UserError(f"no OpenAI API key: set {KEY_VARIABLE} (or pass --base-url for a local server)")
    client = openai.AsyncOpenAI(api_key=key or "none", base_url=base_url, max_retries=0, timeout=120.0)
    return OpenAIProvider(client, model or DEFAULT_MODEL, owns_client=True)
