"""Live mode: packs sent as concurrent calls, failed rows walked down the ladder as they fail.

Every unique row (``Work``) starts in a pack at the ladder's first rung. Valid items are cached at
once (by the ``Packer``); the rows that failed go to the rung the ``Ladder`` names, as new calls in
the same task group, so salvage overlaps the packs still in flight. Calls go through the run's
``Scheduler`` (admission, rate limits, retries); a fatal error stops the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from enrichkit.adaptive import PackSizer
from enrichkit.audit import Audit, agreement, merged, sample
from enrichkit.errors import PromptTooLong, ProviderError, RequestRejected, TransientError
from enrichkit.ladder import Ladder, Rung
from enrichkit.packer import Packer, Work
from enrichkit.providers.base import Provider
from enrichkit.scheduler import Scheduler
from enrichkit.validation import AnswerError, parse_answer

PackFailure = (TransientError, PromptTooLong, RequestRejected)
"""Errors that fail the rows of one call (they go down the ladder), not the run."""


class LiveRun:
    def __init__(
        self,
        packer: Packer,
        scheduler: Scheduler,
        tiers: Sequence[Provider],
        ladder: Ladder,
        sizer: PackSizer | None = None,
    ) -> None:
        self.packer = packer
        self.scheduler = scheduler
        self.tiers = list(tiers)
        self.ladder = ladder
        self.sizer = sizer
        self._group: asyncio.TaskGroup | None = None

    async def run(self, work: Sequence[Work], start: Rung | None = None) -> None:
        """Enrich all ``work`` from rung ``start`` (default the ladder's first); results land in the
        packer (and the cache) as they come."""
        rung = start or self.ladder.first
        packs = self.packer.packs(work, rung.size)
        if packs:
            await self.scheduler.preflight(self.tiers[rung.tier], self.packer.pack_request(packs[0])[1])
        room = asyncio.Semaphore(self.scheduler.concurrency)

        async def started(pack: list[Work], formed: int) -> None:
            try:
                await self._ask(pack, rung.tier)
                self._observe(pack, formed)
            finally:
                room.release()

        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                async for pack, formed in self._feed(packs, work, rung.size, room):
                    group.create_task(started(pack, formed))
        except BaseExceptionGroup as failed:
            raise _first_cause(failed) from None

    async def _feed(
        self, packs: list[list[Work]], work: Sequence[Work], size: int, room: asyncio.Semaphore
    ) -> AsyncIterator[tuple[list[Work], int]]:
        """Each pack, with the size it was formed at, once there is room (so it looks at the cache just
        before it is sent): the planned ``packs``, or with an adaptive size, the next rows left at that size."""
        if self.sizer is None:
            for pack in packs:
                await room.acquire()
                yield pack, size
            return
        start = 0
        while start < len(work):
            await room.acquire()
            formed = self.sizer.size
            limit = min(formed, size)
            pack = self.packer.packs(work[start : start + limit], limit)[0]
            start += len(pack)
            yield pack, formed

    def _observe(self, pack: list[Work], formed: int) -> None:
        """Tell the adaptive size how many rows of a settled pack its answer left unanswered."""
        if self.sizer is not None:
            self.sizer.observe(formed, len(pack), sum(w.key not in self.packer.results for w in pack))

    async def _ask(self, items: list[Work], tier: int) -> None:
        items = self.packer.cached_meanwhile(items)
        if not items:
            return
        if len(items) == 1:
            await self._single(items[0], Rung(1, tier))
            return
        provider = self.tiers[tier]
        ids, request = self.packer.pack_request(items)
        for w in items:
            w.attempts += 1
        blocked = False
        try:
            reply = await self.scheduler.call(provider, request, "packed")
        except PackFailure:
            failed = items
        else:
            failed = list(self.packer.accept_pack(reply, ids, items, provider.model))
            blocked = reply.finish == "blocked"
        if failed:
            self._salvage(failed, Rung(len(items), tier), blocked)

    def _salvage(self, failed: list[Work], rung: Rung, blocked: bool) -> None:
        """The failed rows of a request at ``rung``, sent on at the next rung as new calls."""
        assert self._group is not None
        nxt = self.ladder.after(rung, blocked=blocked)
        assert nxt is not None  # a pack always has a smaller rung below it
        for start in range(0, len(failed), nxt.size):
            self._group.create_task(self._ask(failed[start : start + nxt.size], nxt.tier))

    async def _single(self, item: Work, rung: Rung) -> None:
        """One row on its own, down the tiers until an answer is valid or none is left."""
        current: Rung | None = rung
        reason = ""
        while current is not None:
            provider = self.tiers[current.tier]
            item.attempts += 1
            try:
                reply = await self.scheduler.call(
                    provider, self.packer.single_request(item), "single" if current.tier == 0 else "fallback"
                )
                failure = self.packer.accept_single(reply, item, provider.model)
            except PackFailure as exc:
                failure = str(exc)
            if failure is None:
                return
            reason = failure
            current = self.ladder.after(current)
        self.packer.fail(item, reason)

    async def audit(self, fraction: float) -> None:
        """Ask a ``fraction`` of the rows answered in packs of this run again one at a time, and record
        in ``stats.audit`` how the answers agree; the single answers are neither cached nor used. A refused
        call ends the audit (the calls not yet sent end cancelled, which the task group ignores), not the run."""
        if fraction <= 0:
            return
        packer = self.packer
        chosen = [packer.packed[key] for key in sample(packer.packed, fraction)]
        single: dict[str, dict[str, Any]] = {}
        async with asyncio.TaskGroup() as group:
            for item in chosen:
                group.create_task(self._ask_alone(item, single))
        packed = [packer.results[key].values for key in single]
        fields = agreement(packer.task.schema, packed, list(single.values()))
        packer.stats.audit = merged(packer.stats.audit, Audit(fraction, len(chosen), len(single), fields))

    async def _ask_alone(self, item: Work, answers: dict[str, dict[str, Any]]) -> None:
        """One audit call into ``answers``; a failed call or an invalid answer gives none."""
        try:
            reply = await self.scheduler.call(self.tiers[0], self.packer.single_request(item), "audit")
            values, problem = self.packer.check_values(parse_answer(reply.text, dict))
        except (ProviderError, AnswerError):
            return
        if problem is None:
            answers[item.key] = values


def _first_cause(group: BaseExceptionGroup[Any]) -> BaseException:
    first = group.exceptions[0]
    return _first_cause(first) if isinstance(first, BaseExceptionGroup) else first
