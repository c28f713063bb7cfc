"""One rate limit for many workers: the RPM/TPM sliding window and the 429 pause, kept in Redis.

Each request is a member of one sorted set (score: the Redis server's clock, so machines' clocks do
not matter); a Lua script drops what left the window, checks the limits and the pause, and either
counts the request or says how long to wait, atomically. So N workers at ``rpm=600`` send at most
600 requests in any minute in all.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from enrichkit.cache.redis import connect, guarded

# KEYS[1]: the window (sorted set of "tokens:id"), KEYS[2]: the pause (a time in ms). ARGV: window ms,
# rpm (0: none), tpm (0: none), tokens, member id. Returns 0 (counted) or milliseconds to wait.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local window, rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local paused = tonumber(redis.call('GET', KEYS[2]) or '0')
if paused > now then return math.ceil(paused - now) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local log = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local n = #log / 2
local until_ = now
if rpm > 0 and n >= rpm then until_ = math.max(until_, tonumber(log[2 * (n - rpm) + 2]) + window) end
if tpm > 0 and n > 0 then
  local total = 0
  for i = 1, #log, 2 do total = total + tonumber(string.match(log[i], '^(%d+):')) end
  local excess = total + tokens - tpm
  if excess > 0 then
    local freed = tonumber(log[#log])
    for i = 1, #log, 2 do
      excess = excess - tonumber(string.match(log[i], '^(%d+):'))
      if excess <= 0 then freed = tonumber(log[i + 1]); break end
    end
    until_ = math.max(until_, freed + window)
  end
end
if until_ > now then return math.max(1, math.ceil(until_ - now)) end
redis.call('ZADD', KEYS[1], now, tokens .. ':' .. ARGV[5])
redis.call('PEXPIRE', KEYS[1], math.ceil(window))
return 0
"""

# KEYS[1]: the pause; ARGV[1]: ms from now. The later of the pause held and the one asked.
_HOLD = """
local t = redis.call('TIME')
local until_ = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000 + tonumber(ARGV[1])
if until_ > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], string.format('%.0f', until_), 'PX', ARGV[1])
end
return 0
"""


class RedisRateLimiter:
    """Sliding-window limits on requests and tokens per ``window`` seconds, shared by every limiter of
    the same ``name`` on the same Redis server (held 2 % longer than asked, as ``RateLimiter`` does).

    A worker's callers queue first come, first served; across workers whoever asks first once the
    window has room goes. A 429 that one worker got (``hold``) holds every worker's next call.
    """

    def __init__(
        self, url: str, rpm: int | None = None, tpm: int | None = None, *, name: str = "default", window: float = 60.0
    ) -> None:
        if (rpm is not None and rpm < 1) or (tpm is not None and tpm < 1):
            raise ValueError("rate limits must be positive")
        self.url = url
        self.rpm = rpm
        self.tpm = tpm
        self.window = window * 1.02
        self.waited = 0.0
        self._keys = (f"enrichkit:limit:{name}:window", f"enrichkit:limit:{name}:pause")
        self._client = connect(url)
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one more request of ``tokens`` tokens fits in the shared window, and count it.
        (A hold counts even without limits.)"""
        async with self._lock:
            while (wait := self._try(tokens)) > 0:
                self.waited += wait
                await asyncio.sleep(wait)

    def _try(self, tokens: int) -> float:
        """Count the request if it fits now (0); else the seconds to wait before trying again."""
        member = uuid.uuid4().hex
        args = (round(self.window * 1000), self.rpm or 0, self.tpm or 0, tokens if self.tpm else 0, member)
        with guarded(self.url, "count a request"):
            waited: Any = self._client.eval(_ACQUIRE, 2, *self._keys, *args)
        return int(waited) / 1000

    def hold(self, seconds: float) -> None:
        """Every worker sharing this limit waits ``seconds`` (from now, by Redis' clock) before its next call."""
        if seconds > 0:
            with guarded(self.url, "hold the rate limit"):
                self._client.eval(_HOLD, 1, self._keys[1], max(1, round(seconds * 1000)))

    def close(self) -> None:
        self._client.close()
