""" "Did you mean ...?" for a mistyped name."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping


def closest(name: str, known: Iterable[str]) -> str | None:
    """The name in ``known`` closest to ``name`` (case ignored), if one is close enough."""
    lowered = {str(k).lower(): str(k) for k in known}
    found = difflib.get_close_matches(name.lower(), lowered, n=1, cutoff=0.75)
    return lowered[found[0]] if found else None


def did_you_mean(name: str, known: Iterable[str], aliases: Mapping[str, str] | None = None) -> str:
    """`` (did you mean 'x'?)`` for the closest name in ``known`` (or what ``aliases`` maps ``name`` to, case
    ignored), or an empty string."""
    match = (aliases or {}).get(name.lower()) or closest(name, known)
    return f" (did you mean {match!r}?)" if match else ""
