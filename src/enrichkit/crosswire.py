"""The free cross-wiring check: a packed answer's free text should resemble its own row, not another.

Two answers swapped inside a pack keep valid ids and valid values, so nothing else catches them. But
an answer's free text (a summary, a note) almost always repeats words of the row it was written for.
Each answer is scored against every row of its pack by the words they share, weighted by how rare
the word is in the pack (a word in every row says nothing). An answer that matches another row at
least twice as well as its own, and by at least one rare word, is held to be cross-wired and asked
again (a false alarm costs a call, never a wrong row). It costs no tokens; it needs a free-text
output field (``text_fields``), and it cannot see a swap between rows whose answers share no words
with their rows (the echo can: ``--echo``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

_WORD = re.compile(r"\d+|[^\W\d_]{3,}")  # numbers, and words of three letters or more
RARE = 4
"""A word in at most one row in ``RARE`` of the pack is rare enough to tell rows apart."""


def text_fields(schema: Mapping[str, Any]) -> list[str]:
    """The output fields of free text: strings without an enum, const, format or pattern."""
    return [
        name
        for name, field in schema.get("properties", {}).items()
        if field.get("type") == "string" and not {"enum", "const", "format", "pattern"} & set(field)
    ]


def _words(values: Iterable[Any]) -> set[str]:
    return {w.lower() for value in values for w in _WORD.findall(str(value))}


def suspects(
    answers: Mapping[str, Mapping[str, Any]], rows: Mapping[str, Mapping[str, Any]], fields: list[str]
) -> set[str]:
    """The pack ids among ``answers`` whose free text (``fields``) resembles another row of the pack
    (``rows``: pack id → input values) clearly better than its own."""
    if len(rows) < 2 or not fields:
        return set()
    row_words = {rid: _words(values.values()) for rid, values in rows.items()}
    seen_in = Counter(w for words in row_words.values() for w in words)
    weight = {w: math.log((len(rows) + 1) / n) for w, n in seen_in.items()}  # once per pack, not per answer
    rare = math.log(RARE)
    found = set()
    for rid, values in answers.items():
        said = _words(values.get(f, "") for f in fields) & weight.keys()
        if not said:
            continue
        scores = {other: sum(weight[w] for w in said & words) for other, words in row_words.items()}
        own = scores.pop(rid, 0.0)
        best = max(scores.values(), default=0.0)
        if best >= rare and best > 2 * own:
            found.add(rid)
    return found
