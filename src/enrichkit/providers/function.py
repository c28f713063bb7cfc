"""``FunctionProvider``: a provider whose answers a Python function writes, for tests at the Provider seam.

def answer(request: Request) -> list[dict[str, Any]]:
    return [{"id": r["id"], "tldr": "...", "challenge": "easy"} for r in records_of(request)]

result = enrich(rows, task, provider=FunctionProvider(answer))

An answer may carry token log-probabilities (``scored``), given only to requests that ask for them
(``Request.logprobs``) of a provider whose ``Capabilities(logprobs=True)``.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from enrichkit.errors import UserError
from enrichkit.providers.base import BatchBackend, Capabilities, Reply, Request, Token, Usage
from enrichkit.providers.classify import LogprobsRefused

Answer = Reply | str | dict[str, Any] | list[Any]

"""A reply as is, raw text, or a value sent as its JSON text."""


def ids_of(request: Request) -> list[str]:
    """The pack ids the request's answer schema allows, in order (empty for a single row)."""
    return schema_ids(request.schema)


def records_of(request: Request) -> list[dict[str, Any]]:
    """The records in the request's prompt: a pack's objects (each with its ``id``), or a single row's one."""
    return find_records(request.prompt, ids_of(request))


class FunctionProvider:
    """A provider that answers every request with ``fn(request)`` (or ``fn(request, model=...)`` where ``fn``
    takes the model asked), sync or async; ``fn`` may raise a ``ProviderError`` to fail the call.
    ``count(request)``: a free count of the request's tokens, as Gemini's ``countTokens``, sync or async
    (None: the provider cannot count, as most cannot). ``requests`` keeps every request it got (unless ``record``
    is false), including those sent through the providers ``with_model`` and ``on_tier`` derive from it.
    A ``LogprobsRefused`` that ``fn`` raises for a request asking for log-probabilities is handled as the
    real providers handle it: asked again without, the model kept in ``logprobs_refused``."""

    def __init__(
        self,
        fn: Callable[..., Answer | Awaitable[Answer]],
        *,
        name: str = "function",
        model: str = "function",
        capabilities: Capabilities | None = None,
        record: bool = True,
        count: Callable[[Request], int | Awaitable[int | None] | None] | None = None,
    ) -> None:
        self.fn = fn
        self.count = count
        self._with_model = "model" in inspect.signature(fn).parameters
        self.name = name
        self.model = model
        self.capabilities = capabilities or Capabilities()
        self.record = record
        self.service_tier: str | None = None
        """The service tier this provider sends on (set by ``on_tier``)."""
        self.requests: list[Request] = []
        self.logprobs_refused: set[str] = set()
        """The models that refused token log-probabilities (shared with the providers derived from it)."""

    def settings(self) -> dict[str, Any]:
        return {"model": self.model}

    async def generate(self, request: Request) -> Reply:
        if request.logprobs and self.model in self.logprobs_refused:
            request = dataclasses.replace(request, logprobs=False)
        try:
            return await self._generate(request)
        except LogprobsRefused:
            if not request.logprobs:
                raise
            self.logprobs_refused.add(self.model)
            return await self._generate(dataclasses.replace(request, logprobs=False))

    async def _generate(self, request: Request) -> Reply:
        if self.record:
            self.requests.append(request)
        answer = self.fn(request, model=self.model) if self._with_model else self.fn(request)
        if inspect.isawaitable(answer):
            answer = await answer
        if isinstance(answer, Reply):
            asked = request.logprobs and self.capabilities.logprobs
            return answer if asked or answer.tokens is None else dataclasses.replace(answer, tokens=None)
        text = answer if isinstance(answer, str) else json.dumps(answer)
        return Reply(text, usage=Usage(len(request.system + request.prompt) // 4, len(text) // 4))

    async def count_tokens(self, request: Request) -> int | None:
        counted = None if self.count is None else self.count(request)
        return await counted if inspect.isawaitable(counted) else counted

    def with_model(self, model: str) -> FunctionProvider:
        other = copy.copy(self)
        other.model = model
        return other

    def on_tier(self, tier: str) -> FunctionProvider:
        if tier not in self.capabilities.service_tiers:
            raise UserError(f"{self.name} has no service tier {tier!r}")
        other = copy.copy(self)
        other.service_tier = tier
        return other

    def batches(self) -> BatchBackend | None:
        return None

    async def aclose(self) -> None:
        return None


Probability = Mapping[str, float] | Callable[[Mapping[str, Any], str], float | None]


def scored(answer: dict[str, Any] | list[Any], probability: Probability) -> Reply:
    """A reply of ``answer`` as JSON text, with tokens that give each value of the fields ``probability``
    names the probability it says (a mapping field -> probability, or a function of the item and the
    field; None: 1): a string's text is one token, its quotes others; every other token has probability 1.

    scored([{"id": "r1", "kind": "tool"}], {"kind": 0.62})"""
    tokens: list[Token] = []

    def add(text: str, p: float = 1.0) -> None:
        tokens.append(Token(text, math.log(p) if p > 0 else -math.inf))

    def item(obj: Mapping[str, Any]) -> None:
        add("{")
        for n, (name, value) in enumerate(obj.items()):
            add(("," if n else "") + json.dumps(name) + ":")
            p = probability(obj, name) if callable(probability) else probability.get(name)
            text = json.dumps(value, ensure_ascii=False)
            if p is None:
                add(text)
            elif isinstance(value, str):
                add('"')
                add(text[1:-1], p)
                add('"')
            else:
                add(text, p)
        add("}")

    if isinstance(answer, dict):
        item(answer)
    else:
        add("[")
        for n, obj in enumerate(answer):
            if n:
                add(",")
            item(obj)
        add("]")
    text = "".join(t.text for t in tokens)
    return Reply(text, usage=Usage(output_tokens=len(tokens)), tokens=tuple(tokens))


_OPENING = re.compile(r"[\[{]")


def schema_ids(schema: Mapping[str, Any]) -> list[str]:
    """The pack ids an answer schema allows, in order (empty for a single row's object schema)."""
    if "prefixItems" in schema:
        return [item["properties"]["id"]["const"] for item in schema["prefixItems"]]
    if schema.get("type") == "array":
        return list(schema["items"]["properties"]["id"]["enum"])
    return []


def find_records(prompt: str, ids: Sequence[str]) -> list[dict[str, Any]]:
    """The records in ``prompt``: the JSON array whose objects carry exactly ``ids`` (a pack) or, with
    no ids, the first JSON object (a single row), wherever it stands in the text; empty if none."""
    decoder = json.JSONDecoder()
    wanted = set(ids)
    for opening in _OPENING.finditer(prompt):
        try:
            value, _ = decoder.raw_decode(prompt, opening.start())
        except json.JSONDecodeError:
            continue
        if not wanted and isinstance(value, dict):
            return [value]
        if (
            wanted
            and isinstance(value, list)
            and {r.get("id") if isinstance(r, dict) else None for r in value} == wanted
        ):
            return value
    return []
