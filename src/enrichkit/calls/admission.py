"""Which calls may go out now: a slot of the concurrency, and, until the key is proven to generate, only
the first call, or two after a free count passed (see ``Scheduler.preflight``)."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from enrichkit.calls.pacing import Gate


class Admission:
    """The slots of a run's calls (``size`` of them, resized as the concurrency adapts up to ``most``),
    the probe that holds calls back until the key is proven, and the rooms ``LiveRun`` forms packs in."""

    def __init__(self, size: int, most: int | None = None) -> None:
        self.slots = Gate(size)
        self.counted = False  # a free count passed: two paid calls may go before the key is proven
        self._most = most
        self._probe = Gate(1)  # calls in flight before the key was proven to generate
        self._proven = asyncio.Event()
        self._answered = False  # a paid call was answered or is being generated (see ``accepted``)
        self._rooms: weakref.WeakSet[Gate] = weakref.WeakSet()
        self._aborted = False

    @property
    def proven(self) -> bool:
        return self._proven.is_set()

    def room(self) -> Gate:
        """``LiveRun``'s room for calls: a semaphore of the calls that may go out now, which follows the
        concurrency as it adapts; until one paid call was answered, only as many as may go before that
        (so the calls that wait are formed with what the first replies taught: a refused pack size, say)."""
        gate = Gate(self._room())
        self._rooms.add(gate)
        return gate

    def resize(self, size: int) -> None:
        self.slots.resize(size)
        self._fit_rooms()

    def count_passed(self) -> None:
        """The free count passed: a second paid call may go before the first is answered."""
        self.counted = True
        self._probe.resize(2)
        self._fit_rooms()

    def accepted(self) -> None:
        """A paid call was answered, or is being generated: the key works and so does the request's
        shape, so the room opens to the concurrency (a refusal proves the key, not the request)."""
        self.prove()
        if not self._answered:
            self._answered = True
            self._fit_rooms()

    def prove(self) -> None:
        """The key and model work: every call may go (within the concurrency)."""
        self._proven.set()
        self._probe.resize(self._most or self.slots.size)

    def abort(self) -> None:
        """No new call starts (the run is stopping)."""
        self._aborted = True

    def check_aborted(self) -> None:
        """After a fatal error no new call starts (the task group is about to cancel everything)."""
        if self._aborted:
            raise asyncio.CancelledError

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """A concurrency slot; until the key is proven, one call at a time (two after a passing count)."""
        if not self.proven:
            async with self._probe:
                if not self.proven:
                    async with self.slots:
                        self.check_aborted()
                        yield
                    return
        async with self.slots:
            self.check_aborted()
            yield

    def _room(self) -> int:
        if self._answered:
            return self.slots.size
        return min(self.slots.size, 2 if self.counted else 1)

    def _fit_rooms(self) -> None:
        for room in self._rooms:
            room.resize(self._room())
