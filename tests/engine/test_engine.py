"""The core engine through ``enrich()`` at the provider seam: a ``FunctionProvider`` answering as scripted
(the stubs' fault language), on a virtual clock. The two runs that need a real SDK's transport (a
refused key's free count, an unreachable server) go through google-genai against the Gemini stub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from enrichkit import FatalProviderError, Task, enrich
from enrichkit.cache.folder import RowCache
from enrichkit.calls.scheduler import QUIET_SECONDS
from enrichkit.providers.gemini import make_client
from enrichkit.testing import (
    Answer,
    Asked,
    Fault,
    FunctionProvider,
    GeminiStub,
    Outcome,
    Scripted,
    add_unknown_id,
    blocked,
    drop_ids,
    duplicate_id,
    fenced,
    hang,
    http_error,
    scripted,
    set_field,
    shuffled,
    truncated,
    with_text,
)
from helpers import FAST_RETRY, generated, pack_sizes, run_at_seam, topic_rows


@pytest.fixture
def script() -> Scripted:
    return scripted()


run = run_at_seam


def test_150_rows_take_8_packed_calls_and_rerun_takes_none(script: Scripted, task: Task, cache_dir: Path) -> None:
    rows = topic_rows(150)
    result = run(rows, task, script, cache_dir)
    assert pack_sizes(script) == [20] * 7 + [10]
    assert result.stats.calls == result.stats.calls_packed == 8
    assert result.failures == []
    assert [r["id"] for r in result.rows] == [r["id"] for r in rows]
    assert all(r["challenge"] in ("practice", "expert") and r["tldr"] for r in result.rows)
    assert rows[0].get("tldr") is None  # the caller's rows are not modified

    again = run(rows, task, script, cache_dir)
    assert again.stats.calls == 0
    assert again.stats.cache_hits == 150
    assert len(generated(script)) == 8
    assert again.rows == result.rows


def test_answers_map_by_id_even_when_the_model_shuffles_them(script: Scripted, task: Task, cache_dir: Path) -> None:
    script.script(shuffled(seed=7))
    result = run(topic_rows(20), task, script, cache_dir)
    for row in result.rows:
        assert row["tldr"].startswith(f"About {row['category']} {row['topic']}")
    assert result.stats.calls == 1


def test_one_missing_id_costs_exactly_one_single_row_call(script: Scripted, task: Task, cache_dir: Path) -> None:
    script.script(drop_ids("r3"))
    result = run(topic_rows(20), task, script, cache_dir)
    assert pack_sizes(script) == [20, 1]
    single = generated(script)[1]
    assert "Topic number 2" in single.prompt and single.schema["type"] == "object"
    assert result.failures == [] and result.stats.invalid_items == 1
    cache = RowCache(cache_dir)
    assert len(cache) == 20
    cache.close()


@pytest.mark.parametrize(
    "fault",
    [
        drop_ids("r5"),
        duplicate_id("r5"),
        set_field("r5", "challenge", "hard"),
        set_field("r5", "tldr", " ".join(["word"] * 15)),
        set_field("r5", "tldr", 42),
    ],
)
def test_an_invalid_item_costs_one_single_row_call(script: Scripted, task: Task, cache_dir: Path, fault: Fault) -> None:
    script.script(fault)
    result = run(topic_rows(20), task, script, cache_dir)
    assert pack_sizes(script) == [20, 1]
    assert "Topic number 4" in generated(script)[1].prompt
    assert result.failures == [] and result.stats.invalid_items == 1


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("hard", "challenge: 'hard' not in [practice, expert]"),
        (["practice"], "challenge: ['practice'] is not of type 'string'"),
    ],
)
def test_a_row_that_stays_invalid_fails_with_its_reason_and_is_not_cached(
    script: Scripted, task: Task, cache_dir: Path, value: Any, reason: str
) -> None:
    script.rule(set_field(lambda rec: rec["topic"] == "Topic number 4", "challenge", value))
    result = run(topic_rows(20), task, script, cache_dir)
    assert pack_sizes(script) == [20, 1, 1, 1]  # the pack, the row alone, then two repairs
    assert [(f.row_id, f.reason, f.attempts) for f in result.failures] == [("t4", reason, 4)]
    assert result.stats.calls_repair == 2 and result.stats.repaired == 0
    assert "challenge" not in result.rows[4] and result.rows[3]["challenge"]
    cache = RowCache(cache_dir)
    assert len(cache) == 19
    cache.close()
    again = run(topic_rows(20), task, script, cache_dir)  # a failure is asked again on the next run
    assert again.stats.cache_hits == 19 and pack_sizes(script)[4:] == [1, 1, 1]


def test_an_invalid_single_answer_is_repaired_with_its_reason_in_the_prompt(
    script: Scripted, task: Task, cache_dir: Path
) -> None:
    script.script(drop_ids("r2"), set_field(lambda rec: True, "challenge", "hard"))  # the pack, then the row alone
    result = run(topic_rows(5), task, script, cache_dir)
    assert result.failures == [] and result.rows[1]["challenge"] in ("practice", "expert")
    assert pack_sizes(script) == [5, 1, 1]
    repair = generated(script)[2].prompt
    assert "previous answer was rejected" in repair and "'hard' not in [practice, expert]" in repair
    assert (result.stats.calls_repair, result.stats.repaired) == (1, 1)


def test_a_row_hit_by_unrelated_faults_on_its_own_is_tried_until_one_kind_repeats(
    script: Scripted, task: Task, cache_dir: Path
) -> None:
    refused = http_error(400, "Request contains an invalid argument.")
    bad_enum = set_field(lambda rec: True, "challenge", "hard")
    script.script(drop_ids("r2"), refused, truncated(), bad_enum)  # the pack, then three different faults alone
    result = run(topic_rows(5), task, script, cache_dir)
    assert result.failures == [] and pack_sizes(script) == [5, 1, 1, 1, 1]  # the fourth try alone is answered
    script.script(drop_ids("r2"), bad_enum, truncated(), bad_enum, refused, bad_enum)
    again = run(topic_rows(5), task, script, cache_dir / "2")
    assert [(f.row_id, f.attempts) for f in again.failures] == [("t1", 6)]  # the third invalid answer ends it


@pytest.mark.parametrize("others_answered", [True, False])
def test_a_server_error_on_a_row_alone_gets_one_more_round_of_retries_once_rows_are_answered(
    script: Scripted, task: Task, cache_dir: Path, others_answered: bool
) -> None:
    tries = 0

    def times_out(call: Asked) -> Outcome | None:  # the row alone: its call and its retries time out, twice
        nonlocal tries
        tries += 1
        return hang(5)(call) if tries <= 6 else None

    script.rule(drop_ids("r2"), when=lambda call: bool(call.ids))
    script.rule(times_out, when=lambda call: not call.ids and call.records[0]["topic"] == "Topic number 1")
    rows = topic_rows(5) if others_answered else topic_rows(5)[1:2]
    result = run(rows, task, script, cache_dir, timeout=0.5)
    if others_answered:  # the server works for the others: a second round, then a third does not come
        assert [f.row_id for f in result.failures] == ["t1"] and pack_sizes(script) == [5] + [1] * 6
    else:  # nothing answered yet (a server that is down): the row fails after one round, as before
        assert [f.row_id for f in result.failures] == ["t1"] and pack_sizes(script) == [1] * 3
    tries = 3  # one round of time-outs left: the second round is answered
    again = run(topic_rows(5), task, script, cache_dir / "again", timeout=0.5)
    assert again.failures == []


def test_unknown_ids_are_ignored(script: Scripted, task: Task, cache_dir: Path) -> None:
    script.script(add_unknown_id("r99"))
    result = run(topic_rows(5), task, script, cache_dir)
    assert result.failures == [] and result.stats.calls == 1 and result.stats.unknown_ids == 1


def test_fenced_json_with_a_preamble_is_accepted(script: Scripted, task: Task, cache_dir: Path) -> None:
    script.script(fenced())
    result = run(topic_rows(20), task, script, cache_dir)
    assert result.failures == [] and result.stats.calls == 1


def test_a_truncated_answer_keeps_its_whole_items_and_asks_the_rest_in_a_smaller_pack(
    script: Scripted, task: Task, cache_dir: Path
) -> None:
    script.script(truncated())  # the answer's text cut in half, finish MAX_TOKENS
    result = run(topic_rows(20), task, script, cache_dir)
    rest = generated(script)[1]
    kept = 20 - len(rest.ids)
    assert 0 < kept < 20 and len(rest.ids) <= 10
    assert [r["topic"] for r in rest.records] == [f"Topic number {i}" for i in range(kept, 20)]
    assert result.failures == [] and result.stats.calls == len(generated(script)) == 2


def test_rows_lost_in_different_packs_share_one_salvage_pack(script: Scripted, task: Task, cache_dir: Path) -> None:
    lost = {"Topic number 3", "Topic number 27", "Topic number 51"}  # one row in each pack of 20
    bad_enum = set_field(lambda rec: rec["topic"] in lost, "challenge", "hard")
    script.script(bad_enum, bad_enum, bad_enum)
    result = run(topic_rows(60), task, script, cache_dir)
    assert pack_sizes(script) == [20, 20, 20, 3]  # not three calls of one row each
    assert {r["topic"] for r in generated(script)[3].records} == lost
    assert result.failures == [] and result.stats.calls == 4


def test_a_whole_pack_that_keeps_failing_goes_down_to_single_rows(
    script: Scripted, task: Task, cache_dir: Path
) -> None:
    cut_before_any_item = with_text(lambda text: text[:3], finish="max_tokens")
    script.rule(cut_before_any_item, when=lambda call: bool(call.ids))  # every packed answer is cut off
    result = run(topic_rows(8), task, script, cache_dir)
    sizes = pack_sizes(script)
    assert sizes[:3] == [8, 4, 4] and sizes[-8:] == [1] * 8  # each row ends up alone
    # packs of 2, a size that never worked, are given up after two fail (those already sent still go)
    assert 2 <= sizes.count(2) <= 4 and len(sizes) == 3 + sizes.count(2) + 8
    assert result.failures == []


def test_a_blocked_pack_goes_straight_to_single_rows(script: Scripted, task: Task, cache_dir: Path) -> None:
    script.script(blocked())
    result = run(topic_rows(6), task, script, cache_dir)
    assert pack_sizes(script) == [6, 1, 1, 1, 1, 1, 1]
    assert result.failures == []


def test_a_prompt_too_long_splits_the_pack(script: Scripted, task: Task, cache_dir: Path) -> None:
    too_long = "The input token count (1200000) exceeds the maximum number of tokens allowed"
    script.script(http_error(400, too_long))
    result = run(topic_rows(20), task, script, cache_dir)
    assert pack_sizes(script) == [20, 10, 10]
    assert result.failures == []


def test_429_waits_for_the_retry_delay_then_retries_the_same_pack(
    script: Scripted, task: Task, cache_dir: Path
) -> None:
    script.script(http_error(429, "quota", retry_after=1.2))
    result = run(topic_rows(20), task, script, cache_dir)
    first, again = generated(script)
    assert again.received - first.received == pytest.approx(1.2)  # the server's delay, no more
    assert again.prompt == first.prompt and pack_sizes(script) == [20, 20]
    assert result.failures == [] and result.stats.retries == 1


def test_a_server_error_is_retried(script: Scripted, task: Task, cache_dir: Path) -> None:
    script.script(http_error(500), http_error(503))
    result = run(topic_rows(20), task, script, cache_dir)
    assert pack_sizes(script) == [20, 20, 20]
    assert result.failures == [] and result.stats.retries == 2


def test_server_errors_that_persist_split_the_pack(script: Scripted, task: Task, cache_dir: Path) -> None:
    script.script(http_error(503), http_error(503), http_error(503))
    result = run(topic_rows(20), task, script, cache_dir)
    assert pack_sizes(script) == [20, 20, 20, 10, 10]
    assert result.failures == []


def test_a_hanging_server_times_out_and_the_call_is_retried(script: Scripted, task: Task, cache_dir: Path) -> None:
    script.script(hang(5))
    result = run(topic_rows(20), task, script, cache_dir, timeout=0.5)
    first, again = generated(script)
    assert 0.5 < again.received - first.received <= 0.5 + 2 * FAST_RETRY.backoff  # the deadline, then a backoff
    assert pack_sizes(script) == [20, 20]
    assert result.failures == []


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (401, "Request had invalid authentication credentials.", "refused the API key"),
        (400, "API key not valid. Please pass a valid API key.", "refused the API key"),
        (404, "models/nope is not found for API version v1beta", "does not know model"),
    ],
)
def test_a_bad_key_or_model_stops_the_run_before_any_paid_call(
    stub: GeminiStub, task: Task, cache_dir: Path, status: int, message: str, expected: str
) -> None:
    stub.refuse(status, message)
    client = make_client("test-key", stub.url)
    with pytest.raises(FatalProviderError, match=expected) as info:
        enrich(topic_rows(150), task, client=client, cache_dir=cache_dir, retry=FAST_RETRY, concurrency=8)
    assert [call.action for call in stub.calls] == ["count"]  # free
    assert "test-key" not in str(info.value)


def test_if_the_free_check_passes_but_generation_is_refused_no_new_call_starts(
    script: Scripted, task: Task, cache_dir: Path
) -> None:
    script.rule(http_error(403, "Permission denied on this model"))
    with pytest.raises(FatalProviderError, match="refused"):
        run(topic_rows(400), task, script, cache_dir, concurrency=4, counts=True)
    assert 1 <= len(generated(script)) <= 2  # at most two are paid before the refusal: none of the other 18


def test_two_packs_start_at_once_after_the_free_check_and_the_rest_once_they_go_unrefused(
    script: Scripted, task: Task, cache_dir: Path
) -> None:
    script.rule(hang(0.5))  # generation takes 0.5 s: the free count comes back at once, and so would a refusal
    result = run(topic_rows(160), task, script, cache_dir, concurrency=8, counts=True)
    arrivals = sorted(call.received for call in generated(script))
    assert result.stats.calls == 8
    assert arrivals[1] == arrivals[0]  # two at once
    assert arrivals[2] - arrivals[0] == pytest.approx(QUIET_SECONDS)  # the others once those went unrefused for
    assert arrivals[-1] == arrivals[2]  # a while, before the first answer (0.5 s) came back


def test_answers_validated_before_an_abort_stay_cached(script: Scripted, task: Task, cache_dir: Path) -> None:
    script.script(None)
    script.rule(http_error(403, "permission denied"))
    with pytest.warns(RuntimeWarning, match="stopped early"):
        stopped = run(topic_rows(60), task, script, cache_dir, concurrency=1)
    assert "refused the API key" in stopped.stats.stopped  # a stop mid-run still gives the rows it has
    assert sum("tldr" in row for row in stopped.rows) == 20 and len(stopped.failures) == 40
    assert stopped.stats.failed == 40 and all("stopped" in f.reason for f in stopped.failures)
    healthy = scripted()
    result = run(topic_rows(60), task, healthy, cache_dir)
    assert result.stats.cache_hits == 20 and pack_sizes(healthy) == [20, 20]


def test_an_unreachable_server_stops_the_run_after_bounded_retries(task: Task, cache_dir: Path) -> None:
    dead = make_client("k", "http://127.0.0.1:9")
    with pytest.raises(FatalProviderError, match="cannot connect"):
        enrich(topic_rows(40), task, client=dead, cache_dir=cache_dir, retry=FAST_RETRY)


def test_a_fallback_model_rescues_a_row_the_main_model_cannot_answer(
    script: Scripted, task: Task, cache_dir: Path
) -> None:
    def hard_for_topic_1(call: Asked) -> Answer:  # the cheap model rates "Topic number 1" wrongly
        items = call.answer
        if call.ids:
            items = [{**i, "challenge": "hard"} if i["id"] == "r2" else i for i in items]
        else:
            items = {**items, "challenge": "hard"}
        return Answer(items)

    script.rule(hard_for_topic_1, when=lambda call: call.model == "cheap" and "Topic number 1" in call.prompt)
    result = run(topic_rows(4), task, script, cache_dir, model="cheap", fallback=["strong"])
    assert [c.model for c in generated(script)] == ["cheap", "cheap", "cheap", "cheap", "strong"]
    assert pack_sizes(script) == [4, 1, 1, 1, 1]  # the pack, the row alone and its two repairs, the fallback
    assert result.failures == [] and result.rows[1]["challenge"] in ("practice", "expert")
    assert result.stats.calls_fallback == 1 and result.stats.by_model["strong"].rows == 1
    again = run(topic_rows(4), task, script, cache_dir, model="cheap", fallback=["strong"])
    assert again.stats.calls == 0  # the rescued row is cached under the job's own key


def test_same_content_under_another_id_or_order_is_a_cache_hit(script: Scripted, task: Task, cache_dir: Path) -> None:
    run(topic_rows(30), task, script, cache_dir)
    moved = [{**row, "id": f"other-{i}"} for i, row in enumerate(reversed(topic_rows(30)))]
    result = run(moved, task, script, cache_dir, pack_size=7)
    assert result.stats.calls == 0 and result.stats.cache_hits == 30


def test_duplicate_contents_in_one_run_are_sent_once(script: Scripted, task: Task, cache_dir: Path) -> None:
    rows = topic_rows(10) + [{**r, "id": r["id"] + "-copy"} for r in topic_rows(10)]
    result = run(rows, task, script, cache_dir)
    assert pack_sizes(script) == [10]
    assert result.stats.duplicates == 10 and result.stats.enriched == 20
    assert result.rows[0]["tldr"] == result.rows[10]["tldr"]


def test_changing_the_task_or_model_misses_the_cache(script: Scripted, task: Task, cache_dir: Path) -> None:
    run(topic_rows(5), task, script, cache_dir)
    other = Task(instruction=task.instruction + " Be brief.", inputs=task.inputs, output=task.schema)
    assert run(topic_rows(5), other, script, cache_dir).stats.cache_hits == 0
    assert run(topic_rows(5), task, script, cache_dir, model="gemini-other").stats.cache_hits == 0
    assert run(topic_rows(5), task, script, cache_dir).stats.cache_hits == 5


def test_no_cache_sends_everything_and_stores_nothing(script: Scripted, task: Task, cache_dir: Path) -> None:
    run(topic_rows(5), task, script, cache_dir, use_cache=False)
    run(topic_rows(5), task, script, cache_dir, use_cache=False)
    assert len(generated(script)) == 2 and not cache_dir.exists()


def test_the_prompt_prefix_is_identical_for_every_call(script: Scripted, task: Task, cache_dir: Path) -> None:
    script.script(drop_ids("r1"))
    run(topic_rows(45), task, script, cache_dir)
    assert len({c.system for c in generated(script)}) == 1
    schema = generated(script)[0].schema
    assert schema["minItems"] == schema["maxItems"] == 20
    assert schema["items"]["properties"]["id"]["enum"] == [f"r{i}" for i in range(1, 21)]
    assert "at most 12 words" in generated(script)[0].system  # every limit stated in words too


def test_row_errors_name_the_row_and_field(script: Scripted, task: Task, cache_dir: Path) -> None:
    from enrichkit import UserError

    rows = topic_rows(3)
    del rows[1]["description"]
    with pytest.raises(UserError, match=r"row 2 \(id 't1'\): input field 'description' is missing"):
        run(rows, task, script, cache_dir)
    rows = topic_rows(3)
    rows[2]["id"] = "t0"
    with pytest.raises(UserError, match="rows 1 and 3: duplicate id 't0'"):
        run(rows, task, script, cache_dir)
    assert script.calls == []


def test_enrich_has_the_same_contract(script: Scripted, task: Task, cache_dir: Path) -> None:
    result = enrich(topic_rows(25), task, provider=FunctionProvider(script), cache_dir=cache_dir, progress=False)
    assert pack_sizes(script) == [20, 5] and len(result.rows) == 25 and not result.failures
