"""The concurrency's own rules: slow start, then one a round trip; a 429 halves it once per pause, or keeps
it when it taught the limit; a given concurrency, or a provider's fixed one (a local model's slots), never
moves."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from enrichkit import Task, aenrich
from enrichkit.calls.concurrency import Concurrency
from enrichkit.providers.base import Capabilities, Request
from enrichkit.testing import FunctionProvider
from helpers import in_virtual_time, topic_rows


def test_slow_start_then_one_a_round_trip_up_to_the_most() -> None:
    c = Concurrency(2, most=8)
    assert [c.grow(busy=True, held_back=False) for _ in range(6)] == [True] * 6 and c.size == 8
    assert not c.grow(busy=True, held_back=False) and c.size == 8  # never past the most
    c = Concurrency(4, most=64)
    assert not c.grow(busy=False, held_back=False) and not c.grow(busy=True, held_back=True) and c.size == 4
    assert c.shrink(now=0.0, wait=1.0, learned=False) and c.size == 2  # a 429 ends the slow start
    grown = [c.grow(busy=True, held_back=False) for _ in range(5)]  # after it, one per ``size`` answers
    assert grown == [False, True, False, False, True] and c.size == 4


def test_a_429_halves_it_once_per_pause_and_one_that_taught_the_limit_keeps_it() -> None:
    c = Concurrency(16, most=64)
    assert c.shrink(now=10.0, wait=2.0, learned=False) and c.size == 8
    assert not c.shrink(now=11.0, wait=2.0, learned=False) and c.size == 8  # the same burst
    assert c.shrink(now=12.5, wait=2.0, learned=False) and c.size == 4
    assert not c.shrink(now=20.0, wait=2.0, learned=True) and c.size == 4  # the pacing takes over
    assert not c.grow(busy=True, held_back=False)  # past the slow start: a round trip's credit first


def test_a_given_concurrency_never_moves() -> None:
    c = Concurrency(4)
    assert not c.grow(busy=True, held_back=False) and not c.shrink(now=0.0, wait=1.0, learned=False)
    assert c.size == 4


@pytest.mark.parametrize("fixed", [True, False])
def test_a_provider_whose_concurrency_is_fixed_never_has_more_calls_at_once(
    fixed: bool, task: Task, tmp_path: Path
) -> None:
    at_once = most = 0

    async def fn(request: Request) -> Any:
        nonlocal at_once, most
        at_once += 1
        most = max(most, at_once)
        await asyncio.sleep(1.0)
        at_once -= 1
        return {"tldr": "A short summary.", "challenge": "practice"}

    provider = FunctionProvider(fn, capabilities=Capabilities(max_pack_size=1, concurrency=2, fixed_concurrency=fixed))
    result = in_virtual_time(aenrich(topic_rows(40), task, provider=provider, cache_dir=tmp_path, progress=False))
    assert result.stats.enriched == 40
    assert most == 2 if fixed else most > 2  # a remote API's concurrency grows while its calls go well
