"""JSON text exactly as the standard ``json`` module writes and reads it, made faster by orjson where that
gives the very same result.

Cache keys are hashes of canonical JSON text, so that text must never change: orjson writes only the
values it writes byte for byte as ``json`` does (strings, integers, booleans and null, in objects with
string keys and in arrays); a float, a lone surrogate, an integer beyond 64 bits and anything else go
through ``json``. Reading takes orjson's value unless ``json`` could read the text otherwise: a text
orjson refuses (NaN, a lone surrogate escape, malformed JSON: ``json`` then gives its own error) or
whose value holds a float of 2**63 or more (orjson reads an integer beyond 64 bits as a float).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import orjson

_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)

_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

_BIG = float(2**63)

# Numbers found in text by C-speed scans (faster than a regular expression): digits made "0", exponents ".".
_DIGITS = bytes.maketrans(b"123456789eE", b"000000000..")

_DIGITS_TEXT = str.maketrans("123456789", "000000000")

_LONG = "0" * 19  # an integer of 2**63 or more (which orjson reads as a float) has 19 digits or more

_LONG_BYTES = _LONG.encode()


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


def canonical_all(values: Iterable[Any], floatless: bool = False) -> list[str]:
    """``canonical`` of each value; ``floatless``: the caller knows the values hold only what orjson writes as
    ``json`` does (``floatless(text)`` of the text they were read from), so their walk is skipped."""
    if not floatless:
        return [canonical(value) for value in values]
    dumps, option = orjson.dumps, orjson.OPT_SORT_KEYS
    try:
        return [dumps(value, option=option).decode() for value in values]
    except TypeError:  # an integer beyond 64 bits after all
        return [canonical(value) for value in values]


def floatless(text: bytes) -> bool:
    """Whether the values orjson reads from ``text`` hold no float (nor an integer orjson reads as one): no
    digit is followed by ``.``, ``e`` or ``E`` and no 19 digits run (text in strings may say no wrongly)."""
    digits = text.translate(_DIGITS)
    return b"0." not in digits and _LONG_BYTES not in digits


def compact(value: Any) -> str:
    """No whitespace, keys in their order, UTF-8 kept: ``json.dumps(value, separators=(",", ":"),
    ensure_ascii=False)``."""
    if _plain(value):
        try:
            return orjson.dumps(value).decode()
        except TypeError:
            pass
    return _COMPACT.encode(value)


def loads(text: str | bytes, exact: Callable[[Any], bool] | None = None) -> Any:
    """``json.loads(text)``: the same value, or the same ``json.JSONDecodeError``. ``exact(value)``: whether
    ``json`` reads ``text`` as the value orjson read, for a caller that knows where floats may be
    (default ``exact``: no float anywhere that may have been an integer beyond 64 bits)."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)
    return value if reads_exactly(text) or (exact or is_exact)(value) else json.loads(text)


def reads_exactly(text: str | bytes) -> bool:
    """Whether orjson reads every number in ``text`` as ``json`` does, known from the text alone: no 19 digits
    run (text in strings may say no wrongly: ``is_exact`` then walks the value)."""
    if isinstance(text, str):
        return _LONG not in text.translate(_DIGITS_TEXT)
    return _LONG_BYTES not in text.translate(_DIGITS)


def is_exact(value: Any) -> bool:
    """Whether ``json`` reads the text orjson read as ``value`` as the same value: no float that may have been
    an integer beyond 64 bits (orjson reads those as floats)."""
    kind = type(value)
    if kind is dict:
        value = value.values()
    elif kind is not list:
        return kind is not float or -_BIG < value < _BIG
    for item in value:
        kind = type(item)
        if kind is str or kind is int or item is None or kind is bool:
            continue
        if kind is float:
            if not -_BIG < item < _BIG:
                return False
        elif not is_exact(item):
            return False
    return True


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell holds it: text, numbers and booleans as they are, None empty, lists and objects
    as JSON (the csv module writes the rest)."""
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value
