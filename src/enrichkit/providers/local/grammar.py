"""The grammar a local answer is decoded under: the answer schema as llama.cpp's llguidance (or its own
converter) takes it, with ``maxWords`` turned into a pattern."""

from __future__ import annotations

import functools
import importlib.metadata
import re
from collections.abc import Mapping
from typing import Any

from enrichkit.errors import UserError
from enrichkit.task.schema import restrict

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


def word_pattern(words: int, llguidance: bool = True) -> str:
    """At most ``words`` words (no whitespace inside, as ``str.split`` counts them) of at most
    ``WORD_CHARS`` characters, one space apart; a comma or semicolon only ends a word, so a model
    out of words cannot go on gluing them together ("a,b,c"). llama.cpp's own converter reads the
    JSON text as written, so there a word also excludes the quote and backslash."""
    if not llguidance:
        return f'^[^ "\\\\]{{1,{WORD_CHARS}}}( [^ "\\\\]{{1,{WORD_CHARS}}}){{0,{words - 1}}}$'
    word = f"[^\\s\\x1c-\\x1f,;]{{1,{WORD_CHARS}}}[,;]?"
    return f"^{word}( {word}){{0,{words - 1}}}$"


def _for_grammar(node: Any, llguidance: bool) -> Any:
    if isinstance(node, list):
        return [_for_grammar(item, llguidance) for item in node]
    if not isinstance(node, Mapping):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("properties", "$defs"):
            out[key] = {name: _for_grammar(sub, llguidance) for name, sub in value.items()}
        elif key in ("enum", "const"):
            out[key] = value
        elif llguidance or not (key == "items" and isinstance(value, bool)):  # llama.cpp's converter rejects it
            out[key] = _for_grammar(value, llguidance)
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
    if isinstance(words, int) and words > 0:
        if not llguidance:
            if not {"pattern", "maxLength"} & set(node):
                out["pattern"] = word_pattern(words, llguidance=False)
        elif "pattern" in out:
            out["allOf"] = [*out.get("allOf", []), {"pattern": word_pattern(words)}]
        else:
            out["pattern"] = word_pattern(words)
    return out


def grammar_schema(schema: Mapping[str, Any], llguidance: bool = True, compact: bool = True) -> Any:
    """The answer schema as the grammar compiler takes it (llguidance, or llama.cpp's own converter)."""
    out = restrict(_for_grammar(schema, llguidance), SUPPORTED_KEYWORDS)
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
def _llguidance() -> bool:
    """Whether this build of llama.cpp compiles grammars with llguidance (the Linux wheels do)."""
    return str(runtime().json_schema_to_grammar({"type": "string"})).startswith("%llguidance")


def answer_format(schema: Mapping[str, Any], compact: bool = True) -> dict[str, Any]:
    """The part of a request that constrains the answer to ``schema``: a llguidance grammar where the
    runtime has it, else ``response_format`` for llama.cpp's own converter."""
    if _llguidance():
        return {"grammar": runtime().json_schema_to_grammar(grammar_schema(schema, compact=compact))}
    strict = {"name": "answer", "schema": grammar_schema(schema, llguidance=False), "strict": True}
    return {"response_format": {"type": "json_schema", "json_schema": strict}}
