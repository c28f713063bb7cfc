"""The call policy: when a call may go out, and how hard one call is tried.

Calls wait for a concurrency slot, for the client-side RPM/TPM limiter (hard caps), for a rate-limit
pause the server asked for (a 429 holds every call, queued ones too) and for the limit learned from
the server's 429s (``Pacing``). Until the key is proven to generate they go one at a time, or two after a
free ``countTokens`` preflight that passed (see ``Scheduler.preflight``). The
concurrency adapts unless it was given: it grows while every slot is busy and nothing is held back
(until the first 429 doubling each round trip, or each quiet period where a free call was timed: a call
unrefused for ``QUIET_ROUND_TRIPS`` of its round trips was taken; then by one a round trip), and halves
on a 429 (once per window). Rate limits wait as the server says and retry the same call; transient errors retry
with backoff; everything else is raised to the caller, which decides what the failure means for its rows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from enrichkit.calls.admission import Admission
from enrichkit.calls.budget import Budget, BudgetReached
from enrichkit.calls.concurrency import Concurrency
from enrichkit.calls.pacing import Pacing
from enrichkit.errors import FatalProviderError, ProviderError, RateLimited, TransientError, Unreachable
from enrichkit.options import Limiter, RetryPolicy
from enrichkit.providers.base import Provider, Reply, Request, estimate_tokens
from enrichkit.result import CallKind, Stats

PREFLIGHT_SECONDS = 30.0

QUIET_ROUND_TRIPS = 2

"""A paid call still unanswered and unrefused after this many round trips of the free call (and at least
``QUIET_SECONDS``) is being generated: a refusal of the key comes back as fast as the free call did."""

QUIET_SECONDS = 0.1


class Quiet:
    """A call's quiet period: ``on_pass`` is called, and ``passed`` set, after ``seconds`` unless cancelled."""

    def __init__(self, seconds: float, on_pass: Callable[[], None]) -> None:
        self.passed = False
        self._on_pass = on_pass
        self._timer = asyncio.get_running_loop().call_later(seconds, self._pass)

    def _pass(self) -> None:
        self.passed = True
        self._on_pass()

    def cancel(self) -> None:
        self._timer.cancel()


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
        self.sizing = Concurrency(concurrency, max_concurrency)
        self.retry = retry
        self.limiter = limiter
        self.pacing = Pacing()
        self.admission = Admission(concurrency, max_concurrency)
        self._pace = asyncio.Lock()
        self._paused_until = 0.0
        self._held_back = False  # a call waits for the server's pause or the learned limit

    @property
    def concurrency(self) -> int:
        """The most calls in flight now."""
        return self.sizing.size

    def abort(self) -> None:
        """No new call starts (the run is stopping)."""
        self.admission.abort()

    async def preflight(self, provider: Provider, request: Request) -> None:
        """A free call first (the provider counts ``request``'s tokens): a bad key or unknown model stops
        the run before anything is paid. When it answers, two paid calls may go before the key is proven
        (a key can pass the count and still be refused generation: then at most two are paid), and every
        call once it is: once one of them was answered, or went on for ``QUIET_ROUND_TRIPS`` round trips of
        the free call without a refusal (it is being generated: a refusal comes back as fast as the count
        did). Providers that cannot count send their first paid call alone, and the rest once it is answered.
        A second free count times the round trip warm (the first one's opened the connection): the pacing's
        unit before any 429."""
        if self.admission.proven or self.admission.counted:
            return
        started = asyncio.get_running_loop().time()
        try:
            counted = await asyncio.wait_for(provider.count_tokens(request), PREFLIGHT_SECONDS)
        except FatalProviderError:
            self.abort()
            raise
        except (ProviderError, TimeoutError):
            return
        if counted is None:
            return
        loop = asyncio.get_running_loop()
        self.pacing.round_trip = loop.time() - started  # the first call on a cold connection: an upper bound
        with contextlib.suppress(ProviderError, TimeoutError):
            started = loop.time()
            await asyncio.wait_for(provider.count_tokens(request), PREFLIGHT_SECONDS)
            self.pacing.round_trip = min(self.pacing.round_trip, loop.time() - started)
        self.admission.count_passed()

    async def call(
        self, provider: Provider, request: Request, kind: CallKind, sent: Callable[[], None] | None = None
    ) -> Reply:
        """One logical call: retried on rate limits and transient errors as the policy says. ``sent()`` is
        called as each try goes out (a call the budget stopped, or cancelled while it waited for its turn,
        never went)."""
        transient = limited = 0
        loop = asyncio.get_running_loop()
        while True:
            async with self.admission.slot():
                await self.limiter.acquire(
                    estimate_tokens(request.system) + estimate_tokens(request.prompt) + request.media_tokens
                )
                stamp, fills = await self._cleared(), self.admission.slots.fills
                quiet = self._watch_quiet(fills)
                try:
                    outcome = await self._attempt(provider, request, kind, sent)
                finally:
                    if quiet is not None:
                        quiet.cancel()
                if isinstance(outcome, RateLimited):
                    learned = self.pacing.refused(stamp, loop.time(), outcome.retry_after)
                    self.stats.rate_limit = self.pacing.describe()
                elif not isinstance(outcome, TransientError):
                    self.admission.prove()  # the provider answered: the key and model work
                if isinstance(outcome, Reply):
                    self.admission.accepted()
                    self.pacing.answered(stamp, loop.time())
                    if quiet is None or not quiet.passed:
                        self._grow(fills)
            if isinstance(outcome, Reply):
                return outcome
            if isinstance(outcome, RateLimited):
                limited += 1
                wait = self._rate_limit_wait(outcome, limited)
                if self.sizing.shrink(loop.time(), wait, learned):
                    self.admission.resize(self.concurrency)
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

    def _grow(self, fills: int, by: int = 1) -> None:
        """A call that began when the gate had filled ``fills`` times was taken: the concurrency grows by
        ``by`` if every slot was busy meanwhile (``Concurrency.grow``)."""
        slots = self.admission.slots
        if self.sizing.grow(slots.full or slots.fills != fills, self._held_back, by):
            self.admission.resize(self.concurrency)

    def _watch_quiet(self, fills: int) -> Quiet | None:
        """After a passing free call, before the key was proven or in the slow start: a timer that, if this
        paid call goes on without a refusal for ``QUIET_ROUND_TRIPS`` round trips (it is being generated: a
        refusal comes back as fast as the free call did), proves the key, so the other calls need not
        wait for its whole answer, and counts the call as taken for the slow start: as an answer would,
        and one more, since it still holds its slot (so the calls in flight double each quiet period, not
        each answer's latency)."""
        if self.pacing.round_trip is None or (self.admission.proven and not self.sizing.slow):
            return None
        if not self.admission.counted:
            return None

        def taken() -> None:
            self.admission.accepted()
            self._grow(fills, by=2)

        return Quiet(max(QUIET_SECONDS, QUIET_ROUND_TRIPS * self.pacing.round_trip), taken)

    def _rate_limit_wait(self, limited: RateLimited, tries: int) -> float:
        wait = limited.retry_after if limited.retry_after is not None else self.retry.delay(tries)
        if wait > self.retry.max_wait:
            self.abort()
            raise FatalProviderError(f"{limited} and asks to wait {wait:.0f} s: quota exhausted?")
        if tries >= self.retry.rate_limit_attempts:
            self.abort()
            raise FatalProviderError(f"still rate limited after {tries} tries ({limited})")
        return wait

    async def _attempt(
        self, provider: Provider, request: Request, kind: CallKind, sent: Callable[[], None] | None
    ) -> Reply | ProviderError:
        held = 0.0  # the budget's hold on this call's worst case, until it is answered
        if self.budget is not None:
            try:
                held = await self.budget.before(provider.model, request)
            except BudgetReached:
                self.abort()
                raise
        self.stats.count_call(provider.model, kind)
        if sent is not None:
            sent()
        answered = False
        try:
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
            answered = True
        finally:
            if self.budget is not None and not answered:
                self.budget.release(held)
        self.stats.add_usage(provider.model, reply.usage)
        if self.budget is not None:
            self.budget.spend(provider.model, reply.usage, held)
        return reply

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
            self.admission.check_aborted()
            return self.pacing.sent(loop.time())
