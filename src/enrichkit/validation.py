"""Checking a model's answer: parse the JSON, then accept each item only if it is unambiguous and valid."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from enrichkit.prompt import echo_of
from enrichkit.schema import Validator, first_error

_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n?")


class AnswerError(ValueError):
    """The answer as a whole is unusable (no JSON, wrong shape); every row in it failed."""


def parse_answer(text: str | None, expect: type[list[Any]] | type[dict[str, Any]]) -> Any:
    """The JSON value in ``text``; tolerates a ```json fence and prose before the JSON, nothing else."""
    if not text or not text.strip():
        raise AnswerError("empty answer")
    opener = "[" if expect is list else "{"
    start = text.find(opener)
    fenced = _FENCE.search(text)
    if fenced is not None and (start < 0 or fenced.start() < start):  # a fence before the JSON, not ``` inside it
        start = text.find(opener, fenced.end())
    if start < 0:
        raise AnswerError(f"no JSON {'array' if expect is list else 'object'} in the answer")
    try:
        value, _ = json.JSONDecoder().raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise AnswerError(f"invalid JSON in the answer: {exc.msg} at character {exc.pos}") from None
    if not isinstance(value, expect):
        raise AnswerError(f"answer is not a JSON {'array' if expect is list else 'object'}")
    return value


def check_values(
    item: Mapping[str, Any], fields: Sequence[str], validator: Validator
) -> tuple[dict[str, Any], str | None]:
    """The output fields of ``item`` and the first problem with them (None when valid)."""
    values = {name: item[name] for name in fields if name in item}
    return values, first_error(validator, values)


def _item_id(item: Any) -> str | None:
    rid = item.get("id") if isinstance(item, Mapping) else None
    return rid if isinstance(rid, str) else None


@dataclass
class PackCheck:
    """Per pack id: the valid values, or why the row got no valid answer."""

    valid: dict[str, dict[str, Any]] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)
    unknown_ids: int = 0
    crosswired: int = 0


def check_pack(
    items: Sequence[Any],
    ids: Sequence[str],
    fields: Sequence[str],
    validator: Validator,
    echoes: Mapping[str, str] | None = None,
) -> PackCheck:
    """Map items to rows by id: each id must come back exactly once, unknown ids are ignored.

    An id that appears twice is ambiguous, so neither answer is kept. With ``echoes`` (pack id →
    the expected echo), an item whose echo does not match its row is cross-wired and rejected.
    """
    expected = set(ids)
    counts = Counter(_item_id(item) for item in items)
    out = PackCheck()
    out.unknown_ids = sum(n for rid, n in counts.items() if rid not in expected)
    for item in items:
        rid = _item_id(item)
        if rid not in expected:
            continue
        assert rid is not None and isinstance(item, Mapping)
        if counts[rid] > 1:
            out.invalid[rid] = f"id {rid} answered {counts[rid]} times"
            continue
        if echoes is not None and (got := echo_of(item.get("echo", ""))) != echoes[rid]:
            out.invalid[rid] = f"echo {got!r} is not the row's {echoes[rid]!r}: an answer for another row?"
            out.crosswired += 1
            continue
        values, problem = check_values(item, fields, validator)
        if problem is None:
            out.valid[rid] = values
        else:
            out.invalid[rid] = problem
    for rid in ids:
        if rid not in out.valid and rid not in out.invalid:
            out.invalid[rid] = "missing from the answer"
    return out
