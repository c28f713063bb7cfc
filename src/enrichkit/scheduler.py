"""The call policy: when a call may go out, and how hard one call is tried.

Calls wait for a concurrency slot, for a rate-limit pause the server asked for (a 429 holds every
call), and for the client-side RPM/TPM limiter. Until one call has been answered they go one at a
time (a free ``countTokens`` preflight proves the key and model first where the provider can count).
Rate limits wait as the server says and retry the same call; transient errors retry with backoff;
everything else is raised to the caller, which decides what the failure means for its rows.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from enrichkit.errors import FatalProviderError, ProviderError, RateLimited, TransientError, Unreachable
from enrichkit.limiter import Limiter
from enrichkit.prompt import estimate_tokens
from enrichkit.providers.base import Provider, Reply, Request
from enrichkit.result import CallKind, Stats

PREFLIGHT_SECONDS = 30.0


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

    def __init__(self, stats: Stats, *, concurrency: int, retry: RetryPolicy, limiter: Limiter) -> None:
        self.stats = stats
        self.concurrency = concurrency
        self.retry = retry
        self.limiter = limiter
        self._slots = asyncio.Semaphore(concurrency)
        self._probe = asyncio.Lock()
        self._proven = asyncio.Event()
        self._paused_until = 0.0
        self._aborted = False

    def abort(self) -> None:
        """No new call starts (the run is stopping)."""
        self._aborted = True

    async def preflight(self, provider: Provider, request: Request) -> None:
        """A free call first (the provider counts ``request``'s tokens): a bad key or unknown model stops
        the run before anything is paid, and when it answers every call may start at once. Providers that
        cannot count fall back to sending the first paid call alone."""
        if self._proven.is_set():
            return
        try:
            counted = await asyncio.wait_for(provider.count_tokens(request), PREFLIGHT_SECONDS)
        except FatalProviderError:
            self.abort()
            raise
        except (ProviderError, TimeoutError):
            return
        if counted is not None:
            self._proven.set()

    async def call(self, provider: Provider, request: Request, kind: CallKind) -> Reply:
        """One logical call: retried on rate limits and transient errors as the policy says."""
        transient = limited = 0
        while True:
            async with self._admission():
                await self._unpaused()
                await self.limiter.acquire(estimate_tokens(request.system) + estimate_tokens(request.prompt))
                outcome = await self._attempt(provider, request, kind)
                if not isinstance(outcome, RateLimited | TransientError):
                    self._proven.set()  # the provider answered: the key and model work
            if isinstance(outcome, Reply):
                return outcome
            if isinstance(outcome, RateLimited):
                limited += 1
                self._pause(self._rate_limit_wait(outcome, limited))
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
        self.stats.count_call(provider.model, kind)
        try:
            reply = await asyncio.wait_for(provider.generate(request), request.timeout)
        except TimeoutError:
            return TransientError(f"{provider.model} gave no answer within {request.timeout:g} s")
        except FatalProviderError:
            self.abort()
            raise
        except ProviderError as exc:
            return exc
        self.stats.add_usage(provider.model, reply.usage)
        return reply

    @asynccontextmanager
    async def _admission(self) -> AsyncIterator[None]:
        """A concurrency slot; until one call has been answered, calls go one at a time."""
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

    async def _unpaused(self) -> None:
        loop = asyncio.get_running_loop()
        while (left := self._paused_until - loop.time()) > 0:
            await asyncio.sleep(left)
