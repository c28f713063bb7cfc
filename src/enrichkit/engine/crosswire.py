"""The free cross-wiring check: a packed answer's free text should resemble its own row, not another.

Two answers swapped inside a pack keep valid ids and valid values, so nothing else catches them. But
an answer's free text (a summary, a note) almost always repeats words of the row it was written for.
Each answer is scored against every row of its pack by the words they share, weighted by how rare
the word is in the pack (a word in every row says nothing). An answer that matches another row at
least twice as well as its own, and by at least one rare word, is held to be cross-wired and asked
again (a false alarm costs a call, never a wrong row). It costs no tokens; it needs a free-text
output field (``text_fields``) limited to more than a few words (``carries_words``; where answers may be
short, a run adds the echo by default), and it cannot see a swap between rows whose answers share no
words with their rows (the echo can: ``--echo``). A word several answers of the pack say (a stock
phrase) is their style, not a row's, and counts for nothing.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from string import ascii_lowercase
from typing import Any

from enrichkit.task.schema import is_free_text

_WORD = re.compile(r"\d+|[^\W\d_]{3,}")  # numbers, and words of three letters or more

_ASCII_WORD = re.compile(r"[0-9]+|[a-z]{3,}")  # ``_WORD`` in lower-case ASCII text (a simpler pattern: faster)

_ASCII = bytes(range(128))

_SPACED = bytes.maketrans(_ASCII, bytes(c if chr(c).isalnum() else 32 for c in _ASCII))  # all but a-z0-9 a space

_SHAPE = bytes.maketrans(_ASCII, bytes(97 if chr(c).isalpha() else 48 if chr(c).isdigit() else 32 for c in _ASCII))

_STOP = frozenset(
    """about above across after again against all also among and any are because been before being below
    between both but can could did does doing down during each few for from further had has have having
    her here hers him his how into its just like may might more most must not off once only onto other
    our ours out over own per same she should some such than that the their theirs them then there these
    they this those through too under until upon use used uses using very via was were what when where
    which while who whom whose why will with within without would you your yours""".split()  # noqa: SIM905 (a word list reads best as words)
)

"""English words of three letters or more that say nothing of a row (any answer may use them)."""

_SHORT_OR_STOP = _STOP | set(ascii_lowercase) | {a + b for a in ascii_lowercase for b in ascii_lowercase}

"""What a run of letters in ``_SPACED`` text must not be to be a word (a ``_STOP`` word, or under three letters)."""

RARE = 4

"""A word in at most one row in ``RARE`` of the pack is rare enough to tell rows apart."""


SHORT_WORDS = 3

"""Free text of this many words (or ``8 * SHORT_WORDS`` characters) is short: a name, one or two words,
too few to carry words of its row that tell it from the others."""


def text_fields(schema: Mapping[str, Any]) -> list[str]:
    """The output fields of free text: strings without an enum, const, format or pattern."""
    return [name for name, field in schema.get("properties", {}).items() if is_free_text(field)]


def carries_words(schema: Mapping[str, Any]) -> bool:
    """Whether answers' free text is sure to be long enough to carry its row's words (so the word check
    sees a swap): some free-text field allows more than ``SHORT_WORDS`` words (``maxWords``) or
    ``8 * SHORT_WORDS`` characters (``maxLength``). A field with no limit may hold a name (a pydantic
    ``str``, a ``text`` column): not sure."""
    fields = schema.get("properties", {})
    return any(
        fields[name].get("maxWords", 0) > SHORT_WORDS or fields[name].get("maxLength", 0) > 8 * SHORT_WORDS
        for name in text_fields(schema)
    )


def _words(texts: list[str]) -> list[set[str]]:
    """The ``_WORD``s of each text in lower case, less ``_STOP``. ASCII texts are lowered and split all at
    once (faster); other text, or a run of letters and digits (v2) the pattern splits, one text at a time."""
    whole = " ".join(texts)
    if not whole.isascii():
        return [{w.lower() for w in _WORD.findall(text)} - _STOP for text in texts]
    lowered = whole.lower().encode()
    shape = lowered.translate(_SHAPE)  # letters as a, digits as 0
    if b"a0" in shape or b"0a" in shape:
        return [set(_ASCII_WORD.findall(text.lower())) - _STOP for text in texts]
    spaced = lowered.translate(_SPACED).decode()  # runs of letters or of digits, as long as ``whole``
    found: list[set[str]] = []
    start = 0
    for text in texts:
        end = start + len(text)
        found.append(set(spaced[start:end].split()) - _SHORT_OR_STOP)
        start = end + 1
    return found


def _text(values: Iterable[Any]) -> str:
    return " ".join(map(str, values))


def suspects(
    answers: Mapping[str, Mapping[str, Any]], rows: Mapping[str, Mapping[str, Any]], fields: list[str]
) -> set[str]:
    """The pack ids among ``answers`` whose free text (``fields``) resembles another row of the pack
    (``rows``: pack id → input values) clearly better than its own.

    Rows are compared two at a time, on the words that tell them apart: the answer's words found in the
    other row and not its own (``theirs``) against those in its own row and not the other (``mine``).
    Words both rows share (a common category, say) count for neither, so they cannot mask a swap. An
    answer is suspect when ``theirs`` holds a rare word and is over twice ``mine`` (and holds two words
    when the answer has none of its own row's: one alone is chance); and then so is the answer of that
    other row, when it fits this row better than its own, or when it fits neither and this answer fits
    no other row (the other half of a swap, which may hold no word of its own: "EM vs IC")."""
    if len(rows) < 2 or not fields:
        return set()
    texts = [_text(values.get(f, "") for f in fields) for values in answers.values()]
    split = _words(texts + [_text(values.values()) for values in rows.values()])
    said_by = dict(zip(answers, split[: len(answers)], strict=True))
    row_words = dict(zip(rows, split[len(answers) :], strict=True))
    in_rows = set().union(*row_words.values())
    if all((said - row_words.get(rid, set())).isdisjoint(in_rows) for rid, said in said_by.items()):
        return set()  # the usual case: no word of an answer is only another row's
    heard = set().union(*said_by.values())
    said_often = Counter(w for said in said_by.values() for w in said)
    common = max(3, len(said_by) // RARE)  # a word more answers say is their style (a stock phrase), not a row's
    holders: defaultdict[str, list[str]] = defaultdict(list)  # word an answer says -> the rows that hold it
    for rid, words in row_words.items():
        for w in words & heard:
            holders[w].append(rid)
    weight = {w: math.log((len(rows) + 1) / len(held)) for w, held in holders.items()}  # once per pack
    rare = math.log(min(RARE, len(rows) + 1))  # in a small pack, a word of one row only is rare enough
    lean: dict[str, dict[str, float]] = {}  # answer -> other row -> how much better it fits that row
    found: set[str] = set()
    for rid, said in said_by.items():
        said.intersection_update(weight.keys())
        own = row_words.get(rid, set())
        lean[rid] = {}
        if said <= own:  # the usual case: no word of the answer is another row's alone
            continue
        theirs: defaultdict[str, float] = defaultdict(float)  # other row -> said words it has, this row lacks
        count: defaultdict[str, int] = defaultdict(int)  # other row -> how many such words
        for w in said - own:
            if said_often[w] > common:
                continue
            for other in holders[w]:
                theirs[other] += weight[w]
                count[other] += 1
        mine_words = said & own
        mine = sum(weight[w] for w in mine_words)
        shared = {  # other row -> said words both rows have
            other: sum(weight[w] for w in mine_words if w in row_words[other]) for other in theirs
        }
        lean[rid] = {other: score - (mine - shared[other]) for other, score in theirs.items()}
        needed = 1 if mine else 2  # an answer with no word of its own row: one word of another is chance
        if any(
            score >= rare and count[other] >= needed and score > 2 * (mine - shared[other])
            for other, score in theirs.items()
        ):
            found.add(rid)
    for rid in list(found):  # a swap has two halves: the answer of the row this one fits may be the other
        fits = [other for other, margin in lean[rid].items() if margin >= rare and other in lean]
        for other in fits:  # it is, when it fits this row too, or fits neither and this answer fits it alone
            back = lean[other].get(rid, 0.0)
            if back > 0 or (back == 0 and len(fits) == 1):
                found.add(other)
    return found
