"""Group commit: the answers of the packs settled while the last commit ran go to the cache together,
in a thread of their own.

A transaction per pack makes SQLite write every page the pack dirtied, and cache keys are random, so
that is about a page a row; one transaction for all the packs of a group writes each page once for
them all (measured on ext4: 24 µs a row in transactions of 20 rows). The commit runs in a worker
thread (SQLite lets go of the GIL while it works), so checking the next answers goes on meanwhile;
the packs settled during a commit form the next group. ``add``'s future is done once its entries
are committed; a failed commit fails every pack in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import Executor

from enrichkit.cache.entry import Entry

Put = Callable[[Mapping[str, Entry]], None]


class GroupCommit:
    """Puts gathered into groups, one ``put`` (a cache's ``put_many``, in a worker thread) a group, one at a time."""

    def __init__(self, put: Put, thread: Executor | None = None) -> None:
        self.put = put
        self._thread = thread  # where commits run (None: the event loop's default executor)
        self._pending: dict[str, Entry] = {}
        self._done: asyncio.Future[None] | None = None  # the group gathering now
        self._writing: asyncio.Future[None] | None = None  # the commit running now

    def add(self, entries: Mapping[str, Entry]) -> asyncio.Future[None]:
        """``entries`` join the group now; the future is done once they are committed (cancelling it does
        not cancel the others' commit)."""
        self._pending.update(entries)
        done = self._done
        if done is None:
            loop = asyncio.get_running_loop()
            done = self._done = loop.create_future()
            done.add_done_callback(_retrieved)
            if self._writing is None:
                loop.call_soon(self._commit)  # after the other packs of this turn
        return asyncio.shield(done)

    async def wait(self) -> None:
        """Return once every group put so far is committed (or failed)."""
        while (waiting := self._writing or self._done) is not None:
            await asyncio.wait([waiting])

    def _commit(self) -> None:
        done, pending = self._done, self._pending
        self._done, self._pending = None, {}
        assert done is not None
        writing = self._writing = asyncio.get_running_loop().run_in_executor(self._thread, self.put, pending)
        writing.add_done_callback(lambda _: self._committed(writing, done))

    def _committed(self, writing: asyncio.Future[None], done: asyncio.Future[None]) -> None:
        self._writing = None
        if (exc := None if writing.cancelled() else writing.exception()) is not None:
            done.set_exception(exc)
        else:
            done.set_result(None)
        if self._done is not None:  # the group that gathered meanwhile
            self._commit()


def _retrieved(done: asyncio.Future[None]) -> None:
    """A failed commit whose packs were all cancelled meanwhile is not reported as never retrieved."""
    if not done.cancelled():
        done.exception()
