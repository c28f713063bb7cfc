"""Batch runs finish: passing failures go to the next round, failed jobs too (or live), stragglers finish
live, a batch timeout cancels and finishes live, a failed pack stays packed down the ladder. Through the
OpenAI stub's Files and Batches API with the real SDK."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from enrichkit import EnrichResult, Task, enrich
from enrichkit.calls.budget import BudgetReached
from enrichkit.engine import batch as batch_mode
from enrichkit.engine.batch import JobStore
from enrichkit.engine.ladder import Ladder, Rung
from enrichkit.engine.waiting import looks, status_line
from enrichkit.output.receipt import run_report, run_text
from enrichkit.providers.base import JobStatus
from enrichkit.providers.openai import openai_provider
from enrichkit.testing import Asked, OpenAIStub, drop_ids, http_error, json_validate_failed
from helpers import FAST_RETRY, topic_rows

POLL = 0.01


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")


def run(stub: OpenAIStub, task: Task, cache_dir: Path, rows: int, model: str = "main-model", **kw: Any) -> EnrichResult:
    kw = {"mode": "batch", "poll": POLL, "retry": FAST_RETRY, **kw}
    return enrich(topic_rows(rows), task, provider=openai_provider(model, base_url=stub.url), cache_dir=cache_dir, **kw)


def rows_of(asked: Asked) -> set[int]:
    return {int(n) for n in re.findall(r"Synthetic description (\d+) ", asked.prompt)}


def test_a_server_error_and_a_deadline_pass_in_the_next_round(task: Task, cache_dir: Path) -> None:
    with OpenAIStub() as stub:
        stub.script(None, http_error(500, "internal error"), None, http_error(504, "deadline expired"))
        result = run(stub, task, cache_dir, 100)
        first, second = result.stats.jobs
        assert len(stub.jobs[first].lines) == 5 and len(stub.jobs[second].lines) == 2  # the two packs, as they were
        assert all(a.rows == 20 for a in stub.requests_of(second))
    assert result.failures == [] and result.stats.enriched == 100 and stub.generate_calls == []


def test_a_failed_job_sends_its_rows_to_the_next_round(task: Task, cache_dir: Path) -> None:
    with OpenAIStub(auto=False) as stub:
        run(stub, task, cache_dir, 60, wait=False)
        [name] = stub.jobs
        stub.advance(name, "failed")
        second = run(stub, task, cache_dir, 60, wait=False)
        assert second.stats.failed == 0 and second.stats.pending == 60 and len(stub.jobs) == 2
        again = second.stats.jobs[-1]
        stub.advance(again)
        third = run(stub, task, cache_dir, 60)
    assert third.stats.enriched == 60 and third.failures == [] and stub.generate_calls == []


def test_a_failed_job_goes_live_with_realtime_fallback(task: Task, cache_dir: Path) -> None:
    with OpenAIStub(auto=False) as stub:
        run(stub, task, cache_dir, 60, wait=False)
        [name] = stub.jobs
        stub.advance(name, "failed")
        result = run(stub, task, cache_dir, 60, realtime_fallback=True)
        assert len(stub.jobs) == 1 and len(stub.generate_calls) == 3  # the three packs, live
    assert result.stats.enriched == 60 and result.stats.finished_live == 60
    assert "60 rows finished live at the live price" in run_text(run_report(result.stats, "openai", "main-model"))


def test_a_straggler_finishes_live_at_the_live_price(task: Task, cache_dir: Path) -> None:
    with OpenAIStub() as stub:
        stub.script(drop_ids("r3"))  # one row of 100 lost: 1 % of the job
        result = run(stub, task, cache_dir, 100)
        assert len(stub.jobs) == 1 and [a.rows for a in stub.generate_calls] == [1]
    assert result.failures == [] and result.stats.finished_live == 1
    live = result.stats.live_by_model["main-model"]
    assert live.calls == 1 and live.rows == 1
    text = run_text(run_report(result.stats, "openai", "main-model"))
    assert "1 rows finished live at the live price" in text


def test_a_batch_runs_rows_asked_live_are_held_to_the_budget_at_the_live_price(task: Task, cache_dir: Path) -> None:
    with OpenAIStub(auto=False) as stub:
        run(stub, task, cache_dir, 100, model="gpt-4o-mini", wait=False)
        [name] = stub.jobs
        stub.advance(name, "failed")  # every row goes live, at twice the batch price the estimate counted
        budget = 0.0017  # above the estimate at the batch price ($0.0016); a live pack's worst case is more
        with pytest.raises(BudgetReached, match=r"next call could cost up to \$0\.0022"):
            run(stub, task, cache_dir, 100, model="gpt-4o-mini", realtime_fallback=True, max_cost=budget)
        assert stub.generate_calls == []  # nothing was bought: the error is the whole story


@pytest.mark.parametrize("stragglers", ["batch", "fail"])
def test_stragglers_batch_or_fail(stragglers: str, task: Task, cache_dir: Path) -> None:
    with OpenAIStub() as stub:
        stub.script(drop_ids("r3"))
        result = run(stub, task, cache_dir, 100, stragglers=stragglers)
        assert stub.generate_calls == []
    if stragglers == "batch":
        assert len(result.stats.jobs) == 2 and result.failures == []
    else:
        assert len(result.stats.jobs) == 1 and result.stats.failed == 1
        assert "--stragglers fail" in result.failures[0].reason


def test_no_realtime_fallback_sends_stragglers_to_another_round(task: Task, cache_dir: Path) -> None:
    with OpenAIStub() as stub:
        stub.script(drop_ids("r3"))
        result = run(stub, task, cache_dir, 100, realtime_fallback=False)
        assert stub.generate_calls == [] and len(result.stats.jobs) == 2 and result.failures == []


def test_the_batch_timeout_cancels_keeps_the_answers_and_finishes_live(task: Task, cache_dir: Path) -> None:
    with OpenAIStub(auto=False) as stub:
        result = run(stub, task, cache_dir, 60, batch_timeout=0.2)
        [name] = stub.jobs
        assert stub.jobs[name].status == "cancelled" and any(c.action == "cancel" for c in stub.api_calls)
        assert len(stub.generate_calls) == 3  # the job answered nothing: its three packs, live
    assert result.stats.enriched == 60 and result.stats.finished_live == 60 and result.stats.pending == 0
    assert JobStore(cache_dir).all() == []


def test_the_batch_timeout_without_real_time_leaves_the_rows_in_their_job(task: Task, cache_dir: Path) -> None:
    with OpenAIStub(auto=False) as stub:
        result = run(stub, task, cache_dir, 60, batch_timeout=0.1, realtime_fallback=False)
        [name] = stub.jobs
        assert stub.generate_calls == [] and stub.jobs[name].status != "cancelled"
    assert result.stats.pending == 60 and result.stats.failed == 0
    assert [m.name for m in JobStore(cache_dir).all()] == [name]  # for `enrichkit jobs collect`


def test_rows_that_never_pass_stop_after_the_round_limit(
    task: Task, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_mode, "ROUNDS", 3)
    with OpenAIStub() as stub:
        stub.rule(http_error(503, "overloaded"))
        result = run(stub, task, cache_dir, 20, fallback=())
        assert stub.generate_calls == []
    assert len(result.stats.jobs) == 3 and result.stats.failed == 20
    assert "no valid answer in 3 batch rounds" in result.failures[0].reason


def test_the_two_pass_scenario_sends_failed_packs_to_the_fallback_two_a_request(task: Task, cache_dir: Path) -> None:
    """Groq's two-pass batch: the small model refuses 30 % of the requests, the big one none; the refused
    packs' rows go to the big one in packs twice as big (the instruction paid once for two packs)."""
    weak = {n for n in range(50) if n % 10 < 3}  # 15 of the 50 packs of 20

    def refused(asked: Asked) -> bool:
        return asked.model == "small" and any(n // 20 in weak for n in rows_of(asked))

    with OpenAIStub() as stub:
        run(stub, task, cache_dir / "clean", 1000, "small")
        clean = sum(a.prompt_tokens for a in stub.calls)  # every request sent, refused ones included
        stub.rule(json_validate_failed("Failed to generate JSON"), when=refused)
        result = run(stub, task, cache_dir / "run", 1000, "small", fallback=("big",))
        sent = sum(a.prompt_tokens for a in stub.calls) - clean
        assert stub.generate_calls == []
    assert result.failures == [] and result.stats.enriched == 1000 and len(result.stats.jobs) == 2
    assert sent <= 1.35 * clean
    assert [(r.model, r.size, r.requests, r.rows) for r in result.stats.batch_rungs] == [
        ("small", 20, 50, 1000),
        ("big", 40, 8, 300),
    ]
    assert sorted(len(a.ids) for a in stub.calls if a.model == "big") == [20] + [40] * 7
    text = run_text(run_report(result.stats, "openai", "small"))
    rungs = "50 packs of up to 20 on small (1,000 rows), 8 packs of up to 40 on big (300 rows)"
    assert f"batch: 58 requests in 2 jobs: {rungs}" in text


def test_a_fallback_round_packs_two_failed_packs_a_request_within_what_the_model_takes() -> None:
    ladder = Ladder(20, 3, widest=[50, 50, 30])
    assert ladder.in_batch(Rung(20), whole=True) == Rung(40, 1)
    assert ladder.in_batch(Rung(40, 1), whole=True) == Rung(30, 2)  # the second fallback takes 30 at most
    assert ladder.in_batch(Rung(1), whole=False) == Rung(1, 1)  # a row that failed on its own stays alone
    assert ladder.in_batch(Rung(30, 2), whole=True) == Rung(15, 2)  # the last model: half packs, as before


def test_the_first_look_comes_early_then_backs_off_to_the_poll_interval() -> None:
    assert list(itertools.islice(looks(30), 7)) == [1, 2, 4, 8, 16, 30, 30]
    assert list(itertools.islice(looks(0.5), 2)) == [0.5, 0.5]


def test_the_waiting_line_names_the_job_and_counts_its_requests() -> None:
    status = JobStatus("batch_1", "running", "", requests=50, answered=12, failed=1)
    line = status_line([status], 0, 125, 30)
    assert line.startswith("batch job batch_1: running · 12/50 requests done, 1 failed · waited 2m05s")
    assert "next look in 30 s" in line and "Ctrl-C is safe" in line
