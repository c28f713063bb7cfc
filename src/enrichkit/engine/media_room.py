"""The room media take in the requests in flight: a run holds the bytes of at most ``MEDIA_IN_FLIGHT`` of a
row's images and documents at once (read when their request is made, freed once it is answered), so its
memory is bounded by a few packs, not by its input or its concurrency."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from enrichkit.rows.media import media_of
from enrichkit.rows.work import Work

MEDIA_IN_FLIGHT = 48_000_000
"""The bytes of media (as read, before encoding) the requests in flight may hold; a request bigger than
that goes alone."""


class MediaRoom:
    """Bytes of media taken by requests in flight, at most ``limit`` (one request alone may take more)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._freed = asyncio.Condition()

    async def take(self, items: Sequence[Work]) -> int:
        """Wait until the media of ``items`` fit, and take their room; the bytes taken (0 without media)."""
        size = sum(ref.size for w in items for ref in media_of(w.inputs))
        if size:
            async with self._freed:
                await self._freed.wait_for(lambda: not self.used or self.used + size <= self.limit)
                self.used += size
        return size

    async def give(self, size: int) -> None:
        """Give back the room a request's media took (its answer came)."""
        if size:
            async with self._freed:
                self.used -= size
                self._freed.notify_all()
