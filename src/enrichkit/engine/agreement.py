"""A confidence measured without log-probabilities: do two packings of the same rows agree?

For a model that gives no token log-probabilities, asked for confidence or escalation, the rows are
asked a second time in other packs (shuffled by a seed made from their keys: other companions, other
places) and each closed field's confidence is the share of the two answers that wrote its value: 1.0
when they agree, 0.5 when not. The second answers are compared, never kept; the first answers' entries
carry the confidence (and the flag ``agreement``, which says the signal), cached with them, so a re-run
asks nothing again. Costs one more call a pack (the dry run counts it).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Mapping

from enrichkit.cache.entry import Entry
from enrichkit.calls.scheduler import Scheduler
from enrichkit.engine.codec import PackCodec
from enrichkit.engine.confidence import closed_fields
from enrichkit.engine.media_room import MediaRoom
from enrichkit.errors import FatalProviderError, ProviderError
from enrichkit.providers.base import Provider
from enrichkit.rows.work import Work

AGREEMENT = "agreement"

DISAGREE = 0.5
"""A closed field's confidence when the second answer wrote another value (one answer of two)."""


def unmeasured(entries: Mapping[str, Entry], closed: list[str]) -> list[str]:
    """The keys of answers with no confidence yet (nor an escalated one: a better model answered it)."""
    return [key for key, e in entries.items() if closed and not e.confidence and "escalated" not in e.flags]


def reshuffled(work: list[Work]) -> list[Work]:
    """``work`` in an order seeded by its keys, so the second packs hold other companions at other places."""
    return sorted(work, key=lambda w: hashlib.sha256(w.key.encode()).digest())


async def measure(
    codec: PackCodec,
    scheduler: Scheduler,
    provider: Provider,
    entries: Mapping[str, Entry],
    inputs: Mapping[str, dict[str, object]],
    size: int,
    room: MediaRoom,
) -> dict[str, Entry]:
    """Ask the ``entries`` without a confidence again in other packs of ``size``; their entries with the closed
    fields' agreement as confidence (rows whose second answer was not valid are left out). Each pack's media
    take their ``room`` while it is asked, as the run's own calls do."""
    closed = closed_fields(codec.task.schema)
    keys = unmeasured(entries, closed)
    work = reshuffled([Work(key, dict(inputs[key])) for key in keys])
    second: dict[str, dict[str, object]] = {}

    async def ask(pack: list[Work]) -> None:
        taken = await room.take(pack)
        try:
            if len(pack) == 1:
                reply = await scheduler.call(provider, codec.single_request(pack[0]), "agreement")
                checked = codec.read_single(reply, pack[0])
            else:
                ids, request = codec.pack_request(pack)
                checked = codec.read_pack(await scheduler.call(provider, request, "agreement"), ids, pack)
        except FatalProviderError:
            raise
        except ProviderError:  # a failed second answer measures nothing: the row keeps no confidence
            return
        finally:
            await room.give(taken)
        second.update((w.key, values) for w, values in checked.valid.items())

    async with asyncio.TaskGroup() as group:
        for pack in codec.packs(work, size):
            group.create_task(ask(pack))
    measured = {}
    for key, values in second.items():
        entry = entries[key]
        confidence = {f: 1.0 if entry.values.get(f) == values.get(f) else DISAGREE for f in closed}
        measured[key] = entry._replace(confidence=confidence, flags=(*entry.flags, AGREEMENT))
    return measured
