"""The grammar a local answer is decoded under: the answer schema as llama.cpp's llguidance (or its own
converter) takes it, with ``maxWords`` turned into a pattern."""

from __future__ import annotations

import functools
import importlib.metadata
import json
import re
from collections.abc import Mapping
from typing import Any

from enrichkit.errors import UserError
from enrichkit.task.schema import is_free_text, restrict
from enrichkit.task.scripts import known, scripts, word_class

INSTALL = "pip install 'enrichkit[local]'"

# What the grammar enforces while decoding. xllamacpp's llama.cpp is built with llguidance, whose
# JSON-schema compiler covers string lengths, regular expressions (unanchored ones too, as JSON Schema
# means them), number and integer ranges, the common formats, and ``allOf`` as an intersection; a
# runtime without llguidance gets llama.cpp's own converter (``response_format``), which enforces less.
# The rest (uniqueItems ...) is stated in the prompt; every answer is checked by enrichkit anyway.
SUPPORTED_KEYWORDS = frozenset(
    [
        "$defs",
        "$ref",
        "type",
        "format",
        "enum",
        "const",
        "items",
        "prefixItems",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "anyOf",
        "oneOf",
        "allOf",
        "properties",
        "additionalProperties",
        "required",
    ]
)

FORMATS = frozenset(["date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid", "uri"])

# ``lenient``: what llguidance cannot compile is ignored instead of dropping the whole grammar (``oneOf``
# is taken as ``anyOf``); compact JSON (no whitespace between tokens) unless ``Notes.compact`` is off.
GUIDANCE = {"whitespace_flexible": False, "lenient": True}

# ``maxWords`` becomes a ``pattern`` of at most that many space-separated words, so no answer can break
# it; each word is capped (generously) so a small model cannot ramble inside one word to the token
# limit. Under llguidance it is intersected with the field's own ``pattern`` and length limits.
WORD_CHARS = 24

# Regular-expression syntax llguidance cannot compile (look-around, back-references, word boundaries,
# atomic groups, possessive quantifiers, Python-only escapes): such a pattern is left to the check.
_UNCOMPILABLE = re.compile(r"\\[1-9bBZGk]|\(\?[=!<>(]|\(\?P[=>]|[*+?}]\+")

_ESCAPES_AND_SETS = re.compile(r"\\.|\[\^?\]?(?:\\.|[^\]\\])*\]")

_BOUNDS = [("minLength", "maxLength"), ("minItems", "maxItems"), ("minimum", "maximum")]


def compilable(pattern: str) -> bool:
    """Whether llguidance can turn ``pattern`` into grammar (conservatively: unsure means no)."""
    if _UNCOMPILABLE.search(pattern):
        return False
    inner = pattern.removeprefix("^")
    inner = inner[:-1] if inner.endswith("$") and not inner.endswith("\\$") else inner
    return not re.search(r"[\^$]", _ESCAPES_AND_SETS.sub("", inner))  # no anchor inside


ANY_WORD_CLASS = "^\\s\\x1c-\\x1f,;{}\\[\\]\\\\"
"""What a word may hold where the scripts are not known: anything but whitespace, the comma and semicolon
that end a word, and the braces, brackets and backslash a model strays into from the JSON around it."""


def word_pattern(words: int | None, word_class: str = ANY_WORD_CLASS, llguidance: bool = True) -> str:
    """Free text of at most ``words`` words (None: any number, newlines between them allowed) of at
    most ``WORD_CHARS`` characters of ``word_class`` (the inside of a ``[...]``), one space apart; a
    comma or semicolon only ends a word, and never the text, so a model out of words cannot go on
    gluing them together ("a,b,c") nor stop mid-list. llama.cpp's own converter reads the JSON text
    as written, so there a word only excludes the space, quote and backslash."""
    if not llguidance:
        assert words is not None
        return f'^[^ "\\\\]{{1,{WORD_CHARS}}}( [^ "\\\\]{{1,{WORD_CHARS}}}){{0,{words - 1}}}$'
    word = f"[{word_class}]{{1,{WORD_CHARS}}}"
    if words is None:
        return f"^(({word}[,;]?[ \\n])*{word})?$"
    return f"^({word}[,;]? ){{0,{words + word_slack(words) - 1}}}{word}$"


def word_slack(words: int) -> int:
    """Words free text may run over its ``maxWords`` while decoding, to finish its thought: a model
    stopped at the limit glues the rest onto the last word ("models(natively)onAppleS");
    ``fit_words`` then cuts it back at a sentence end or the limit."""
    return max(4, words // 2)


def trimmed(text: str, words: int) -> str:
    """``text`` cut to ``words`` words: after the last sentence within them if that keeps at least
    half, else at the limit (a comma, semicolon, colon or dash left at the end taken off)."""
    parts = text.split()
    if len(parts) <= words or (not text.isascii() and scripts(text) & {"HAN"}):
        return text
    head = parts[:words]
    ends = [i for i, word in enumerate(head) if word[-1] in ".!?"]
    if ends and 2 * (ends[-1] + 1) >= words:
        return " ".join(head[: ends[-1] + 1])
    head[-1] = head[-1].rstrip(",;:-\u2013\u2014") or head[-1]
    return " ".join(head)


def fit_words(text: str | None, limits: Mapping[str, int]) -> str | None:
    """The answer ``text`` with each free-text field of ``limits`` (name to ``maxWords``) ``trimmed``
    (as it came if it is not JSON or needs no cut)."""
    try:
        answer = json.loads(text or "")
    except ValueError:
        return text
    changed = False
    for item in answer if isinstance(answer, list) else [answer]:
        for name, words in limits.items():
            if isinstance(item, dict) and isinstance(value := item.get(name), str):
                item[name] = trimmed(value, words)
                changed |= item[name] != value
    return json.dumps(answer, ensure_ascii=False) if changed else text


def _for_grammar(node: Any, llguidance: bool, word_class: str) -> Any:
    if isinstance(node, list):
        return [_for_grammar(item, llguidance, word_class) for item in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "$defs"):
            out[key] = {name: _for_grammar(sub, llguidance, word_class) for name, sub in value.items()}
        elif key in ("enum", "const"):
            out[key] = value
        elif llguidance or not (key == "items" and isinstance(value, bool)):  # llama.cpp's converter rejects it
            out[key] = _for_grammar(value, llguidance, word_class)
    if llguidance:
        if "pattern" in out and not (isinstance(out["pattern"], str) and compilable(out["pattern"])):
            del out["pattern"]
        if "format" in out and out["format"] not in FORMATS:
            del out["format"]
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False  # llguidance follows JSON Schema: unlisted keys are allowed
    for low, high in _BOUNDS:  # a contradiction would make the grammar unsatisfiable: leave it to the check
        if isinstance(out.get(low), int | float) and isinstance(out.get(high), int | float) and out[low] > out[high]:
            del out[low], out[high]
    words = node.get("maxWords")
    words = words if isinstance(words, int) and words > 0 else None
    if not llguidance:
        if words is not None and not {"pattern", "maxLength"} & set(node):
            out["pattern"] = word_pattern(words, llguidance=False)
    elif is_free_text(node):
        out["pattern"] = word_pattern(words, word_class)
    elif words is not None and "pattern" in out:
        out["allOf"] = [*out.get("allOf", []), {"pattern": word_pattern(words)}]
    elif words is not None:
        out["pattern"] = word_pattern(words)
    return out


def free_text_class(text: str) -> str:
    """The word class of free text answering ``text`` (the task and the row): the letters of the scripts
    it is written in, and neutral characters; any character where its scripts are not all known."""
    written = scripts(text, other=True)
    return word_class(written) if written and known(written) else ANY_WORD_CLASS


def grammar_schema(
    schema: Mapping[str, Any], llguidance: bool = True, compact: bool = True, word_class: str = ANY_WORD_CLASS
) -> Any:
    """The answer schema as the grammar compiler takes it (llguidance, or llama.cpp's own converter);
    ``word_class``: what free text's words may hold (``free_text_class``; llguidance only)."""
    out = restrict(_for_grammar(schema, llguidance, word_class), SUPPORTED_KEYWORDS)
    if not llguidance:
        return out
    return {"x-guidance": GUIDANCE | {"whitespace_flexible": not compact}, **out}


def runtime_version() -> str:
    try:
        return importlib.metadata.version("xllamacpp")
    except importlib.metadata.PackageNotFoundError:
        raise UserError(f"local models need xllamacpp: {INSTALL}") from None


def runtime() -> Any:
    try:
        import xllamacpp
    except ImportError:
        raise UserError(f"local models need xllamacpp: {INSTALL}") from None
    return xllamacpp


@functools.cache
def has_llguidance() -> bool:
    """Whether this build of llama.cpp compiles grammars with llguidance (the Linux wheels do)."""
    return str(runtime().json_schema_to_grammar({"type": "string"})).startswith("%llguidance")


def answer_format(schema: Mapping[str, Any], compact: bool = True, word_class: str = ANY_WORD_CLASS) -> dict[str, Any]:
    """The part of a request that constrains the answer to ``schema``: a llguidance grammar where the
    runtime has it (free text's words of ``word_class``), else ``response_format`` for llama.cpp's own
    converter."""
    if has_llguidance():
        grammar = grammar_schema(schema, compact=compact, word_class=word_class)
        return {"grammar": runtime().json_schema_to_grammar(grammar)}
    strict = {"name": "answer", "schema": grammar_schema(schema, llguidance=False), "strict": True}
    return {"response_format": {"type": "json_schema", "json_schema": strict}}
