"""A run's calls to its cache, in one worker thread: the event loop never waits on a round trip.

Look-ups, leases, their release and the group commits of answers (``GroupCommit``) go to one thread,
in the order they are made; SQLite and Redis let go of the GIL while they work, so checking answers
goes on meanwhile. The one call a folder answers on the event loop is the cheap check, before each
pack, of whether another process wrote to it (``Cache.remote``).

An entry proves itself before it is served: one whose values no longer fit the task's output schema (a
damaged or hand-edited entry: a number where text belongs, a value outside an enum), like one the cache
cannot decode, is a miss, counted in ``damaged`` and deleted (a lease is refused for a stored row); its
row is asked again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from operator import itemgetter

from enrichkit.cache.base import Cache
from enrichkit.cache.commits import GroupCommit
from enrichkit.cache.entry import Entry
from enrichkit.cache.journal import Journal
from enrichkit.engine.fieldkeys import FieldKeys
from enrichkit.errors import StorageError
from enrichkit.task.schema import Validator, first_error, make_validator
from enrichkit.task.task import Task

Fits = Callable[[dict[str, Entry]], list[str]]


def fits_task(task: Task, keys: FieldKeys) -> Fits:
    """The keys of the entries whose values do not fit ``task``'s output schema (the check their answers passed
    when they were stored): all at once by the compiled check where it vouches for every one, else one by one.
    An entry answering some of the task's field groups (``FieldKeys``) is held to those groups' schema; one
    answering none of them is no misfit (another task's answers: a miss, not damage)."""
    validator = make_validator(task.schema)
    fast = validator.fast
    values = itemgetter(0)  # ``Entry.values``
    parts: dict[str, Validator] = {keys.all: validator}

    def fits(entry: Entry) -> bool:
        if entry.groups == keys.all:
            return first_error(validator, entry.values) is None
        part, _ = keys.split(entry)
        if part is None:
            return True
        if (check := parts.get(part.groups)) is None:
            fields = [name for gid in part.groups.split() for name in keys.groups[gid]]
            check = parts[part.groups] = make_validator(task.subset(fields).schema)
        return first_error(check, part.values) is None

    def misfits(found: dict[str, Entry]) -> list[str]:
        if fast is not None and all(map(fast, map(values, found.values()))):
            return []
        return [key for key, entry in found.items() if not fits(entry)]

    return misfits


def sound(found: dict[str, Entry], fits: Fits) -> list[str]:
    """Drop from ``found`` the entries that do not ``fit``; their keys."""
    bad = fits(found)
    for key in bad:
        del found[key]
    return bad


class CacheIO:
    """The cache of a run, called from its event loop (``close`` when the run ends)."""

    def __init__(self, cache: Cache, keys: FieldKeys, fits: Fits | None = None, journal: Journal | None = None) -> None:
        self.cache = cache
        self.keys = keys  # the task's field groups: what entries answer
        self.fits = fits  # None: entries are served as the cache decodes them
        self.journal = journal  # where answers go that the cache cannot take (None: they are in the output only)
        self.damaged = 0  # entries found damaged, or not fitting the schema, by this run's look-ups
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="enrichkit-cache")
        self._commits = GroupCommit(self._put, self._thread)

    def get_many(self, keys: Collection[str]) -> asyncio.Future[dict[str, Entry]]:
        """The entries of ``keys``, looked up from now on."""
        return asyncio.get_running_loop().run_in_executor(self._thread, self._get, keys)

    def _get(self, keys: Iterable[str]) -> dict[str, Entry]:
        """``Cache.get_many`` of the entries that prove themselves (in the cache thread)."""
        before = self.cache.damaged
        found = self.cache.get_many(keys)
        self.damaged += self.cache.damaged - before
        if self.fits is not None and (bad := sound(found, self.fits)):
            self.damaged += len(bad)
            self.cache.forget(bad)
        return found

    async def claim(self, keys: Sequence[str]) -> tuple[dict[str, Entry], set[str]]:
        """The entries of ``keys`` stored meanwhile, and the keys whose lease another worker holds; this run
        takes the leases of the rest (see ``Cache.lease``)."""
        loop = asyncio.get_running_loop()
        if not self.cache.remote and not self.cache.shared():  # a folder alone: no leases, one local query
            if not self.cache.written_elsewhere():
                return {}, set()
            return await loop.run_in_executor(self._thread, self._get, keys), set()
        return await loop.run_in_executor(self._thread, self._claim, keys)

    def _claim(self, keys: Sequence[str]) -> tuple[dict[str, Entry], set[str]]:
        found = self._get(keys) if self.cache.written_elsewhere() else {}
        held = set(self.cache.lease([k for k in keys if k not in found]))
        if held:
            found.update(self._get(held))  # a lease is refused for a row stored meanwhile too
        return found, held.difference(found)

    async def release(self, keys: Sequence[str]) -> None:
        """End this run's leases of ``keys`` (rows it gave up on: other workers may ask them)."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self.cache.release, keys)

    def _put(self, entries: Mapping[str, Entry]) -> None:
        """``Cache.put_many``; entries it cannot store (a full disk, a lost server) are kept in the journal. An
        entry answering some field groups only (its row's others were not known: ``enrichkit jobs collect``)
        is merged with the answers the cache holds for the others."""
        keys = self.keys
        if some := [key for key, entry in entries.items() if entry.groups != keys.all]:
            stored = self.cache.get_many(some)
            entries = {**entries, **{key: keys.merged(entries[key], stored.get(key)) for key in some}}
        try:
            self.cache.put_many(entries)
        except StorageError:
            if self.journal is not None:
                self.journal.keep(entries, time.time())
            raise

    def store(self, entries: Mapping[str, Entry]) -> asyncio.Future[None]:
        """Cache ``entries`` with the next group commit; the future is done once they are committed."""
        return self._commits.add(entries)

    async def flush(self) -> None:
        """Return once every entry stored so far is committed (or its commit failed)."""
        await self._commits.wait()

    def close(self) -> None:
        """Wait for the calls under way, and stop the thread."""
        self._thread.shutdown(wait=True)
