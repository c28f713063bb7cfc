"""Token log-probabilities as a provider reads them off its wire, made to cover exactly the reply's text.

``Reply.tokens`` joined is ``Reply.text``: tokens that do not join to the text the model wrote are not
passed on (None), never guessed into place. OpenAI-style entries carry each token's UTF-8 ``bytes``, so a
character split across tokens is rebuilt and given to the token that completes it, with the log-probability
of every token it took (their joint probability). A reply unwrapped from a larger answer keeps the tokens
over the part it was unwrapped to (``cut``).
"""

from __future__ import annotations

import codecs
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeGuard

from enrichkit.providers.base import Token


def is_logprob(value: Any) -> TypeGuard[float]:
    """A natural log of a probability (a number, at most 0)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value) and value <= 0


def from_entries(entries: Any) -> tuple[Token, ...] | None:
    """The tokens of an OpenAI-style ``logprobs.content`` list (``token``, ``logprob``, ``bytes``); None if
    it is missing or malformed."""
    if not isinstance(entries, list):
        return None
    decoder = codecs.getincrementaldecoder("utf-8")()
    tokens: list[Token] = []
    carried = 0.0
    try:
        for entry in entries:
            logprob = entry.get("logprob") if isinstance(entry, Mapping) else None
            if not isinstance(entry, Mapping) or not is_logprob(logprob):
                return None
            raw = entry.get("bytes")
            if isinstance(raw, list) and all(isinstance(b, int) and 0 <= b < 256 for b in raw):
                piece = decoder.decode(bytes(raw))
            elif isinstance(entry.get("token"), str):
                piece = decoder.decode(entry["token"].encode())
            else:
                return None
            carried += logprob
            if piece:
                tokens.append(Token(piece, carried))
                carried = 0.0
        if decoder.decode(b"", final=True):
            return None
    except UnicodeDecodeError:
        return None
    return tuple(tokens)


def from_pairs(pairs: Iterable[tuple[str | None, float | None]]) -> tuple[Token, ...] | None:
    """Tokens from (text, log-probability) pairs; None if any is missing."""
    tokens = []
    for text, logprob in pairs:
        if not isinstance(text, str) or not is_logprob(logprob):
            return None
        tokens.append(Token(text, float(logprob)))
    return tuple(tokens)


def aligned(tokens: Sequence[Token] | None, text: str | None) -> tuple[Token, ...] | None:
    """``tokens`` if they join to ``text``; the ones over its end if they join to more (text the reply
    leaves out before it); else None."""
    if tokens is None or text is None:
        return None
    joined = "".join(t.text for t in tokens)
    if joined == text:
        return tuple(tokens)
    if joined.endswith(text):
        return cut(tokens, len(joined) - len(text), len(joined))
    return None


def cut(tokens: Sequence[Token], start: int, end: int) -> tuple[Token, ...]:
    """The tokens over ``[start, end)`` of their joined text; a token across an edge is cut to it and keeps
    its log-probability."""
    out = []
    at = 0
    for token in tokens:
        first, last = at, at + len(token.text)
        at = last
        low, high = max(first, start), min(last, end)
        if low < high:
            out.append(Token(token.text[low - first : high - first], token.logprob))
    return tuple(out)
