"""Writing systems (scripts) of text, by Unicode block: which scripts a row and a task are written in,
the characters of those scripts (for a local model's grammar), and words counted as readers count them
(each Chinese or Japanese character a word, since those scripts put no spaces between words).

Only letters count: ASCII digits, punctuation and symbols belong to no script. The table covers the
scripts with their own Unicode blocks that models write most; a letter outside it has no known
script and is never held against an answer. ``HAN`` is Chinese characters with Japanese kana and
the CJK punctuation and full-width forms, one family as Japanese text mixes them.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable

# (first, last, script): the blocks, in order; of Latin-1 its letters only (not its symbols and signs).
_BLOCKS: list[tuple[int, int, str]] = [
    (0x41, 0x5A, "LATIN"),
    (0x61, 0x7A, "LATIN"),
    (0xC0, 0xD6, "LATIN"),
    (0xD8, 0xF6, "LATIN"),
    (0xF8, 0x24F, "LATIN"),
    (0x370, 0x3FF, "GREEK"),
    (0x400, 0x52F, "CYRILLIC"),
    (0x530, 0x58F, "ARMENIAN"),
    (0x590, 0x5FF, "HEBREW"),
    (0x600, 0x6FF, "ARABIC"),
    (0x750, 0x77F, "ARABIC"),
    (0x900, 0x97F, "DEVANAGARI"),
    (0x980, 0x9FF, "BENGALI"),
    (0xB80, 0xBFF, "TAMIL"),
    (0xE00, 0xE7F, "THAI"),
    (0x10A0, 0x10FF, "GEORGIAN"),
    (0x1100, 0x11FF, "HANGUL"),
    (0x1E00, 0x1EFF, "LATIN"),
    (0x1F00, 0x1FFF, "GREEK"),
    (0x2E80, 0x2FDF, "HAN"),
    (0x3000, 0x30FF, "HAN"),
    (0x3130, 0x318F, "HANGUL"),
    (0x31F0, 0x31FF, "HAN"),
    (0x3400, 0x4DBF, "HAN"),
    (0x4E00, 0x9FFF, "HAN"),
    (0xAC00, 0xD7AF, "HANGUL"),
    (0xF900, 0xFAFF, "HAN"),
    (0xFF00, 0xFFEF, "HAN"),
    (0x20000, 0x3134F, "HAN"),
]

_STARTS = [first for first, _, _ in _BLOCKS]

# Characters of no script a word of a free-text answer may hold whatever its scripts: ASCII's non-letters
# but the space, comma and semicolon (which end a word) and the braces, brackets and backslash a model
# strays into from the JSON around the text; Latin-1's symbols, dashes, quotes and other general
# punctuation, currency and letter-like signs (™ №), arrows, maths.
NEUTRAL_WORD_CLASS = "!-+\\--/0-9:<-@^-`|~\u00a1-\u00bf\u00d7\u00f7\u2010-\u2027\u2030-\u205e\u20a0-\u20cf\u2100-\u22ff"


def script_of(char: str) -> str | None:
    """The script of one character (None: a non-letter of ASCII, or outside the table)."""
    code = ord(char)
    if code < 0x80 and not char.isalpha():
        return None
    i = bisect.bisect_right(_STARTS, code) - 1
    if i >= 0 and code <= _BLOCKS[i][1]:
        return _BLOCKS[i][2]
    return None


OTHER = "OTHER"


def scripts(text: str, other: bool = False) -> frozenset[str]:
    """The scripts ``text`` is written in; with ``other``, ``OTHER`` too where it has a letter of a
    script outside the table."""
    if text.isascii():
        return frozenset(["LATIN"]) if any(c.isalpha() for c in text) else frozenset()
    found = {script_of(c) or (OTHER if other and c.isalpha() else None) for c in set(text)}
    return frozenset(s for s in found if s is not None)


def foreign(text: str, allowed: Iterable[str]) -> list[str]:
    """The scripts of ``text`` not in ``allowed``, sorted (empty when it keeps to them)."""
    return sorted(scripts(text) - set(allowed))


def known(names: Iterable[str]) -> bool:
    """Whether every one of ``names`` is a script of the table (so ``word_class`` can spell it out)."""
    return set(names) <= {script for _, _, script in _BLOCKS}


def word_class(names: Iterable[str]) -> str:
    """The inside of a regular-expression character class of what a word may hold: the letters of
    ``names`` and ``NEUTRAL_WORD_CLASS`` (characters as they are, so any regex engine reads them)."""
    wanted = set(names)
    return NEUTRAL_WORD_CLASS + "".join(f"{chr(a)}-{chr(b)}" for a, b, script in _BLOCKS if script in wanted)


_SPACELESS = re.compile("[" + "".join(f"{chr(a)}-{chr(b)}" for a, b, script in _BLOCKS if script == "HAN") + "]")


def word_count(text: str) -> int:
    """Words as ``str.split`` counts them, but each Chinese or Japanese character a word of its own
    (text between them, as "a电池lasting", is a word per run: 4 there)."""
    if text.isascii():
        return len(text.split())
    count = 0
    for token in text.split():
        if not _SPACELESS.search(token):
            count += 1
            continue
        for part in _SPACELESS.split(token):
            count += any(c.isalnum() for c in part)
        count += sum(1 for c in _SPACELESS.findall(token) if c.isalnum())
    return count
