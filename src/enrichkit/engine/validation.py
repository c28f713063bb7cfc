"""Checking a model's answer: parse the JSON, then accept each item only if it is unambiguous and valid."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from enrichkit.engine.prompt import echo_fits, echo_of
from enrichkit.task.schema import Validator, first_error
from enrichkit.task.scripts import foreign, scripts

_FENCE = re.compile(r"```(?:json|JSON)?[ \t]*\n?")

_DECODER = json.JSONDecoder()


class AnswerError(ValueError):
    """The answer as a whole is unusable (no JSON, wrong shape); every row in it failed."""


def parse_answer(text: str | None, expect: type[list[Any]] | type[dict[str, Any]]) -> Any:
    """The JSON value in ``text``; tolerates a ```json fence and prose before the JSON, nothing else."""
    return _decode(text, _json_start(text, expect), expect)


def parse_items(text: str | None) -> tuple[list[Any], str | None]:
    """The items of the JSON array in ``text``, and None; or, when the array is cut off or broken (an
    answer stopped at the token limit), the items complete before the break and what broke it.
    Raises ``AnswerError`` when not even one item is whole."""
    start = _json_start(text, list)
    assert text is not None
    try:
        return _decode(text, start, list), None
    except AnswerError as exc:
        problem = str(exc)
    items: list[Any] = []
    pos = _skip_space(text, start + 1)
    while pos < len(text) and text[pos] != "]":
        try:
            item, pos = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError:
            break
        items.append(item)
        pos = _skip_space(text, pos)
        if not text.startswith(",", pos):
            break
        pos = _skip_space(text, pos + 1)
    if not items:
        raise AnswerError(problem)
    return items, problem


def _decode(text: str | None, start: int, expect: type[list[Any]] | type[dict[str, Any]]) -> Any:
    """The JSON value of ``expect``'s type at ``start`` in ``text``."""
    assert text is not None
    try:
        value, _ = _DECODER.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise AnswerError(f"invalid JSON in the answer: {exc.msg} at character {exc.pos}") from None
    if not isinstance(value, expect):
        raise AnswerError(f"answer is not a JSON {'array' if expect is list else 'object'}")
    return value


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _json_start(text: str | None, expect: type[list[Any]] | type[dict[str, Any]]) -> int:
    """Where the answer's JSON value starts: after a ```json fence or prose, not at a ``` inside it."""
    if not text or not text.strip():
        raise AnswerError("empty answer")
    opener = "[" if expect is list else "{"
    start = text.find(opener)
    fenced = _FENCE.search(text)
    if fenced is not None and (start < 0 or fenced.start() < start):  # a fence before the JSON, not ``` inside it
        start = text.find(opener, fenced.end())
    if start < 0:
        raise AnswerError(f"no JSON {'array' if expect is list else 'object'} in the answer")
    return start


def check_values(
    item: Mapping[str, Any], fields: Sequence[str], validator: Validator
) -> tuple[dict[str, Any], str | None]:
    """The output fields of ``item`` and the first problem with them (None when valid)."""
    values = {name: item[name] for name in fields if name in item}
    return values, first_error(validator, values)


def _echoes_row(got: str, rid: str, echoes: Mapping[str, str]) -> bool:
    """Whether ``got`` is a copy of row ``rid``'s echo and of no other row's that differs from it (an empty
    expected echo checks nothing)."""
    own = echoes[rid]
    if not own:
        return True
    return echo_fits(got, own) and not any(e != own and echo_fits(got, e) for e in echoes.values() if e)


def foreign_script(
    values: Mapping[str, Any], fields: Sequence[str], inputs: Mapping[str, Any], task_scripts: frozenset[str]
) -> str | None:
    """Why an answer is refused for free text (``fields``) in a script neither its row's ``inputs`` nor
    the task (``task_scripts``: those of its instruction) use, e.g. Chinese in an English summary of
    an English row; None when it keeps to them (or nothing has letters to go by). Answers in the task's own
    scripts (the common case) are passed without reading the row's."""
    if all(scripts(v) <= task_scripts for name in fields if isinstance(v := values.get(name), str)):
        return None
    allowed = task_scripts | scripts(json.dumps(list(inputs.values()), ensure_ascii=False, default=str))
    if not allowed:
        return None
    for name in fields:
        value = values.get(name)
        if isinstance(value, str) and (extra := foreign(value, allowed)):
            return (
                f"{name!r} has {' and '.join(extra)} script, which neither the record nor the task uses:"
                f" write it in {' or '.join(sorted(allowed))} script only"
            )
    return None


def _item_id(item: Any) -> str | None:
    rid = item.get("id") if isinstance(item, Mapping) else None
    return rid if isinstance(rid, str) else None


K = TypeVar("K")


@dataclass
class Checked(Generic[K]):
    """An answer checked, per row (a pack id, or the codec's ``Work``): its valid values or why it got none;
    ``invalid_items``: the items whose values were checked and refused (not an answer that failed whole);
    ``suspects``: the rows refused as answers for another row; ``confidence``: per valid row, the probability
    of each closed field's value (``engine.confidence``; empty without token log-probabilities)."""

    valid: dict[K, dict[str, Any]] = field(default_factory=dict)
    invalid: dict[K, str] = field(default_factory=dict)
    invalid_items: int = 0
    unknown_ids: int = 0
    crosswired: int = 0
    suspects: set[K] = field(default_factory=set)
    confidence: dict[K, dict[str, float]] = field(default_factory=dict)


def check_pack(
    items: Sequence[Any],
    ids: Sequence[str],
    fields: Sequence[str],
    validator: Validator,
    echoes: Mapping[str, str] | None = None,
    *,
    missing: str | None = None,
) -> Checked[str]:
    """Map items to rows by id: each id must come back exactly once, unknown ids are ignored.

    An id that appears twice is ambiguous, so neither answer is kept. With ``echoes`` (pack id →
    the expected echo), an item whose echo does not point at its row alone is cross-wired and rejected.
    ``missing``: why the answer holds only some items (it was cut off), the reason of the rows not in it.
    """
    expected = set(ids)
    item_ids = [_item_id(item) for item in items]
    counts = Counter(item_ids)
    out: Checked[str] = Checked()
    out.unknown_ids = sum(n for rid, n in counts.items() if rid not in expected)
    for rid, item in zip(item_ids, items, strict=True):
        if rid not in expected:
            continue
        assert rid is not None and isinstance(item, Mapping)
        if counts[rid] > 1:
            out.invalid[rid] = f"id {rid} answered {counts[rid]} times"
            continue
        if echoes is not None and not _echoes_row(got := echo_of(item.get("echo", ""), 99), rid, echoes):
            out.invalid[rid] = f"echo {got!r} is not the row's {echoes[rid]!r}: an answer for another row?"
            out.crosswired += 1
            out.suspects.add(rid)
            continue
        values, problem = check_values(item, fields, validator)
        if problem is None:
            out.valid[rid] = values
        else:
            out.invalid[rid] = problem
    for rid in ids:
        if rid not in out.valid and rid not in out.invalid:
            out.invalid[rid] = f"missing from the answer ({missing})" if missing else "missing from the answer"
    out.invalid_items = len(out.invalid)
    return out
