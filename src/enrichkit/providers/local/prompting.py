"""What a local model's prompt adds to the task's: the values of each field spelled out, own words asked
for, free text first, an optional reason written first (``Notes``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from enrichkit.task.schema import field_hint, is_free_text
from enrichkit.task.summaries import summary_fields


@dataclass(frozen=True)
class Notes:
    """What a local model's system prompt adds to the task's (``guidance``). A local grammar constrains
    the answer without the model ever reading the schema, so a field's allowed values are spelled out
    here, one a line; ``own_words`` asks for free text that does not copy the record, ``remind`` asks
    it again in the user message: at its start (``remind_first``: the same text on every row, so it
    is part of the prompt start llama.cpp keeps and a row processes only its own record) or at its
    end, ``text_first`` has the free text written before the
    other fields (the grammar fixes the order); ``no_copy`` decodes a free-text field that asks for a
    summary (``task.summaries``) under a sampler that makes runs of the record's words costly
    (``staged.no_copy``; answers decoded in stages only); ``compact`` answers in JSON without whitespace (fewer
    output tokens) rather than laid out as the model likes; ``reason`` has the model write a short
    reason first in each answer (taken out before the answer is checked). The defaults are the best
    measured with benchmarks/local_packing.py (README, "The local model")."""

    values: bool = True
    own_words: bool = True
    remind: bool = True
    remind_first: bool = True
    text_first: bool = True
    no_copy: bool = True
    compact: bool = True
    reason: bool = False

    def key(self) -> dict[str, Any]:
        """What changes answers, for the provider's settings (and so the cache keys)."""
        return {"version": NOTES_VERSION, **asdict(self)}


NOTES_VERSION = 2

NOTES = Notes()

PACKED = ("id", "echo")  # what a pack's answers carry besides the task's fields


def answer_fields(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The task's fields in a request's answer schema: a single row's object, or a pack's first item
    without the ``id`` and ``echo`` the pack adds."""
    if schema.get("type") != "array":
        return dict(schema.get("properties", {}))
    item = (schema.get("prefixItems") or [schema.get("items", {})])[0]
    return {k: v for k, v in item.get("properties", {}).items() if k not in PACKED}


def guidance(schema: Mapping[str, Any], notes: Notes, instruction: str = "") -> str:
    """Lines for the end of the system prompt (empty, or starting with a blank line); they depend
    only on the task, so the system prompt stays one fixed prefix for the whole run. Own words are
    asked of the free text that asks for a summary (``task.summaries``, by its name or description, or
    by the ``instruction``), not of a name or an extraction, which may well copy the record."""
    fields = answer_fields(schema)
    lines: list[str] = []
    if notes.values:
        for name, sub in fields.items():
            if isinstance(sub.get("enum"), list):
                lines += ["", f'"{name}" is exactly one of these values:', *(f"- {v}" for v in sub["enum"])]
    text = summary_fields(fields, instruction)
    if notes.reason:
        name = reason_name(schema)
        lines += [
            "",
            f'Start each answer with "{name}": in at most {REASON_WORDS} words, what the record is'
            " and which value fits it.",
        ]
    if notes.own_words and text:
        named = ", ".join(f'"{name}"' for name in text)
        lines += ["", f"Write {named} in your own words: say what the record is for; never copy a phrase from it."]
    return "\n" + "\n".join(lines) if lines else ""


def word_limits(schema: Mapping[str, Any]) -> dict[str, int]:
    """The free-text fields of each answer that have a ``maxWords``, with it."""
    fields = answer_fields(schema)
    return {
        name: fields[name]["maxWords"]
        for name in _free_text_names(schema)
        if isinstance(fields[name].get("maxWords"), int)
    }


def _free_text_names(schema: Mapping[str, Any]) -> list[str]:
    return [name for name, sub in answer_fields(schema).items() if is_free_text(sub)]


def reminder(schema: Mapping[str, Any], notes: Notes, instruction: str = "") -> tuple[str, str]:
    """What ``remind`` puts before and after the user message (empty strings where nothing): new words
    for the free text that asks for a summary, as ``guidance``."""
    fields = answer_fields(schema)
    text = summary_fields(fields, instruction)
    if not (notes.remind and text):
        return "", ""
    named = ", ".join(f'"{name}" ({field_hint(fields[name])})' for name in text)
    line = f"Write {named} in new words, not the record's."
    return (line + "\n\n", "") if notes.remind_first else ("", "\n\n" + line)


def _each_answer(schema: Mapping[str, Any], change: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """``schema`` with ``change`` applied to the ``properties`` of each answer object (a pack's items)."""
    out = dict(schema)
    if out.get("type") == "array":
        for key in ("prefixItems", "items"):
            if isinstance(out.get(key), list):
                out[key] = [_each_answer(item, change) for item in out[key]]
            elif isinstance(out.get(key), Mapping):
                out[key] = _each_answer(out[key], change)
        return out
    props = dict(out.get("properties", {}))
    out["properties"] = change(props)
    return out


def free_text_first(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` with each answer's free-text fields moved right after its ``id``/``echo``."""

    def reorder(props: dict[str, Any]) -> dict[str, Any]:
        first = [n for n in PACKED if n in props] + [
            n for n, sub in props.items() if n not in PACKED and is_free_text(sub)
        ]
        return {n: props[n] for n in [*first, *(n for n in props if n not in first)]}

    return _each_answer(schema, reorder)


REASON_WORDS = 20

REASON_TOKENS = 40  # output tokens a reason may add to each answer


def reason_name(schema: Mapping[str, Any]) -> str:
    """The name of the hidden reason field: ``reasoning``, or with ``_`` in front until no field has it."""
    name = "reasoning"
    while name in answer_fields(schema):
        name = "_" + name
    return name


def reasoning_first(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` with each answer starting (after ``id``/``echo``) with a short reason, which the
    model writes before it commits to a value; ``without_reason`` takes it out of the answer."""
    name = reason_name(schema)
    field = {"type": "string", "maxWords": REASON_WORDS}

    def add(props: dict[str, Any]) -> dict[str, Any]:
        head = {n: props[n] for n in PACKED if n in props}
        return {**head, name: field, **{n: v for n, v in props.items() if n not in head}}

    out = _each_answer(schema, add)
    for item in [out, *out.get("prefixItems", []), out.get("items", {})]:
        if isinstance(item, dict) and "required" in item and name in item.get("properties", {}):
            item["required"] = [name, *item["required"]]
    return out


def without_reason(text: str | None, name: str) -> str | None:
    """The answer ``text`` without the reason fields (as it came if it is not JSON)."""
    try:
        answer = json.loads(text or "")
    except ValueError:
        return text
    items = answer if isinstance(answer, list) else [answer]
    for item in items:
        if isinstance(item, dict):
            item.pop(name, None)
    return json.dumps(answer, ensure_ascii=False)
