"""The adaptive pack size: smaller while packed answers come back with invalid items, larger when clean."""

from __future__ import annotations

from collections import deque

from enrichkit.result import PackSize

WINDOW = 5

"""Packs looked at."""

SHRINK_ABOVE = 0.2

"""The share of rows left unanswered in the window above which the size halves."""


class PackSizer:
    """The size of the next pack. After each settled pack formed at the current size, the last
    ``WINDOW`` such packs decide: more than ``SHRINK_ABOVE`` of their rows left without a valid
    answer (invalid, missing, cut off, or the call failed) halves the size, down to 2; all ``WINDOW``
    clean doubles it, up to ``largest``. A change starts a new window, and packs formed at an older
    size are not counted (they were in flight when it changed)."""

    def __init__(self, largest: int) -> None:
        self.sizes = PackSize(largest, largest, largest)
        self._largest = largest
        self._recent: deque[tuple[int, int]] = deque(maxlen=WINDOW)

    @property
    def size(self) -> int:
        return self.sizes.ended

    def observe(self, size: int, rows: int, unanswered: int) -> None:
        """A pack formed at ``size`` settled with ``unanswered`` of its ``rows`` rows left without an answer."""
        if size != self.size:
            return
        self._recent.append((unanswered, rows))
        bad = sum(u for u, _ in self._recent)
        if bad > SHRINK_ABOVE * sum(r for _, r in self._recent):
            self._resize(max(min(2, self._largest), self.size // 2))
        elif bad == 0 and len(self._recent) == WINDOW:
            self._resize(min(self._largest, self.size * 2))

    def _resize(self, size: int) -> None:
        self._recent.clear()
        self.sizes.ended = size
        self.sizes.smallest = min(self.sizes.smallest, size)
