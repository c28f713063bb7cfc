"""Gemini through the official google-genai SDK (async client): live calls, and Batch API jobs.

Batch requests travel keyed: inline as ``InlinedRequest.metadata["key"]``, in a file as the JSONL line's
``"key"``. Results are joined on that key only (never on order, which the service does not promise);
a result without its key is dropped, and its pack is asked again like any failed pack.

A live answer is read from the response body as the REST API sends it (``should_return_http_response``:
the SDK hands the body over unparsed): the SDK's own parse of a pack's answer with its log-probabilities
builds hundreds of pydantic objects (~12 ms of CPU a call, three times the rest of the call), which on a busy
event loop delays the replies and refusals behind it. Batch results are read the same way.

Token log-probabilities (``Request.logprobs``) are asked with ``response_logprobs`` and ``logprobs`` (the
alternatives; live and in batch requests) and read from ``candidates[0].logprobsResult``
(``chosenCandidates``, ``topCandidates``). Several models refuse them
(``400 INVALID_ARGUMENT "Logprobs is not enabled for models/..."``): the call is made again without, and
the model remembered in ``logprobs_refused`` (shared with the providers ``with_model`` and ``on_tier``
derive); a batch request refused so fails, and the model is remembered for the next.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import os
import re
import ssl
import tempfile
from collections.abc import Awaitable, Iterator, Mapping, Sequence
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any

import httpx2
import orjson
import pydantic
from google import genai
from google.genai import errors, types

from enrichkit.errors import FatalProviderError, ProviderError, UserError
from enrichkit.providers import keys
from enrichkit.providers.base import (
    ALTERNATIVES,
    Capabilities,
    Finish,
    JobState,
    JobStatus,
    Media,
    MediaLimits,
    Reply,
    Request,
    Tokens,
    Top,
    Usage,
)
from enrichkit.providers.classify import by_status, first_line, malformed, refuses_logprobs, transport
from enrichkit.providers.gemini_files import Uploads, by_file, file_part
from enrichkit.providers.logprobs import AsksLogprobs, aligned, are_logprobs, are_texts, from_pairs
from enrichkit.providers.media_cost import GEMINI, GEMINI_3
from enrichkit.providers.redact import redact_exception
from enrichkit.task.schema import restrict

DEFAULT_MODEL = "gemini-3.1-flash-lite"
SERVICE_TIERS = {"flex": 900.0}  # service tier -> call deadline in seconds (Flex may queue a request for minutes)

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
_LONG_QUOTA = re.compile(r"Per(?:Day|Month)", re.I)
_KEY_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED"})
# GenerateContentConfig fields that are request fields beside generationConfig, or never sent at all
_REQUEST_FIELDS = frozenset(
    ["system_instruction", "safety_settings", "tools", "tool_config", "cached_content", "service_tier", "store"]
)
_CLIENT_FIELDS = frozenset(
    ["http_options", "should_return_http_response", "automatic_function_calling", "automatic_continuation"]
)


class MalformedResponse(ValueError):
    """A response body that is not a JSON object."""


MAPPED = (
    errors.APIError,
    httpx2.HTTPError,
    httpx2.InvalidURL,
    TimeoutError,
    json.JSONDecodeError,
    pydantic.ValidationError,
    MalformedResponse,
)
"""What the SDK raises for a failed call; ``mapped_errors`` turns these into enrichkit's kinds."""


def make_client(api_key: str | None = None, base_url: str | None = None) -> genai.Client:
    """A client pinned to the ``v1beta`` API (where ``responseJsonSchema`` and thinking config live).

    Retries are left to the engine, which honours the server's RetryInfo (the SDK's retries ignore it).
    """
    key = api_key or keys.from_env(*keys.GEMINI)
    if not key:
        stub = " (any value does for a local stub: GEMINI_API_KEY=stub)" if base_url else ""
        raise UserError(f"no Gemini API key: set GEMINI_API_KEY or GOOGLE_API_KEY{stub}")
    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise UserError(f"the base URL {base_url!r} needs http:// or https://")
    tls = tls_context()
    options = types.HttpOptions(
        api_version="v1beta",
        base_url=base_url,
        client_args={"verify": tls},
        async_client_args={"verify": tls, "ssl": tls},  # "ssl": the websocket's, which the SDK makes apart
    )
    if importlib.util.find_spec("aiohttp") is not None:
        # With aiohttp importable the SDK silently switches its async transport, which changes
        # exception types and adds hidden retries; pin httpx2.
        options.async_client_args = {
            **(options.async_client_args or {}),
            "transport": httpx2.AsyncHTTPTransport(verify=tls),
        }
    return genai.Client(api_key=key, http_options=options)


def tls_context() -> ssl.SSLContext:
    """The TLS context a client's transports share, made as the SDK makes it (the CA files ``SSL_CERT_FILE`` and
    ``SSL_CERT_DIR`` name, else the system's trust store): the SDK would load the CA bundle once for its HTTP
    clients and again for a websocket enrichkit never opens (~50 ms of CPU each)."""
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if cafile or capath:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    return httpx2.create_ssl_context()


def gemini_provider(model: str | None = None, base_url: str | None = None) -> GeminiProvider:
    """A provider on a client of its own (``make_client``), on ``model`` (default ``DEFAULT_MODEL``)."""
    return GeminiProvider(make_client(base_url=base_url), model or DEFAULT_MODEL, owns_client=True)


def _thinking(model: str) -> types.ThinkingConfig | None:
    """Thinking off where the model allows it (billed as output, useless for enrichment)."""
    name = model.removeprefix("models/")
    if name.startswith("gemini-2.5") and "pro" not in name:
        return types.ThinkingConfig(thinking_budget=0)
    if name.startswith("gemini-3"):
        level = types.ThinkingLevel.LOW if "pro" in name else types.ThinkingLevel.MINIMAL
        return types.ThinkingConfig(thinking_level=level)
    return None


def media_limits(model: str) -> MediaLimits:
    """What ``model`` takes of images and PDFs (Gemini 3 counts them by its default media resolution)."""
    return GEMINI_3 if model.removeprefix("models/").startswith("gemini-3") else GEMINI


def contents(request: Request, uris: Mapping[str, str] | None = None) -> str | list[types.Content]:
    """The user turn of ``request``: its text, or its parts where it carries media: each image or PDF inline
    (``inline_data``), or by the URI of its uploaded file where ``uris`` (by sha256) holds one (``file_data``);
    those without bytes (in a request only counted) left out."""
    if not request.media:
        return request.prompt
    return [
        types.Content(
            role="user", parts=[_part(p, uris or {}) for p in request.parts() if not isinstance(p, Media) or p.data]
        )
    ]


def _part(part: str | Media, uris: Mapping[str, str]) -> types.Part:
    if isinstance(part, str):
        return types.Part(text=part)
    return file_part(part, uris) or types.Part(inline_data=types.Blob(mime_type=part.mime, data=part.data))


def _details(exc: errors.APIError) -> list[dict[str, Any]]:
    """The ``error.details`` of an error answer (RetryInfo, QuotaFailure, ErrorInfo, ...)."""
    error = exc.details.get("error") if isinstance(exc.details, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _of_type(details: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [d for d in details if str(d.get("@type", "")).endswith(f".{name}")]


def _retry_after(exc: errors.APIError, details: list[dict[str, Any]]) -> float | None:
    """The server's RetryInfo delay, else its ``retry-after`` header."""
    for info in _of_type(details, "RetryInfo"):
        if match := _DELAY.match(str(info.get("retryDelay", ""))):
            return float(match.group(1))
    header = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return float(header) if header else None
    except ValueError:
        return None


def _exhausted(details: list[dict[str, Any]]) -> str:
    """The id of a per-day or per-month quota a QuotaFailure names (waiting minutes cannot help)."""
    for failure in _of_type(details, "QuotaFailure"):
        for violation in failure.get("violations") or []:
            quota = str(violation.get("quotaId", "")) if isinstance(violation, dict) else ""
            if _LONG_QUOTA.search(quota):
                return quota
    return ""


def _bad_key(exc: errors.APIError, details: list[dict[str, Any]]) -> bool:
    """A 400 about the key: ErrorInfo ``API_KEY_INVALID`` (and the message Google sends with it,
    for answers without details)."""
    if any(str(info.get("reason", "")) in _KEY_REASONS for info in _of_type(details, "ErrorInfo")):
        return True
    return (exc.message or "").startswith("API key not valid")


def _url(exc: BaseException) -> str:
    try:
        return str(exc.request.url) if isinstance(exc, httpx2.RequestError) else ""
    except RuntimeError:  # an error raised before its request was made
        return ""


def map_error(exc: BaseException, model: str) -> ProviderError:
    """enrichkit's kind of error for what a google-genai call raised (the rules: ``classify.by_status``)."""
    if isinstance(exc, errors.APIError):
        details = _details(exc)
        message = exc.message or ""
        if exc.code == 404 and "batches/" in message:
            return FatalProviderError(f"Gemini has no such batch job ({exc.code}: {first_line(message)})")
        return by_status(
            exc.code,
            message,
            provider="Gemini",
            model=model,
            code=exc.status or "",
            retry_after=_retry_after(exc, details),
            exhausted=_exhausted(details) if exc.code == 429 else "",
            bad_key=exc.code == 400 and _bad_key(exc, details),
        )
    if isinstance(exc, json.JSONDecodeError | pydantic.ValidationError | MalformedResponse):
        return malformed(exc, "Gemini")
    return transport(exc, "Gemini", _url(exc))


@contextlib.contextmanager
def mapped_errors(model: str) -> Iterator[None]:
    """Raise what the SDK raises inside as ``map_error`` says, from the original (its texts redacted)."""
    try:
        yield
    except MAPPED as exc:
        raise map_error(exc, model) from redact_exception(exc)


class GeminiProvider(AsksLogprobs):
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
        logprobs_refused: set[str] | None = None,
        file_above: int | None = None,
        uploads: Uploads | None = None,
    ) -> None:
        self.client = client
        self.owns_client = owns_client
        self.service_tier = service_tier
        self.model = model
        self.temperature = temperature
        self.logprobs_refused = set() if logprobs_refused is None else logprobs_refused
        """The models that refused token log-probabilities while this provider (or one it derived, or
        derived from) lived; a model added before a call is not asked for them."""
        self.capabilities = dataclasses.replace(
            capabilities or Capabilities(service_tiers=frozenset(SERVICE_TIERS), media=media_limits(model)),
            logprobs=model not in self.logprobs_refused,
        )
        if file_above is not None and self.capabilities.media is not None:
            media = dataclasses.replace(self.capabilities.media, file_above=file_above)
            self.capabilities = dataclasses.replace(self.capabilities, media=media)
        self.uploads = uploads or Uploads(client, mapped_errors)
        """The media this provider (and those it derived, or derived from) uploaded in this run: its
        ``file_above`` (default ``media_cost.GEMINI_FILE_ABOVE``) says which go so."""
        self._thinking = _thinking(model)

    def settings(self) -> dict[str, Any]:
        thinking = self._thinking.model_dump(mode="json", exclude_none=True) if self._thinking else None
        return {"model": self.model, "temperature": self.temperature, "thinking": thinking}

    def with_model(self, model: str) -> GeminiProvider:
        """The same client and settings on ``model`` (a fallback); the client stays this provider's to close."""
        return GeminiProvider(
            self.client,
            model,
            temperature=self.temperature,
            service_tier=self.service_tier,
            logprobs_refused=self.logprobs_refused,
            file_above=self._file_above,
            uploads=self.uploads,
        )

    def on_tier(self, tier: str) -> GeminiProvider:
        """The same model on another service tier (``flex``: about half price, slower, minutes a call)."""
        if tier not in self.capabilities.service_tiers:
            raise UserError(f"Gemini has no service tier {tier!r} (choose from {', '.join(sorted(SERVICE_TIERS))})")
        capabilities = dataclasses.replace(self.capabilities, timeout=SERVICE_TIERS[tier])
        return GeminiProvider(
            self.client,
            self.model,
            temperature=self.temperature,
            capabilities=capabilities,
            owns_client=self.owns_client,
            service_tier=tier,
            logprobs_refused=self.logprobs_refused,
            uploads=self.uploads,
        )

    def batches(self) -> GeminiBatches:

        return GeminiBatches(self)

    def config(self, request: Request) -> types.GenerateContentConfig:
        """The generation config of a request; also what a batch job's requests carry.

        ``response_json_schema`` (not ``response_schema``): it goes on the wire verbatim as standard
        JSON Schema, the dialect enrichkit validates with, and it supports ``prefixItems``; the
        OpenAPI-style ``response_schema`` is converted lossily by the SDK (``const`` becomes ``enum``,
        unknown keywords raise client-side). The SDK's timeout is the request's deadline. Log-probabilities
        with the ``ALTERNATIVES`` most likely tokens at each step (``logprobs``, for ``Token.top``).
        """
        asks = self.asks_logprobs(request)
        return types.GenerateContentConfig(
            system_instruction=types.Content(parts=[types.Part(text=request.system)]),
            temperature=self.temperature,
            response_mime_type="application/json",
            response_json_schema=restrict(request.schema, SUPPORTED_KEYWORDS),
            max_output_tokens=request.max_output_tokens,
            thinking_config=self._thinking,
            automatic_continuation=False,
            service_tier=types.ServiceTier(self.service_tier) if self.service_tier else None,
            response_logprobs=True if asks else None,
            logprobs=ALTERNATIVES if asks else None,
            http_options=types.HttpOptions(timeout=round(request.timeout * 1000)) if request.timeout else None,
        )

    @property
    def _file_above(self) -> int | None:
        return self.capabilities.media.file_above if self.capabilities.media is not None else None

    async def uris(self, request: Request) -> dict[str, str]:
        """The URIs of the media of ``request`` that go as files (``gemini_files.by_file``), uploaded now
        where this run has not uploaded them yet."""
        files = by_file(request, self.capabilities.media)
        return await self.uploads.uris(files, self.model) if files else {}

    async def _generate(self, request: Request) -> Reply:
        config = self.config(request).model_copy(update={"should_return_http_response": True})
        turn = contents(request, await self.uris(request))
        with mapped_errors(self.model):
            response = await self.client.aio.models.generate_content(model=self.model, contents=turn, config=config)
            raw = response.sdk_http_response
            return wire_reply(*loads((raw.body if raw is not None else None) or "{}"))

    async def count_tokens(self, request: Request) -> int | None:
        """``countTokens`` (free) on system text + prompt (the Gemini API takes no system instruction
        there), media without their bytes (a request only counted) or going as files at their estimate. A refused key or
        unknown model raises ``FatalProviderError``; anything else gives None."""
        files = {id(m) for m in by_file(request, self.capabilities.media)}  # counted, not uploaded to be counted
        request = dataclasses.replace(
            request, media=tuple(dataclasses.replace(m, data=b"") if id(m) in files else m for m in request.media)
        )
        turn = contents(request)
        asked: Any = (
            [request.system, turn]
            if isinstance(turn, str)
            else [types.Content(role="user", parts=[types.Part(text=request.system)]), *turn]
        )
        try:
            with mapped_errors(self.model):
                counted = await self.client.aio.models.count_tokens(model=self.model, contents=asked)
        except FatalProviderError:
            raise
        except ProviderError:
            return None
        unsent = sum(m.tokens for m in request.media if not m.data)
        return None if counted.total_tokens is None else counted.total_tokens + unsent

    async def aclose(self) -> None:
        """Delete the files this run uploaded; close the client if this provider made it (a caller's client
        stays open)."""
        await self.uploads.delete()
        if self.owns_client:
            await self.client.aio.aclose()


def rest_request(
    request: Request, config: types.GenerateContentConfig, uris: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The REST body of a generateContent call of ``request`` with ``config`` (a batch file's line), as the
    SDK sends it: top-level names in camelCase, nested objects as their plain dump (media base64-encoded),
    client-side options left out."""
    fields = types.GenerateContentConfig.model_fields
    turn = contents(request, uris)
    body: dict[str, Any] = {
        "contents": [{"parts": [{"text": turn}], "role": "user"}]
        if isinstance(turn, str)
        else [c.model_dump(mode="json", exclude_none=True, by_alias=True) for c in turn]
    }
    generation: dict[str, Any] = {}
    for name, value in config.model_dump(mode="json", exclude_none=True).items():
        if name not in _CLIENT_FIELDS:
            (body if name in _REQUEST_FIELDS else generation)[fields[name].alias or name] = value
    body["generationConfig"] = generation
    return body


def to_reply(response: types.GenerateContentResponse) -> Reply:
    """A provider-neutral reply from an SDK response (an inline batch job's result): ``wire_reply`` of it."""
    return wire_reply(response.model_dump(mode="json", by_alias=True, exclude_none=True))


def loads(body: str | bytes) -> tuple[Any, list[str] | None]:
    """A response body's JSON (``wire_reply``'s arguments): where its ``topCandidates`` array is laid out
    plainly, a step for each chosen token, that array is left out of the parse (it is most of the body:
    ``ALTERNATIVES`` a token) and given apart, one JSON text a step, for the steps looked at to be read
    alone; else the whole body parsed."""
    text = body.decode() if isinstance(body, bytes) else body
    found = _top_steps(text)
    if found is not None:
        start, end, steps = found
        try:
            doc = orjson.loads(text[:start] + "[]" + text[end:])
        except orjson.JSONDecodeError:
            doc = None
        if _chosen(doc) == len(steps):  # a step for each chosen token: the array was read right
            return doc, steps
    return orjson.loads(text), None


def _chosen(doc: Any) -> int:
    """How many chosen tokens the first candidate of a response (or of a batch line's) has (-1: none)."""
    doc = _object(doc)
    candidates = _object(doc.get("response", doc)).get("candidates")
    first = _object(candidates[0]) if isinstance(candidates, list) and candidates else {}
    chosen = _object(first.get("logprobsResult")).get("chosenCandidates")
    return len(chosen) if isinstance(chosen, list) else -1


_TOP = '"topCandidates":'
_STEP = '"candidates":'  # a key: unescaped quotes then a colon are never inside a JSON string


def _top_steps(text: str) -> tuple[int, int, list[str]] | None:
    """Where the ``topCandidates`` array of ``text`` stands, and each of its steps' ``candidates`` as JSON
    text; None where it is missing, or not laid out as ``[{"candidates": [...]}, ...]`` (the last step's
    array read by ``json``'s scanner to find the end, so no bracket inside a token can mislead it)."""
    key = text.find(_TOP)  # a second array (another candidate's) would not give a step a chosen token: see loads
    if key == -1:
        return None
    start = _skip(text, key + len(_TOP))
    last = text.rfind(_STEP)
    if start >= len(text) or text[start] != "[" or last < start:
        return None
    try:
        _, end = _DECODER.raw_decode(text, _skip(text, last + len(_STEP)))
    except ValueError:
        return None
    end = _skip(text, end)
    if end >= len(text) or text[end] != "}":
        return None
    end = _skip(text, end + 1)
    if end >= len(text) or text[end] != "]":
        return None
    steps = text[start + 1 : end].split(_STEP)
    if steps[0].strip() != "{":
        return None
    return start, end + 1, steps[1:]


_DECODER = json.JSONDecoder()


def _skip(text: str, at: int) -> int:
    """The first index from ``at`` that is not JSON whitespace."""
    while at < len(text) and text[at] in " \t\n\r":
        at += 1
    return at


def wire_reply(doc: Any, steps: list[str] | None = None) -> Reply:
    """A provider-neutral reply from a generateContent response as the REST API sends it (camelCase JSON),
    with the chosen tokens' log-probabilities where they join to its text (their alternatives from
    ``steps``, where ``loads`` gave them apart). The text is the first candidate's text parts joined
    (thoughts left out; None without a text part), as the SDK's ``response.text`` says; a part of
    unexpected shape is left out, a body that is no object is ``MalformedResponse``."""
    if not isinstance(doc, dict):
        raise MalformedResponse(f"the body is a {type(doc).__name__}, not an object")
    usage = _object(doc.get("usageMetadata"))
    counted = Usage(
        prompt_tokens=_count(usage.get("promptTokenCount")),
        output_tokens=_count(usage.get("candidatesTokenCount")) + _count(usage.get("thoughtsTokenCount")),
        cached_tokens=_count(usage.get("cachedContentTokenCount")),
    )
    if blocked := _object(doc.get("promptFeedback")).get("blockReason"):
        return Reply(None, "blocked", counted, f"prompt blocked: {blocked}")
    candidates = doc.get("candidates")
    if not isinstance(candidates, list) or not candidates:
        return Reply(None, "other", counted, "no candidates in the response")
    first = _object(candidates[0])
    name = str(first.get("finishReason") or "STOP")
    finish: Finish = "stop"
    if name == "MAX_TOKENS":
        finish = "max_tokens"
    elif name in _BLOCKED:
        finish = "blocked"
    elif name not in ("STOP", "FINISH_REASON_UNSPECIFIED"):
        finish = "other"
    parts = _object(first.get("content")).get("parts")
    texts = [
        p["text"]
        for p in (parts if isinstance(parts, list) else [])
        if isinstance(p, dict) and isinstance(p.get("text"), str) and p.get("thought") is not True
    ]
    text = "".join(texts) if texts else None
    return Reply(text, finish, counted, name, aligned(_tokens(_object(first.get("logprobsResult")), steps), text))


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _count(value: Any) -> int:
    return value if type(value) is int else 0


def _tokens(result: dict[str, Any], raw: list[str] | None = None) -> Tokens | None:
    """The chosen tokens of a ``logprobsResult`` with their alternatives (``topCandidates``, one list a step,
    or ``raw``: each step's as JSON text; read only for the tokens looked at; a step of unexpected shape
    gives its token none); None without chosen tokens, or with chosen tokens of unexpected shape."""
    chosen = result.get("chosenCandidates")
    if not isinstance(chosen, list) or not _DICTS.issuperset(map(type, chosen)):
        return None
    try:
        texts, logprobs = list(map(itemgetter("token"), chosen)), list(map(itemgetter("logProbability"), chosen))
    except KeyError:
        return None
    steps = result.get("topCandidates")
    top = None
    if raw is not None and len(raw) == len(chosen):
        top = partial(_raw_top, raw)
    elif isinstance(steps, list) and len(steps) == len(chosen):
        top = partial(_top, steps)
    return from_pairs(texts, logprobs, top)


_DICTS = frozenset({dict})


def _raw_top(steps: list[str], index: int) -> Top:
    """The alternatives of step ``index``, given as the JSON text after its ``"candidates":`` key (up to the
    next step's); empty where that step is not an object whose first key that is."""
    if index and not steps[index - 1].rstrip(" \t\n\r").endswith("{"):
        return ()
    try:
        step = orjson.loads("{" + _STEP + steps[index].rstrip(" \t\n\r,{"))
    except orjson.JSONDecodeError:
        return ()
    return _pairs(_object(step).get("candidates"))


def _top(steps: list[Any], index: int) -> Top:
    """The alternatives of ``topCandidates`` step ``index``; empty if it is of unexpected shape."""
    return _pairs(_object(steps[index]).get("candidates"))


def _pairs(candidates: Any) -> Top:
    """A step's candidates as (text, log-probability) pairs; empty if they are of unexpected shape."""
    if not isinstance(candidates, list) or not all(isinstance(c, dict) for c in candidates):
        return ()
    texts = [c.get("token") for c in candidates]
    logprobs = [c.get("logProbability") for c in candidates]
    if not are_texts(texts) or not are_logprobs(logprobs):
        return ()
    return tuple(zip(texts, logprobs, strict=True))


INLINE_LIMIT = 200  # requests; bigger jobs upload a JSONL file (inline requests are capped at ~20 MB)
INLINE_MEDIA_BYTES = 10_000_000  # a job whose media take more goes as a file (inline, the whole job is one request)

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
        self.uploads = Uploads(provider.client, mapped_errors)
        """Media its jobs' requests carry as files; never deleted by the run, as a job may outlive it (a job
        collected by a later ``enrichkit jobs``): Gemini drops them after 48 hours."""

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
        limits = self.provider.capabilities.media
        uris: dict[str, str] = {}
        inline = 0
        with tempfile.TemporaryDirectory(prefix="enrichkit-job-") as folder:
            path = Path(folder) / f"{display_name}.jsonl"
            with path.open("w", encoding="utf-8") as out:
                for key, request in requests:  # one request's media held at a time
                    if files := by_file(request, limits):
                        uris |= await self.uploads.uris(files, self.model)
                    inline += sum(len(m.data) for m in request.media) - sum(len(m.data) for m in files)
                    out.write(self._line(key, request, uris) + "\n")
            if len(requests) <= INLINE_LIMIT and 4 * inline // 3 <= INLINE_MEDIA_BYTES:
                src = [self._inlined(key, request, uris) for key, request in requests]
            else:
                upload = types.UploadFileConfig(mime_type="jsonl", display_name=display_name)
                file = await _guard(self.provider.client.aio.files.upload(file=str(path), config=upload), self.model)
                src = str(file.name)
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
                    error = item.error
                    out[key] = self._failed(error.message if error else None, error.code if error else None)
                else:
                    out[key] = to_reply(item.response)
        elif dest is not None and dest.file_name:
            data = await _guard(self.provider.client.aio.files.download(file=dest.file_name), self.model)
            for line in data.decode("utf-8").splitlines():
                if line.strip():
                    key, value = self._result_line(line)
                    if key is not None:
                        out[key] = value
        return out

    async def cancel(self, name: str) -> None:
        await _guard(self.provider.client.aio.batches.cancel(name=name), self.model)

    def _failed(self, message: str | None, code: int | None) -> str:
        """Why one request failed; a refusal of log-probabilities is remembered (the next ask goes without)."""
        if refuses_logprobs(message or ""):
            self.provider.refused_logprobs()
        return _failed(message, code)

    def _result_line(self, line: str) -> tuple[str | None, Reply | str]:
        try:
            doc, steps = loads(line)
            key = doc.get("key") if isinstance(doc, dict) else None
            if not isinstance(key, str):
                return None, ""
            if "response" in doc:
                return key, wire_reply(doc["response"], steps)
            error = doc.get("error", {})
            return key, self._failed(error.get("message"), error.get("code"))
        except (json.JSONDecodeError, MalformedResponse, AttributeError):
            return None, ""

    def _config(self, request: Request) -> types.GenerateContentConfig:
        return self.provider.config(request).model_copy(update={"http_options": None})

    def _inlined(self, key: str, request: Request, uris: Mapping[str, str]) -> types.InlinedRequest:
        turn = contents(request, uris)
        return types.InlinedRequest(
            contents=[types.Content(role="user", parts=[types.Part(text=turn)])] if isinstance(turn, str) else turn,
            config=self._config(request),
            metadata={"key": key},
        )

    def _line(self, key: str, request: Request, uris: Mapping[str, str]) -> str:
        """One JSONL input line: the REST body of the live call's request."""
        body = rest_request(request, self._config(request), uris)
        return json.dumps({"key": key, "request": body}, ensure_ascii=False)


def _status(job: types.BatchJob) -> JobStatus:
    state = job.state.value if job.state is not None else ""
    return JobStatus(str(job.name), _STATES.get(state, "unknown"), job.display_name or "")


_GRPC_PASSING = {4: "DEADLINE_EXCEEDED", 8: "RESOURCE_EXHAUSTED", 13: "INTERNAL", 14: "UNAVAILABLE"}
"""The gRPC codes of a request's failure that may pass on another try, named as the reason says them."""


def _failed(message: str | None, code: int | None = None) -> str:
    """Why one request of a job failed, in the service's own (redacted) words (a passing code named)."""
    said = first_line(message or "") or "no response"
    return (
        f"batch request failed: {_GRPC_PASSING[code]}: {said}"
        if code in _GRPC_PASSING
        else f"batch request failed: {said}"
    )


async def _guard(call: Awaitable[Any], model: str) -> Any:
    """Await an SDK call, mapping its errors to enrichkit's provider errors."""
    with mapped_errors(model):
        return await call
