"""The client-side rate limiter, alone and in the engine against a stub that enforces its own limit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from enrichkit import Task
from enrichkit.calls.limits import RateLimiter
from enrichkit.testing import ServerLimit, scripted
from helpers import generated, in_virtual_time, most_in_any_window, run_at_seam, topic_rows


async def stamps(limiter: RateLimiter, tokens: list[int]) -> list[float]:
    loop = asyncio.get_running_loop()
    start = loop.time()
    got: list[float] = []

    async def one(n: int) -> None:
        await limiter.acquire(n)
        got.append(loop.time() - start)

    await asyncio.gather(*(one(n) for n in tokens))
    return sorted(got)


def test_never_more_requests_than_the_limit_in_any_window() -> None:
    times = in_virtual_time(stamps(RateLimiter(rpm=5, window=60), [0] * 17))
    assert most_in_any_window(times, 60 * 1.02) == 5
    assert times[-1] == pytest.approx(3 * 60 * 1.02)  # 4 waves: it waits exactly as long as needed


def test_token_limit_over_the_window() -> None:
    limiter = RateLimiter(tpm=100, window=60)
    times = in_virtual_time(stamps(limiter, [40] * 6))
    assert most_in_any_window(times, 60 * 1.02) == 2
    assert limiter.waited == pytest.approx(times[-1]) and times[-1] == pytest.approx(2 * 60 * 1.02)


def test_a_request_larger_than_the_token_limit_goes_alone() -> None:
    times = in_virtual_time(stamps(RateLimiter(tpm=100, window=60), [30, 500, 30]))
    assert times == pytest.approx([0, 60 * 1.02, 2 * 60 * 1.02])  # the big one waits for an empty window


def test_no_limit_means_no_wait() -> None:
    times = in_virtual_time(stamps(RateLimiter(), [10**9] * 50))
    assert times[-1] == 0


def test_engine_under_a_client_limit_gets_no_429(task: Task, tmp_path: Path) -> None:
    server = ServerLimit(rpm=3, window=0.8, latency=0.02)
    script = scripted(rules=[server])
    limiter = RateLimiter(rpm=3, window=1.0)
    result = run_at_seam(topic_rows(100), task, script, tmp_path, limiter=limiter)
    assert result.stats.enriched == 100 and result.stats.calls == 5
    assert server.refused == 0
    sent = [a.received for a in generated(script)]
    assert sent[3] - sent[0] == pytest.approx(1.02)  # the 4th call waited for the client's window


def test_without_the_limit_the_server_429s_and_the_engine_waits(task: Task, tmp_path: Path) -> None:
    server = ServerLimit(rpm=3, window=0.5)
    result = run_at_seam(topic_rows(100), task, scripted(rules=[server]), tmp_path)
    assert result.stats.enriched == 100
    assert server.refused > 0 and result.stats.retries == server.refused
