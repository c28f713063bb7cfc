"""A run's calls to its cache, in one worker thread: the event loop never waits on a round trip.

Look-ups, leases, their release and the group commits of answers (``GroupCommit``) go to one thread,
in the order they are made; SQLite and Redis let go of the GIL while they work, so checking answers
goes on meanwhile. The one call a folder answers on the event loop is the cheap check, before each
pack, of whether another process wrote to it (``Cache.remote``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from enrichkit.cache.base import Cache
from enrichkit.cache.commits import GroupCommit
from enrichkit.cache.entry import Entry


class CacheIO:
    """The cache of a run, called from its event loop (``close`` when the run ends)."""

    def __init__(self, cache: Cache) -> None:
        self.cache = cache
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="enrichkit-cache")
        self._commits = GroupCommit(cache, self._thread)

    def get_many(self, keys: Collection[str]) -> asyncio.Future[dict[str, Entry]]:
        """The entries of ``keys``, looked up from now on."""
        return asyncio.get_running_loop().run_in_executor(self._thread, self.cache.get_many, keys)

    async def claim(self, keys: Sequence[str]) -> tuple[dict[str, Entry], set[str]]:
        """The entries of ``keys`` stored meanwhile, and the keys whose lease another worker holds; this run
        takes the leases of the rest (see ``Cache.lease``)."""
        loop = asyncio.get_running_loop()
        if not self.cache.remote:  # a folder holds no leases; asking whether it was written is one local query
            if not self.cache.written_elsewhere():
                return {}, set()
            return await loop.run_in_executor(self._thread, self.cache.get_many, keys), set()
        return await loop.run_in_executor(self._thread, self._claim, keys)

    def _claim(self, keys: Sequence[str]) -> tuple[dict[str, Entry], set[str]]:
        found = self.cache.get_many(keys) if self.cache.written_elsewhere() else {}
        held = set(self.cache.lease([k for k in keys if k not in found]))
        if held:
            found.update(self.cache.get_many(held))  # a lease is refused for a row stored meanwhile too
        return found, held.difference(found)

    async def release(self, keys: Sequence[str]) -> None:
        """End this run's leases of ``keys`` (rows it gave up on: other workers may ask them)."""
        if self.cache.remote:  # a folder holds no leases
            await asyncio.get_running_loop().run_in_executor(self._thread, self.cache.release, keys)

    def store(self, entries: Mapping[str, Entry]) -> asyncio.Future[None]:
        """Cache ``entries`` with the next group commit; the future is done once they are committed."""
        return self._commits.add(entries)

    async def flush(self) -> None:
        """Return once every entry stored so far is committed (or its commit failed)."""
        await self._commits.wait()

    def close(self) -> None:
        """Wait for the calls under way, and stop the thread."""
        self._thread.shutdown(wait=True)
