"""The call policy: when a call may go out, and how hard one call is tried.

Calls wait for a concurrency slot, for the client-side RPM/TPM limiter (hard caps), for a rate-limit
pause the server asked for (a 429 holds every call, queued ones too) and for the limit learned from
the server's 429s (``Pacing``). Until the key is proven to generate they go one at a time, or two after a
free ``countTokens`` preflight that passed (see ``Scheduler.preflight``). The
concurrency adapts unless it was given: it grows while every slot is busy and nothing is held back
(doubling each round trip until the first 429, then by one a round trip), and halves on a 429 (once
per window). Rate limits wait as the server says and retry the same call; transient errors retry
with backoff; everything else is raised to the caller, which decides what the failure means for its rows.
"""

from __future__ import annotations

import asyncio
import random
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from enrichkit.budget import Budget, BudgetReached
from enrichkit.errors import FatalProviderError, ProviderError, RateLimited, TransientError, Unreachable
from enrichkit.limiter import Limiter
from enrichkit.pacing import Gate, Pacing
from enrichkit.prompt import estimate_tokens
from enrichkit.providers.base import Provider, Reply, Request
from enrichkit.result import CallKind, Stats

PREFLIGHT_SECONDS = 30.0
QUIET_ROUND_TRIPS = 2
"""A paid call still unanswered and unrefused after this many round trips of the free call (and at least
``QUIET_SECONDS``) is being generated: a refusal of the key comes back as fast as the free call did."""
QUIET_SECONDS = 0.1


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one call: transient errors get ``attempts`` tries with exponential backoff;
    rate limits wait as the server says, up to ``rate_limit_attempts`` tries; a server asking to
    wait longer than ``max_wait`` seconds stops the run (a quota is exhausted)."""

    attempts: int = 3
    rate_limit_attempts: int = 10
    backoff: float = 1.0
    max_backoff: float = 60.0
    max_wait: float = 300.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) + random.uniform(0, self.backoff))


class Scheduler:
    """Admission and retries for every call of one run (live calls, salvage and audit alike)."""

    def __init__(
        self,
        stats: Stats,
        *,
        concurrency: int,
        retry: RetryPolicy,
        limiter: Limiter,
        budget: Budget | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        """``max_concurrency``: adapt the concurrency from ``concurrency`` up to this (None: keep it fixed)."""
        self.stats = stats
        self.budget = budget
        self.concurrency = concurrency
        self.max_concurrency = max_concurrency
        self.retry = retry
        self.limiter = limiter
        self.pacing = Pacing()
        self._rooms: weakref.WeakSet[Gate] = weakref.WeakSet()
        self._slots = Gate(concurrency)
        self._pace = asyncio.Lock()
        self._probe = Gate(1)  # calls in flight before the key was proven to generate
        self._counted = False
        self._proven = asyncio.Event()
        self._answered = False  # a paid call was answered or is being generated (see ``_accepted``)
        self._paused_until = 0.0
        self._threshold = max_concurrency or concurrency  # slow start below it
        self._credit = 0.0
        self._held_back = False  # a call waits for the server's pause or the learned limit
        self._shrunk_until = 0.0
        self._aborted = False

    def gate(self) -> Gate:
        """``LiveRun``'s room for calls: a semaphore of the calls that may go out now, which follows the
        concurrency as it adapts; until one paid call was answered, only as many as may go before that
        (so the calls that wait are formed with what the first replies taught: a refused pack size, say)."""
        gate = Gate(self._room())
        self._rooms.add(gate)
        return gate

    def _room(self) -> int:
        if self._answered:
            return self.concurrency
        return min(self.concurrency, 2 if self._counted else 1)

    def _fit_rooms(self) -> None:
        for room in self._rooms:
            room.resize(self._room())

    def abort(self) -> None:
        """No new call starts (the run is stopping)."""
        self._aborted = True

    async def preflight(self, provider: Provider, request: Request) -> None:
        """A free call first (the provider counts ``request``'s tokens): a bad key or unknown model stops
        the run before anything is paid. When it answers, two paid calls may go before the key is proven
        (a key can pass the count and still be refused generation: then at most two are paid), and every
        call once it is: once one of them was answered, or went on for ``QUIET_ROUND_TRIPS`` round trips of
        the free call without a refusal (it is being generated: a refusal comes back as fast as the count
        did). Providers that cannot count send their first paid call alone, and the rest once it is answered."""
        if self._proven.is_set() or self._counted:
            return
        started = asyncio.get_running_loop().time()
        try:
            counted = await asyncio.wait_for(provider.count_tokens(request), PREFLIGHT_SECONDS)
        except FatalProviderError:
            self.abort()
            raise
        except (ProviderError, TimeoutError):
            return
        if counted is not None:
            self.pacing.round_trip = asyncio.get_running_loop().time() - started
            self._counted = True
            self._probe.resize(2)  # a second paid call may go before the first is answered
            self._fit_rooms()

    async def call(self, provider: Provider, request: Request, kind: CallKind) -> Reply:
        """One logical call: retried on rate limits and transient errors as the policy says."""
        transient = limited = 0
        loop = asyncio.get_running_loop()
        while True:
            async with self._admission():
                await self.limiter.acquire(estimate_tokens(request.system) + estimate_tokens(request.prompt))
                stamp, fills = await self._cleared(), self._slots.fills
                quiet = self._watch_quiet()
                try:
                    outcome = await self._attempt(provider, request, kind)
                finally:
                    if quiet is not None:
                        quiet.cancel()
                if isinstance(outcome, RateLimited):
                    learned = self.pacing.refused(stamp, loop.time(), outcome.retry_after)
                    self.stats.rate_limit = self.pacing.describe()
                elif not isinstance(outcome, TransientError):
                    self._prove()  # the provider answered: the key and model work
                if isinstance(outcome, Reply):
                    self._accepted()
                    self.pacing.answered(stamp, loop.time())
                    self._grow(busy=self._slots.full or self._slots.fills != fills)
            if isinstance(outcome, Reply):
                return outcome
            if isinstance(outcome, RateLimited):
                limited += 1
                wait = self._rate_limit_wait(outcome, limited)
                self._shrink(wait, learned)
                self._pause(wait)
            elif isinstance(outcome, TransientError):
                transient += 1
                if transient >= self.retry.attempts:
                    if isinstance(outcome, Unreachable):
                        self.abort()
                        raise FatalProviderError(f"{outcome} (after {transient} tries)")
                    raise outcome
                await asyncio.sleep(self.retry.delay(transient))
            else:
                raise outcome
            self.stats.retries += 1

    def _watch_quiet(self) -> asyncio.TimerHandle | None:
        """Before the key was proven, after a passing free call: a timer that proves it if this paid call
        goes on without a refusal for ``QUIET_ROUND_TRIPS`` round trips (it is being generated), so the
        other calls need not wait for its whole answer."""
        if self._proven.is_set() or not self._counted or self.pacing.round_trip is None:
            return None
        quiet = max(QUIET_SECONDS, QUIET_ROUND_TRIPS * self.pacing.round_trip)
        return asyncio.get_running_loop().call_later(quiet, self._accepted)

    def _accepted(self) -> None:
        """A paid call was answered, or is being generated: the key works and so does the request's
        shape, so the room opens to the concurrency (a refusal proves the key, not the request)."""
        self._prove()
        if not self._answered:
            self._answered = True
            self._fit_rooms()

    def _prove(self) -> None:
        """The key and model work: every call may go (within the concurrency)."""
        self._proven.set()
        self._probe.resize(self.max_concurrency or self.concurrency)

    def _rate_limit_wait(self, limited: RateLimited, tries: int) -> float:
        wait = limited.retry_after if limited.retry_after is not None else self.retry.delay(tries)
        if wait > self.retry.max_wait:
            self.abort()
            raise FatalProviderError(f"{limited} and asks to wait {wait:.0f} s: quota exhausted?")
        if tries >= self.retry.rate_limit_attempts:
            self.abort()
            raise FatalProviderError(f"still rate limited after {tries} tries ({limited})")
        return wait

    async def _attempt(self, provider: Provider, request: Request, kind: CallKind) -> Reply | ProviderError:
        if self.budget is not None:
            try:
                self.budget.before(provider.model, request)
            except BudgetReached:
                self.abort()
                raise
        self.stats.count_call(provider.model, kind)
        try:
            call = provider.generate(request)
            reply = await (call if request.timeout is None else asyncio.wait_for(call, request.timeout))
        except TimeoutError:
            return TransientError(f"{provider.model} gave no answer within {request.timeout:g} s")
        except FatalProviderError:
            self.abort()
            raise
        except ProviderError as exc:
            return exc
        self.stats.add_usage(provider.model, reply.usage)
        if self.budget is not None:
            self.budget.spend(provider.model, reply.usage)
        return reply

    @asynccontextmanager
    async def _admission(self) -> AsyncIterator[None]:
        """A concurrency slot; until the key is proven, one call at a time (two after a passing preflight)."""
        if not self._proven.is_set():
            async with self._probe:
                if not self._proven.is_set():
                    async with self._slots:
                        self._check_aborted()
                        yield
                    return
        async with self._slots:
            self._check_aborted()
            yield

    def _check_aborted(self) -> None:
        """After a fatal error no new call starts (the task group is about to cancel everything)."""
        if self._aborted:
            raise asyncio.CancelledError

    def _pause(self, seconds: float) -> None:
        """Hold every new call for ``seconds``: the server's rate limit applies to all of them."""
        loop = asyncio.get_running_loop()
        self._paused_until = max(self._paused_until, loop.time() + seconds)
        self.limiter.hold(seconds)  # and every run that shares the limiter

    async def _cleared(self) -> float:
        """Wait out the server's pause and the learned pacing, one call at a time (the last wait before a
        call goes out); the send's stamp."""
        loop = asyncio.get_running_loop()
        async with self._pace:
            while True:
                now = loop.time()
                held = max(self._paused_until - now, self.pacing.wait(now, self.concurrency, spread=False))
                if (left := max(held, self.pacing.wait(now, self.concurrency))) <= 0:
                    break
                self._held_back = held > 0
                await asyncio.sleep(left)
            self._held_back = False
            self._check_aborted()
            return self.pacing.sent(loop.time())

    def _grow(self, busy: bool) -> None:
        """An answer to a call during which every slot was taken (``busy``), while no call is held back:
        latency binds, so one more slot (slow start: one per answer until the first 429; then one per
        round trip)."""
        if self.max_concurrency is None or self.concurrency >= self.max_concurrency:
            return
        if not busy or self._held_back:
            return
        if self.concurrency < self._threshold:
            self._resize(self.concurrency + 1)
            return
        self._credit += 1 / self.concurrency
        if self._credit >= 1:
            self._credit = 0.0
            self._resize(self.concurrency + 1)

    def _shrink(self, wait: float, learned: bool) -> None:
        """A 429 ends the slow start. One that taught the limit leaves the pacing to it; any other halves
        the concurrency, once per pause (the refusals of one burst count once)."""
        now = asyncio.get_running_loop().time()
        if self.max_concurrency is None or now < self._shrunk_until:
            return
        self._shrunk_until = now + wait
        self._threshold = self.concurrency if learned else max(1, self.concurrency // 2)
        self._resize(self._threshold)

    def _resize(self, size: int) -> None:
        self.concurrency = size
        self._slots.resize(size)
        self._fit_rooms()
