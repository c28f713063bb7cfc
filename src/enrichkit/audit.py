"""The packing audit: packed answers compared with the same rows asked one at a time.

Fields with a closed set of answers (enum, const, boolean, number, anything not free text) are
compared exactly. Free-text strings are compared by similarity: both answers lowercased, every run
of punctuation and whitespace made one space, then ``difflib.SequenceMatcher``'s ratio (0 to 1).
A character-level ratio rather than word Jaccard: short answers that say the same thing in
slightly different words (plurals, "use"/"using") still score high, and word order counts.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from statistics import fmean
from typing import TYPE_CHECKING, Any

from enrichkit.errors import ProviderError, UserError
from enrichkit.validation import AnswerError, parse_answer

if TYPE_CHECKING:
    from enrichkit.packer import Packer, Work
    from enrichkit.providers.base import Provider
    from enrichkit.scheduler import Scheduler

SIMILAR = 0.5
"""Two texts at least this similar count as agreeing."""
HINT_BELOW = 0.8
"""A field whose agreement is below this gets a hint in the receipt."""
_SEPARATORS = re.compile(r"[\W_]+")


@dataclass(frozen=True)
class FieldAgreement:
    """How one output field's packed answers compare with its single-row answers: ``agreement`` is
    the share of rows that agree (equal, or for free text at least ``SIMILAR`` similar);
    ``similarity`` is the mean similarity of free-text fields (None for exact ones)."""

    agreement: float
    similarity: float | None = None


@dataclass
class Audit:
    """The audit of a run (the report's ``audit``): ``rows`` re-asked singly, ``answered`` of them
    with a valid answer (the others do not count), and the agreement of every output field."""

    fraction: float
    rows: int = 0
    answered: int = 0
    fields: dict[str, FieldAgreement] = field(default_factory=dict)


def merged(before: Audit | None, after: Audit) -> Audit:
    """Two chunks' audits of one run as one: counts added, agreements weighted by answered rows."""
    if before is None:
        return after
    fields: dict[str, FieldAgreement] = {}
    for name in [*before.fields, *(n for n in after.fields if n not in before.fields)]:
        parts = [(a.fields[name], a.answered) for a in (before, after) if name in a.fields and a.answered]
        rows = sum(n for _, n in parts)
        texts = [(f.similarity, n) for f, n in parts if f.similarity is not None]
        fields[name] = FieldAgreement(
            round(sum(f.agreement * n for f, n in parts) / rows, 4),
            round(sum(s * n for s, n in texts) / sum(n for _, n in texts), 4) if texts else None,
        )
    return Audit(after.fraction, before.rows + after.rows, before.answered + after.answered, fields)


def check_fraction(fraction: float) -> None:
    if not 0 <= fraction <= 1:
        raise UserError(f"audit fraction must be between 0 and 1, not {fraction:g}")


def sample(keys: Collection[str], fraction: float) -> list[str]:
    """``fraction`` of ``keys`` (rounded half up, at least one), drawn by a generator seeded with the keys
    themselves: the same rows give the same sample, whatever order they settled in."""
    if fraction <= 0 or not keys:
        return []
    ordered = sorted(keys)
    seed = hashlib.sha256("\n".join(ordered).encode()).hexdigest()
    return random.Random(seed).sample(ordered, min(len(ordered), max(1, int(fraction * len(ordered) + 0.5))))


def normalized(text: str) -> str:
    return " ".join(_SEPARATORS.sub(" ", text.lower()).split())


def similarity(a: str, b: str) -> float:
    """How alike two texts are, 0 to 1, after ``normalized`` (two empty texts are alike)."""
    return SequenceMatcher(None, normalized(a), normalized(b), autojunk=False).ratio()


def _free_text(schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    strings = kind == "string" or (isinstance(kind, list) and "string" in kind)
    return strings and "enum" not in schema and "const" not in schema


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def agreement(
    schema: Mapping[str, Any], packed: Sequence[Mapping[str, Any]], single: Sequence[Mapping[str, Any]]
) -> dict[str, FieldAgreement]:
    """The agreement of every field of the output ``schema`` between ``packed`` and ``single``
    answers of the same rows (pairwise; empty without rows)."""
    pairs = list(zip(packed, single, strict=True))
    if not pairs:
        return {}
    fields: dict[str, FieldAgreement] = {}
    for name, sub in schema["properties"].items():
        if _free_text(sub):
            scores = [similarity(_text(p.get(name)), _text(s.get(name))) for p, s in pairs]
            share = sum(score >= SIMILAR for score in scores) / len(scores)
            fields[name] = FieldAgreement(round(share, 4), round(fmean(scores), 4))
        else:
            fields[name] = FieldAgreement(round(sum(p.get(name) == s.get(name) for p, s in pairs) / len(pairs), 4))
    return fields


def audit_text(doc: Mapping[str, Any]) -> str:
    """The receipt's audit line for the report's ``audit``, with a hint when packed answers often disagree."""
    rows, answered = doc["rows"], doc["answered"]
    if not rows:
        return "audit: no row was answered in a pack in this run, none re-asked"
    line = f"audit: {rows:,} row{'s' if rows != 1 else ''} re-asked singly"
    if answered < rows:
        line += f" ({rows - answered:,} gave no valid answer)"
    if not answered:
        return line
    parts = [
        f"{name} {f['agreement']:.0%} agree"
        if f["similarity"] is None
        else f"{name} similarity {f['similarity']:.2f} ({f['agreement']:.0%} ≥ {SIMILAR})"
        for name, f in doc["fields"].items()
    ]
    line += ": " + "; ".join(parts)
    if any(f["agreement"] < HINT_BELOW for f in doc["fields"].values()):
        line += "\nhint: packed answers often differ from the same rows asked alone; a smaller --batch-size may help"
    return line


async def audit_packed(packer: Packer, scheduler: Scheduler, provider: Provider, fraction: float) -> None:
    """Ask a ``fraction`` of the rows answered in packs of this run again one at a time, and record in
    ``stats.audit`` how the answers agree; the single answers are neither cached nor used. A refused call
    ends the audit (the calls not yet sent end cancelled, which the task group ignores), not the run."""
    if fraction <= 0:
        return
    chosen = [packer.packed[key] for key in sample(packer.packed, fraction)]
    single: dict[str, dict[str, Any]] = {}

    async def ask_alone(item: Work) -> None:
        """One audit call into ``single``; a failed call or an invalid answer gives none."""
        try:
            reply = await scheduler.call(provider, packer.single_request(item), "audit")
            values, problem = packer.check_values(parse_answer(reply.text, dict))
        except (ProviderError, AnswerError):
            return
        if problem is None:
            single[item.key] = values

    async with asyncio.TaskGroup() as group:
        for item in chosen:
            group.create_task(ask_alone(item))
    packed = [packer.results[key].values for key in single]
    fields = agreement(packer.task.schema, packed, list(single.values()))
    packer.stats.audit = merged(packer.stats.audit, Audit(fraction, len(chosen), len(single), fields))
