"""The iterate loop end to end: real CLI processes against the Gemini stub (run, change the task, run, then
``runs``, ``diff`` and ``logs``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enrichkit.testing import GeminiStub
from enrichkit.testing.faults import set_field
from helpers import TASK, rows_jsonl, run_cli


@pytest.mark.subprocess
def test_run_change_run_then_runs_diff_and_a_rows_story(stub: GeminiStub, tmp_path: Path) -> None:
    rows, out, cache = rows_jsonl(tmp_path, 25), tmp_path / "out.csv", tmp_path / "cache"
    reworded = tmp_path / "task.json"
    doc = json.loads(Path(TASK).read_text())
    reworded.write_text(json.dumps(doc | {"instruction": doc["instruction"] + " Be brief."}))
    where = ["--cache-dir", str(cache)]
    first = run_cli("run", str(rows), "-t", TASK, "-o", str(out), "-q", *where, stub=stub)
    assert first.returncode == 0, first.stderr
    stub.rule(set_field(lambda record: record.get("topic") in ("Topic number 3", "Topic number 9"), "tldr", "Other"))
    second = run_cli("run", str(rows), "-t", str(reworded), "-o", str(out), "-q", *where, stub=stub)
    assert second.returncode == 0, second.stderr
    runs = [json.loads(line) for line in run_cli("runs", "--json", *where).stdout.splitlines()]
    assert [r["counts"]["calls"] for r in runs] == [2, 2] and runs[0]["task"]["instruction"].endswith("Be brief.")
    assert all(r["output"] == str(out.resolve()) and r["cost_usd"] > 0 for r in runs)
    gate = run_cli("diff", runs[1]["run"], "last", "--fail-above", "0.05", *where)
    assert gate.returncode == 1 and "tldr                2 of 25    8.0%  over --fail-above" in gate.stdout
    assert "tldr t3:" in gate.stdout and "tldr t9:" in gate.stdout and "challenge           0 of 25" in gate.stdout
    same = run_cli("diff", "last", str(out), "--json", *where)  # the file as the last run wrote it
    assert same.returncode == 0 and json.loads(same.stdout)["fields"]["tldr"]["changed"] == 0
    story = run_cli("logs", "--row", "t3", *where).stdout
    assert story.count("live packed  rung 20  20 rows  ok") == 2  # one call each run
    assert story.index('t3 → {"tldr": "Other"') > story.index("t3 → {")  # the first run's answer, then the new
