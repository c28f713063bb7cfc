"""A local server speaking the Gemini REST API for the real google-genai client
(``HttpOptions(base_url=stub.url)``, enrichkit's ``--base-url``): generateContent, countTokens, and the
Batch and Files APIs (``gemini_batches``), each batched request answered like a live call.

An answer is a generateContent response (finish STOP, MAX_TOKENS or SAFETY for blocked), with its
tokens' log-probabilities as ``logprobsResult`` (``chosenCandidates``; ``topCandidates`` for
``logprobs: N``) where ``responseLogprobs`` asks for them; an error is Google's error body, a retry delay as
RetryInfo, a used-up quota as QuotaFailure.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any, Unpack
from urllib.parse import parse_qs

from enrichkit.testing.faults import Answer, Asked, Error, Wire, tokens, tokens_of
from enrichkit.testing.gemini_batches import GeminiBatches, GeminiJob
from enrichkit.testing.logprobs import Scripted, unlikely
from enrichkit.testing.media import Parts, decoded, joined
from enrichkit.testing.wire import ANY_MODEL, Pacing, WireStub

_ROUTES = [
    (method, re.compile(rf"^/(?:.*/)?{path}$"), action)
    for method, path, action in [
        ("POST", r"(v[0-9a-z]+)/models/([^/:]+):batchGenerateContent", "batchGenerateContent"),
        ("POST", r"(v[0-9a-z]+)/models/([^/:]+):countTokens", "count"),
        ("POST", r"(v[0-9a-z]+)/models/([^/:]+):\w+", "generate"),
        ("GET", r"(v[0-9a-z]+)/batches", "batches.list"),
        ("GET", r"(v[0-9a-z]+)/batches/([^/:]+)", "batches.get"),
        ("POST", r"(v[0-9a-z]+)/batches/([^/:]+):cancel", "batches.cancel"),
        ("DELETE", r"(v[0-9a-z]+)/batches/([^/:]+)", "batches.delete"),
        ("POST", r"upload/(v[0-9a-z]+)/files", "files.upload"),
        ("GET", r"(v[0-9a-z]+)/files/([^/:]+)", "files.get"),
        ("GET", r"(v[0-9a-z]+)/files/([^/:]+):download", "files.download"),
        ("DELETE", r"(v[0-9a-z]+)/files/([^/:]+)", "files.delete"),
    ]
]
FINISH = {"stop": "STOP", "max_tokens": "MAX_TOKENS", "blocked": "SAFETY"}
STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_RPC = "type.googleapis.com/google.rpc."


def response(text: str | None, finish: str = "STOP", prompt_tokens: int = 0) -> dict[str, Any]:
    """A generateContent response body carrying ``text``."""
    candidate: dict[str, Any] = {"finishReason": finish, "index": 0}
    candidate["content"] = {"role": "model", "parts": [{"text": text}]} if text is not None else {"role": "model"}
    usage = {"promptTokenCount": prompt_tokens, "candidatesTokenCount": tokens(text or "")}
    usage["totalTokenCount"] = usage["promptTokenCount"] + usage["candidatesTokenCount"]
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": "stub"}


def logprobs_result(tokens: list[Scripted], top: int = 0, filled: bool = False) -> dict[str, Any]:
    """A candidate's ``logprobsResult``: each chosen token (an id of the stub's making) and, for ``top``,
    up to that many candidates a step, most likely first: the chosen, and its rival value's token (with
    what the chosen leaves); ``filled``: made up to ``top`` with unlikely tokens, as the real API gives them."""
    chosen = [{"token": t, "tokenId": _token_id(t), "logProbability": lp} for t, lp, _ in tokens]
    result: dict[str, Any] = {"chosenCandidates": chosen, "logProbabilitySum": sum(lp for _, lp, _ in tokens)}
    if top > 0:
        result["topCandidates"] = [
            {"candidates": _candidates(c, rival, top, filled)} for c, (_, _, rival) in zip(chosen, tokens, strict=True)
        ]
    return result


def _token_id(token: str) -> int:
    return sum(token.encode()) % 256_000


def _candidates(chosen: dict[str, Any], rival: str | None, n: int, filled: bool) -> list[dict[str, Any]]:
    """A step's candidates: the chosen token and, where it has one, its rival with what it leaves; made-up
    others only if ``filled`` (the real API's ``n`` a step makes every answer ``n`` times bigger to parse)."""
    found = [chosen]
    if rival is not None:
        left = max(1e-9, 1 - math.exp(chosen["logProbability"]))
        found.append({"token": rival, "tokenId": _token_id(rival), "logProbability": math.log(left)})
    found.sort(key=lambda c: -c["logProbability"])
    if filled:
        found += [{"token": token, "tokenId": _token_id(token), "logProbability": lp} for token, lp in unlikely(n)]
    return found[:n]


def error_body(status: int, message: str, name: str | None = None, *details: dict[str, Any]) -> dict[str, Any]:
    """A Google error body; ``name`` (the ``status`` field) defaults to the HTTP status's."""
    error: dict[str, Any] = {"code": status, "message": message, "status": name or STATUS.get(status, "UNKNOWN")}
    if details:
        error["details"] = list(details)
    return {"error": error}


def _text(parts: list[dict[str, Any]]) -> str:
    return "".join(p.get("text", "") for p in parts)


Resolve = Callable[[str], tuple[bytes | None, str]]
"""The bytes of the uploaded file a URI names, or why a request may not use it."""


def _user_parts(contents: list[dict[str, Any]], resolve: Resolve | None = None) -> tuple[Parts, str]:
    """The parts of the user turns: text, and (MIME type, bytes) of each ``inlineData`` and each ``fileData``
    (its URI ``resolve``d to the uploaded bytes); and why a part is malformed (an empty string if none is)."""
    parts: list[str | tuple[str, bytes]] = []
    for content in contents:
        for part in content.get("parts", []):
            if "text" in part:
                parts.append(str(part["text"]))
            elif ("fileData" in part or "file_data" in part) and resolve is not None:
                ref = part.get("fileData") or part.get("file_data") or {}
                data, why = resolve(str(ref.get("fileUri") or ref.get("file_uri") or ""))
                if data is None:
                    return parts, why
                parts.append((str(ref.get("mimeType") or ref.get("mime_type") or ""), data))
            elif "inlineData" in part or "inline_data" in part:  # protobuf's JSON takes either spelling
                blob = part.get("inlineData") or part.get("inline_data") or {}
                mime = blob.get("mimeType") or blob.get("mime_type")
                if not mime:
                    return parts, "inlineData needs a mimeType"
                try:
                    parts.append((str(mime), decoded(str(blob.get("data", "")), urlsafe=True)))
                except ValueError as exc:
                    return parts, f"Invalid value at 'contents[0].parts[1].inline_data.data' ({exc})"
            else:
                return parts, f"the stub takes text, inlineData and fileData parts, not {sorted(part)}"
    return parts, ""


def asked_of(
    model: str, body: dict[str, Any], headers: dict[str, str], resolve: Resolve | None = None, **more: Any
) -> Asked:
    """A generateContent (or countTokens) request as ``Asked`` (``resolve``: the uploaded files' bytes)."""
    config = body.get("generationConfig", {})
    parts, malformed = _user_parts(body.get("contents", []), resolve)
    prompt, media = joined(parts)
    return Asked(
        model,
        _text(body.get("systemInstruction", {}).get("parts", [])),
        prompt,
        config.get("responseJsonSchema") or config.get("responseSchema") or {},
        body,
        headers,
        service_tier=body.get("serviceTier"),
        logprobs=bool(config.get("responseLogprobs")),
        wire="gemini",
        media=media,
        malformed=malformed,
        **more,
    )


class GeminiStub(WireStub):
    """The Gemini stub. Batch jobs are PENDING at create; with ``batch_auto`` a job is RUNNING on its
    first GET and SUCCEEDED on its second, otherwise only ``advance`` changes its state.
    ``shuffle_outputs`` serves results out of request order; ``drop_inline_metadata`` leaves the keys off
    inline results. ``api_calls`` holds the Batch and Files requests by action: "batchGenerateContent",
    "batches.get", "batches.list", "batches.cancel", "batches.delete", "files.upload" (the start; each
    data request is "files.upload.chunk"), "files.get", "files.download", "files.delete" (``fail_api`` scripts
    their faults). An uploaded file is ``PROCESSING`` for its first ``processing`` gets, then ``ACTIVE`` (or
    ``FAILED``, for a content whose sha256 is in ``failing_files``); a request's ``fileData`` parts are read
    from the uploaded bytes, and one naming a file missing or not ``ACTIVE`` is refused as the API does."""

    routes = _ROUTES

    def __init__(
        self,
        *,
        batch_auto: bool = True,
        shuffle_outputs: bool = False,
        drop_inline_metadata: bool = False,
        processing: int = 0,
        models: Iterable[str] | None = ANY_MODEL,
        **pacing: Unpack[Pacing],
    ) -> None:
        super().__init__(models=models, **pacing)
        self.batches = GeminiBatches(
            lambda job, key, request: self.answer(
                asked_of(job.model, request, job.headers, self.batches.resolve, job=job.name, custom_id=key)
            ),
            self.url,
            auto=batch_auto,
            shuffle_outputs=shuffle_outputs,
            drop_inline_metadata=drop_inline_metadata,
        )
        self.batches.processing = processing

    @property
    def jobs(self) -> dict[str, GeminiJob]:
        return self.batches.jobs

    @property
    def files(self) -> dict[str, bytes]:
        return self.batches.files

    @property
    def failing_files(self) -> set[str]:
        return self.batches.failing

    def advance(self, name: str, state: str = "BATCH_STATE_SUCCEEDED") -> GeminiJob:
        """Move job ``name`` to a wire ``state`` (answering its requests when it succeeds)."""
        with self.lock:
            job = self.jobs[name]
            self.batches.set_state(job, state)
            return job

    def route(self, method: str, path: str) -> tuple[str, re.Match[str]] | None:
        found = super().route(method, path)
        if found is not None and found[0] == "files.upload" and "upload_id=" in path:
            return "files.upload.chunk", found[1]
        return found

    def model_request(self, action: str, match: re.Match[str], headers: dict[str, str], raw: bytes) -> Wire:
        with self.lock:
            asked = asked_of(match.group(2), json.loads(raw or b"{}"), headers, self.batches.resolve, action=action)
        if action == "count":
            return self.count(asked) or Wire(body={"totalTokens": asked.prompt_tokens})
        return self.answer(asked)

    def api_request(
        self, action: str, match: re.Match[str], path: str, headers: dict[str, str], raw: bytes
    ) -> Wire | Error:
        route, _, query = path.partition("?")
        upload = parse_qs(query).get("upload_id", [""])[0]
        body = json.loads(raw) if raw and not upload else {}
        name = match.group(2) if (match.lastindex or 0) > 1 else ""
        return self.batches.serve(action, route, name, body, headers, upload, raw)

    def answer_wire(self, answer: Answer, asked: Asked) -> Wire:
        body = response(answer.content(asked), FINISH[answer.finish], asked.prompt_tokens)
        pairs = tokens_of(answer, asked, self.probs)
        if pairs is not None:
            candidate = body["candidates"][0]
            top = asked.body.get("generationConfig", {}).get("logprobs")
            candidate["logprobsResult"] = logprobs_result(pairs, top if isinstance(top, int) else 0, self.filled)
            candidate["avgLogprobs"] = sum(lp for _, lp, _ in pairs) / max(1, len(pairs))
        return Wire(body=body, delay=answer.delay)

    def unknown_model(self, model: str) -> Error:
        return Error(
            404,
            f"models/{model} is not found for API version v1beta, or is not supported for generateContent."
            " Call ListModels to see the list of available models and their supported methods.",
        )

    def error_wire(self, error: Error) -> Wire:
        details: list[dict[str, Any]] = []
        if error.retry_after is not None:
            details.append({"@type": _RPC + "RetryInfo", "retryDelay": f"{error.retry_after:.3f}s"})
        if error.quota is not None:
            details.append({"@type": _RPC + "QuotaFailure", "violations": [{"quotaId": error.quota}]})
        return Wire(error.status, error_body(error.status, error.message, error.code, *details), delay=error.delay)
