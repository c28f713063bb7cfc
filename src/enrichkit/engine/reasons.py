"""A failure reason without the row's own values, so that rows failing the same way count together
(the receipt's top reasons, the stop evidence's hint)."""

from __future__ import annotations

import re

# What varies from row to row in a failure reason, so that rows failing the same way count together.
_VARYING = [
    (re.compile(r"has \d+ words, more than (\d+)"), r"more than \1 words"),
    (
        re.compile(  # "field: <the value's repr> is ..."
            r"^([\w.\[\]-]+: )(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|\[.*?\]|\{.*?\}|[-+\w.]+)"
            r" (is |does not |not in )"
        ),
        r"\1value \2",
    ),
    (re.compile(r"^echo .*? is not the row's .*?: "), "echo is not the row's: "),
    (re.compile(r"^id \S+ answered \d+ times"), "an id answered more than once"),
    (re.compile(r" at character \d+"), ""),
    (re.compile(r"^no valid answer in \d+ attempts?: "), "no valid answer yet: "),
    (re.compile(r": the run stopped \(.*\)$"), ": the run stopped"),  # why is the receipt's first line
]


def reason_kind(reason: str) -> str:
    """A failure reason without the row's own values: ``tldr: has 14 words, more than 12`` is
    ``tldr: more than 12 words``, ``challenge: 'hard' not in [...]`` is ``challenge: value not in [...]``."""
    for pattern, replacement in _VARYING:
        reason = pattern.sub(replacement, reason)
    return reason
