"""The budget (``max_cost=``, ``--max-cost``): a run never spends more than it allows."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from google import genai

from enrichkit import Task, UserError, enrich
from enrichkit.calls.budget import Budget, BudgetReached
from enrichkit.calls.prices import price_of
from enrichkit.cli.flags import CliOptions
from enrichkit.cli.runner import STOPPED, run_job
from enrichkit.options import RunOptions
from enrichkit.providers.base import Request, Usage, estimate_tokens
from enrichkit.providers.gemini import make_client
from enrichkit.rows.files import iter_rows
from enrichkit.testing import GeminiStub
from helpers import ROOT, in_virtual_time, topic_rows


def test_a_live_run_estimated_over_the_budget_runs_up_to_it_and_says_what_fits(
    stub: GeminiStub, client: genai.Client, task: Task, cache_dir: Path
) -> None:
    with pytest.warns(RuntimeWarning, match=r"budget reached: .* \(the run was estimated at \$0\.\d+\)"):
        result = enrich(topic_rows(300), task, client=client, cache_dir=cache_dir, max_cost=0.012, concurrency=1)
    cost = result.stats.est_cost
    assert cost is not None and 0.012 - 0.0054 < cost.live_usd <= 0.012 and 0 < result.stats.enriched < 300
    assert result.stats.not_asked == 300 - result.stats.enriched and len(result.rows) == 300  # none sent in vain
    assert "re-run with a higher --max-cost" in result.stats.hint and "--limit " in result.stats.hint


def test_the_calls_in_flight_count_against_the_budget(stub: GeminiStub, task: Task, cache_dir: Path) -> None:
    with GeminiStub(latency=0.2) as slow:
        client = make_client("test-key", slow.url)
        with pytest.warns(RuntimeWarning, match="budget reached"):
            result = enrich(topic_rows(400), task, client=client, cache_dir=cache_dir, max_cost=0.012, concurrency=8)
    cost = result.stats.est_cost  # 8 calls in flight could each cost up to $0.0054: they wait their turn
    assert cost is not None and 0.012 - 0.0054 < cost.live_usd <= 0.012


def test_a_batch_run_estimated_over_the_budget_is_refused_with_the_limit_that_fits(
    stub: GeminiStub, client: genai.Client, task: Task, cache_dir: Path
) -> None:
    with pytest.raises(UserError, match=r"a batch job cannot stop part-way: --limit \d+ fits the budget"):
        enrich(topic_rows(400), task, client=client, cache_dir=cache_dir, max_cost=0.001, mode="batch")
    assert stub.generate_calls == [] and stub.api_calls == []


def test_the_budget_stops_the_run_before_a_call_that_could_cross_it_and_the_output_is_whole(
    stub: GeminiStub, tmp_path: Path
) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in topic_rows(300)), encoding="utf-8")
    out, report = tmp_path / "out.jsonl", tmp_path / "report.json"
    limit = 0.01  # the first chunk of 100 rows is estimated at about $0.008; the whole run would spend about $0.014
    options = RunOptions(
        provider="gemini",
        base_url=stub.url,
        cache_dir=tmp_path / "cache",
        chunk_rows=100,
        max_cost=limit,
        concurrency=1,
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GEMINI_API_KEY", "test-key")
        code = run_job(
            iter_rows(source), ROOT / "schemas" / "roadmap-topic.json", out, options, CliOptions(report, quiet=True)
        )
    assert code == STOPPED
    done = json.loads(report.read_text(encoding="utf-8"))
    assert done["stopped"].startswith("budget reached")
    assert sum(c["live_usd"] for c in done["cost"].values()) <= limit
    assert 100 < done["enriched"] < 300 and done["calls"] == len(stub.generate_calls) < 15
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(written) == 300 and sum(r["tldr"] is not None for r in written) == done["enriched"]


def test_a_call_that_cannot_fit_waits_for_the_calls_in_flight_then_stops_once_none_is() -> None:
    budget = Budget(0.5)
    model = "gemini-3.1-flash-lite"

    def request(output_tokens: int) -> Request:
        return Request("s" * 400, "p" * 400, {}, max_output_tokens=output_tokens)

    async def go() -> None:
        held = [await budget.before(model, request(n)) for n in (70_001, 90_003, 110_007)]  # $0.105 .. $0.165
        waiting = asyncio.ensure_future(budget.before(model, request(150_000)))  # $0.225 more: it waits
        await asyncio.sleep(0)
        assert not waiting.done()
        for h in held:  # answered for less than their worst cases, in amounts that do not add up exactly
            budget.spend(model, Usage(100, 3_001), h)
        budget.release(await asyncio.wait_for(waiting, 1))  # it went once they were over, and failed
        with pytest.raises(BudgetReached, match=r"budget reached: \$0\.\d+ spent of --max-cost \$0\.5"):
            await asyncio.wait_for(budget.before(model, request(330_000)), 1)  # $0.495: nothing to wait for

    in_virtual_time(go())


def test_a_batch_runs_live_calls_pay_the_live_price_on_top_of_its_jobs() -> None:
    model = "gemini-3.1-flash-lite"
    request = Request("s" * 400, "p" * 400, {}, max_output_tokens=10_000)
    price = price_of(model)
    assert price is not None
    prompt = estimate_tokens(request.system) + estimate_tokens(request.prompt)
    live, flex = price.cost(prompt, 10_000), price.cost(prompt, 10_000, batch=True)

    async def go() -> None:
        assert await Budget(1.0, mode="batch").before(model, request) == pytest.approx(live)  # a straggler
        assert await Budget(1.0, mode="flex").before(model, request) == pytest.approx(flex)
        budget = Budget(0.5, mode="batch")
        budget.jobs_spent = 0.5 - live / 2  # what the jobs cost leaves less than this call's worst case
        with pytest.raises(BudgetReached, match=r"budget reached: \$0\.49\d+ spent of --max-cost \$0\.5"):
            await budget.before(model, request)

    in_virtual_time(go())
