"""One rate limit for many workers, in a real redis-server: separate limiters (each its own connection,
as in separate processes) of one name never send more than the limit in any window, in all."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from enrichkit import aenrich
from enrichkit.calls.redis_limit import RedisRateLimiter
from enrichkit.providers.gemini import make_client
from enrichkit.testing import GeminiStub
from helpers import FAST_RETRY, ROOT, most_in_any_window, topic_rows

pytestmark = pytest.mark.redis


TASK = ROOT / "schemas" / "roadmap-topic.json"


def workers(count: int, job: Callable[[], object]) -> None:
    """``job`` in ``count`` threads at once."""
    threads = [threading.Thread(target=job) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


def stamps(url: str, workers_: int, each: int, tokens: int = 0, **limits: int) -> list[float]:
    """When each of ``workers_`` limiters (threads, one loop and one connection each) got ``each`` requests."""
    got: list[float] = []

    async def one_worker() -> None:
        limiter = RedisRateLimiter(url, name="test", window=0.5, **limits)
        for _ in range(each):
            await limiter.acquire(tokens)
            got.append(time.monotonic())
        limiter.close()

    workers(workers_, lambda: asyncio.run(one_worker()))
    start = min(got)
    return sorted(t - start for t in got)


def test_many_workers_never_exceed_the_shared_request_limit(redis_url: str) -> None:
    times = stamps(redis_url, 4, 5, rpm=5)
    assert len(times) == 20
    assert most_in_any_window(times, 0.5 - 0.02) == 5  # 5 in all, not 5 each
    assert times[-1] >= 3 * 0.5  # 4 windows


def test_the_token_limit_is_shared_too(redis_url: str) -> None:
    times = stamps(redis_url, 3, 2, tokens=40, tpm=100)
    assert most_in_any_window(times, 0.5 - 0.02) == 2


def test_a_429_one_worker_got_holds_every_worker(redis_url: str) -> None:
    a, b = RedisRateLimiter(redis_url, name="hold"), RedisRateLimiter(redis_url, name="hold")
    a.hold(0.3)
    started = time.monotonic()
    asyncio.run(b.acquire())
    assert time.monotonic() - started >= 0.28
    a.close()
    b.close()


def test_two_runs_under_one_shared_limit_get_no_429(redis_url: str, tmp_path: Path) -> None:
    with GeminiStub(rpm=3, window=0.8, latency=0.02) as stub:  # enforces 3 calls a window for both runs
        results = []

        def run(n: int) -> None:
            limiter = RedisRateLimiter(redis_url, rpm=3, name="engine", window=1.0)
            rows = topic_rows(60, prefix=f"run{n}-")
            job = aenrich(
                rows,
                TASK,
                cache_dir=tmp_path / str(n),
                client=make_client(api_key="test-key", base_url=stub.url),
                retry=FAST_RETRY,
                limiter=limiter,
                progress=False,
            )
            results.append(asyncio.run(job))

        counter = iter(range(2))
        workers(2, lambda: run(next(counter)))
    assert [r.stats.enriched for r in results] == [60, 60]
    assert stub.rate_limited == 0  # 6 calls, 3 a window in all
