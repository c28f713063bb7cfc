"""The server's rate limit as learned from its 429s, and a semaphore whose size can change.

Before any refusal, the first ``PROBED`` calls go out ``HEARD`` round trips of a free call apart (its
warm round trip, ``Scheduler.preflight``), so that a 429 comes back before the next call leaves and
stops the rest: a limit of up to ``PROBED`` calls a window is found with one refusal. After them, calls
go out spread evenly over half the observed latency (``latency / 2 / concurrency`` apart, as the
concurrency doubles each round trip; at most a free call's round trip apart). A 429 with
a retry delay says when the server's window opens again; the window is taken as that moment minus
the first send still counted, and the limit as the sends in it not refused (each refusal of one
burst corrects the estimate). From then on calls go out under a sliding window of that many requests
per that window (0.5 % longer), seeded with the sends so far: it replays the moments the server
frees its slots (and never breaks a fixed window of the same size).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
from collections.abc import Callable

MAX_WINDOW = 60.0

"""The longest window assumed (quotas count per minute): an older first send means a run that went on
for a while before it was refused."""

MARGIN = 1.005

SLACK = 0.05

"""How much earlier than the window a send may be and still count (the retry delays are rounded): a limit
too high is corrected by the next 429, one too low never would be."""

LOG = 10_000

PROBED = 64

"""Calls sent HEARD round trips apart before any 429 (a limit of up to this many a window is found with one
refusal); after them, while nothing was refused, the slow start's rate alone."""

HEARD = 2

"""Round trips of the free call a refusal takes at most to come back (as ``Scheduler`` proves a key by)."""


class Pacing:
    """When the next call may go out, from the sends so far and the server's 429s."""

    def __init__(self) -> None:
        self.limit: int | None = None
        self.window: float | None = None
        self.latency: float | None = None  # a moving average of answered calls
        self.round_trip: float | None = None  # of a call that generates nothing (the preflight)
        self._sends: collections.deque[float] = collections.deque(maxlen=LOG)  # stamps of sends not refused
        self._last = -math.inf
        self._sent = 0
        self._heard = -math.inf  # when the last 429 came back
        self._before: int | None = None  # the limit before the burst of that 429

    def describe(self) -> str:
        """The limit found, e.g. ``~30 requests / 6 s`` (empty when none was found)."""
        if self.limit is None or self.window is None:
            return ""
        return f"~{self.limit} requests / {self.window:.2g} s"

    def wait(self, now: float, concurrency: int, spread: bool = True) -> float:
        """Seconds until a call may go out (0 or less: now); ``spread=False``: for the learned limit only."""
        if self.limit is not None and self.window is not None:
            span = self.window * MARGIN
            sends = self._sends
            while sends and sends[0] <= now - span:
                sends.popleft()
            return sends[-self.limit] + span - now if len(sends) >= self.limit else 0.0
        if not spread:
            return 0.0
        gap = 0.0 if self.latency is None else self.latency / (2 * concurrency)  # the slow start's rate
        if self.round_trip is not None:
            careful = self._sent < PROBED  # a refusal heard before the next call leaves
            gap = max(gap, HEARD * self.round_trip) if careful else min(gap, self.round_trip)
        return self._last + gap - now

    def sent(self, now: float) -> float:
        """Count a call going out now; its stamp (for ``answered`` and ``refused``)."""
        self._sends.append(now)
        self._last = now
        self._sent += 1

        return now

    def answered(self, stamp: float, now: float) -> None:
        took = now - stamp
        self.latency = took if self.latency is None else 0.7 * self.latency + 0.3 * took

    def refused(self, stamp: float, now: float, retry_after: float | None) -> bool:
        """A 429 for the call sent at ``stamp``: it was not counted; with a retry delay, learn the limit
        (True when it did)."""
        with contextlib.suppress(ValueError):
            self._sends.remove(stamp)
        if retry_after is None or not self._sends:
            return False
        if stamp > self._heard:  # a new burst (else a call sent before the last 429 came back)
            self._before = self.limit
        self._heard = now
        opens = now + retry_after
        window = self.window or min(MAX_WINDOW, opens - self._sends[0])
        start = opens - window * (1 + SLACK)
        taken = sum(1 for s in self._sends if s >= start)  # the calls of it still in flight end refused
        if not taken or window <= 0:
            return False
        self.window = window
        self.limit = taken if self._before is None else min(self._before, taken)
        return True


class Gate:
    """A FIFO semaphore whose size can change while it is held (the adaptive concurrency)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.held = 0
        self.fills = 0  # how often every slot became taken
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def full(self) -> bool:
        return self.held >= self.size

    async def acquire(self) -> None:
        if self.held < self.size and not self._waiters:
            self._take()
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted just before the cancellation
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        self.held -= 1
        self._wake()

    def resize(self, size: int) -> None:
        self.size = size
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.held < self.size:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._take()
                waiter.set_result(None)

    def _take(self) -> None:
        self.held += 1
        self.fills += self.held == self.size

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()


class Place:
    """A place taken in a ``Gate``, left once (``leave`` again does nothing), after ``on_leave``."""

    def __init__(self, gate: Gate, on_leave: Callable[[], None] | None = None) -> None:
        self._gate: Gate | None = gate
        self._on_leave = on_leave

    def leave(self) -> None:
        if self._gate is None:
            return
        gate, self._gate = self._gate, None
        try:
            if self._on_leave is not None:
                self._on_leave()
        finally:
            gate.release()
