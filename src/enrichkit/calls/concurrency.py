"""How many calls a run keeps in flight: as given, or adapting to what the server allows."""

from __future__ import annotations


class Concurrency:
    """The most calls in flight (``size``). With ``most`` it adapts, from ``size`` up to ``most``: it grows
    while every slot is busy and no call is held back (latency binds), in the slow start by one an answer
    or by two a call the server took (``Scheduler``: unrefused for a quiet period, still in flight), and
    by one a round trip after it; a 429 ends the slow start, and one that did not teach the server's
    limit also halves it (once per pause: the refusals of one burst count once)."""

    def __init__(self, size: int, most: int | None = None) -> None:
        self.size = size
        self.most = most
        self._threshold = most or size  # slow start below it
        self._credit = 0.0
        self._shrunk_until = 0.0

    @property
    def slow(self) -> bool:
        """In the slow start: it may still grow, and no 429 ended it yet."""
        return self.most is not None and self.size < self._threshold

    def grow(self, busy: bool, held_back: bool, by: int = 1) -> bool:
        """An answer to a call during which every slot was taken (``busy``); whether ``size`` grew (by ``by``
        in the slow start, by one a round trip after it)."""
        if self.most is None or self.size >= self.most or not busy or held_back:
            return False
        cap = self._threshold if self.size < self._threshold else self.most
        if self.size >= self._threshold:
            self._credit += 1 / self.size
            if self._credit < 1:
                return False
            self._credit = 0.0
            by = 1
        self.size = min(cap, self.size + by)
        return True

    def shrink(self, now: float, wait: float, learned: bool) -> bool:
        """A 429 at ``now`` that pauses calls for ``wait`` s (``learned``: it taught the limit, which paces
        the calls from now on); whether ``size`` changed."""
        if self.most is None or now < self._shrunk_until:
            return False
        self._shrunk_until = now + wait
        self._threshold = self.size if learned else max(1, self.size // 2)
        changed, self.size = self._threshold != self.size, self._threshold
        return changed
