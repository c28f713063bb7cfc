"""How sure the model was of each closed answer, read from the token log-probabilities of the answer.

A closed field (an enum, a const, a boolean, an integer with at most ``CLOSED_VALUES`` values, or a
nullable one of these) has a few possible answers, so the probability of the one written is a real
signal; free text has none, and no number is made up for it. Only the tokens over the value's own
characters count (inside its quotes, for a string): a token of quotes, separators or keys alone is forced
by the schema.

Where the provider gives each token's most likely alternatives (``Token.top``), a value's confidence is
the probability of the value written among the values the field allows: at each of its tokens, the
chosen token's share of the alternatives that keep to an allowed value (the model's mass on text the
schema forbids, such as a paraphrase of a category, is left out), the least of those shares (the token
where the value was decided; later tokens of one value have no rival, share 1). Without alternatives it
is the product of the value's tokens' probabilities. Chosen on 200 awesome-python rows of the embedded
model against the other readings (``benchmarks/confidence.py``: AUROC 0.742 against 0.706 for the
product) and measured on 200 other rows.

A packed answer's items are found by their keys (``ConfidenceReader._spans``), or, where its text is not
plain enough for that, by walking its JSON item by item, so each row of a packed answer gets its own
fields' confidence (packing keeps it).
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from enrichkit.providers.base import Token, Tokens

CLOSED_VALUES = 21
"""An integer field with at most this many allowed values (e.g. 0 to 20) is closed."""

LOW = 0.6
"""The receipt counts the rows below this confidence."""

_DECODER = json.JSONDecoder()
_STRING: Callable[[str, int], tuple[str, int]] = _DECODER.parse_string  # type: ignore[attr-defined]
"""``json``'s string scanner: (text, index after the opening quote) -> (the string, index after it)."""

Span = tuple[int, int, Any]  # where a value starts and ends in the text, and the value
_SCALAR = re.compile(r"[-+.\w]*")
_AFTER_SCALAR = frozenset(",}] \t\r\n")
_KNOWN = 4096  # alternatives remembered per field


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


class ConfidenceReader:
    """Reads the closed fields' confidence of a task's answers from their tokens (one per codec: what it
    needs of the schema is worked out once)."""

    def __init__(self, schema: Mapping[str, Any]) -> None:
        properties = schema.get("properties", {})
        self.fields = closed_fields(schema)
        self._allowed = {name: _Allowed(written_forms(properties[name])) for name in self.fields}
        keys = "|".join(re.escape(json.dumps(name)[1:-1]) for name in ["id", *self.fields])
        self._keys = re.compile(f'"({keys})"\\s*:\\s*')

    def read(
        self, tokens: Sequence[Token], answers: Mapping[str | None, Mapping[str, Any]]
    ) -> dict[str | None, dict[str, float]]:
        """The confidence of each closed field's value in the answer the ``tokens`` wrote, for the valid
        ``answers`` by pack id (one under None: a single row's object). A field gets one only where the
        value the tokens wrote is the value accepted; rows or fields not found are left out (nothing is
        guessed)."""
        tokens = Tokens.of(tokens)
        text = "".join(tokens.texts)
        starts = tokens.starts
        spans = None if None in answers else self._spans(text, answers)
        if spans is None:
            spans = self._walked(text, answers)
        found: dict[str | None, dict[str, float]] = {}
        for rid, fields in spans.items():
            values = answers[rid]
            probs = {
                name: self._confidence(tokens, starts, text, span, name)
                for name, span in fields.items()
                if name in values and span[2] == values[name]
            }
            found[rid] = {name: p for name, p in probs.items() if p is not None}
        return found

    def _spans(
        self, text: str, answers: Mapping[str | None, Mapping[str, Any]]
    ) -> dict[str | None, dict[str, Span]] | None:
        """The closed fields' value spans of a packed answer by item, found by their keys alone: each item's
        id its object's first key, its fields after it before any brace. None where the text is not so
        plain (the answer is walked instead)."""
        spans: dict[str | None, dict[str, Span]] = {}
        current: dict[str, Span] | None = None
        opened = 0
        for key, start, at in [(m.group(1), m.start(), m.end()) for m in self._keys.finditer(text)]:
            try:
                value, end = _DECODER.raw_decode(text, at)
            except ValueError:
                return None
            first = _opens(text, start)
            if key == "id":
                if not first or value in spans or not isinstance(value, str):
                    return None
                current = spans[value] = {}
                opened = at
            elif first or current is None or key in current or _brace(text, opened, start):
                return None
            else:
                current[key] = (at, end, value)
        if not all(rid in spans for rid in answers):
            return None
        return {rid: fields for rid, fields in spans.items() if rid in answers}

    def _walked(self, text: str, answers: Mapping[str | None, Mapping[str, Any]]) -> dict[str | None, dict[str, Span]]:
        """The closed fields' value spans by item, the answer's JSON walked item by item."""
        single = None in answers
        spans: dict[str | None, dict[str, Span]] = {}
        for item in _items(text, "{" if single else "["):
            rid = None if single else _id(item)
            if rid in answers and rid not in spans:
                spans[rid] = {name: item[name] for name in self.fields if name in item}
        return spans

    def _confidence(self, tokens: Tokens, starts: Sequence[int], text: str, span: Span, field: str) -> float | None:
        """A value's confidence: at each of its tokens, the chosen token's share of the alternatives that write
        an allowed value, the least of them; where a token has no alternatives, the product of its tokens'
        probabilities instead. Only the value's own characters count (inside its quotes, for a string)."""
        start, end, value = span
        if isinstance(value, str) and end - start > 2:
            start, end = start + 1, end - 1
        at = max(0, bisect_right(starts, start) - 1)  # the token holding the value's first character
        allowed = self._allowed[field]
        logprob, weakest, shares = 0.0, 1.0, True
        first = at
        while at < len(tokens) and starts[at] < end:
            token = tokens[at]  # made here: only the tokens of closed values are
            logprob += token.logprob
            if shares and token.top:
                weakest = min(weakest, allowed.share(token, text, starts[at], start))
            else:
                shares = False
            at += 1
        if at == first:
            return None
        return round(weakest if shares else min(1.0, math.exp(logprob)), 4)


class _Allowed:
    """The values a closed field allows as written (``written_forms``), every start of one, and what
    alternatives were found to fit (the same few recur in every row)."""

    def __init__(self, forms: frozenset[str]) -> None:
        self.forms = forms
        self.prefixes = frozenset(form[:n] for form in forms for n in range(len(form) + 1))
        self._fit: dict[tuple[str, bool], bool] = {}

    def fits(self, written: str, quoted: bool) -> bool:
        """Whether ``written`` (from the value's first character) starts an allowed value or ends one (a
        string's closing quote, or a scalar's end, after it)."""
        if written in self.prefixes:
            return True
        if quoted:
            head, quote, _ = written.partition('"')
            return bool(quote) and head in self.forms
        scalar = _SCALAR.match(written)
        end = scalar.end() if scalar is not None else len(written)
        return end < len(written) and written[end] in _AFTER_SCALAR and written[:end] in self.forms

    def share(self, token: Token, text: str, at: int, start: int) -> float:
        """The chosen ``token``'s (at ``at`` in ``text``; the value starts at ``start``) share of the
        probability of its alternatives that keep to an allowed value."""
        if len(token.top) < 2:
            return 1.0
        quoted = start > 0 and text[start - 1] == '"'
        lead = text[at:start] if at < start else ""  # what the token writes before the value (a quote)
        before = text[start:at] if at > start else ""  # the value as written before the token
        chosen = math.exp(token.logprob)
        total = chosen
        known = self._fit
        for alt, logprob in token.top:
            if alt == token.text or not alt or not alt.startswith(lead):
                continue
            written = before + alt[len(lead) :] if lead or before else alt
            fit = known.get((written, quoted))
            if fit is None:
                if len(known) > _KNOWN:
                    known.clear()
                fit = known[written, quoted] = self.fits(written, quoted)
            if fit:
                total += math.exp(logprob)
        return chosen / total if total > 0 else 0.0


def written_forms(field: Mapping[str, Any]) -> frozenset[str]:
    """The values a closed field allows, as an answer writes them: a string's text inside its quotes, any
    other JSON value as ``json`` writes it."""
    values: list[Any] = []
    if "enum" in field:
        values += field["enum"]
    if "const" in field:
        values.append(field["const"])
    kinds = field.get("type")
    kinds = set(kinds) if isinstance(kinds, list) else {kinds}
    if "boolean" in kinds:
        values += [True, False]
    if "null" in kinds:
        values.append(None)
    if "integer" in kinds and "minimum" in field and "maximum" in field:
        values += range(math.ceil(field["minimum"]), math.floor(field["maximum"]) + 1)
    forms = {json.dumps(v, ensure_ascii=False)[1:-1] if isinstance(v, str) else json.dumps(v) for v in values}
    for branch in field.get("anyOf", ()):
        forms |= written_forms(branch)
    return frozenset(forms)


def _opens(text: str, at: int) -> bool:
    """Whether the key at ``at`` is its object's first (a brace before it, whitespace aside)."""
    at -= 1
    while at >= 0 and text[at] in " \t\r\n":
        at -= 1
    return at >= 0 and text[at] == "{"


def _brace(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end]`` holds a brace (the item's object ended, or another began, in between)."""
    return text.find("}", start, end) != -1 or text.find("{", start, end) != -1


def _id(item: Mapping[str, Span]) -> str | None:
    span = item.get("id")
    return span[2] if span is not None and isinstance(span[2], str) else None


def row_confidence(confidence: Mapping[str, float]) -> float | None:
    """A row's confidence: its lowest closed field's (None when no field has one)."""
    return min(confidence.values()) if confidence else None


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
