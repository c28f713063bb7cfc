"""Token log-probabilities as a provider reads them off its wire, made to cover exactly the reply's text.

``Reply.tokens`` joined is ``Reply.text``: tokens that do not join to the text the model wrote are not
passed on (None), never guessed into place. OpenAI-style entries carry each token's UTF-8 ``bytes``, so a
character split across tokens is rebuilt and given to the token that completes it, with the log-probability
of every token it took (their joint probability). A reply unwrapped from a larger answer keeps the tokens
over the part it was unwrapped to (``cut``). Each token keeps the model's most likely tokens at its step
(``top_logprobs``, ``Token.top``) where the entry has them and the token is its entry's whole text; they
are read from the entry only for the tokens looked at (``Tokens``).
"""

from __future__ import annotations

import codecs
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeGuard

from enrichkit.providers.base import Capabilities, Reply, Request, Token, Tokens, Top
from enrichkit.providers.classify import LogprobsRefused


class AsksLogprobs:
    """A provider whose model may refuse token log-probabilities: a refused call is sent again without them,
    and the model is remembered in ``logprobs_refused`` (not asked again). The provider writes ``_generate``."""

    model: str
    capabilities: Capabilities
    logprobs_refused: set[str]

    def asks_logprobs(self, request: Request) -> bool:
        """Whether ``request`` goes out asking for token log-probabilities (asked, and the model gives them)."""
        return request.logprobs and self.capabilities.logprobs and self.model not in self.logprobs_refused

    def refused_logprobs(self) -> None:
        """Remember that this model gives no log-probabilities (it is not asked for them again)."""
        self.logprobs_refused.add(self.model)
        self.capabilities = dataclasses.replace(self.capabilities, logprobs=False)

    async def generate(self, request: Request) -> Reply:
        asked = self.asks_logprobs(request)
        try:
            return await self._generate(request)
        except LogprobsRefused:
            if not asked:
                raise
            self.refused_logprobs()
            return await self._generate(dataclasses.replace(request, logprobs=False))

    async def _generate(self, request: Request) -> Reply:
        raise NotImplementedError


def are_logprobs(values: list[Any]) -> TypeGuard[list[float]]:
    """Whether every value is a natural log of a probability (a number, at most 0; not NaN, nor a bool)."""
    return _NUMBERS.issuperset(map(type, values)) and (not values or max(values) <= 0) and not math.isnan(sum(values))


_NUMBERS = frozenset({float, int})


def from_entries(entries: Any, text: str | None = None) -> Tokens | None:
    """The tokens of an OpenAI-style ``logprobs.content`` list (``token``, ``logprob``, ``bytes``,
    ``top_logprobs``); None if it is missing or malformed. Where the token texts already join to ``text``
    they are taken as they are, each one's alternatives read only when looked at; else each is rebuilt
    from its bytes."""
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        return None
    logprobs = [e.get("logprob") for e in entries]
    if not are_logprobs(logprobs):
        return None
    texts = [e.get("token") for e in entries]
    if text is not None and are_texts(texts) and "".join(texts) == text:
        return Tokens(texts, logprobs, lambda index: top_of(entries[index]))
    return _from_bytes(entries)


def top_of(entry: Mapping[str, Any]) -> Top:
    """An OpenAI-style entry's ``top_logprobs`` as (text, log-probability) pairs; empty if missing or malformed."""
    top = entry.get("top_logprobs")
    if not top or not isinstance(top, list):
        return ()
    try:
        pairs = tuple((a["token"], a["logprob"]) for a in top)
    except (TypeError, KeyError):
        return ()
    return pairs if are_texts([t for t, _ in pairs]) and are_logprobs([lp for _, lp in pairs]) else ()


def _from_bytes(entries: list[Mapping[str, Any]]) -> Tokens | None:
    """Tokens rebuilt from each entry's UTF-8 ``bytes``: a character cut between entries goes to the one
    that completes it, with the log-probability of every entry it took (and no alternatives)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    texts: list[str] = []
    logprobs: list[float] = []
    whole: list[int] = []  # the entry of each token that is one entry's whole text (-1: rebuilt)
    carried, parts = 0.0, 0
    try:
        for at, entry in enumerate(entries):
            raw = entry.get("bytes")
            if isinstance(raw, list) and all(isinstance(b, int) and 0 <= b < 256 for b in raw):
                piece = decoder.decode(bytes(raw))
            elif isinstance(entry.get("token"), str):
                piece = decoder.decode(entry["token"].encode())
            else:
                return None
            carried += entry["logprob"]
            parts += 1
            if piece:
                texts.append(piece)
                logprobs.append(carried)
                whole.append(at if parts == 1 and piece == entry.get("token") else -1)
                carried, parts = 0.0, 0
        if decoder.decode(b"", final=True):
            return None
    except UnicodeDecodeError:
        return None
    return Tokens(texts, logprobs, lambda index: top_of(entries[whole[index]]) if whole[index] >= 0 else ())


def from_pairs(texts: list[Any], logprobs: list[Any], top: Callable[[int], Top] | None = None) -> Tokens | None:
    """Tokens from their texts and log-probabilities (and each one's alternatives by its index, ``top``,
    where given); None if any is missing."""
    if not are_texts(texts) or not are_logprobs(logprobs):
        return None
    return Tokens(texts, logprobs, top)


def are_texts(values: list[Any]) -> TypeGuard[list[str]]:
    return _TEXTS.issuperset(map(type, values))


_TEXTS = frozenset({str})


def aligned(tokens: Sequence[Token] | None, text: str | None) -> Tokens | None:
    """``tokens`` if they join to ``text``; the ones over its end if they join to more (text the reply
    leaves out before it); else None."""
    if tokens is None or text is None:
        return None
    tokens = Tokens.of(tokens)
    joined = "".join(tokens.texts)
    if joined == text:
        return tokens
    if joined.endswith(text):
        return tokens.cut(len(joined) - len(text), len(joined))
    return None


def cut(tokens: Sequence[Token], start: int, end: int) -> Tokens:
    """The tokens over ``[start, end)`` of their joined text (``Tokens.cut``)."""
    return Tokens.of(tokens).cut(start, end)
