"""Adaptive concurrency and the rate limit learned from the server's 429s."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from enrichkit import Task, aenrich
from enrichkit.calls.limits import RateLimiter
from enrichkit.calls.pacing import Gate, Pacing
from enrichkit.calls.scheduler import Scheduler
from enrichkit.errors import RateLimited
from enrichkit.providers.base import Reply, Request
from enrichkit.result import Stats
from enrichkit.testing import FunctionProvider, ServerLimit, scripted
from helpers import FAST_RETRY, generated, in_virtual_time, run_at_seam, topic_rows


def test_a_429_teaches_the_window_and_the_limit() -> None:
    pacing = Pacing()
    stamps = [pacing.sent(0.01 * n) for n in range(11)]  # the 11th is refused: 10 fit the window
    assert pacing.refused(stamps[-1], 0.12, retry_after=1.88)
    assert pacing.limit == 10 and pacing.window == pytest.approx(2.0)
    assert pacing.describe() == "~10 requests / 2 s"
    assert pacing.wait(0.2, 8) == pytest.approx(2.0 * 1.005 - 0.2)  # the first send's slot frees first
    assert pacing.wait(2.02, 8) == pytest.approx(0.0, abs=1e-9)


def test_a_429_without_a_retry_delay_or_before_any_answer_teaches_nothing() -> None:
    pacing = Pacing()
    assert not pacing.refused(pacing.sent(0.0), 0.01, retry_after=1.0)  # nothing was taken before it
    assert not pacing.refused(pacing.sent(0.1), 0.11, retry_after=None)
    assert pacing.limit is None and pacing.describe() == ""


def test_a_gate_follows_its_size() -> None:
    async def scenario() -> list[int]:
        gate = Gate(1)
        await gate.acquire()
        waiting = asyncio.ensure_future(gate.acquire())
        await asyncio.sleep(0)
        assert not waiting.done()
        gate.resize(2)  # room for one more: the waiter gets in without a release
        await waiting
        gate.resize(1)
        gate.release()
        return [gate.held, gate.size]

    assert asyncio.run(scenario()) == [1, 1]


def scheduler(concurrency: int, max_concurrency: int | None) -> Scheduler:
    return Scheduler(
        Stats(), concurrency=concurrency, retry=FAST_RETRY, limiter=RateLimiter(), max_concurrency=max_concurrency
    )


async def calls(s: Scheduler, provider: FunctionProvider, n: int) -> None:
    request = Request(system="", prompt="p", schema={}, max_output_tokens=10)
    async with asyncio.TaskGroup() as group:
        for _ in range(n):
            group.create_task(s.call(provider, request, "single"))


def test_concurrency_grows_while_latency_binds_and_nothing_is_refused() -> None:
    async def slow(request: Request) -> Reply:
        await asyncio.sleep(0.01)
        return Reply("{}")

    grown, fixed = scheduler(4, 32), scheduler(4, None)
    in_virtual_time(calls(grown, FunctionProvider(slow), 200))
    in_virtual_time(calls(fixed, FunctionProvider(slow), 200))
    assert grown.concurrency == 32 and fixed.concurrency == 4


def test_concurrency_halves_after_429s_without_a_retry_delay() -> None:
    refusals = [0]

    async def busy(request: Request) -> Reply:
        await asyncio.sleep(0.01)
        if refusals[0] < 3:
            refusals[0] += 1
            raise RateLimited("slow down")
        return Reply("{}")

    s = scheduler(16, 64)
    in_virtual_time(calls(s, FunctionProvider(busy), 16))
    assert s.concurrency < 16 and s.stats.retries == 3


@pytest.mark.parametrize("fixed", [False, True])
def test_the_engine_learns_the_servers_window_and_stays_under_it(task: Task, tmp_path: Path, fixed: bool) -> None:
    server = ServerLimit(rpm=6, window=1.0, fixed=fixed, latency=0.05)
    script = scripted(rules=[server])
    result = run_at_seam(topic_rows(400), task, script, tmp_path)
    s = result.stats
    assert s.enriched == 400 and s.calls_packed == 20 + server.refused
    assert 1 <= server.refused <= 6  # the first burst (calls in flight when the first 429 came back), then none
    assert re.fullmatch(r"~[56] requests / 1(\.\d)? s", s.rate_limit)  # a fixed window may look one smaller
    sent = sorted(a.received for a in generated(script))
    assert sent[-1] - sent[0] >= 3.0  # 20 calls at 6 a second's window: three windows to wait out


def test_a_window_limited_run_sends_its_first_window_fast_and_is_refused_once(task: Task, tmp_path: Path) -> None:
    """30 requests a 6 s window at 0.4 s a call (issue 31's rate-limited run), a refusal as fast as a free
    count: the first window's calls go out a few round trips apart, doubling what is in flight each quiet
    period (not each answer), one 429 teaches the limit, and the second window follows the first."""
    server = ServerLimit(rpm=30, window=6.0, latency=0.4, round_trip=0.005)
    script = scripted(rules=[server])

    async def count(request: Request) -> int:
        await asyncio.sleep(0.005)
        return script.count(request)

    async def run() -> float:
        provider = FunctionProvider(script, count=count)
        loop = asyncio.get_running_loop()
        start = loop.time()
        result = await aenrich(topic_rows(1000), task, provider=provider, cache_dir=tmp_path, progress=False)
        assert result.stats.enriched == 1000 and result.stats.rate_limit == "~30 requests / 6 s"
        return loop.time() - start

    took = in_virtual_time(run())
    sent = sorted(a.received for a in generated(script))
    assert server.refused == 1 and len(sent) == 51  # 50 packs and the one refusal that taught the limit
    assert sent[29] < 0.45  # the first window's 30 calls: out before their first answers came back
    assert took < 6.4 + 0.4  # the bound (the second window's 20 calls at 6 s, 0.4 s each) and the ramp
