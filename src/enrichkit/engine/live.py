"""Live mode: packs sent as concurrent calls, failed rows walked down the ladder as they fail.

Every unique row (``Work``) starts in a pack at the ladder's first rung. Valid items settle and are
cached at once (``Settlement``); the rows that failed go to the rung the ``Ladder`` names, as new calls in
the same task group, so salvage overlaps the packs still in flight. Calls go through the run's
``Scheduler`` (admission, rate limits, retries); a fatal error stops the run.

A row on its own is asked again until one kind of failure (an invalid answer, a refused request, an
answer cut off) came ``REPAIRS + 1`` times (an invalid answer's reason goes into the prompt, for the
model to repair), before the next fallback model: unrelated faults hitting one row are the server's
noise, not evidence about the row. A
provider reply never stops the run on its own, except by evidence that the run cannot succeed
(``StopEvidence``): several rows in a row refused the same way, or rows on their own answered
invalidly again and again while fewer rows of the run were valid (a schema the model cannot satisfy).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from enrichkit.calls.pacing import Gate, Place
from enrichkit.calls.scheduler import Scheduler
from enrichkit.engine import media_room
from enrichkit.engine.codec import PackCodec
from enrichkit.engine.ladder import Ladder, Rung
from enrichkit.engine.leases import Claims
from enrichkit.engine.media_room import MediaRoom
from enrichkit.engine.pools import Pools
from enrichkit.engine.settle import Settlement
from enrichkit.engine.sizing import PackSizer
from enrichkit.engine.stop_evidence import REPAIRS, CannotSucceed, StopEvidence
from enrichkit.engine.validation import Checked
from enrichkit.errors import FatalProviderError, PromptTooLong, ProviderError, RequestRejected, TransientError
from enrichkit.history.calls import CallLog
from enrichkit.providers.base import Provider, Reply, Request
from enrichkit.result import CallKind
from enrichkit.rows.work import Work


class LiveRun:
    def __init__(
        self,
        codec: PackCodec,
        settlement: Settlement,
        scheduler: Scheduler,
        models: Sequence[Provider],
        ladder: Ladder,
        sizer: PackSizer | None = None,
        log: CallLog | None = None,
    ) -> None:
        self.codec = codec
        self.log = log
        self.settlement = settlement
        self.claims = Claims(settlement)
        self.scheduler = scheduler
        self.models = list(models)
        self.ladder = ladder
        self.sizer = sizer
        self._group: asyncio.TaskGroup | None = None
        self._pools: Pools[Work] = Pools()
        self._room = Gate(1)  # a place for each call in flight (the run's gate follows the concurrency)
        self._evidence = StopEvidence()
        self.media = MediaRoom(media_room.MEDIA_IN_FLIGHT)

    async def run(self, work: Sequence[Work], start: Rung | None = None) -> None:
        """Enrich all ``work`` from rung ``start`` (default the ladder's first); results settle (and are
        cached) as they come."""
        rung = start or self.ladder.first
        if work:
            first = self.codec.packs(work, rung.size)[0]
            await self.scheduler.preflight(self.models[rung.fallback], self.codec.pack_request(first, load=False)[1])
        self._room = self.scheduler.admission.room()
        self._pools = Pools()
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self._pools.opened(rung)  # the feed: its packs' failed rows may join every pool below it
                async for pack, formed, limit in self._feed(work, rung):
                    self._send(pack, Rung(limit, rung.fallback), formed)
                self._pools.closed(rung)
                self._flush()
        except BaseExceptionGroup as failed:
            raise _first_cause(failed) from None

    async def _feed(self, work: Sequence[Work], rung: Rung) -> AsyncIterator[tuple[list[Work], int, int]]:
        """Each pack, with the adaptive size it was formed at and its rung's size, once there is room (so it
        looks at the cache just before it is sent, and takes the sizes the ladder and the sizer hold then).
        A pack is filled with rows this run may ask: rows stored meanwhile settle as hits, and rows another
        worker is asking are left to it (``_await``), so the pack takes the next rows instead."""
        start = 0
        claimed: list[Work] = []  # rows this run may ask, not packed yet
        while start < len(work) or claimed:
            await self._room.acquire()
            formed = self.sizer.size if self.sizer is not None else rung.size
            limit = max(1, min(formed, rung.size, self.ladder.cap))
            while len(claimed) < limit and start < len(work):
                taken = list(work[start : start + limit - len(claimed)])
                start += len(taken)
                free, held = await self.claims.claim(taken)
                claimed += free
                if held:
                    self._await(held, Rung(limit, rung.fallback))
            if not claimed:
                self._room.release()
                continue
            pack = self.codec.packs(claimed, limit)[0]
            del claimed[: len(pack)]
            yield pack, formed, limit

    def _await(self, held: list[Work], rung: Rung) -> None:
        """Leave rows to the other worker asking them; the rows it does not answer join the pool at ``rung``."""
        assert self._group is not None
        self._pools.opened(rung)
        self._group.create_task(self._awaited(held, rung))

    async def _awaited(self, held: list[Work], rung: Rung) -> None:
        try:
            free = await self.claims.awaited(held)
        finally:
            self._pools.closed(rung)
        for items, at in self._pools.add(free, rung):
            self._send(items, at)
        self._flush()

    def _send(self, items: list[Work], rung: Rung, formed: int | None = None) -> None:
        """Ask ``items`` at ``rung`` as a new call (``formed``: a pack of the feed, formed at this adaptive
        size once it had its place in the room; any other call waits for its place, so it goes out with
        what the ladder learned meanwhile)."""
        assert self._group is not None
        self._pools.opened(rung)
        self._group.create_task(self._call(items, rung, formed))

    async def _call(self, items: list[Work], rung: Rung, formed: int | None) -> None:
        try:
            if formed is None:
                await self._room.acquire()
            observe = None if formed is None else lambda: self._observe(items, formed)
            place = Place(self._room, observe)  # the adaptive size learns of the pack before the next is formed
            try:
                await self._ask(items, rung, place, claimed=formed is not None)
            finally:
                place.leave()
        finally:
            self._pools.closed(rung)
        self._flush()

    def _flush(self) -> None:
        """Send the pooled rows that nothing can add to any more."""
        for items, rung in self._pools.ready():
            self._send(items, rung)

    def _observe(self, pack: list[Work], formed: int) -> None:
        """Tell the adaptive size how many rows of a settled pack its answer left unanswered."""
        if self.sizer is not None:
            self.sizer.observe(formed, len(pack), sum(w.key not in self.settlement.results for w in pack))

    async def _ask(self, items: list[Work], rung: Rung, place: Place, *, claimed: bool = False) -> None:
        """Ask ``items`` at ``rung`` (``claimed``: the feed has claimed them just now); a pack leaves its
        ``place`` in the room once its answer is checked, not waiting for the cache to store it."""
        if not claimed:
            items, held = await self.claims.claim(items)
            if held:
                self._await(held, rung)
        if not items:
            return
        if len(asking := {w.fields for w in items}) > 1:  # a salvage pool's rows asking for other fields
            for fields in asking:
                self._send([w for w in items if w.fields == fields], rung)
            return
        if len(items) > max(1, self.ladder.cap):  # formed before the ladder gave this size up
            self._salvage(items, Rung(2 * self.ladder.cap, rung.fallback), blocked=False)
            return
        if len(items) == 1:
            await self._single(items[0], Rung(1, rung.fallback))
            return
        taken = await self.media.take(items) if self.codec.task.media else 0
        try:
            failed, blocked, stored = await self._packed(items, rung)
        finally:
            await self.media.give(taken)
        if failed:
            self._salvage(failed, Rung(len(items), rung.fallback), blocked)
        place.leave()
        if stored is not None:
            await stored

    async def _packed(self, items: list[Work], rung: Rung) -> tuple[list[Work], bool, Awaitable[None] | None]:
        """Ask ``items`` as one pack at ``rung``: the rows that failed, whether the answer was blocked, and the
        awaitable done once the valid ones are cached (its request, its media's bytes, freed on return)."""
        provider = self.models[rung.fallback]
        ids, request = self.codec.pack_request(items)
        blocked = False
        stored: Awaitable[None] | None = None
        started = time.perf_counter()
        try:
            reply = await self.scheduler.call(provider, request, "packed", _attempted(items))
        except TransientError as exc:  # a server error that outlived its retries says nothing about the pack
            failed = items
            self._logged("packed", rung, provider, items, request, exc, started)
        except (PromptTooLong, RequestRejected) as exc:
            failed = items
            self.ladder.observe(len(items), len(items), len(items))
            self._logged("packed", rung, provider, items, request, exc, started)
        except FatalProviderError as exc:  # the run stops: the log still says which call it was
            self._logged("packed", rung, provider, items, request, exc, started)
            raise
        else:
            checked = self.codec.read_pack(reply, ids, items)
            self._logged("packed", rung, provider, items, request, reply, started, checked)
            rejected, stored = self.settlement.accept(checked, reply.usage, provider.model, len(items))
            failed = list(rejected)
            blocked = reply.finish == "blocked"
            answered = reply.finish == "stop"
            none_valid = not self.settlement.results
            self.ladder.observe(len(items), len(items), len(failed), answered=answered, none_valid=none_valid)
        return failed, blocked, stored

    def _salvage(self, failed: list[Work], rung: Rung, blocked: bool) -> None:
        """The failed rows of a request at ``rung``, pooled at the next rung (sent once a pack is full, or
        once nothing can add to it)."""
        nxt = self.ladder.after(rung, blocked=blocked)
        assert nxt is not None  # a pack always has a smaller rung below it
        for items, at in self._pools.add(failed, nxt):
            self._send(items, at)

    async def _single(self, item: Work, rung: Rung) -> None:
        """One row on its own: tried again while its failures are noise, then on each fallback model, until an
        answer is valid or no model is left.

        A row is given up on a model when one kind of failure (an invalid answer, an answer the provider
        refused as invalid, a refused request, a cut-off answer) came ``REPAIRS + 1`` times: evidence about
        the row, where three unrelated faults in a row are the server's. An invalid answer's reason goes into
        the next prompt (a repair). A server error that outlived the scheduler's retries gets one more round
        of them when the run has answered rows (the server works, it is flaky); a block or a prompt too long
        goes straight on."""
        current: Rung | None = rung
        rejected: str | None = None  # why the last answer was invalid, for the model to repair
        tries = 0
        met: Counter[str] = Counter()  # kind of failure -> how often this row met it on this model
        reason = ""
        while current is not None:
            provider = self.models[current.fallback]
            kind: CallKind = "repair" if tries else "single" if current.fallback == 0 else "fallback"
            invalid, refusal, failed_as = False, "", "over"
            taken = await self.media.take([item]) if self.codec.task.media else 0
            request, started = self.codec.single_request(item, rejected), time.perf_counter()
            outcome: Reply | ProviderError
            try:
                reply = outcome = await self.scheduler.call(provider, request, kind, _attempted([item]))
                failure = await self._settle_single(reply, item, provider.model, repaired=tries > 0)
                invalid = reply.finish == "stop"
                failed_as = "invalid" if invalid else "cut" if reply.finish != "blocked" else "over"
            except RequestRejected as exc:
                failure, invalid, outcome = str(exc), exc.invalid_answer, exc
                refusal = "" if exc.invalid_answer else str(exc)
                failed_as = "refused answer" if invalid else "refused"
            except TransientError as exc:
                failure, outcome = str(exc), exc
                failed_as = "server" if self.settlement.results and not met["server"] else "over"
            except PromptTooLong as exc:
                failure, outcome = str(exc), exc
            finally:
                await self.media.give(taken)
            if self.log is not None:
                answered = self.settlement.results.get(item.key) if failure is None else None
                done = Checked({item: answered.values} if answered else {}, {item: failure} if failure else {})
                self._logged(kind, current, provider, [item], request, outcome, started, done)
            if failure is None:
                self.settlement.stats.repaired += tries > 0
                self._evidence.answered()
                return
            reason = failure
            last_model = current.fallback == len(self.models) - 1  # (a fallback model may still satisfy it)
            if invalid and last_model:
                self._stop_if(self._evidence.invalid(item.key, failure, len(self.settlement.results)))
            if refusal:
                self._stop_if(self._evidence.refused(item.key, refusal))
            met[failed_as] += 1
            if failed_as != "over" and met[failed_as] <= REPAIRS:
                tries += 1
                rejected = failure if invalid else None
                continue
            current, rejected, tries = self.ladder.after(current), None, 0
            met.clear()
        await self.settlement.fail(item, reason)

    async def _settle_single(self, reply: Reply, item: Work, model: str, *, repaired: bool) -> str | None:
        """Settle one row's answer by ``model`` (``repaired``: a repair, after an invalid one); why it failed,
        or None when it is valid (and cached)."""
        flags = ("repaired",) if repaired else ()
        checked = self.codec.read_single(reply, item, repaired)
        failed, stored = self.settlement.accept(checked, reply.usage, model, 1, flags)
        if stored is not None:
            await stored
        return failed.get(item)

    def _logged(
        self,
        kind: str,
        rung: Rung,
        provider: Provider,
        items: list[Work],
        request: Request,
        outcome: Reply | ProviderError,
        started: float,
        checked: Checked[Work] | None = None,
    ) -> None:
        """Log a call in the run's call log (if it keeps one)."""
        if self.log is None:
            return
        valid, invalid = (checked.valid, checked.invalid) if checked is not None else (None, None)
        seconds = time.perf_counter() - started
        mode = self.settlement.stats.mode
        rows = (rung.size, rung.fallback)
        self.log.call(kind, mode, rows, provider.model, provider.name, items, request, outcome, seconds, valid, invalid)

    def _stop_if(self, stop: CannotSucceed | None) -> None:
        """Stop the run for the evidence ``stop`` holds (None: go on)."""
        if stop is not None:
            self.scheduler.abort()
            raise stop


def _attempted(items: list[Work]) -> Callable[[], None]:
    """Count a call's attempt on each of its rows once, when its first try goes out (its retries are the
    same attempt; a call that never went out is none)."""
    counted = False

    def sent() -> None:
        nonlocal counted
        if not counted:
            counted = True
            for w in items:
                w.attempts += 1

    return sent


def _first_cause(group: BaseExceptionGroup[Any]) -> BaseException:
    first = group.exceptions[0]
    return _first_cause(first) if isinstance(first, BaseExceptionGroup) else first
