"""What a run's tokens cost: the live and batch totals, and a batch run's rows finished live priced apart."""

import pytest

from enrichkit.calls.prices import run_cost
from enrichkit.result import ModelStats, Stats


def test_a_live_run_pays_the_live_price_and_names_the_batch_one() -> None:
    stats = Stats(mode="live", by_model={"gemini-2.5-flash": ModelStats(prompt_tokens=1_000_000)})
    cost = run_cost(stats)
    assert cost is not None
    assert (cost.usd, cost.batch_usd) == (0.3, 0.15)
    assert str(cost) == "est. cost $0.3000 (batch price $0.1500)"


def test_rows_a_batch_run_finished_live_are_priced_live() -> None:
    used = {"gemini-2.5-flash": ModelStats(prompt_tokens=2_000_000)}
    live = {"gemini-2.5-flash": ModelStats(calls=3, prompt_tokens=1_000_000)}
    stats = Stats(mode="batch", by_model=used, live_by_model=live, finished_live=7)
    cost = run_cost(stats)
    assert cost is not None
    assert cost.usd == pytest.approx(0.45)  # one million tokens at the batch price, one million at the live price
    assert str(cost) == "est. cost $0.4500 ($0.1500 at the batch price + $0.3000 live for 7 rows)"


def test_a_model_without_a_price_makes_the_cost_unknown() -> None:
    assert run_cost(Stats(by_model={"no-such-model": ModelStats(prompt_tokens=10)})) is None


def test_the_local_model_costs_nothing() -> None:
    cost = run_cost(Stats(by_model={"qwen": ModelStats(prompt_tokens=10)}), free={"qwen"})
    assert cost is not None and cost.free and str(cost) == "cost $0 (local model)"
