"""A batch job's requests made as they are read: each request, its media's bytes with it, is built when a
backend reads it and dropped once the backend has written it, so a job's media are held one request at a
time while it is submitted, not all at once (a backend reads its requests in order, and keeps none)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import overload

from enrichkit.engine.codec import PackCodec
from enrichkit.providers.base import Request
from enrichkit.rows.work import Work


class MadeOnRead(Sequence[tuple[str, Request]]):
    """(key, request) pairs whose requests are made on each read (``keys``: the keys alone, reading nothing)."""

    def __init__(self, made: Sequence[tuple[str, Callable[[], Request]]]) -> None:
        self._made = made

    @property
    def keys(self) -> list[str]:
        return [key for key, _ in self._made]

    def __len__(self) -> int:
        return len(self._made)

    @overload
    def __getitem__(self, at: int) -> tuple[str, Request]: ...

    @overload
    def __getitem__(self, at: slice) -> MadeOnRead: ...

    def __getitem__(self, at: int | slice) -> tuple[str, Request] | MadeOnRead:
        if isinstance(at, slice):
            return MadeOnRead(self._made[at])
        key, make = self._made[at]
        return key, make()

    def __iter__(self) -> Iterator[tuple[str, Request]]:
        for key, make in self._made:
            yield key, make()


def maker(codec: PackCodec, group: Sequence[Work]) -> Callable[[], Request]:
    """What makes the request of ``group`` (a pack, or one row alone), its media read when it is called."""
    if len(group) > 1:
        return lambda: codec.pack_request(group)[1]
    return lambda: codec.single_request(group[0])


def keys_of(requests: Sequence[tuple[str, Request]]) -> list[str]:
    """The keys of ``requests`` (a ``MadeOnRead``'s without making its requests)."""
    return requests.keys if isinstance(requests, MadeOnRead) else [key for key, _ in requests]
