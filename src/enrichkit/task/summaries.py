"""Which free-text fields ask for a summary (in the row's own words, not copied from it): by their name or
description, or, where none does, by the instruction."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from enrichkit.task.schema import is_free_text

MIN_WORDS = 3  # free text this short is a name or a label, never a summary

_SUMMARY = re.compile(r"summar|own words|tl;?dr|paraphras|rephras|in short|gist", re.IGNORECASE)


def summary_fields(properties: Mapping[str, Any], instruction: str) -> list[str]:
    """The free-text fields of ``properties`` that ask for a summary: by their name or description, or,
    where none does, each free-text field of more than ``MIN_WORDS`` words (``maxWords``, or none) when
    ``instruction`` does."""
    text = {name: sub for name, sub in properties.items() if isinstance(sub, Mapping) and is_free_text(sub)}
    named = [name for name, sub in text.items() if _SUMMARY.search(f"{name} {sub.get('description', '')}")]
    if named or not _SUMMARY.search(instruction):
        return named
    return [name for name, sub in text.items() if int(sub.get("maxWords") or MIN_WORDS + 1) > MIN_WORDS]
