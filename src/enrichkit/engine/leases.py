"""Which rows this run may ask now, where other processes or machines share its cache.

Another process on the same cache may have stored some rows since the run began: they settle as hits.
On a cache with leases (Redis) this run takes the leases of the rows that are free; a row whose lease
another worker holds is left to it (a lease ends when its row is stored or failed, or after the lease
time), so a pack is formed from the other rows instead of waiting.
"""

from __future__ import annotations

import asyncio
import random

from enrichkit.engine.settle import Settlement
from enrichkit.rows.work import Work

POLL = 0.05  # seconds: the first wait for rows another worker is asking


class Claims:
    """Leases of a run's rows, through its settlement's cache (none: every row is this run's)."""

    def __init__(self, settlement: Settlement) -> None:
        self.settlement = settlement

    async def claim(self, items: list[Work]) -> tuple[list[Work], list[Work]]:
        """The rows to ask now, and the rows another worker is asking now (``awaited``)."""
        io = self.settlement.io
        if io is None:
            return items, []
        found, held = await io.claim([w.key for w in items])
        items = self.settlement.hits(found, items)
        if not held:
            return items, []
        return [w for w in items if w.key not in held], [w for w in items if w.key in held]

    async def awaited(self, held: list[Work]) -> list[Work]:
        """Wait for rows other workers hold, looking at the cache again after short waits: the rows they
        store settle as hits; the rows returned became free (their holder failed them or died) and are
        this run's to ask."""
        free: list[Work] = []
        delay = POLL
        while held:
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(1.0, delay * 1.5)
            more, held = await self.claim(held)
            free += more
        return free
