"""Salvage pools on their own: full packs go at once, the rest when nothing above can add to them."""

from __future__ import annotations

from enrichkit.engine.ladder import Rung
from enrichkit.engine.pools import Pools


def test_a_full_pack_goes_at_once_and_the_rest_waits_while_a_larger_pack_is_in_flight() -> None:
    pools: Pools[str] = Pools()
    pools.opened(Rung(20))  # a pack of 20 still in flight may add rows to the pool of 10
    assert pools.add(list("abcdefghijkl"), Rung(10)) == [(list("abcdefghij"), Rung(10))]
    assert pools.ready() == []
    pools.closed(Rung(20))
    assert pools.ready() == [(["k", "l"], Rung(10))]
    assert pools.ready() == []


def test_rows_failed_in_different_packs_share_one_pack() -> None:
    pools: Pools[str] = Pools()
    pools.opened(Rung(20))
    pools.opened(Rung(20))
    assert pools.add(["a"], Rung(10)) == []
    pools.closed(Rung(20))
    assert pools.add(["b", "c"], Rung(10)) == []
    pools.closed(Rung(20))
    assert pools.ready() == [(["a", "b", "c"], Rung(10))]


def test_a_smaller_pool_waits_for_a_larger_one_on_its_tier_only() -> None:
    pools: Pools[str] = Pools()
    pools.add(["a"], Rung(10))
    pools.add(["b"], Rung(5))
    pools.add(["c"], Rung(5, fallback=1))
    ready = pools.ready()
    assert ready == [(["a"], Rung(10)), (["c"], Rung(5, fallback=1))]  # the pool of 5 on tier 0 waits for the 10
    pools.opened(Rung(10))  # the pack just sent from it
    assert pools.ready() == []
    pools.closed(Rung(10))
    assert pools.ready() == [(["b"], Rung(5))]


def test_single_rows_are_never_pooled() -> None:
    pools: Pools[str] = Pools()
    pools.opened(Rung(20))
    assert pools.add(["a", "b"], Rung(1, fallback=1)) == [(["a"], Rung(1, fallback=1)), (["b"], Rung(1, fallback=1))]
