"""Group commit: the packs settled in one turn of the event loop share one transaction."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pytest

from enrichkit.cache.commits import GroupCommit
from enrichkit.cache.entry import Entry
from enrichkit.cache.folder import RowCache
from enrichkit.errors import StorageError


class Counting(RowCache):
    """A real cache that keeps what each ``put_many`` was given, and can be made to fail."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.commits: list[list[str]] = []
        self.fail = False

    def put_many(self, entries: Mapping[str, Entry]) -> None:
        if self.fail:
            raise StorageError("cache at x: cannot write (no space left on device)")
        self.commits.append(list(entries))
        super().put_many(entries)

    def lease(self, keys: Sequence[str]) -> list[str]:
        return []

    def release(self, keys: Iterable[str]) -> None:
        return None


def test_packs_of_one_turn_go_in_one_commit_and_are_stored_when_put_returns(tmp_path: Path) -> None:
    cache = Counting(tmp_path)
    commits = GroupCommit(cache.put_many)

    async def pack(n: int) -> bool:
        await commits.add({f"k{n}-{i}": Entry({"n": i}, "m") for i in range(3)})
        return f"k{n}-0" in cache.get_many([f"k{n}-0"])

    async def run() -> list[bool]:
        first = await asyncio.gather(*(pack(n) for n in range(5)))
        return [*first, await pack(5)]

    assert all(asyncio.run(run()))
    assert [len(keys) for keys in cache.commits] == [15, 3]
    cache.close()


def test_a_failed_commit_fails_every_pack_in_it(tmp_path: Path) -> None:
    cache = Counting(tmp_path)
    cache.fail = True
    commits = GroupCommit(cache.put_many)

    async def run() -> list[BaseException | None]:
        return await asyncio.gather(*(commits.add({f"k{n}": Entry({}, "m")}) for n in range(3)), return_exceptions=True)

    assert all(isinstance(outcome, StorageError) for outcome in asyncio.run(run()))
    cache.fail = False
    assert cache.get_many(["k0", "k1", "k2"]) == {}
    cache.close()


def test_a_cancelled_pack_does_not_cancel_the_others_commit(tmp_path: Path) -> None:
    cache = Counting(tmp_path)
    commits = GroupCommit(cache.put_many)

    async def run() -> None:
        cancelled = asyncio.ensure_future(commits.add({"a": Entry({}, "m")}))
        kept = asyncio.ensure_future(commits.add({"b": Entry({}, "m")}))
        await asyncio.sleep(0)
        cancelled.cancel()
        await kept
        with pytest.raises(asyncio.CancelledError):
            await cancelled

    asyncio.run(run())
    assert set(cache.get_many(["a", "b"])) == {"a", "b"}
    cache.close()


class Slow(Counting):
    """A real cache whose commits take a while (as a big one on a slow disk does)."""

    def put_many(self, entries: Mapping[str, Entry]) -> None:
        time.sleep(0.2)
        super().put_many(entries)


def test_packs_settled_while_a_commit_runs_form_the_next_group_and_wait_sees_them_all(tmp_path: Path) -> None:
    cache = Slow(tmp_path)
    commits = GroupCommit(cache.put_many)

    async def run() -> None:
        commits.add({"a": Entry({}, "m")})
        await asyncio.sleep(0.05)  # the first commit is running in its thread: the loop is free meanwhile
        later = [commits.add({key: Entry({}, "m")}) for key in "bcd"]
        assert not any(f.done() for f in later)
        await commits.wait()
        assert all(f.done() for f in later)

    asyncio.run(run())
    assert cache.commits == [["a"], ["b", "c", "d"]]
    assert set(cache.get_many(["a", "b", "c", "d"])) == {"a", "b", "c", "d"}
    cache.close()
