"""The packing audit (``audit=``, ``--audit``) and the adaptive pack size (``adaptive=``, ``--adaptive``),
at the provider seam; and both through the real CLI against the Gemini stub."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from enrichkit import Task, UserError
from enrichkit.engine.audit import agreement, sample, similarity
from enrichkit.engine.sizing import PackSizer
from enrichkit.history.calls import calls_dir
from enrichkit.output.receipt import run_report, run_text
from enrichkit.result import FieldAgreement, PackSize
from enrichkit.testing import Asked, Fault, GeminiStub, Scripted, drop_ids, http_error, scripted, set_field, with_items
from helpers import TASK, invoke, run_at_seam, topic_rows, write_jsonl


@pytest.fixture
def script() -> Scripted:
    return scripted()


def run(*args: Any, **options: Any) -> Any:
    """``run_at_seam``, its result untyped (the audit's figures are optional in ``Stats``)."""
    return run_at_seam(*args, **options)


def single_calls(script: Scripted) -> list[Asked]:
    return [c for c in script.calls if not c.ids]


def alone(call: Asked) -> bool:
    return not call.ids


def flip_answers() -> Fault:
    """Single-row answers that disagree with the packed ones: the other challenge, an unrelated tldr."""
    flip = {"practice": "expert", "expert": "practice"}
    return with_items(lambda items, _: [{**i, "challenge": flip[i["challenge"]], "tldr": "Zebras qux."} for i in items])


# -- audit.py --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "low", "high"),
    [
        ("Sorting lists in place", "sorting   LISTS, in-place!", 1.0, 1.0),
        ("", "", 1.0, 1.0),
        ("Sorting lists in place", "", 0.0, 0.0),
        ("Sorting lists in place", "Sorts a list in place", 0.8, 0.95),
        ("Sorting lists in place", "Zebras qux", 0.0, 0.3),
    ],
)
def test_similarity_ignores_case_punctuation_and_spacing(a: str, b: str, low: float, high: float) -> None:
    assert low <= similarity(a, b) <= high
    assert similarity(a, b) == similarity(b, a)


def test_agreement_is_exact_for_closed_fields_and_similarity_for_free_text() -> None:
    schema = {
        "properties": {
            "tldr": {"type": "string"},
            "note": {"type": ["string", "null"]},
            "level": {"type": "string", "enum": ["low", "high"]},
            "ok": {"type": "boolean"},
            "score": {"type": "integer"},
        }
    }
    packed: list[dict[str, Any]] = [
        {"tldr": "Reads files", "note": None, "level": "low", "ok": True, "score": 3},
        {"tldr": "Writes files", "note": "x", "level": "high", "ok": False, "score": 4},
    ]
    single: list[dict[str, Any]] = [
        {"tldr": "reads files.", "note": None, "level": "low", "ok": False, "score": 3.0},
        {"tldr": "Zebras qux", "note": "x", "level": "low", "ok": True, "score": 4},
    ]
    got = agreement(schema, packed, single)
    assert got["level"] == FieldAgreement(0.5) and got["ok"] == FieldAgreement(0.0)
    assert got["score"] == FieldAgreement(1.0) and got["note"] == FieldAgreement(1.0, 1.0)
    assert got["tldr"].agreement == 0.5 and got["tldr"].similarity is not None
    assert 0.5 < got["tldr"].similarity < 0.7
    assert agreement(schema, [], []) == {}


def test_the_sample_is_fixed_by_the_keys_and_never_empty() -> None:
    keys = [f"key{i}" for i in range(200)]
    chosen = sample(keys, 0.05)
    assert len(chosen) == 10 and set(chosen) <= set(keys)
    assert sample(list(reversed(keys)), 0.05) == chosen
    assert sample(keys[:-1], 0.05) != chosen
    assert len(sample(keys[:3], 0.01)) == 1
    assert sample(keys, 0) == [] and sample([], 0.5) == []
    assert sorted(sample(keys[:7], 1.0)) == sorted(keys[:7])


# -- the audit in a run ----------------------------------------------------------------------------


def test_the_audit_re_asks_a_sample_singly_and_agrees_with_deterministic_answers(
    script: Scripted, task: Task, cache_dir: Path
) -> None:
    result = run(topic_rows(100), task, script, cache_dir, audit=0.1)
    assert len(single_calls(script)) == 10 and len(script.calls) == 15
    assert all(c.schema["type"] == "object" for c in single_calls(script))
    audit = result.stats.audit
    assert (audit.fraction, audit.rows, audit.answered) == (0.1, 10, 10)
    assert audit.fields == {"tldr": FieldAgreement(1.0, 1.0), "challenge": FieldAgreement(1.0)}
    assert result.stats.calls_audit == 10 and result.stats.calls == 15 and result.stats.calls_single == 0
    assert result.stats.enriched == 100 and result.stats.pack_size is None
    logged = [
        json.loads(line) for path in calls_dir(cache_dir).glob("*.jsonl") for line in path.read_text().splitlines()
    ]
    audited = [c for c in logged if c.get("kind") == "audit"]
    assert len(audited) == 10 and all(c["outcome"] == "ok" and len(c["rows"]) == 1 for c in audited)
    assert len({c["rows"][0] for c in audited}) == 10
    assert sorted(c["prompt"] for c in audited) == sorted(a.prompt for a in single_calls(script))


def test_audit_answers_are_never_cached_nor_used(script: Scripted, task: Task, cache_dir: Path) -> None:
    script.rule(flip_answers(), when=alone)
    result = run(topic_rows(40), task, script, cache_dir, audit=1.0)
    assert result.stats.audit.rows == 40 and len(single_calls(script)) == 40
    assert not any(row["tldr"] == "Zebras qux." for row in result.rows)
    again = run(topic_rows(40), task, script, cache_dir)
    assert again.stats.calls == 0 and again.stats.cache_hits == 40
    assert again.rows == result.rows and again.stats.audit is None
    assert len(script.calls) == 42


def test_single_answers_that_differ_lower_the_agreement_and_give_a_hint(
    script: Scripted, task: Task, cache_dir: Path
) -> None:
    script.rule(flip_answers(), when=alone)
    result = run(topic_rows(60), task, script, cache_dir, audit=0.25)
    fields = result.stats.audit.fields
    assert fields["challenge"] == FieldAgreement(0.0)
    assert fields["tldr"].agreement == 0.0 and fields["tldr"].similarity is not None
    assert fields["tldr"].similarity < 0.3
    text = run_text(run_report(result.stats, "gemini", "m"))
    assert "audit: 15 rows re-asked singly: tldr similarity 0." in text and "challenge 0% agree" in text
    assert "hint: packed answers often differ" in text


def test_only_rows_answered_in_a_pack_this_run_are_audited(script: Scripted, task: Task, cache_dir: Path) -> None:
    run(topic_rows(40), task, script, cache_dir)
    script.script(drop_ids("r3"))  # the first new pack loses Topic number 42: it is answered singly
    result = run(topic_rows(60), task, script, cache_dir, audit=1.0)
    assert result.stats.cache_hits == 40 and result.stats.calls_single == 1
    assert result.stats.audit.rows == 19 and result.stats.calls_audit == 19
    asked = [c.records[0]["topic"] for c in single_calls(script)]
    assert sorted(asked) == sorted(f"Topic number {i}" for i in range(40, 60))
    assert asked.count("Topic number 42") == 1  # the ladder's single call, not an audit one


def test_a_rerun_without_cache_audits_the_same_rows(script: Scripted, task: Task, cache_dir: Path) -> None:
    run(topic_rows(80), task, script, cache_dir, use_cache=False, audit=0.1)
    first = sorted(c.prompt for c in single_calls(script))
    run(topic_rows(80), task, script, cache_dir, use_cache=False, audit=0.1)
    assert len(first) == 8 and sorted(c.prompt for c in single_calls(script)[8:]) == first


@pytest.mark.parametrize(
    ("fault", "calls"),
    [(set_field(None, "challenge", "hard"), 5), (http_error(500), 15), (http_error(403, "permission denied"), None)],
)
def test_an_audit_call_that_fails_counts_as_no_answer(
    script: Scripted, task: Task, cache_dir: Path, fault: Fault, calls: int | None
) -> None:
    script.rule(fault, when=alone)
    result = run(topic_rows(50), task, script, cache_dir, audit=0.1)
    assert result.failures == [] and result.stats.enriched == 50
    assert result.stats.invalid_items == 0 and result.stats.calls_single == 0
    assert (result.stats.audit.rows, result.stats.audit.answered, result.stats.audit.fields) == (5, 0, {})
    if calls is not None:
        assert result.stats.calls_audit == calls
    else:  # a refusal stops the audit, not the run
        assert 1 <= result.stats.calls_audit <= 5


def test_nothing_to_audit_when_every_row_is_cached(script: Scripted, task: Task, cache_dir: Path) -> None:
    run(topic_rows(20), task, script, cache_dir)
    again = run(topic_rows(20), task, script, cache_dir, audit=0.5)
    assert again.stats.calls == 0 and (again.stats.audit.rows, again.stats.audit.answered) == (0, 0)


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan")])
def test_an_audit_fraction_outside_0_to_1_is_refused(
    script: Scripted, task: Task, cache_dir: Path, fraction: float
) -> None:
    with pytest.raises(UserError, match="audit fraction must be between 0 and 1"):
        run(topic_rows(5), task, script, cache_dir, audit=fraction)
    assert script.calls == []


# -- adaptive pack size ----------------------------------------------------------------------------


def drops_30_percent_of_big_packs(script: Scripted) -> None:
    script.rule(with_items(lambda items, _: items[: len(items) * 7 // 10]), when=lambda call: len(call.ids) > 5)


def test_the_sizer_halves_on_invalid_items_and_doubles_after_five_clean_packs() -> None:
    sizer = PackSizer(20)
    sizer.observe(20, 20, 6)
    assert sizer.size == 10
    sizer.observe(20, 20, 20)  # formed before the change: not counted
    assert sizer.size == 10
    sizer.observe(10, 10, 3)
    for _ in range(4):
        sizer.observe(5, 5, 0)
        assert sizer.size == 5
    sizer.observe(5, 5, 0)
    assert sizer.size == 10 and sizer.sizes == PackSize(started=20, ended=10, smallest=5)
    small = PackSizer(3)
    small.observe(3, 3, 3)
    small.observe(2, 2, 2)
    assert small.size == 2


def test_adaptive_packs_shrink_when_big_packs_come_back_invalid(script: Scripted, task: Task, cache_dir: Path) -> None:
    drops_30_percent_of_big_packs(script)
    result = run(topic_rows(200), task, script, cache_dir, adaptive=True, concurrency=1)
    sizes = [len(c.ids) or 1 for c in script.calls]  # one call at a time: in the order sent
    assert sizes[0] == 20 and max(sizes[1:]) <= 10 and sizes.count(5) >= 10
    assert result.stats.pack_size == PackSize(started=20, ended=result.stats.pack_size.ended, smallest=5)
    assert result.failures == []
    fixed = scripted()
    drops_30_percent_of_big_packs(fixed)
    fixed_size = run(topic_rows(200), task, fixed, cache_dir / "fixed", concurrency=1)
    assert result.stats.invalid_items * 2 < fixed_size.stats.invalid_items


def test_adaptive_packs_stay_at_the_pack_size_when_clean(script: Scripted, task: Task, cache_dir: Path) -> None:
    result = run(topic_rows(150), task, script, cache_dir, adaptive=True, concurrency=2)
    assert sorted((len(c.ids) for c in script.calls), reverse=True) == [20] * 7 + [10]
    assert result.stats.pack_size == PackSize(20, 20, 20)


# -- the CLI ---------------------------------------------------------------------------------------


def test_cli_audit_and_adaptive_show_in_the_receipt_and_report(stub: GeminiStub, tmp_path: Path) -> None:
    rows = write_jsonl(tmp_path / "rows.jsonl", topic_rows(45))
    out, report = tmp_path / "out.jsonl", tmp_path / "report.json"
    args = ["run", str(rows), "-t", TASK, "-o", str(out), "--cache-dir", str(tmp_path / "c"), "--report", str(report)]
    result = invoke(stub, *args, "--audit", "0.1", "--adaptive")
    assert result.exit_code == 0, result.output
    assert "calls: 8 (3 packed, 0 single, 0 fallback, 5 audit; 0 retries)" in result.stderr
    assert "audit: 5 rows re-asked singly: tldr similarity 1.00 (100% ≥ 0.5); challenge 100% agree" in result.stderr
    assert "adaptive pack size: started 20, ended 20, smallest 20" in result.stderr
    assert "hint" not in result.stderr
    doc = json.loads(report.read_text())
    assert doc["calls_audit"] == 5 and doc["calls"] == 8
    assert doc["audit"] == {
        "fraction": 0.1,
        "rows": 5,
        "answered": 5,
        "fields": {"tldr": {"agreement": 1.0, "similarity": 1.0}, "challenge": {"agreement": 1.0, "similarity": None}},
    }
    assert doc["pack_size"] == {"started": 20, "ended": 20, "smallest": 20}


def test_cli_without_audit_says_nothing_new(stub: GeminiStub, tmp_path: Path) -> None:
    rows = write_jsonl(tmp_path / "rows.jsonl", topic_rows(5))
    report = tmp_path / "report.json"
    args = ["run", str(rows), "-t", TASK, "-o", str(tmp_path / "o.jsonl"), "--no-cache", "--report", str(report)]
    result = invoke(stub, *args)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert any(line.startswith("checks:") for line in lines) and not any(
        line.startswith(("audit", "adaptive")) for line in lines
    )
    doc = json.loads(report.read_text())
    assert doc["audit"] is None and doc["pack_size"] is None and doc["calls_audit"] == 0


@pytest.mark.parametrize("command", ["run", "scrape"])
def test_cli_audit_outside_0_to_1_is_one_line_exit_2(command: str, stub: GeminiStub, tmp_path: Path) -> None:
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(topic_rows(5)), encoding="utf-8")
    out = str(tmp_path / "o.jsonl")
    args = ["run", str(rows), "-t", TASK] if command == "run" else ["scrape", "json", str(rows), "--enrich", TASK]
    result = invoke(stub, *args, "-o", out, "--audit", "2")
    assert result.exit_code == 2
    assert result.stderr == "error: audit fraction must be between 0 and 1, not 2\n"
    assert stub.calls == [] and not Path(out).exists()
