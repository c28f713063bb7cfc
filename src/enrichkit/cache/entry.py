"""A cache entry: a validated answer for one row, as the cache stores it."""

from __future__ import annotations

from typing import Any, NamedTuple

from enrichkit.rows.jsontext import compact, is_exact, loads

_NUMBERS = frozenset({int, float, bool})  # as ``isinstance(n, int | float)`` takes them


class Entry(NamedTuple):
    """A validated answer for one row, with the model that wrote it and its share of the usage; the
    probability the model gave each closed field's value (``confidence``, empty where it gave none) and
    what the run knows of how the answer came (``flags``: ``repaired``, ``fallback`` ...).

    (A named tuple: a cached re-run builds one per row, and it is cheap to build.)"""

    values: dict[str, Any]
    model: str
    prompt_tokens: float = 0.0
    output_tokens: float = 0.0
    stored_at: float = 0.0
    confidence: dict[str, float] = {}  # noqa: RUF012 (never mutated: a NamedTuple's default)
    flags: tuple[str, ...] = ()
    groups: str = ""
    """The fingerprints of the field groups the values answer, sorted, space-separated (``engine.fieldkeys``):
    one string, compared at once with a task's on every cached row."""

    def dumps(self, stored_at: float) -> str:
        """``{"v": values, "m": model, "u": [prompt, output], "t": stored_at}`` as compact JSON (numbers
        as ``json`` writes them: their ``repr``), with ``"c": confidence``, ``"f": flags`` and ``"g": groups``
        when not empty."""
        usage = f"{self.prompt_tokens!r},{self.output_tokens!r}"
        extra = f',"c":{compact(self.confidence)}' if self.confidence else ""
        if self.flags:
            extra += f',"f":{compact(list(self.flags))}'
        if self.groups:
            extra += f',"g":{compact(self.groups)}'
        return f'{{"v":{compact(self.values)},"m":{compact(self.model)},"u":[{usage}],"t":{stored_at!r}{extra}}}'

    @classmethod
    def loads(cls, text: str) -> Entry:
        """The entry ``dumps`` wrote; ``ValueError`` for any other text (cut JSON, missing fields)."""
        return cls.of(loads(text))

    @classmethod
    def of(cls, doc: Any) -> Entry:
        try:
            values, model, (prompt, output), stored = doc["v"], doc["m"], doc["u"], doc["t"]
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(f"not a cache entry ({exc!r})") from None
        if type(values) is not dict or type(model) is not str:
            raise ValueError("not a cache entry (values or model of the wrong type)")
        if not (type(prompt) in _NUMBERS and type(output) in _NUMBERS and type(stored) in _NUMBERS):
            raise ValueError("not a cache entry (usage or time not numbers)")
        confidence, flags, groups = doc.get("c", {}), doc.get("f", ()), doc.get("g", "")
        if type(confidence) is not dict or not all(type(c) is float for c in confidence.values()):
            raise ValueError("not a cache entry (confidence not a map of probabilities)")
        if not isinstance(flags, list | tuple) or not all(type(f) is str for f in flags):
            raise ValueError("not a cache entry (flags not a list of names)")
        if type(groups) is not str:
            raise ValueError("not a cache entry (groups not a text of fingerprints)")
        return cls(values, model, prompt, output, stored, confidence, tuple(flags), interned(groups))


_GROUPS: dict[str, str] = {}

_MOST_GROUPS = 4096  # distinct texts of groups kept once (a run meets a few)


def interned(groups: str) -> str:
    """One text for the entries of the same groups: a cached re-run holds a million entries, not a million
    copies of its task's fingerprints, and compares them by identity first."""
    if (kept := _GROUPS.get(groups)) is not None:
        return kept
    if len(_GROUPS) < _MOST_GROUPS:
        _GROUPS[groups] = groups
    return groups


def exact_entries(docs: list[Any]) -> bool:
    """Whether ``json`` reads these entries as orjson did (``jsontext.is_exact``): only their values can hold
    an integer orjson read as a float (usage and time are ours, small floats); others are left to ``json``."""
    return all(type(doc) is dict and is_exact(doc.get("v")) for doc in docs)


def decode(text: str) -> Entry | None:
    """The entry stored as ``text``, or None if it is damaged."""
    try:
        return Entry.loads(text)
    except ValueError:  # json.JSONDecodeError is one
        return None
