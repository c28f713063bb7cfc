"""The cache protocol: where a run keeps validated answers, and the leases of rows in flight."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from enrichkit.cache.entry import Entry


class Cache(Protocol):
    """Where a run keeps validated answers: ``RowCache`` (a folder, the default) or ``RedisCache`` (shared).

    Leases keep a row in flight in one place: ``lease`` takes the leases of the ``keys`` that are free
    and returns the others (held by someone else, or stored already); storing a row ends its lease."""

    remote: bool
    """Whether a call is a network round trip (Redis). A run makes every call to a remote cache from its
    cache thread; of a folder's, only ``written_elsewhere`` and ``shared`` (one local query each) run on the event
    loop."""

    damaged: int
    """Entries ``get_many`` found undecodable (and left out) so far."""

    def get_many(self, keys: Iterable[str]) -> dict[str, Entry]: ...

    def put_many(self, entries: Mapping[str, Entry]) -> None: ...

    def written_elsewhere(self) -> bool: ...

    def shared(self) -> bool:
        """Whether other runs may ask the same rows now (Redis: always; a folder: another run has it open),
        so the run takes leases."""
        ...

    def lease(self, keys: Sequence[str]) -> list[str]: ...

    def release(self, keys: Iterable[str]) -> None: ...

    def forget(self, keys: Iterable[str]) -> int: ...

    def close(self) -> None: ...
