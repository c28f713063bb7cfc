"""Group commit: the answers of the packs settled in one turn of the event loop go to the cache together.

A transaction per pack makes SQLite write every page the pack dirtied, and cache keys are random, so
that is about a page a row; one transaction for all the packs of a turn writes each page once for them
all (measured on ext4: 24 µs a row in transactions of 20 rows). ``put`` returns once its entries are
committed; a failed commit fails every pack in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from enrichkit.cache import Cache, Entry


class GroupCommit:
    """Puts into ``cache`` gathered per turn of the event loop, one ``put_many`` for each turn."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self._pending: dict[str, Entry] = {}
        self._done: asyncio.Future[None] | None = None

    async def put(self, entries: Mapping[str, Entry]) -> None:
        """Store ``entries`` with those of the other packs of this turn; returns once they are committed."""
        self._pending.update(entries)
        if self._done is None:
            loop = asyncio.get_running_loop()
            self._done = loop.create_future()
            self._done.add_done_callback(_retrieved)
            loop.call_soon(self._commit)
        await asyncio.shield(self._done)  # a cancelled pack does not cancel the others' commit

    def _commit(self) -> None:
        done, pending = self._done, self._pending
        self._done, self._pending = None, {}
        assert done is not None
        try:
            self.cache.put_many(pending)
        except Exception as exc:
            done.set_exception(exc)
        else:
            done.set_result(None)


def _retrieved(done: asyncio.Future[None]) -> None:
    """A failed commit whose packs were all cancelled meanwhile is not reported as never retrieved."""
    if not done.cancelled():
        done.exception()
