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


_SPACES = str.maketrans({c: " " for c in map(chr, range(128)) if not c.isalnum()})


def _words(values: Iterable[Any]) -> set[str]:
    """The ``_WORD``s of ``values``, in lower case (ASCII text: split at what is not a letter or digit, faster)."""
    text = " ".join(map(str, values))
    if not text.isascii():
        return {w.lower() for w in _WORD.findall(text)}
    words = set()
    for token in text.lower().translate(_SPACES).split():
        if token.isdigit() or (len(token) > 2 and token.isalpha()):
            words.add(token)
        elif not token.isalpha():
            words.update(_WORD.findall(token))  # letters and digits mixed
    return words


def suspects(
    answers: Mapping[str, Mapping[str, Any]], rows: Mapping[str, Mapping[str, Any]], fields: list[str]
) -> set[str]:
    """The pack ids among ``answers`` whose free text (``fields``) resembles another row of the pack
    (``rows``: pack id → input values) clearly better than its own.

    Scored through an index from each word to the rows that hold it, so an answer costs the rows its
    words are in, not every row; a word every row holds adds the same to every row's score."""
    if len(rows) < 2 or not fields:
        return set()
    holders: dict[str, list[str]] = {}
    for rid, values in rows.items():
        for word in _words(values.values()):
            holders.setdefault(word, []).append(rid)
    everywhere = len(rows)
    weight = {w: math.log((everywhere + 1) / len(having)) for w, having in holders.items()}  # once per pack
    rare = math.log(RARE)
    found = set()
    for rid, values in answers.items():
        scores: dict[str, float] = {}
        common = 0.0
        for word in _words(values.get(f, "") for f in fields):
            having = holders.get(word)
            if having is None:
                continue
            if len(having) == everywhere:
                common += weight[word]
                continue
            for other in having:
                scores[other] = scores.get(other, 0.0) + weight[word]
        own = scores.pop(rid, 0.0) + (common if rid in rows else 0.0)
        best = max(scores.values(), default=0.0) + common
        if best >= rare and best > 2 * own:
            found.add(rid)
    return found
