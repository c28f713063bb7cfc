"""Python results carry the cost the command line prints: the dry run's plan, ``result.stats`` and the
result's repr (real SDK and CLI against the Gemini stub)."""

from __future__ import annotations

import json
from pathlib import Path

from google import genai

from enrichkit import Task, dry_run, enrich
from enrichkit.calls.prices import price_of
from enrichkit.result import Cost
from enrichkit.testing import GeminiStub, scripted
from helpers import TASK, invoke, run_at_seam, topic_rows, write_jsonl


def test_the_plan_prices_its_tokens_live_and_at_the_batch_price(client: genai.Client, task: Task) -> None:
    plan = dry_run(topic_rows(50), task, client=client, use_cache=False)
    price = price_of(plan.model)
    assert price is not None and plan.prompt_tokens and plan.output_tokens
    assert plan.cost == Cost(
        round(price.cost(plan.prompt_tokens, plan.output_tokens), 6),
        round(price.cost(plan.prompt_tokens, plan.output_tokens, batch=True), 6),
    )
    assert plan.cost.batch_usd < plan.cost.live_usd == plan.cost.usd
    assert f"cost={plan.cost!r}" in repr(plan)


def test_stats_and_the_repr_carry_the_cost_the_cli_prints(
    stub: GeminiStub, client: genai.Client, task: Task, tmp_path: Path
) -> None:
    result = enrich(topic_rows(30), task, client=client, use_cache=False, progress=False)
    cost = result.stats.est_cost
    assert cost is not None and cost.live_usd > cost.batch_usd > 0
    text = str(cost)
    assert text == f"est. cost ${cost.live_usd:.4f} (batch price ${cost.batch_usd:.4f})"
    assert text in repr(result)

    rows = write_jsonl(tmp_path / "rows.jsonl", topic_rows(30))
    report = tmp_path / "report.json"
    done = invoke(
        stub, "run", str(rows), "-t", TASK, "-o", str(tmp_path / "o.jsonl"), "--no-cache", "--report", str(report)
    )
    assert done.exit_code == 0, done.output
    assert f"; {text}; wall " in done.stderr  # the same run on the command line: the same words
    assert Cost(**json.loads(report.read_text(encoding="utf-8"))["est_cost"]) == cost


def test_a_model_without_a_price_says_its_cost_is_unknown(task: Task, cache_dir: Path) -> None:
    result = run_at_seam(topic_rows(5), task, scripted(), cache_dir, model="no-such-price")
    assert result.stats.est_cost is None and result.stats.by_model["no-such-price"].calls == 1
    assert "cost unknown (no price for this model; see ENRICHKIT_PRICES)" in repr(result)


def test_a_batch_run_is_priced_at_the_batch_price() -> None:
    cost = Cost(0.0427, 0.0213, mode="batch")
    assert cost.usd == 0.0213 and str(cost) == "est. cost $0.0213 at the batch price ($0.0427 live)"
