"""How sure the model was of each closed answer: the probability it gave the value it wrote.

A closed field (an enum, a const, a boolean, an integer with at most ``CLOSED_VALUES`` values, or a
nullable one of these) has a few possible answers, so the probability of the one written is a real
signal; free text has none, and no number is made up for it. The probability of a value is the product
of the probabilities of the tokens that wrote it, read from ``Reply.tokens``: the tokens that overlap
the value's own characters (inside its quotes, for a string). A token of quotes, separators or keys
alone is left out: the schema forces it, and it would only dilute the value's probability. The first
token of an enum value usually carries the decision and the rest are near 1, but values that share a
first token (``web framework`` / ``web crawling``) decide on a later one: the product counts both.
The answer's JSON is found in the tokens' joined text and walked item by item, so each row of a
packed answer gets its own fields' probabilities (packing keeps the confidence).
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from enrichkit.providers.base import Token

CLOSED_VALUES = 21
"""An integer field with at most this many allowed values (e.g. 0 to 20) is closed."""

LOW = 0.6
"""The receipt counts the rows below this confidence."""

_DECODER = json.JSONDecoder()
_STRING: Callable[[str, int], tuple[str, int]] = _DECODER.parse_string  # type: ignore[attr-defined]
"""``json``'s string scanner: (text, index after the opening quote) -> (the string, index after it)."""

Span = tuple[int, int, Any]  # where a value starts and ends in the text, and the value


def is_closed(field: Mapping[str, Any]) -> bool:
    """Whether an output field has a small closed set of answers (see the module's docstring)."""
    if "enum" in field or "const" in field:
        return True
    if "anyOf" in field:
        return all(is_closed(branch) or branch.get("type") == "null" for branch in field["anyOf"])
    kinds = field.get("type")
    kinds = set(kinds) - {"null"} if isinstance(kinds, list) else {kinds}
    if kinds == {"boolean"}:
        return True
    if kinds == {"integer"} and "minimum" in field and "maximum" in field:
        return bool(field["maximum"] - field["minimum"] < CLOSED_VALUES)
    return False


def closed_fields(schema: Mapping[str, Any]) -> list[str]:
    """The closed fields of a task's output schema, in order."""
    return [name for name, sub in schema.get("properties", {}).items() if is_closed(sub)]


def read_confidence(
    tokens: Sequence[Token], fields: Sequence[str], answers: Mapping[str | None, Mapping[str, Any]]
) -> dict[str | None, dict[str, float]]:
    """The probability of each of ``fields``' values in the answer the ``tokens`` wrote, for the valid
    ``answers`` by pack id (one under None: a single row's object). A field gets one only where the value
    the tokens wrote is the value accepted; rows or fields not found are left out (nothing is guessed)."""
    text = "".join(t.text for t in tokens)
    starts = _starts(tokens)
    single = None in answers
    found: dict[str | None, dict[str, float]] = {}
    for item in _items(text, "{" if single else "["):
        rid = None if single else _id(item)
        if rid not in answers or rid in found:
            continue
        values = answers[rid]
        probs = {
            name: _probability(tokens, starts, item[name])
            for name in fields
            if name in item and name in values and item[name][2] == values[name]
        }
        found[rid] = {name: p for name, p in probs.items() if p is not None}
    return found


def _id(item: Mapping[str, Span]) -> str | None:
    span = item.get("id")
    return span[2] if span is not None and isinstance(span[2], str) else None


def row_confidence(confidence: Mapping[str, float]) -> float | None:
    """A row's confidence: its lowest closed field's (None when no field has one)."""
    return min(confidence.values()) if confidence else None


def _starts(tokens: Sequence[Token]) -> list[int]:
    at, starts = 0, []
    for token in tokens:
        starts.append(at)
        at += len(token.text)
    return starts


def _probability(tokens: Sequence[Token], starts: Sequence[int], span: Span) -> float | None:
    """The product of the probabilities of the tokens over the value's own characters."""
    start, end, value = span
    if isinstance(value, str) and end - start > 2:
        start, end = start + 1, end - 1  # inside the quotes
    at = max(0, bisect_right(starts, start) - 1)  # the token holding the value's first character
    logprob, any_token = 0.0, False
    while at < len(tokens) and starts[at] < end:
        logprob += tokens[at].logprob
        any_token = True
        at += 1
    return round(min(1.0, math.exp(logprob)), 4) if any_token else None


def _items(text: str, opener: str) -> list[dict[str, Span]]:
    """The objects of the first JSON array (``[``) or the first object (``{``) in ``text`` that walks, each
    as its keys' value spans; empty if none does."""
    at = text.find(opener)
    while at != -1:
        try:
            if opener == "{":
                return [_object(text, at)[0]]
            return _array(text, at)
        except (ValueError, IndexError):
            at = text.find(opener, at + 1)
    return []


def _array(text: str, at: int) -> list[dict[str, Span]]:
    """The objects of the array at ``at``; of an array cut off or broken, those whole before the break."""
    items: list[dict[str, Span]] = []
    try:
        at = _space(text, at + 1)
        while text[at] != "]":
            if text[at] == "{":
                item, at = _object(text, at)
                items.append(item)
            else:
                _, at = _DECODER.raw_decode(text, at)
            at = _space(text, at)
            if text[at] == ",":
                at = _space(text, at + 1)
            elif text[at] != "]":
                break
    except (ValueError, IndexError):
        if not items:
            raise
    return items


def _object(text: str, at: int) -> tuple[dict[str, Span], int]:
    spans: dict[str, Span] = {}
    at = _space(text, at + 1)
    while text[at] != "}":
        if text[at] != '"':
            raise ValueError("not a key")
        key, at = _STRING(text, at + 1)
        at = _space(text, at)
        if text[at] != ":":
            raise ValueError("no colon")
        start = _space(text, at + 1)
        value, at = _DECODER.raw_decode(text, start)
        spans[key] = (start, at, value)
        at = _space(text, at)
        if text[at] == ",":
            at = _space(text, at + 1)
        elif text[at] != "}":
            raise ValueError("no comma")
    return spans, at + 1


def _space(text: str, at: int) -> int:
    while text[at] in " \t\r\n":
        at += 1
    return at
