"""A client-side rate limiter: at most ``rpm`` requests and ``tpm`` tokens in any sliding window."""

from __future__ import annotations

import asyncio
import collections

from enrichkit.cache.open import need_redis
from enrichkit.options import Limiter, RunOptions
from enrichkit.providers.base import Provider


class RateLimiter:
    """Sliding-window limits on requests and (estimated prompt) tokens per ``window`` seconds.

    Callers are served first come, first served; a caller that must wait sleeps exactly until the
    oldest entry that blocks it leaves the window (no polling). A single request larger than the
    token limit goes alone, when the window is empty. ``None`` means no limit. The window is held 2 %
    longer than asked, because the server stamps a request when it arrives, a little after it left.
    """

    def __init__(self, rpm: int | None = None, tpm: int | None = None, *, window: float = 60.0) -> None:
        if (rpm is not None and rpm < 1) or (tpm is not None and tpm < 1):
            raise ValueError("rate limits must be positive")
        self.rpm = rpm
        self.tpm = tpm
        self.window = window * 1.02
        self.waited = 0.0
        self._log: collections.deque[tuple[float, int]] = collections.deque()
        self._tokens = 0
        self._lock = asyncio.Lock()

    @property
    def active(self) -> bool:
        return self.rpm is not None or self.tpm is not None

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one more request of ``tokens`` tokens fits in the window, and count it."""
        if not self.active:
            return
        loop = asyncio.get_running_loop()
        async with self._lock:
            while (wait := self._wait(loop.time(), tokens)) > 0:
                self.waited += wait
                await asyncio.sleep(wait)
            self._log.append((loop.time(), tokens))
            self._tokens += tokens

    def hold(self, seconds: float) -> None:
        """Nothing to share: the run's scheduler holds its own calls."""

    def _wait(self, now: float, tokens: int) -> float:
        """Seconds until the request fits (0 if it fits now)."""
        log = self._log
        while log and log[0][0] <= now - self.window:
            self._tokens -= log.popleft()[1]
        until = now
        if self.rpm is not None and len(log) >= self.rpm:
            until = max(until, log[len(log) - self.rpm][0] + self.window)
        if self.tpm is not None and log and self._tokens + tokens > self.tpm:
            excess = self._tokens + tokens - self.tpm
            freed_at = log[-1][0]
            for stamp, used in log:
                excess -= used
                if excess <= 0:
                    freed_at = stamp
                    break
            until = max(until, freed_at + self.window)
        return until - now


def open_limiter(options: RunOptions, provider: Provider) -> Limiter:
    """The run's limiter: the one given, one shared through the Redis cache by every run on the same
    provider and model (its RPM/TPM and its 429 pauses), else a local one."""
    if options.limiter is not None:
        return options.limiter
    if options.cache is None or not options.use_cache:
        return RateLimiter(options.rpm, options.tpm)
    need_redis()
    from enrichkit.calls.redis_limit import RedisRateLimiter

    return RedisRateLimiter(options.cache, options.rpm, options.tpm, name=f"{provider.name}:{provider.model}")
