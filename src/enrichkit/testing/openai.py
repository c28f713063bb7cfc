"""A local OpenAI-compatible server for the real ``openai`` SDK (``base_url=stub.url``): chat
completions, and the Files + Batches APIs (``openai_batches``), each batch line answered like a live call.

An answer is a ``chat.completion`` whose content is the JSON for the request's ``response_format``
(a pack's items wrapped as ``{"items": [...]}``; finish ``stop``, ``length`` for max_tokens,
``content_filter`` for blocked), with ``choices[0].logprobs.content`` (``token``, ``logprob``, ``bytes``,
``top_logprobs``) where ``logprobs`` asks for them. An error is ``{"error": {"message", "type", "param",
"code", ...}}`` as OpenAI and Groq send it, a retry delay as ``retry-after-ms``, a used-up quota as
``insufficient_quota``.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable
from typing import Any, Unpack

from enrichkit.testing.faults import Answer, Asked, Error, Wire, tokens, tokens_of
from enrichkit.testing.logprobs import Scripted, unlikely
from enrichkit.testing.media import Parts, data_url, joined, user_contents
from enrichkit.testing.openai_batches import OpenAIBatches, OpenAIJob
from enrichkit.testing.wire import ANY_MODEL, Pacing, WireStub, unwrapped

_ROUTES = [
    (method, re.compile(rf"^(?:/.*)?/v1{path}$"), action)
    for method, path, action in [
        ("POST", r"/chat/completions", "generate"),
        ("POST", r"/files", "upload"),
        ("GET", r"/files/([^/]+)", "file"),
        ("GET", r"/files/([^/]+)/content", "content"),
        ("POST", r"/batches", "create"),
        ("GET", r"/batches", "list"),
        ("GET", r"/batches/([^/]+)", "retrieve"),
        ("POST", r"/batches/([^/]+)/cancel", "cancel"),
    ]
]
FINISH = {"stop": "stop", "max_tokens": "length", "blocked": "content_filter"}


def completion(
    content: str | None, finish: str = "stop", *, model: str = "stub", prompt_tokens: int = 0
) -> dict[str, Any]:
    """A ``chat.completion`` body carrying ``content``."""
    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": tokens(content or "")}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:8]}", "object": "chat.completion", "created": 0, "model": model,
            "choices": [choice], "usage": usage}  # fmt: skip


def logprobs_content(tokens: list[Scripted], top: int = 0, filled: bool = False) -> list[dict[str, Any]]:
    """``choices[].logprobs.content``: an entry a token, with ``top`` alternatives, most likely first (the
    chosen one, and its rival value's token with what the chosen leaves; ``filled``: made up to ``top``
    with unlikely tokens, as the real API gives them). A token holding a character of
    several bytes is cut one byte into it, as OpenAI's byte-level tokens cut such characters: the first
    part's token is shown as its bytes (``bytes:\\xe2``), its probability on the first part."""
    entries = []
    for text, logprob, rival in tokens:
        data = text.encode()
        wide = next((n for n, ch in enumerate(text) if len(ch.encode()) > 1), None)
        at = len(data) if wide is None else len(text[:wide].encode()) + 1
        for n, part in enumerate(p for p in (data[:at], data[at:]) if p):
            entry = {"token": _shown(part), "logprob": 0.0 if n else logprob, "bytes": list(part)}
            alternatives: list[dict[str, Any]] = [dict(entry)]
            if rival is not None and not n:
                left = max(1e-9, 1 - math.exp(logprob))
                alternatives.append({"token": rival, "logprob": math.log(left), "bytes": list(rival.encode())})
            alternatives.sort(key=lambda a: -float(a["logprob"]))
            if filled:
                alternatives += [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in unlikely(top)]
            entries.append({**entry, "top_logprobs": alternatives[:top]})
    return entries


def _shown(data: bytes) -> str:
    """A token's text: its bytes as UTF-8, or ``bytes:\\x..`` for a part of a character."""
    try:
        return data.decode()
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{b:02x}" for b in data)


def error_body(status: int, message: str, code: str | None = None, **fields: Any) -> dict[str, Any]:
    """An error body; a 429's ``code`` defaults to ``rate_limit_exceeded``, the ``type`` is
    ``requests`` for a rate limit, ``invalid_request_error`` for another code, else ``stub_error``."""
    code = code or ("rate_limit_exceeded" if status == 429 else None)
    kind = "stub_error" if code is None else "requests" if code == "rate_limit_exceeded" else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": None, "code": code, **fields}}


def _user_parts(messages: list[dict[str, Any]]) -> tuple[Parts, str]:
    """The user messages' parts: text, and (MIME type, bytes) of each ``image_url`` and ``file`` part (data
    URLs); and why a part is malformed (an empty string if none is)."""
    parts: list[str | tuple[str, bytes]] = []
    for content in user_contents(messages):
        if isinstance(content, str):
            parts.append(content)
            continue
        for part in content:
            kind = part.get("type")
            try:
                if kind == "text":
                    parts.append(str(part["text"]))
                elif kind == "image_url":
                    parts.append(data_url(str(part["image_url"]["url"])))
                elif kind == "file":
                    parts.append(data_url(str(part["file"]["file_data"])))
                else:
                    return parts, f"Invalid content part type: {kind!r}"
            except (KeyError, TypeError, ValueError) as exc:
                return parts, f"Invalid {kind} content part: {exc}"
    return parts, ""


def asked_of(body: dict[str, Any], headers: dict[str, str], **more: Any) -> Asked:
    """A chat-completions request as ``Asked``."""
    messages = body.get("messages", [])
    schema, wrapped = unwrapped(body.get("response_format", {}).get("json_schema", {}).get("schema", {}))
    parts, malformed = _user_parts(messages)
    prompt, media = joined(parts)
    return Asked(
        str(body.get("model", "")),
        "".join(str(m.get("content", "")) for m in messages if m.get("role") == "system"),
        prompt,
        schema,
        body,
        headers,
        service_tier=body.get("service_tier"),
        wrapped=wrapped,
        logprobs=bool(body.get("logprobs")),
        wire="openai",
        media=media,
        malformed=malformed,
        **more,
    )


class OpenAIStub(WireStub):
    """The OpenAI-compatible stub. A batch is ``validating`` when created; with ``auto`` it is
    ``in_progress`` at its first retrieve and ``completed`` at its second, else only ``advance`` moves it.
    ``shuffle_outputs`` mixes the order of result lines, ``unknown_ids`` adds results for ids the job never
    held. ``api_calls`` holds every Files/Batches request by action ("upload", "file", "content",
    "create", "list", "retrieve", "cancel")."""

    prefix = "/v1"
    routes = _ROUTES

    def __init__(
        self,
        *,
        auto: bool = True,
        shuffle_outputs: bool = False,
        unknown_ids: int = 0,
        models: Iterable[str] | None = ANY_MODEL,
        **pacing: Unpack[Pacing],
    ) -> None:
        super().__init__(models=models, **pacing)
        self.batches = OpenAIBatches(
            lambda job, line: self.answer(
                asked_of(line.get("body", {}), {}, job=job.id, custom_id=str(line.get("custom_id")))
            ),
            auto=auto,
            shuffle_outputs=shuffle_outputs,
            unknown_ids=unknown_ids,
        )

    @property
    def jobs(self) -> dict[str, OpenAIJob]:
        return self.batches.jobs

    @property
    def files(self) -> dict[str, bytes]:
        return self.batches.files

    def advance(self, name: str, status: str = "completed", answered: int | None = None) -> OpenAIJob:
        """Move batch ``name`` to ``status``; a done batch answers its first ``answered`` lines (all) and
        puts the rest in its error file (``expired``, ``cancelled``)."""
        with self.lock:
            job = self.jobs[name]
            self.batches.move(job, status, answered)
            return job

    def model_request(self, action: str, match: re.Match[str], headers: dict[str, str], raw: bytes) -> Wire:
        return self.answer(asked_of(json.loads(raw), headers))

    def api_request(
        self, action: str, match: re.Match[str], path: str, headers: dict[str, str], raw: bytes
    ) -> Wire | Error:
        return self.batches.serve(action, match.group(1) if match.groups() else "", headers, raw)

    def answer_wire(self, answer: Answer, asked: Asked) -> Wire:
        content = answer.content(asked)
        body = completion(content, FINISH[answer.finish], model=asked.model, prompt_tokens=asked.prompt_tokens)
        pairs = tokens_of(answer, asked, self.probs)
        if pairs is not None:
            top = asked.body.get("top_logprobs")
            content_ = logprobs_content(pairs, top if isinstance(top, int) else 0, self.filled)
            body["choices"][0]["logprobs"] = {"content": content_, "refusal": None}
        return Wire(body=body, delay=answer.delay)

    def unknown_model(self, model: str) -> Error:
        return Error(404, f"The model `{model}` does not exist or you do not have access to it.", "model_not_found")

    def error_wire(self, error: Error) -> Wire:
        headers = {} if error.retry_after is None else {"retry-after-ms": str(round(error.retry_after * 1000))}
        code = "insufficient_quota" if error.quota is not None else error.code
        return Wire(error.status, error_body(error.status, error.message, code, **error.fields), headers, error.delay)
