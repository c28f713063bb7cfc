"""The OpenAI-style chat-completions format, shared by every provider that speaks it (OpenAI-compatible
endpoints, llama.cpp in-process): the answer format asked for, the reply read back, an error body.

Structured outputs want an object at the root, so a pack's array schema travels wrapped as
``{"items": [...]}`` and the reply is unwrapped before the engine sees it: to the array's own text as the
model wrote it, so that the answer's tokens (``logprobs.content``, where asked for) cover it exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from enrichkit.errors import ProviderError
from enrichkit.providers.base import Finish, Reply, Usage
from enrichkit.providers.classify import by_status
from enrichkit.providers.logprobs import aligned, cut, from_entries

FINISH: dict[str, Finish] = {"stop": "stop", "length": "max_tokens", "content_filter": "blocked"}
QUOTA_CODES = frozenset({"insufficient_quota"})


def wraps(schema: Mapping[str, Any]) -> bool:
    """Whether ``schema`` travels wrapped as ``{"items": ...}`` (an array at the root)."""
    return schema.get("type") == "array"


def wrapped(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """``schema`` with an array at the root wrapped as ``{"items": ...}`` (an object schema as is)."""
    if wraps(schema):
        return {"type": "object", "properties": {"items": schema}, "required": ["items"]}
    return schema


def response_format(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The ``response_format`` asking for answers of ``schema``."""
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": wrapped(schema)}}


def unwrap(text: str) -> str:
    """The array inside ``{"items": [...]}``, as it stands in ``text``; anything else is passed on for
    validation to reject."""
    span = items_span(text)
    return text if span is None else text[span[0] : span[1]]


_DECODER = json.JSONDecoder()


def items_span(text: str) -> tuple[int, int] | None:
    """Where the value of ``"items"`` stands in ``text``, a JSON object (its last ``"items"``, the one
    ``json.loads`` keeps); None if ``text`` is no such object."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or "items" not in doc:
        return None
    span = None
    at = _skip(text, _skip(text, 0) + 1)  # past "{"
    while text[at] == '"':
        key, at = _DECODER.raw_decode(text, at)
        at = _skip(text, _skip(text, at) + 1)  # past ":"
        _, end = _DECODER.raw_decode(text, at)
        if key == "items":
            span = (at, end)
        at = _skip(text, end)
        if text[at] == ",":
            at = _skip(text, at + 1)
    return span


def _skip(text: str, at: int) -> int:
    """The first index from ``at`` that is not JSON whitespace."""
    while at < len(text) and text[at] in " \t\n\r":
        at += 1
    return at


def to_reply(doc: Mapping[str, Any], *, wrapped: bool = False, provider: str = "the server") -> Reply:
    """A provider-neutral reply from a chat completion (``wrapped``: unwrap ``{"items": ...}``), with the
    tokens of ``choices[0].logprobs.content`` where they join to its text (over the unwrapped part); an
    ``error`` document (what an in-process server answers instead of an HTTP error) is raised."""
    if isinstance(doc.get("error"), Mapping):
        error = doc["error"]
        status = error.get("code")
        raise error_of(status if isinstance(status, int) else 500, error, provider, str(doc.get("model", "")))
    usage: Mapping[str, Any] = doc["usage"] if isinstance(doc.get("usage"), Mapping) else {}
    details = usage.get("prompt_tokens_details")
    counted = Usage(
        prompt_tokens=_count(usage.get("prompt_tokens")),
        output_tokens=_count(usage.get("completion_tokens")),
        cached_tokens=_count(details.get("cached_tokens")) if isinstance(details, Mapping) else 0,
    )
    choices = doc.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], Mapping) else None
    if choice is None:
        return Reply(None, "other", counted, "no choices in the response")
    reason = str(choice.get("finish_reason") or "stop")
    message = choice.get("message")
    text = message.get("content") if isinstance(message, Mapping) else None
    if not isinstance(text, str):
        return Reply(None, FINISH.get(reason, "other"), counted, reason)
    logprobs = choice.get("logprobs")
    tokens = aligned(from_entries(logprobs.get("content"), text), text) if isinstance(logprobs, Mapping) else None
    if wrapped and (span := items_span(text)) is not None:
        text = text[span[0] : span[1]]
        tokens = None if tokens is None else cut(tokens, *span)
    return Reply(text, FINISH.get(reason, "other"), counted, reason, tokens)


def _count(value: Any) -> int:
    return value if isinstance(value, int) else 0


def error_of(
    status: int, error: Mapping[str, Any], provider: str, model: str, retry_after: float | None = None
) -> ProviderError:
    """The kind of a chat-completions error body ``{"message", "type", "code"}`` answered with ``status``:
    ``insufficient_quota`` is an exhausted quota, ``context_length_exceeded`` a prompt too long."""
    code = error.get("code")
    kind = str(code) if isinstance(code, str) and code else str(error.get("type") or "")
    return by_status(
        status,
        str(error.get("message") or ""),
        provider=provider,
        model=model,
        code=kind,
        retry_after=retry_after,
        exhausted=kind if kind in QUOTA_CODES or error.get("type") in QUOTA_CODES else "",
    )
