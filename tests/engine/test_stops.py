"""When a run stops, and what it leaves: no provider reply ends a run unless it proves the run cannot
succeed (the ladder and its stop evidence at the provider seam); a stop mid-run still writes every row it has
(real CLI and SDK against the Gemini stub)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from google import genai

from enrichkit import Task, enrich
from enrichkit.cli import main
from enrichkit.cli.runner import STOPPED
from enrichkit.providers.openai import openai_provider
from enrichkit.testing import Answer, GeminiStub, OpenAIStub, http_error, quota_exhausted, scripted, set_field
from helpers import FAST_RETRY, ROOT, run_at_seam, topic_rows

TASK = str(ROOT / "schemas" / "roadmap-topic.json")


def run(rows: list[dict[str, Any]], task: Task, client: genai.Client, cache_dir: Path, **kw: Any) -> Any:
    return enrich(rows, task, client=client, cache_dir=cache_dir, retry=FAST_RETRY, **kw)


def test_a_quota_exhausted_mid_run_writes_output_and_failures_and_the_rerun_pays_only_the_rest(
    stub: GeminiStub, tmp_path: Path
) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in topic_rows(100)), encoding="utf-8")
    out, failures, cache = tmp_path / "out.jsonl", tmp_path / "failures.jsonl", str(tmp_path / "cache")
    day_over = [True]
    daily_quota = quota_exhausted("GenerateRequestsPerDayPerProjectPerModel")
    stub.rule(daily_quota, when=lambda call: day_over[0] and len(stub.generate_calls) > 2)  # two packs, then no more
    args = ["run", str(rows), "-t", TASK, "-o", str(out), "--cache-dir", cache, "--base-url", stub.url]
    env = {"GEMINI_API_KEY": "test-key"}
    first = CliRunner().invoke(main, [*args, "--failures", str(failures), "--concurrency", "1"], env=env)
    assert first.exit_code == STOPPED, first.output
    receipt = first.stderr[first.stderr.index("stopped: ") :]
    assert receipt.startswith("stopped: Gemini quota exhausted: GenerateRequestsPerDay")
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(written) == 100 and sum(r["tldr"] is not None for r in written) == 40
    failed = [json.loads(line) for line in failures.read_text(encoding="utf-8").splitlines()]
    assert len(failed) == 60 and all("quota exhausted" in f["error"] for f in failed)
    assert len([c for c in stub.generate_calls if c.action == "generate"]) == 3  # stopped at the first 429

    day_over[0] = False  # the next day
    sent = len(stub.generate_calls)
    again = CliRunner().invoke(main, args, env=env)
    assert again.exit_code == 0, again.output
    assert sum(len(c.ids) or 1 for c in stub.generate_calls[sent:]) == 60  # only the rows not yet answered


def test_an_unrecognised_400_on_big_packs_is_a_pack_failure_not_the_end(task: Task, cache_dir: Path) -> None:
    script = scripted()
    script.rule(http_error(400, "Request contains an invalid argument."), when=lambda asked: len(asked.ids) > 10)
    result = run_at_seam(topic_rows(134), task, script, cache_dir)
    assert result.failures == [] and not result.stats.stopped
    assert result.stats.calls <= 7 + 14 + 2  # the first wave at 20, then packs of 10 (the ladder learned)


def test_the_same_refusal_on_three_single_rows_stops_the_run(task: Task, cache_dir: Path) -> None:
    script = scripted(rules=[http_error(400, "Request contains an invalid argument.")])
    with pytest.warns(RuntimeWarning, match="refused the request for 3 rows in a row"):
        result = run_at_seam(topic_rows(400), task, script, cache_dir, concurrency=2)
    assert len(script.calls) <= 30  # a few packs of each size, then three rows on their own: not 400
    assert len(result.rows) == 400 and len(result.failures) == 400  # a stop after paid calls keeps the rows
    assert "simpler output schema" in result.stats.hint


def test_a_schema_no_answer_satisfies_stops_after_a_few_rows(task: Task, cache_dir: Path) -> None:
    script = scripted(rules=[set_field(lambda record: True, "challenge", "impossible")])
    with pytest.warns(RuntimeWarning, match="no answer satisfies the task's schema"):
        result = run_at_seam(topic_rows(200), task, script, cache_dir, concurrency=1)
    assert len(script.calls) < 40  # not 200 rows x 3 tries
    assert result.stats.failed == 200 and result.stats.not_asked > 150
    assert result.stats.hint.startswith("the model keeps breaking `challenge: value not in [practice, expert]`")


def test_rows_that_can_never_pass_stop_the_first_run_too_though_a_few_rows_were_valid(
    task: Task, cache_dir: Path
) -> None:
    never = set_field(lambda record: not record["topic"].endswith("7"), "challenge", "impossible")
    script = scripted(rules=[never])  # one row in ten is valid, packed or alone, the others never
    with pytest.warns(RuntimeWarning, match=r"no answer satisfies the task's schema: .* only \d+ rows? of this run"):
        first = run_at_seam(topic_rows(200), task, script, cache_dir, concurrency=1)
    assert len(script.calls) < 60  # the ladder walked for every row: about 7 calls a failed row
    assert 0 < first.stats.enriched < 20 and first.stats.failed == 200 - first.stats.enriched

    sent = len(script.calls)  # the re-run: the valid rows are hits, the rest stops as early
    with pytest.warns(RuntimeWarning, match="no answer satisfies the task's schema: .* none was valid"):
        again = run_at_seam(topic_rows(200), task, script, cache_dir, concurrency=1)
    assert again.stats.cache_hits == first.stats.enriched and len(script.calls) - sent < 40


def test_rows_that_fail_alone_do_not_stop_a_run_whose_other_rows_pass(task: Task, cache_dir: Path) -> None:
    hard = set_field(lambda record: record["topic"].endswith(("3", "7")), "challenge", "impossible")
    result = run_at_seam(topic_rows(200), task, scripted(rules=[hard]), cache_dir, concurrency=1)
    assert not result.stats.stopped and result.stats.failed == 40 and result.stats.enriched == 160


def test_when_every_pack_fails_the_run_costs_about_a_call_a_row(task: Task, cache_dir: Path) -> None:
    script = scripted()
    script.rule(lambda asked: Answer(text="not json"), when=lambda asked: asked.packed)  # a model that cannot pack
    result = run_at_seam(topic_rows(200), task, script, cache_dir, concurrency=2)
    assert result.failures == []
    assert result.stats.calls <= 200 + 15  # the naive ladder walks 20 -> 10 -> 5 -> 2 -> 1 for every pack


def test_a_fallback_on_another_provider_answers_what_the_first_cannot(
    stub: GeminiStub, task: Task, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", stub.url)  # the fallback's endpoint, as the SDK reads it
    with OpenAIStub() as groq:
        groq.rule(set_field(None, "challenge", "hard"))  # the small model never gets the enum right
        primary = openai_provider("gpt-oss-20b", base_url=groq.url)
        result = enrich(
            topic_rows(4), task, provider=primary, fallback=["gemini:gemini-2.5-flash"], cache_dir=cache_dir,
            retry=FAST_RETRY,
        )  # fmt: skip
    assert result.failures == []
    assert result.stats.by_model["gemini-2.5-flash"].rows == 4
    assert {call.model for call in stub.generate_calls} == {"gemini-2.5-flash"}
