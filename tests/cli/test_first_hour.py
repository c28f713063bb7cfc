"""What a new user hits first, through the real CLI against the Gemini stub: failure reasons on screen,
a failures file by default, the real wall time of an interrupted run."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from enrichkit.engine.reasons import reason_kind
from enrichkit.output.receipt import count_reasons, failures_report, failures_text
from enrichkit.testing import GeminiStub, set_field
from helpers import TASK, invoke, read_jsonl, start, topic_rows, wait_for_calls, write_jsonl


def test_rows_failing_the_same_way_count_together_whatever_their_values() -> None:
    reasons = count_reasons(
        [f"tldr: has {n} words, more than 12" for n in (13, 14, 15)]
        + ["challenge: 'hard' not in [practice, expert]", "challenge: 'easy' not in [practice, expert]"]
        + ["id r3 answered 2 times", "id r7 answered 3 times", "missing from the answer"]
    )
    assert reasons.most_common() == [
        ("tldr: more than 12 words", 3),
        ("challenge: value not in [practice, expert]", 2),
        ("an id answered more than once", 2),
        ("missing from the answer", 1),
    ]
    assert reason_kind("'tldr' is a required property") == "'tldr' is a required property"  # a name, not a value
    text = failures_text(failures_report(reasons, Path("out-failures.jsonl")))
    assert text.splitlines() == [
        "failed rows by reason (top 3 of 4):",
        "  3 × tldr: more than 12 words",  # noqa: RUF001
        "  2 × challenge: value not in [practice, expert]",  # noqa: RUF001
        "  2 × an id answered more than once",  # noqa: RUF001
        "failed rows with their inputs and reasons: out-failures.jsonl",
    ]


def test_failed_rows_go_to_a_failures_file_beside_the_output_by_default(stub: GeminiStub, tmp_path: Path) -> None:
    stub.rule(set_field(lambda rec: rec["topic"].endswith(("3", "7")), "challenge", "hard"))
    rows = write_jsonl(tmp_path / "rows.jsonl", topic_rows(20))
    out, report = tmp_path / "out.csv", tmp_path / "report.json"
    result = invoke(stub, "run", str(rows), "-t", TASK, "-o", str(out), "--no-cache", "--report", str(report))
    assert result.exit_code == 1, result.output
    failures = tmp_path / "out-failures.jsonl"
    assert sorted(f["id"] for f in read_jsonl(failures)) == ["t13", "t17", "t3", "t7"]
    assert "  4 × challenge: value not in [practice, expert]" in result.stderr  # noqa: RUF001
    assert f"failed rows with their inputs and reasons: {failures}" in result.stderr
    doc = json.loads(report.read_text(encoding="utf-8"))
    assert doc["failure_reasons"] == {"challenge: value not in [practice, expert]": 4}
    assert doc["failures_file"] == str(failures)


def test_no_failures_file_when_every_row_was_enriched(stub: GeminiStub, tmp_path: Path) -> None:
    rows = write_jsonl(tmp_path / "rows.jsonl", topic_rows(5))
    result = invoke(stub, "run", str(rows), "-t", TASK, "-o", str(tmp_path / "out.jsonl"), "--no-cache")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "rows.jsonl"]
    assert "by reason" not in result.stderr


def test_a_run_with_no_failures_removes_the_last_runs_failures_file(stub: GeminiStub, tmp_path: Path) -> None:
    rows, out = write_jsonl(tmp_path / "rows.jsonl", topic_rows(5)), tmp_path / "out.jsonl"
    stale = tmp_path / "out-failures.jsonl"
    stale.write_text('{"id": "t3", "reason": "an earlier run"}\n', encoding="utf-8")
    result = invoke(stub, "run", str(rows), "-t", TASK, "-o", str(out), "--no-cache")
    assert result.exit_code == 0, result.output
    assert not stale.exists()


def test_a_failures_file_given_is_written_only_when_a_row_failed(stub: GeminiStub, tmp_path: Path) -> None:
    rows, out, failures = (
        write_jsonl(tmp_path / "rows.jsonl", topic_rows(5)),
        tmp_path / "out.jsonl",
        tmp_path / "f.jsonl",
    )
    args = ["run", str(rows), "-t", TASK, "-o", str(out), "--no-cache", "--failures", str(failures)]
    clean = invoke(stub, *args)
    assert clean.exit_code == 0, clean.output
    assert not failures.exists() and "failures:" not in clean.stderr
    failing = [True]
    stub.rule(set_field(lambda rec: failing[0] and rec["topic"].endswith("3"), "challenge", "hard"))
    assert invoke(stub, *args).exit_code == 1
    assert [f["id"] for f in read_jsonl(failures)] == ["t3"]
    failing[0] = False
    assert invoke(stub, *args).exit_code == 0
    assert not failures.exists()  # the last run's list would name a row that is now enriched


@pytest.mark.subprocess
def test_an_interrupted_receipt_shows_the_real_wall_time(tmp_path: Path) -> None:
    rows, out, cache = tmp_path / "rows.jsonl", tmp_path / "out.jsonl", tmp_path / "cache"
    write_jsonl(rows, topic_rows(200))
    with GeminiStub(latency=0.4) as stub:
        began = time.monotonic()
        process = start(stub, rows, out, cache)
        wait_for_calls(stub, 4)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        elapsed = time.monotonic() - began
    assert process.returncode == 130, stderr
    wall = float(stderr.split("; wall ")[1].split(" s")[0])
    assert 0.4 <= wall <= elapsed


def test_cache_stats_counts_every_byte_and_the_shared_models(
    stub: GeminiStub, tmp_path: Path, enrichkit_home: Path
) -> None:
    cache = tmp_path / "cache"
    rows = write_jsonl(tmp_path / "rows.jsonl", topic_rows(5))
    assert (
        invoke(stub, "run", str(rows), "-t", TASK, "-o", str(tmp_path / "o.jsonl"), "--cache-dir", str(cache)).exit_code
        == 0
    )
    (enrichkit_home / "models").mkdir(exist_ok=True)
    (enrichkit_home / "models" / "m.gguf").write_bytes(b"\0" * 3_000_000)
    (enrichkit_home / "prefixes").mkdir(exist_ok=True)
    (enrichkit_home / "prefixes" / "prefix-0.bin").write_bytes(b"\0" * 2_000_000)
    try:
        lines = invoke(None, "cache", "stats", "--cache-dir", str(cache)).output.splitlines()
    finally:
        (enrichkit_home / "models" / "m.gguf").unlink()
    on_disk = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
    size = f"{on_disk / 1e6:,.1f} MB" if on_disk >= 1e6 else f"{on_disk / 1e3:,.1f} kB"
    assert lines[0] == f"{cache}: 5 cached rows, {size} on disk"
    assert lines[1] == f"{enrichkit_home / 'models'}: 3.0 MB of local models (shared by every folder)"
    assert lines[2] == f"{enrichkit_home / 'prefixes'}: 2.0 MB of system prompts the local model processed (shared)"
