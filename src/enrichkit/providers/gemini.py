"""Gemini through the official google-genai SDK (async client)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
from typing import TYPE_CHECKING, Any

import httpx2
import pydantic
from google import genai
from google.genai import errors, types

from enrichkit.errors import (
    FatalProviderError,
    PromptTooLong,
    RateLimited,
    TransientError,
    Unreachable,
    UserError,
)
from enrichkit.providers.base import Capabilities, Finish, Reply, Request, Usage
from enrichkit.schema import restrict

if TYPE_CHECKING:
    from enrichkit.providers.gemini_batch import GeminiBatches

DEFAULT_MODEL = "gemini-3.1-flash-lite"
TIERS = {"flex": 900.0}  # service tier -> call deadline in seconds (Flex may queue a request for minutes)
KEY_VARIABLES = ("GOOGLE_API_KEY", "GEMINI_API_KEY")  # the SDK's own precedence

# The keywords Gemini's ``response_json_schema`` documents; the rest (maxWords, maxLength, pattern ...)
# are stated in the prompt and checked by enrichkit after the answer arrives.
SUPPORTED_KEYWORDS = frozenset(
    [
        "$id",
        "$defs",
        "$ref",
        "$anchor",
        "type",
        "format",
        "title",
        "description",
        "enum",
        "items",
        "prefixItems",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "anyOf",
        "oneOf",
        "properties",
        "additionalProperties",
        "required",
        "propertyOrdering",
    ]
)

_BLOCKED = {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "RECITATION", "IMAGE_SAFETY", "MODEL_ARMOR"}
_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def api_key_from_env() -> str | None:
    for name in KEY_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def make_client(api_key: str | None = None, base_url: str | None = None) -> genai.Client:
    """A client pinned to the ``v1beta`` API (where ``responseJsonSchema`` and thinking config live).

    Retries are left to the engine, which honours the server's RetryInfo (the SDK's retries ignore it).
    """
    key = api_key or api_key_from_env()
    if not key:
        raise UserError("no Gemini API key: set GEMINI_API_KEY or GOOGLE_API_KEY")
    options = types.HttpOptions(api_version="v1beta", base_url=base_url)
    if importlib.util.find_spec("aiohttp") is not None:
        # With aiohttp importable the SDK silently switches its async transport, which changes
        # exception types and adds hidden retries; pin httpx2.
        options.async_client_args = {"transport": httpx2.AsyncHTTPTransport()}
    return genai.Client(api_key=key, http_options=options)


def _thinking(model: str) -> types.ThinkingConfig | None:
    """Thinking off where the model allows it (billed as output, useless for enrichment)."""
    name = model.removeprefix("models/")
    if name.startswith("gemini-2.5") and "pro" not in name:
        return types.ThinkingConfig(thinking_budget=0)
    if name.startswith("gemini-3"):
        level = types.ThinkingLevel.LOW if "pro" in name else types.ThinkingLevel.MINIMAL
        return types.ThinkingConfig(thinking_level=level)
    return None


def _retry_after(exc: errors.APIError) -> float | None:
    details = exc.details.get("error", {}).get("details", []) if isinstance(exc.details, dict) else []
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            match = _DELAY.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    header = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return float(header) if header else None
    except ValueError:
        return None


def _describe(exc: errors.APIError) -> str:
    message = (exc.message or "").strip().splitlines()[0][:200] if exc.message else ""
    return f"{exc.code} {exc.status or ''}".strip() + (f": {message}" if message else "")


def _classify(exc: errors.APIError, model: str) -> Exception:
    text = _describe(exc)
    lowered = text.lower()
    if exc.code == 429:
        return RateLimited(f"rate limited ({text})", _retry_after(exc))
    if exc.code in (401, 403) or "api key" in lowered or "api_key" in lowered:
        return FatalProviderError(f"Gemini refused the API key ({text})")
    if exc.code == 404:
        return FatalProviderError(f"Gemini does not know model {model!r} ({text})")
    if exc.code == 400 and "token" in lowered and any(w in lowered for w in ("exceed", "too long", "maximum")):
        return PromptTooLong(f"prompt too long ({text})")
    if exc.code in (408, 409) or exc.code >= 500 or exc.code < 400:
        return TransientError(f"Gemini error {text}")
    return FatalProviderError(f"Gemini rejected the request ({text})")


class GeminiProvider:
    """``generate`` = one ``client.aio.models.generate_content`` call with a JSON-schema-constrained answer."""

    name = "gemini"

    def __init__(
        self,
        client: genai.Client,
        model: str = DEFAULT_MODEL,
        *,
        temperature: float = 0.0,
        capabilities: Capabilities | None = None,
        owns_client: bool = False,
        service_tier: str | None = None,
    ) -> None:
        self.client = client
        self.owns_client = owns_client
        self.service_tier = service_tier
        self.model = model
        self.temperature = temperature
        self.capabilities = capabilities or Capabilities(tiers=frozenset(TIERS))
        self._thinking = _thinking(model)

    def settings(self) -> dict[str, Any]:
        thinking = self._thinking.model_dump(mode="json", exclude_none=True) if self._thinking else None
        return {"model": self.model, "temperature": self.temperature, "thinking": thinking}

    def with_model(self, model: str) -> GeminiProvider:
        """The same client and settings on ``model`` (a fallback); the client stays this provider's to close."""
        return GeminiProvider(self.client, model, temperature=self.temperature, service_tier=self.service_tier)

    def on_tier(self, tier: str) -> GeminiProvider:
        """The same model on another service tier (``flex``: about half price, slower, minutes a call)."""
        if tier not in self.capabilities.tiers:
            raise UserError(f"Gemini has no service tier {tier!r} (choose from {', '.join(sorted(TIERS))})")
        capabilities = dataclasses.replace(self.capabilities, timeout=TIERS[tier])
        return GeminiProvider(
            self.client,
            self.model,
            temperature=self.temperature,
            capabilities=capabilities,
            owns_client=self.owns_client,
            service_tier=tier,
        )

    def batches(self) -> GeminiBatches:
        from enrichkit.providers.gemini_batch import GeminiBatches

        return GeminiBatches(self)

    def config(self, request: Request) -> types.GenerateContentConfig:
        """The generation config of a request; also what a batch job's requests carry.

        ``response_json_schema`` (not ``response_schema``): it goes on the wire verbatim as standard
        JSON Schema, the dialect enrichkit validates with, and it supports ``prefixItems``; the
        OpenAPI-style ``response_schema`` is converted lossily by the SDK (``const`` becomes ``enum``,
        unknown keywords raise client-side).
        """
        timeout = self.capabilities.timeout
        return types.GenerateContentConfig(
            system_instruction=request.system,
            temperature=self.temperature,
            response_mime_type="application/json",
            response_json_schema=restrict(request.schema, SUPPORTED_KEYWORDS),
            max_output_tokens=request.max_output_tokens,
            thinking_config=self._thinking,
            automatic_continuation=False,
            service_tier=types.ServiceTier(self.service_tier) if self.service_tier else None,
            http_options=types.HttpOptions(timeout=int(timeout * 1000)) if timeout else None,
        )

    async def generate(self, request: Request) -> Reply:
        try:
            response = await self.client.aio.models.generate_content(
                model=self.model, contents=request.prompt, config=self.config(request)
            )
        except errors.APIError as exc:
            raise _classify(exc, self.model) from None
        except httpx2.ConnectError as exc:
            raise Unreachable(f"cannot connect to Gemini: {exc}") from None
        except httpx2.TimeoutException:
            raise TransientError("Gemini did not answer in time") from None
        except httpx2.TransportError as exc:
            raise TransientError(f"connection to Gemini failed: {type(exc).__name__}") from None
        except (json.JSONDecodeError, pydantic.ValidationError):
            raise TransientError("Gemini sent a malformed response") from None
        return to_reply(response)

    async def count_tokens(self, request: Request) -> int | None:
        """``countTokens`` (free) on system text + prompt (the Gemini API takes no system instruction
        there). A refused key or unknown model raises ``FatalProviderError``; anything else gives None."""
        try:
            counted = await self.client.aio.models.count_tokens(
                model=self.model, contents=[request.system, request.prompt]
            )
        except errors.APIError as exc:
            problem = _classify(exc, self.model)
            if isinstance(problem, FatalProviderError):
                raise problem from None
            return None
        except httpx2.HTTPError:
            return None
        return counted.total_tokens

    async def aclose(self) -> None:
        """Close the client if this provider made it (a caller's client stays open)."""
        if self.owns_client:
            await self.client.aio.aclose()


def to_reply(response: types.GenerateContentResponse) -> Reply:
    """A provider-neutral reply from an SDK response (also used for batch job results)."""
    usage = response.usage_metadata
    counted = Usage(
        prompt_tokens=(usage.prompt_token_count or 0) if usage else 0,
        output_tokens=((usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)) if usage else 0,
        cached_tokens=(usage.cached_content_token_count or 0) if usage else 0,
    )
    feedback = response.prompt_feedback
    if feedback is not None and feedback.block_reason is not None:
        return Reply(None, "blocked", counted, f"prompt blocked: {feedback.block_reason.value}")
    if not response.candidates:
        return Reply(None, "other", counted, "no candidates in the response")
    reason = response.candidates[0].finish_reason
    name = reason.value if reason is not None else "STOP"
    finish: Finish = "stop"
    if name == "MAX_TOKENS":
        finish = "max_tokens"
    elif name in _BLOCKED:
        finish = "blocked"
    elif name not in ("STOP", "FINISH_REASON_UNSPECIFIED"):
        finish = "other"
    return Reply(response.text, finish, counted, name)
