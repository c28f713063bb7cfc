"""JSON text exactly as the standard ``json`` module writes and reads it, made faster by orjson where that
gives the very same result.

Cache keys are hashes of canonical JSON text, so that text must never change: orjson writes only the
values it writes byte for byte as ``json`` does (strings, integers, booleans and null, in objects with
string keys and in arrays); a float, a lone surrogate, an integer beyond 64 bits and anything else go
through ``json``. Reading takes orjson's value unless ``json`` could read the text otherwise: a text
orjson refuses (NaN, a lone surrogate escape, malformed JSON: ``json`` then gives its own error) or
one with a run of 19 digits (orjson reads an integer beyond 64 bits as a float).
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_LONG_NUMBER = re.compile(r"\d{19}")
_LONG_NUMBER_BYTES = re.compile(rb"\d{19}")


def _plain(value: Any) -> bool:
    """Whether orjson writes ``value`` as ``json`` does (floats are left to ``json``: their notations differ)."""
    kind = type(value)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return False
            kind = type(item)
            if not (kind is str or kind is int or kind is bool or item is None or _plain(item)):
                return False
        return True
    if kind is str or kind is int or kind is bool or value is None:
        return True
    return kind is list and all(_plain(item) for item in value)


def canonical(value: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept: ``json.dumps(value, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)``."""
    if _plain(value):
        try:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
        except TypeError:  # an integer beyond 64 bits, a lone surrogate
            pass
    return _CANONICAL.encode(value)


def compact(value: Any) -> str:
    """No whitespace, keys in their order, UTF-8 kept: ``json.dumps(value, separators=(",", ":"),
    ensure_ascii=False)``."""
    if _plain(value):
        try:
            return orjson.dumps(value).decode()
        except TypeError:
            pass
    return _COMPACT.encode(value)


def loads(text: str | bytes) -> Any:
    """``json.loads(text)``: the same value, or the same ``json.JSONDecodeError``."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
    long = _LONG_NUMBER_BYTES.search(text) if isinstance(text, bytes) else _LONG_NUMBER.search(text)
    return value if long is None else json.loads(text)
