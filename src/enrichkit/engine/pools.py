"""Salvage pools: rows that failed in different packs share the next pack of their rung.

A pack that loses one row to a bad enum and another that loses two to a swap would each send a call
of their own for one or two rows; pooled, those rows ride together in one pack of the next rung's
size. A pool sends a pack as soon as it holds a full one, and its last rows once nothing above it can
add to it any more: no pack of a larger size on its model is still forming or in flight, and no larger
pool still holds rows. Rows on their own (size 1) are never pooled: a call a row either way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Generic, TypeVar

from enrichkit.engine.ladder import Rung

T = TypeVar("T")


class Pools(Generic[T]):
    """Rows waiting at each rung, and the sources still able to add to them."""

    def __init__(self) -> None:
        self._rows: dict[Rung, list[T]] = {}
        self._sources: Counter[Rung] = Counter()

    def opened(self, rung: Rung) -> None:
        """A source of failed rows at ``rung`` started: a pack call, or the feed forming packs."""
        self._sources[rung] += 1

    def closed(self, rung: Rung) -> None:
        self._sources[rung] -= 1
        if self._sources[rung] <= 0:
            del self._sources[rung]

    def add(self, rows: Sequence[T], rung: Rung) -> list[tuple[list[T], Rung]]:
        """Pool ``rows`` at ``rung``; the packs to send now (full ones; single rows at once)."""
        if rung.size <= 1:
            return [([row], rung) for row in rows]
        pool = self._rows.setdefault(rung, [])
        pool.extend(rows)
        ready: list[tuple[list[T], Rung]] = []
        while len(pool) >= rung.size:
            ready.append((pool[: rung.size], rung))
            del pool[: rung.size]
        if not pool:
            del self._rows[rung]
        return ready

    def ready(self) -> list[tuple[list[T], Rung]]:
        """The partial packs nothing can add to any more: for each model, the largest such pool (the packs
        sent from it become sources of the pools below, until they settle)."""
        out: list[tuple[list[T], Rung]] = []
        flushed: set[int] = set()
        for rung in sorted(self._rows, key=lambda r: (r.fallback, -r.size)):
            if rung.fallback in flushed or self._fed(rung):
                continue
            rows = self._rows.pop(rung)
            out.extend((rows[start : start + rung.size], rung) for start in range(0, len(rows), rung.size))
            flushed.add(rung.fallback)
        return out

    def _fed(self, rung: Rung) -> bool:
        """Whether a larger source on ``rung``'s model may still add rows to its pool."""
        return any(r.fallback == rung.fallback and r.size > rung.size for r in (*self._sources, *self._rows))
