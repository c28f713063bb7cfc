"""The stubs' token log-probabilities: an answer's text cut into tokens, each with a scripted probability.

The answer's JSON is cut at its punctuation, whitespace, words and digit runs (``split``), so the tokens
joined are exactly the text. The structure (brackets, keys, quotes, an item's id) gets probability 1; a
value's first token gets the value's probability and its other tokens 1, so the probability of the whole
value is the one scripted: ``Probs(values={"hard": 0.55})`` makes every "hard" doubtful,
``Probs(rows=lambda record: 0.4 if record["name"] == "x" else None)`` every value of the row whose record
that is (packed or alone), ``Probs(ids={"r3": 0.4})`` every value of pack item r3; anything else
``default``. Raw text (a fenced answer, a cut
one) gets ``default`` on its word tokens.
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


def scripted_tokens(
    answer: Any, text: str, probs: Probs, records: Mapping[str | None, Mapping[str, Any]]
) -> list[tuple[str, float]]:
    """The (token, log-probability) pairs of ``text``: the JSON of ``answer`` (as ``json.dumps`` writes it)
    with its values' probabilities from ``probs`` (``records``: each row's record by its pack id, a single
    row's by None), or, for other text, ``default`` on every word token."""
    if answer is not None:
        pieces = list(_pieces(answer, None, _Context(probs, records)))
        if "".join(text for text, _ in pieces) == text:
            return [pair for piece, p in pieces for pair in _scored(piece, p)]
    word = math.log(probs.default)
    return [(token, 0.0 if _STRUCTURE.fullmatch(token) else word) for token in split(text)]


def _scored(piece: str, p: float | None) -> list[tuple[str, float]]:
    """A piece's tokens: structure at probability 1, a value's first token (after its quote) at ``p``."""
    tokens = split(piece)
    if p is None:
        return [(token, 0.0) for token in tokens]
    first = 1 if len(tokens) > 1 and tokens[0] == '"' else 0
    return [(token, math.log(p) if n == first else 0.0) for n, token in enumerate(tokens)]


@dataclass(frozen=True)
class _Context:
    probs: Probs
    records: Mapping[str | None, Mapping[str, Any]]


def _pieces(value: Any, item: str | None, at: _Context, key: str = "") -> Iterator[tuple[str, float | None]]:
    """``value``'s JSON text in pieces as ``json.dumps`` writes it: structure (None) and values (their
    probability; an item's id is structure)."""
    if isinstance(value, dict):
        item = value["id"] if isinstance(value.get("id"), str) else item
        yield "{", None
        for n, (name, inner) in enumerate(value.items()):
            yield (", " if n else "") + json.dumps(name) + ": ", None
            yield from _pieces(inner, item, at, name)
        yield "}", None
    elif isinstance(value, list):
        yield "[", None
        for n, inner in enumerate(value):
            if n:
                yield ", ", None
            yield from _pieces(inner, item, at, key)
        yield "]", None
    else:
        yield json.dumps(value), None if key == "id" else at.probs.of(value, item, at.records.get(item))
