"""The fault language every test double speaks: a request as ``Asked``, what to answer as an ``Outcome``.

A fault reads the request and returns an outcome (None: the default answer). Each stub renders an
outcome in its own wire format, and ``scripted`` at the provider seam, so one fault means the same on
every provider: ``drop_ids("r3")`` loses r3 from a Gemini, OpenAI or Anthropic answer alike.
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from enrichkit.providers.function import find_records, schema_ids
from enrichkit.testing.answers import default_answer
from enrichkit.testing.logprobs import Probs, Scripted, scripted_tokens
from enrichkit.testing.media import with_seen


def tokens(text: str) -> int:
    """The test doubles' token count: four characters a token."""
    return len(text) // 4


@dataclass
class Asked:
    """One model request, whatever the wire: live (``job`` None) or inside a batch job."""

    model: str
    system: str
    prompt: str
    schema: dict[str, Any]
    """The answer schema as the engine made it (a pack's array, a single row's object), unwrapped."""
    body: dict[str, Any] = field(default_factory=dict)
    """The request as the wire carried it (empty at the provider seam)."""
    headers: dict[str, str] = field(default_factory=dict)
    """Its HTTP headers, names lower-cased."""
    action: Literal["generate", "count"] = "generate"
    """``count`` for a token count (recorded, answered for free, never scripted)."""
    job: str | None = None
    custom_id: str | None = None
    """The request's key in its batch job."""
    service_tier: str | None = None
    wrapped: bool = False
    """Whether the wire carries a pack's answer wrapped as ``{"items": [...]}`` (OpenAI, Anthropic)."""
    received: float = field(default_factory=time.monotonic)
    """When it arrived: the wall clock at a stub, the event loop's clock at the seam (``scripted``)."""
    logprobs: bool = False
    """Whether it asks for token log-probabilities."""
    wire: Literal["gemini", "openai", "anthropic", "function"] = "function"
    """The API it came by (``function``: the provider seam)."""
    media: list[tuple[str | None, str, bytes]] = field(default_factory=list)
    """Its images and documents, each with the pack id of the record it follows (None for a single row),
    its MIME type and its bytes (``testing.media.joined``)."""
    malformed: str = ""
    """Why the wire's media parts are not in the shape its API takes (answered 400, as the API would)."""

    @property
    def packed(self) -> bool:
        return self.schema.get("type") == "array"

    @property
    def ids(self) -> list[str]:
        """The pack ids the answer schema allows, in order (empty for a single row)."""
        return schema_ids(self.schema)

    @property
    def records(self) -> list[dict[str, Any]]:
        """The records in the prompt (a pack's objects with their ids, or a single row's one object), each
        media placeholder replaced by what its media shows (``testing.media.with_seen``)."""
        return with_seen(find_records(self.prompt, self.ids), self.media)

    @property
    def rows(self) -> int:
        return len(self.records)

    @property
    def prompt_tokens(self) -> int:
        return tokens(self.system + self.prompt)

    @property
    def answer(self) -> Any:
        """The default answer (``answers.default_answer``): a pack's items, or a single row's object."""
        return default_answer(self.schema, self.records, self.system)

    def text_of(self, items: Any) -> str:
        """The JSON text of an answer as the wire carries it (a pack's items wrapped where it wraps them)."""
        return json.dumps({"items": items} if self.wrapped and self.packed else items)


Finish = Literal["stop", "max_tokens", "blocked"]


@dataclass
class Answer:
    """The model's answer: ``items`` (a pack's items or a single row's object, as JSON) or raw ``text``
    (neither: no content), how generation finished, sent after ``delay`` seconds; ``probs``: the
    probabilities of its values, where asked for (None: the stub's own, ``Script.probs``)."""

    items: Any = None
    text: str | None = None
    finish: Finish = "stop"
    delay: float = 0.0
    probs: Probs | None = None

    def content(self, asked: Asked) -> str | None:
        """The text the wire carries."""
        if self.text is not None:
            return self.text
        return None if self.items is None else asked.text_of(self.items)


def tokens_of(answer: Answer, asked: Asked, probs: Probs) -> list[Scripted] | None:
    """The tokens of ``answer``'s text (each with its log-probability and a rival value's token), if
    ``asked`` wants them and there is text (``answer.probs``, else ``probs``, set the values'
    probabilities)."""
    text = answer.content(asked)
    if text is None or not asked.logprobs:
        return None
    items = None if answer.text is not None else answer.items
    if items is not None and asked.wrapped and asked.packed:
        items = {"items": items}
    records: dict[str | None, dict[str, Any]] = {}
    for record in asked.records:
        fields = {k: v for k, v in record.items() if k != "id"}
        records[str(record.get("id")) if asked.packed else None] = fields
    return scripted_tokens(items, text, answer.probs or probs, records, asked.schema)


@dataclass
class Error:
    """An error answer: HTTP ``status`` and ``message``; the provider's error ``code`` (None: the wire's
    own for the status); seconds to wait before trying again; the used-up ``quota`` (one per day stops a
    run); ``fields`` for the wire's error object where it has room (Groq's ``failed_generation``)."""

    status: int
    message: str = "stub error"
    code: str | None = None
    retry_after: float | None = None
    quota: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Wire:
    """A reply exactly as one wire carries it (a JSON body, text or bytes; headers), for tests of that
    wire's parsing. The provider seam has no wire: ``scripted`` refuses it."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


Outcome = Answer | Error | Wire
Fault = Callable[[Asked], Outcome | None]
"""What to answer one request with instead of the default (None: the default)."""

Target = str | Callable[[Mapping[str, Any]], bool] | None
"""Which items a fault changes: a pack id, a test on the row's record, or every item (None)."""

Items = list[dict[str, Any]]


def _hit(target: Target, item: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    if target is None:
        return True
    if isinstance(target, str):
        return item.get("id") == target
    return target(record)


def with_items(change: Callable[[Items, Items], Items]) -> Fault:
    """Answer with the default items after ``change(items, records)`` (a single row's answer is a
    one-item list whose item has no id)."""

    def fault(asked: Asked) -> Answer:
        default = asked.answer
        single = not asked.packed
        items: Items = [default] if single else default
        by_id = {str(r.get("id")): r for r in asked.records}
        records = asked.records[:1] if single else [by_id.get(str(i.get("id")), {}) for i in items]
        changed = change(items, records)
        return Answer((changed[0] if changed else {}) if single else changed)

    return fault


def drop_ids(*ids: str) -> Fault:
    return with_items(lambda items, _: [i for i in items if i.get("id") not in ids])


def duplicate_id(rid: str) -> Fault:
    return with_items(lambda items, _: items + [dict(i) for i in items if i.get("id") == rid])


def add_unknown_id(rid: str = "r999") -> Fault:
    return with_items(lambda items, _: [*items, {**items[0], "id": rid}])


def set_field(target: Target, name: str, value: Any) -> Fault:
    return with_items(
        lambda items, records: [
            {**i, name: value} if _hit(target, i, r) else i for i, r in zip(items, records, strict=False)
        ]
    )


def shuffled(seed: int = 1) -> Fault:
    return with_items(lambda items, _: random.Random(seed).sample(items, len(items)))


def swap_answers(a: str, b: str) -> Fault:
    """Exchange the answers of two ids, keeping the ids valid (cross-wiring)."""

    def change(items: Items, _: Items) -> Items:
        by_id = {i["id"]: i for i in items}
        return [{**(by_id[b] if i["id"] == a else by_id[a] if i["id"] == b else i), "id": i["id"]} for i in items]

    return with_items(change)


def with_text(change: Callable[[str], str], finish: Finish = "stop") -> Fault:
    """Answer with the default answer's JSON text (as the wire carries it) after ``change``."""
    return lambda asked: Answer(text=change(asked.text_of(asked.answer)), finish=finish)


def fenced() -> Fault:
    return with_text(lambda t: f"Here is the JSON you asked for:\n```json\n{t}\n```\n")


def truncated() -> Fault:
    """The answer cut in the middle, as a model that ran out of output tokens sends it."""
    return with_text(lambda t: t[: len(t) // 2], finish="max_tokens")


def blocked() -> Fault:
    return lambda asked: Answer(finish="blocked")


def hang(seconds: float) -> Fault:
    """Answer normally, but only after ``seconds`` (a hung server, for timeouts)."""
    return lambda asked: Answer(asked.answer, delay=seconds)


def http_error(
    status: int,
    message: str = "stub error",
    *,
    code: str | None = None,
    retry_after: float | None = None,
    **fields: Any,
) -> Fault:
    return lambda asked: Error(status, message, code, retry_after, fields=fields)


def rate_limited(seconds: float, message: str = "Rate limit reached for requests") -> Fault:
    """A 429 asking to wait ``seconds``."""
    return http_error(429, message, retry_after=seconds)


def quota_exhausted(quota: str, message: str = "You exceeded your current quota.") -> Fault:
    """A 429 naming the used-up ``quota`` (e.g. ``GenerateRequestsPerDayPerProjectPerModel``)."""
    return lambda asked: Error(429, message, quota=quota)


def with_probs(
    default: float = 0.99,
    *,
    ids: Mapping[str, float] | None = None,
    values: Mapping[Any, float] | None = None,
    rows: Callable[[Mapping[str, Any]], float | None] | None = None,
) -> Fault:
    """The default answer, its values written with these probabilities (``logprobs.Probs``): a confident
    answer and a doubtful one, ``with_probs(ids={"r2": 0.3})``."""
    probs = Probs(default, dict(ids or {}), dict(values or {}), rows)
    return lambda asked: Answer(asked.answer, probs=probs)


LOGPROBS_REFUSED = "Logprobs is not enabled for models/{model}"
"""Gemini's 400 INVALID_ARGUMENT for a model that gives no log-probabilities."""
OPENAI_LOGPROBS_REFUSED = "Unsupported parameter: 'logprobs' is not supported with this model."


def logprobs_refused() -> Fault:
    """A model that gives no log-probabilities: a request asking for them gets the API's 400 (Gemini's
    ``Logprobs is not enabled for models/...``, OpenAI's ``unsupported_parameter`` on ``logprobs``); any
    other passes on (as a rule: ``stub.rule(logprobs_refused())``)."""

    def fault(asked: Asked) -> Error | None:
        if not asked.logprobs:
            return None
        if asked.wire == "openai":
            return Error(400, OPENAI_LOGPROBS_REFUSED, "unsupported_parameter", fields={"param": "logprobs"})
        return Error(400, LOGPROBS_REFUSED.format(model=asked.model.removeprefix("models/")))

    return fault


def json_validate_failed(message: str = "Failed to validate JSON", failed_generation: str = "") -> Fault:
    """Groq's 400 for an answer its own decoder could not fit to the schema."""
    return http_error(400, message, code="json_validate_failed", failed_generation=failed_generation)


class RequestWindow:
    """A server's request limit: at most ``rpm`` requests per ``window`` seconds, counted in a sliding window,
    or (``fixed``) in windows that open at the first request and then reset whole."""

    def __init__(self, rpm: int, window: float = 60.0, fixed: bool = False) -> None:
        self.rpm = rpm
        self.window = window
        self.fixed = fixed
        self._recent: collections.deque[float] = collections.deque()

    def refuse(self, now: float) -> float | None:
        """Count a request arriving at ``now``; or, when the window is full, the seconds until a slot frees."""
        recent = self._recent
        if self.fixed and recent and now - recent[0] >= self.window:
            recent.clear()
        while recent and now - recent[0] >= self.window:
            recent.popleft()
        if len(recent) >= self.rpm:
            return self.window - (now - recent[0])
        recent.append(now)
        return None


class ServerLimit:
    """A fault for the provider seam (``scripted``): a server's own request limit on the event loop's clock
    (a 429 with the seconds until a slot frees, as Gemini's ``RetryInfo`` says), and every answer after
    ``latency`` seconds, a 429 after ``round_trip``; ``refused`` counts the 429s."""

    def __init__(
        self, rpm: int, window: float = 60.0, *, fixed: bool = False, latency: float = 0.0, round_trip: float = 0.0
    ) -> None:
        self.limit = RequestWindow(rpm, window, fixed)
        self.latency = latency
        self.round_trip = round_trip
        self.refused = 0

    def __call__(self, asked: Asked) -> Outcome:
        wait = self.limit.refuse(asyncio.get_running_loop().time())
        if wait is None:
            return Answer(asked.answer, delay=self.latency)
        self.refused += 1
        return Error(429, "rate limit", retry_after=wait, delay=self.round_trip)
