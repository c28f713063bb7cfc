"""Crash safety with real processes: kill -9 mid-run loses no paid answer; Ctrl-C prints the receipt."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from enrichkit.cache.folder import RowCache
from enrichkit.testing import GeminiStub
from helpers import start, topic_rows, wait_for_calls

pytestmark = pytest.mark.subprocess


def cached(cache: Path) -> int:
    store = RowCache(cache)
    try:
        return len(store)
    finally:
        store.close()


def test_kill_9_mid_run_keeps_every_validated_row_and_the_rerun_pays_only_the_rest(tmp_path: Path) -> None:
    rows, out, cache = tmp_path / "rows.jsonl", tmp_path / "out.jsonl", tmp_path / "cache"
    rows.write_text("".join(json.dumps(r) + "\n" for r in topic_rows(200)), encoding="utf-8")
    with GeminiStub(latency=0.4) as stub:
        process = start(stub, rows, out, cache)
        wait_for_calls(stub, 6)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        first_calls = len(stub.generate_calls)
        saved = cached(cache)
        assert saved % 20 == 0 and 60 <= saved <= 120  # whole packs: everything answered before the kill
        assert not out.exists() and not list(tmp_path.glob(".*.part"))

        again = start(stub, rows, out, cache)
        assert again.wait(60) == 0, again.stderr.read() if again.stderr else ""
        second_calls = len(stub.generate_calls) - first_calls
    assert second_calls == (200 - saved) // 20  # only the packs with no cached answer
    assert first_calls + second_calls <= 10 + 2  # at most the 2 packs in flight were paid twice
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [f"t{i}" for i in range(200)]


def test_ctrl_c_stops_the_calls_writes_what_was_answered_and_counts_the_rows_not_asked(tmp_path: Path) -> None:
    rows, out, cache = tmp_path / "rows.jsonl", tmp_path / "out.jsonl", tmp_path / "cache"
    rows.write_text("".join(json.dumps(r) + "\n" for r in topic_rows(200)), encoding="utf-8")
    with GeminiStub(latency=0.4) as stub:
        process = start(stub, rows, out, cache, "--report", str(tmp_path / "report.json"))
        wait_for_calls(stub, 4)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
        sent = len(stub.generate_calls)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["interrupted"] and report["stopped"] == "interrupted"
    answered, not_asked = report["enriched"], report["not_asked"]
    assert answered == cached(cache) >= 40
    assert 200 - 20 * sent - 40 <= not_asked <= 200 - 20 * sent  # the rows of no call (2 may not have arrived)
    assert f"interrupted: 200 rows: 0 cache hits, {answered} newly enriched, {200 - answered} failed" in stderr
    assert f"({not_asked} not asked; " in stderr and "re-run to ask the rest" in stderr
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in written] == [f"t{i}" for i in range(200)]
    assert sum(r["tldr"] is not None for r in written) == answered
    failures = [json.loads(line) for line in (tmp_path / "out-failures.jsonl").read_text("utf-8").splitlines()]
    assert sum(f["error"] == "not asked: the run stopped (interrupted)" for f in failures) == not_asked
    assert len(failures) == 200 - answered


def test_two_sigints_at_once_never_say_no_output_when_the_first_stop_wrote_it(tmp_path: Path) -> None:
    rows, out, cache = tmp_path / "rows.jsonl", tmp_path / "out.jsonl", tmp_path / "cache"
    rows.write_text("".join(json.dumps(r) + "\n" for r in topic_rows(200)), encoding="utf-8")
    with GeminiStub(latency=0.4) as stub:
        process = start(stub, rows, out, cache)
        wait_for_calls(stub, 4)
        process.send_signal(signal.SIGINT)  # as `timeout -s INT` does: to the command, then to its group
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    assert ("no output written" in stderr) == (not out.exists())  # the receipt says what happened
    if out.exists():
        assert f"output: {out}" in stderr and len(out.read_text(encoding="utf-8").splitlines()) == 200
