"""The concurrency's own rules: slow start, then one a round trip; a 429 halves it once per pause, or keeps
it when it taught the limit; a given concurrency never moves."""

from __future__ import annotations

from enrichkit.calls.concurrency import Concurrency


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
