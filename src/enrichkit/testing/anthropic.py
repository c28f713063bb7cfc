"""A local Anthropic server for the real ``anthropic`` SDK (``base_url=stub.url``): Messages and Message
Batches, each batched request answered like a live call.

Every message request must force one tool call (``tool_choice``); an answer is that tool call, its
``input`` the JSON for the tool's ``input_schema`` (a pack's items wrapped as ``{"items": [...]}``;
stop ``tool_use``, ``max_tokens``, ``refusal`` for blocked), or a text block when the answer's text is
no JSON object. An error is Anthropic's error body (its ``type`` the code, by default the status's:
``overloaded_error`` for 529, ...), a retry delay as ``retry-after``, a used-up quota as ``billing_error``.

Message Batches (``anthropic_batches``): with ``auto`` a batch ends at its second retrieve, else only
``advance`` ends it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from typing import Any, Unpack

from enrichkit.testing.anthropic_batches import AnthropicJob, MessageBatches
from enrichkit.testing.faults import Answer, Asked, Error, Wire, tokens
from enrichkit.testing.media import Parts, decoded, joined, user_contents
from enrichkit.testing.wire import ANY_MODEL, Pacing, WireStub, unwrapped

FINISH = {"stop": "tool_use", "max_tokens": "max_tokens", "blocked": "refusal"}
TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_ROUTES = [
    (method, re.compile(rf"^/v1/{path}$"), action)
    for method, path, action in [
        ("POST", r"messages", "generate"),
        ("POST", r"messages/batches", "create"),
        ("GET", r"messages/batches", "list"),
        ("GET", r"messages/batches/([^/]+)", "retrieve"),
        ("POST", r"messages/batches/([^/]+)/cancel", "cancel"),
        ("GET", r"messages/batches/([^/]+)/results", "results"),
    ]
]


def error_body(status: int, kind: str, message: str) -> dict[str, Any]:
    """An error body as Anthropic sends it (``overloaded_error`` 529, ``rate_limit_error`` 429, ...)."""
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_stub"}


def message(tool: str, answer: Any, model: str, prompt_tokens: int, stop: str = "tool_use") -> dict[str, Any]:
    """A Message whose one content block calls ``tool`` with ``answer`` (a text block if ``answer`` is text)."""
    if isinstance(answer, str):
        block: dict[str, Any] = {"type": "text", "text": answer}
    else:
        block = {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:12]}", "name": tool, "input": answer}
    usage = {"input_tokens": prompt_tokens, "output_tokens": tokens(json.dumps(answer))}
    return {"id": f"msg_{uuid.uuid4().hex[:12]}", "type": "message", "role": "assistant", "model": model,
            "content": [block], "stop_reason": stop, "stop_sequence": None, "usage": usage}  # fmt: skip


def _user_parts(messages: list[dict[str, Any]]) -> tuple[Parts, str]:
    """The user messages' blocks: text, and (MIME type, bytes) of each base64 ``image`` and ``document``
    block; and why a block is malformed (an empty string if none is)."""
    parts: list[str | tuple[str, bytes]] = []
    for content in user_contents(messages):
        if isinstance(content, str):
            parts.append(content)
            continue
        for block in content:
            kind = block.get("type")
            if kind == "text":
                if not str(block.get("text", "")).strip():
                    return parts, "messages: text content blocks must contain non-whitespace text"
                parts.append(str(block["text"]))
            elif kind in ("image", "document"):
                source = block.get("source", {})
                if source.get("type") != "base64" or not source.get("media_type"):
                    return parts, f"messages: {kind} source must be base64 with a media_type"
                try:
                    parts.append((str(source["media_type"]), decoded(str(source.get("data", "")))))
                except ValueError as exc:
                    return parts, f"messages: {kind}.source.data: {exc}"
            else:
                return parts, f"messages: the stub takes text, image and document blocks, not {kind!r}"
    return parts, ""


def asked_of(body: dict[str, Any], headers: dict[str, str], **more: Any) -> Asked | None:
    """A forced-tool-call Messages request as ``Asked`` (None for any other request)."""
    tool = str(body.get("tool_choice", {}).get("name", ""))
    spec = next((t for t in body.get("tools", []) if t.get("name") == tool), None)
    if spec is None or body.get("tool_choice", {}).get("type") != "tool":
        return None
    system = body.get("system", "")
    system = system if isinstance(system, str) else "".join(b.get("text", "") for b in system)
    parts, malformed = _user_parts(body.get("messages", []))
    prompt, media = joined(parts)
    schema, wrapped = unwrapped(spec["input_schema"])
    tier = body.get("service_tier")
    return Asked(
        str(body.get("model", "")),
        system,
        prompt,
        schema,
        body,
        headers,
        service_tier=tier,
        wrapped=wrapped,
        wire="anthropic",
        media=media,
        malformed=malformed,
        **more,
    )


class AnthropicStub(WireStub):
    """The Anthropic stub; ``api_calls`` holds every Message Batches request by action ("create", "list",
    "retrieve", "cancel", "results")."""

    routes = _ROUTES

    def __init__(
        self,
        *,
        auto: bool = True,
        shuffle_outputs: bool = False,
        models: Iterable[str] | None = ANY_MODEL,
        **pacing: Unpack[Pacing],
    ) -> None:
        super().__init__(models=models, **pacing)
        self.batches = MessageBatches(
            lambda job, request: self._message(
                request.get("params", {}), {}, job=job.id, custom_id=str(request["custom_id"])
            ),
            self.root,
            auto=auto,
            shuffle_outputs=shuffle_outputs,
        )

    @property
    def jobs(self) -> dict[str, AnthropicJob]:
        return self.batches.jobs

    def advance(self, name: str, answered: int | None = None, rest: str = "expired") -> AnthropicJob:
        """End batch ``name``: its first ``answered`` requests (all) answered, the others ``rest``."""
        with self.lock:
            job = self.jobs[name]
            self.batches.end(job, answered, rest)
            return job

    def model_request(self, action: str, match: re.Match[str], headers: dict[str, str], raw: bytes) -> Wire:
        return self._message(json.loads(raw), headers)

    def api_request(
        self, action: str, match: re.Match[str], path: str, headers: dict[str, str], raw: bytes
    ) -> Wire | Error:
        return self.batches.serve(action, match.group(1) if match.groups() else "", raw)

    def answer_wire(self, answer: Answer, asked: Asked) -> Wire:
        tool = str(asked.body.get("tool_choice", {}).get("name", ""))
        text = answer.content(asked) or ""
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        called = isinstance(value, dict)
        stop = FINISH[answer.finish] if called or answer.finish != "stop" else "end_turn"
        body = message(tool, value if called else text, asked.model, asked.prompt_tokens, stop)
        return Wire(body=body, delay=answer.delay)

    def unknown_model(self, model: str) -> Error:
        return Error(404, f"model: {model}")

    def error_wire(self, error: Error) -> Wire:
        kind = "billing_error" if error.quota is not None else error.code or TYPES.get(error.status, "api_error")
        headers = {} if error.retry_after is None else {"retry-after": f"{error.retry_after:g}"}
        return Wire(error.status, error_body(error.status, kind, error.message), headers, error.delay)

    def _message(self, body: dict[str, Any], headers: dict[str, str], **more: Any) -> Wire:
        asked = asked_of(body, headers, **more)
        if asked is None:
            return self.error_wire(Error(400, "this stub answers forced tool calls only"))
        return self.answer(asked)
