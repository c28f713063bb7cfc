"""Own words: free text that nearly copies its row, where the task asks for a summary
(``task.summaries``), is refused once.

A small local model asked for a summary "in your own words" often hands back the row's description
with a word changed; it passes every check. On a provider with ``Capabilities.own_words`` such an
answer is invalid, and the row is asked again with the reason (a repair); the repair's answer is not
held to it, so a row the model can only copy still gets an answer. A copy is free text of at least
``MIN_WORDS`` words whose ``difflib.SequenceMatcher`` ratio to one of the row's text inputs (lowered)
is above ``COPY_RATIO``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from enrichkit.task.summaries import MIN_WORDS

COPY_RATIO = 0.8


def similarity(answer: str, source: str) -> float:
    """How alike two texts are, 0 to 1 (difflib's ratio, case aside)."""
    matcher = difflib.SequenceMatcher(None, answer.lower(), source.lower(), autojunk=False)
    return matcher.ratio() if matcher.real_quick_ratio() > COPY_RATIO else 0.0


def copied(values: Mapping[str, Any], fields: Sequence[str], inputs: Mapping[str, Any]) -> str | None:
    """Why ``values`` are refused: a field of ``fields`` nearly copies a text input of its row (None: none does)."""
    for name in fields:
        value = values.get(name)
        if not isinstance(value, str) or len(value.split()) < MIN_WORDS:
            continue
        for source, text in inputs.items():
            if isinstance(text, str) and (ratio := similarity(value, text)) > COPY_RATIO:
                return (
                    f"{name!r} copies the record's {source!r} ({ratio:.0%} alike): say what it is in your own"
                    " words, not the record's"
                )
    return None
