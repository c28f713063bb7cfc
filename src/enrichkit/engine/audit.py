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
import time
from collections.abc import Collection, Mapping, Sequence
from difflib import SequenceMatcher
from statistics import fmean
from typing import TYPE_CHECKING, Any

from enrichkit.engine.validation import AnswerError, parse_answer
from enrichkit.errors import ProviderError
from enrichkit.result import Audit, FieldAgreement, merged
from enrichkit.task.schema import is_free_text

if TYPE_CHECKING:
    from enrichkit.calls.scheduler import Scheduler
    from enrichkit.engine.codec import PackCodec
    from enrichkit.engine.media_room import MediaRoom
    from enrichkit.engine.settle import Settlement
    from enrichkit.history.calls import CallLog
    from enrichkit.providers.base import Provider, Reply
    from enrichkit.rows.work import Work

SIMILAR = 0.5

"""Two texts at least this similar count as agreeing."""

_SEPARATORS = re.compile(r"[\W_]+")


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


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def agrees(schema: Mapping[str, Any], packed: Mapping[str, Any], single: Mapping[str, Any]) -> bool:
    """Whether two answers of one row agree on every field the single one answers (free text: at least
    ``SIMILAR`` similar)."""
    return all(
        similarity(_text(packed.get(name)), _text(single.get(name))) >= SIMILAR
        if is_free_text(sub)
        else packed.get(name) == single.get(name)
        for name, sub in schema["properties"].items()
        if name in single
    )


def agreement(
    schema: Mapping[str, Any], packed: Sequence[Mapping[str, Any]], single: Sequence[Mapping[str, Any]]
) -> dict[str, FieldAgreement]:
    """The agreement of every field of the output ``schema`` between ``packed`` and ``single``
    answers of the same rows (pairwise, over the rows whose single answer holds the field: a row asked for
    some fields only, its others cached, answers those; empty without rows)."""
    every = list(zip(packed, single, strict=True))
    fields: dict[str, FieldAgreement] = {}
    for name, sub in schema["properties"].items():
        if not (pairs := [(p, s) for p, s in every if name in s]):
            continue
        if is_free_text(sub):
            scores = [similarity(_text(p.get(name)), _text(s.get(name))) for p, s in pairs]
            share = sum(score >= SIMILAR for score in scores) / len(scores)
            fields[name] = FieldAgreement(round(share, 4), round(fmean(scores), 4))
        else:
            fields[name] = FieldAgreement(round(sum(p.get(name) == s.get(name) for p, s in pairs) / len(pairs), 4))
    return fields


async def audit_packed(
    codec: PackCodec,
    settlement: Settlement,
    scheduler: Scheduler,
    provider: Provider,
    fraction: float,
    room: MediaRoom,
    log: CallLog | None = None,
) -> None:
    """Ask a ``fraction`` of the rows answered in packs of this run again one at a time, and record in
    ``stats.audit`` how the answers agree; the single answers are neither cached nor used. A refused call
    ends the audit (the calls not yet sent end cancelled, which the task group ignores), not the run.
    A row whose answers disagree is flagged ``audit`` (in its cached entry too). Each call goes in the run's
    call ``log`` (kind ``audit``). Each row's media take their ``room`` while it is asked, as the run's own
    calls do."""
    if fraction <= 0:
        return
    chosen = [settlement.packed[key] for key in sample(settlement.packed, fraction)]
    single: dict[str, dict[str, Any]] = {}

    async def ask_alone(item: Work) -> None:
        """One audit call into ``single``; a failed call or an invalid answer gives none."""
        part = codec.of([item])  # a row asked for some fields only is audited on those
        taken = await room.take([item])
        request, started = part.single_request(item), time.perf_counter()
        outcome: Reply | ProviderError | None = None
        problem: str | None = "no answer"
        try:
            outcome = reply = await scheduler.call(provider, request, "audit")
            values, problem = part.check_values(parse_answer(reply.text, dict))
        except ProviderError as exc:
            outcome = exc
        except AnswerError as exc:
            problem = str(exc)
        finally:
            await room.give(taken)
        if problem is None:
            single[item.key] = values
        if log is not None and outcome is not None:
            seconds, rung = time.perf_counter() - started, (1, 0)
            valid, invalid = ({item: values}, None) if problem is None else (None, {item: problem})
            log.call("audit", settlement.stats.mode, rung, provider.model, provider.name, [item], request, outcome,
                     seconds, valid, invalid)  # fmt: skip

    async with asyncio.TaskGroup() as group:
        for item in chosen:
            group.create_task(ask_alone(item))
    packed = [settlement.results[key].values for key in single]
    fields = agreement(codec.task.schema, packed, list(single.values()))
    disagreed = {
        key: entry._replace(flags=(*entry.flags, "audit"))
        for key, alone in single.items()
        if not agrees(codec.task.schema, (entry := settlement.results[key]).values, alone)
    }
    settlement.results.update(disagreed)
    if disagreed and (stored := settlement.store(disagreed)) is not None:
        await stored
    settlement.stats.audit = merged(settlement.stats.audit, Audit(fraction, len(chosen), len(single), fields))
