"""The stubs' token log-probabilities: an answer's text cut into tokens, each with a scripted probability.

The answer's JSON is cut at its punctuation, whitespace, words and digit runs (``split``), so the tokens
joined are exactly the text. The structure (brackets, keys, quotes, an item's id) gets probability 1; a
value's first token gets the value's probability and its other tokens 1, so the probability of the whole
value is the one scripted: ``Probs(values={"hard": 0.55})`` makes every "hard" doubtful,
``Probs(rows=lambda record: 0.4 if record["name"] == "x" else None)`` every value of the row whose record
that is (packed or alone), ``Probs(ids={"r3": 0.4})`` every value of pack item r3; anything else
``default``. Raw text (a fenced answer, a cut
one) gets ``default`` on its word tokens.

Where a value's probability is below 1, what it leaves goes to a rival at its first token: the first token
of another value the answer schema allows that field (``allowed``: an enum's, a boolean's, a small integer
range's), so a confidence renormalised over the allowed values reads the scripted probability too. The
wires show it among the token's alternatives (``top_logprobs``, ``topCandidates``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(r'\s+|[{}\[\],:"]|[A-Za-z]+|\d+|\\u[0-9a-fA-F]{4}|\\.|[^\sA-Za-z\d{}\[\],:"\\]+|.', re.S)
_STRUCTURE = re.compile(r'\s*[{}\[\],:"]?\s*')


def split(text: str) -> list[str]:
    """``text`` cut into tokens that join to it."""
    return _TOKEN.findall(text)


@dataclass(frozen=True)
class Probs:
    """The probability the model gives each value it writes: ``values`` by the value (a JSON scalar),
    else ``rows`` of the row's record (its inputs; None: not scripted), else ``ids`` by the pack id of
    its item, else ``default``."""

    default: float = 0.99
    ids: Mapping[str, float] = field(default_factory=dict)
    values: Mapping[Any, float] = field(default_factory=dict)
    rows: Callable[[Mapping[str, Any]], float | None] | None = None

    def of(self, value: Any, item: str | None, record: Mapping[str, Any] | None) -> float:
        """The probability of ``value`` written in the item with pack id ``item`` (None: a single row's
        answer) for the row whose record is ``record``."""
        shown = json.dumps(value)
        for known, p in self.values.items():
            if json.dumps(known) == shown:
                return p
        scripted = self.rows(record) if self.rows is not None and record is not None else None
        if scripted is not None:
            return scripted
        return self.ids.get(item, self.default) if item is not None else self.default


def unlikely(n: int) -> list[tuple[str, float]]:
    """``n`` made-up alternatives no answer writes, each with a tiny log-probability (a wire's filler)."""
    return [(f"~{k}", -20.0 - k) for k in range(n)]


Scripted = tuple[str, float, str | None]
"""A token, its log-probability, and a rival token that would write another allowed value there (or None)."""


def scripted_tokens(
    answer: Any,
    text: str,
    probs: Probs,
    records: Mapping[str | None, Mapping[str, Any]],
    schema: Mapping[str, Any] | None = None,
) -> list[Scripted]:
    """The tokens of ``text``: the JSON of ``answer`` (as ``json.dumps`` writes it) with its values'
    probabilities from ``probs`` (``records``: each row's record by its pack id, a single row's by None)
    and their rivals from ``schema`` (the answer schema), or, for other text, ``default`` on every word
    token."""
    if answer is not None:
        pieces = list(_pieces(answer, None, _Context(probs, records, allowed(schema or {}))))
        if "".join(text for text, _, _ in pieces) == text:
            return [token for piece, p, rival in pieces for token in _scored(piece, p, rival)]
    word = math.log(probs.default)
    return [(token, 0.0 if _STRUCTURE.fullmatch(token) else word, None) for token in split(text)]


def allowed(schema: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The values each closed field of ``schema`` (at any depth) allows: an enum's, a boolean's, a small
    integer range's."""
    found: dict[str, list[Any]] = {}
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, Mapping):
            for name, sub in (node.get("properties") or {}).items():
                if isinstance(sub, Mapping) and (values := _values(sub)):
                    found.setdefault(name, values)
            stack.extend(v for v in node.values() if isinstance(v, Mapping | list))
    return found


def _values(field: Mapping[str, Any]) -> list[Any]:
    if isinstance(field.get("enum"), list):
        return list(field["enum"])
    kinds = field.get("type")
    kinds = set(kinds) if isinstance(kinds, list) else {kinds}
    if "boolean" in kinds:
        return [True, False]
    low, high = field.get("minimum"), field.get("maximum")
    if "integer" in kinds and isinstance(low, int) and isinstance(high, int) and high - low < 100:
        return list(range(low, high + 1))
    return []


def _first(value: Any) -> str:
    """The first token of ``value``'s JSON text after its opening quote (a string's) or at its start."""
    tokens = split(json.dumps(value))
    return tokens[1] if len(tokens) > 1 and tokens[0] == '"' else tokens[0]


def _rival(value: Any, values: list[Any]) -> str | None:
    """The first token of another of ``values`` that differs from ``value``'s first token, if any."""
    mine = _first(value)
    return next((_first(v) for v in values if v != value and _first(v) != mine), None)


def _scored(piece: str, p: float | None, rival: str | None) -> list[Scripted]:
    """A piece's tokens: structure at probability 1, a value's first token (after its quote) at ``p``,
    with the rival there."""
    tokens = split(piece)
    if p is None:
        return [(token, 0.0, None) for token in tokens]
    first = 1 if len(tokens) > 1 and tokens[0] == '"' else 0
    return [(token, math.log(p), rival if p < 1 else None) if n == first else (token, 0.0, None)
            for n, token in enumerate(tokens)]  # fmt: skip


@dataclass(frozen=True)
class _Context:
    probs: Probs
    records: Mapping[str | None, Mapping[str, Any]]
    allowed: Mapping[str, list[Any]]


def _pieces(
    value: Any, item: str | None, at: _Context, key: str = ""
) -> Iterator[tuple[str, float | None, str | None]]:
    """``value``'s JSON text in pieces as ``json.dumps`` writes it: structure (None) and values (their
    probability, and a rival's first token; an item's id is structure)."""
    if isinstance(value, dict):
        item = value["id"] if isinstance(value.get("id"), str) else item
        yield "{", None, None
        for n, (name, inner) in enumerate(value.items()):
            yield (", " if n else "") + json.dumps(name) + ": ", None, None
            yield from _pieces(inner, item, at, name)
        yield "}", None, None
    elif isinstance(value, list):
        yield "[", None, None
        for n, inner in enumerate(value):
            if n:
                yield ", ", None, None
            yield from _pieces(inner, item, at, key)
        yield "]", None, None
    elif key == "id":
        yield json.dumps(value), None, None
    else:
        rival = _rival(value, at.allowed[key]) if key in at.allowed else None
        yield json.dumps(value), at.probs.of(value, item, at.records.get(item)), rival
