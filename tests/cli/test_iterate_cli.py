"""The iterate loop on the command line: a run, a column added, the dry run saying what will be asked,
the run asking that column alone (real CLI subprocesses against the Gemini stub)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enrichkit.testing import GeminiStub
from helpers import rows_jsonl, run_cli

INSTRUCTION = ["--instruction", "Describe each roadmap topic.", "--input", "topic", "--input", "description"]
KIND = ["--column", "kind: concept|tool|practice -- what the topic is"]
SUMMARY = ["--column", "summary: text, at most 12 words -- the topic in one line"]
LEVEL = ["--column", "level: beginner|intermediate|advanced -- who the topic is for"]


@pytest.mark.subprocess
def test_a_column_added_costs_one_column_and_the_dry_run_says_so(stub: GeminiStub, tmp_path: Path) -> None:
    rows, cache = str(rows_jsonl(tmp_path, 134)), str(tmp_path / "cache")
    common = [rows, "--cache-dir", cache, "--id-field", "id", *INSTRUCTION, *KIND, *SUMMARY]
    first = run_cli("run", *common, "-o", str(tmp_path / "a.jsonl"), stub=stub)
    assert first.returncode == 0, first.stderr
    sent = len(stub.generate_calls)
    assert sent == 7
    report = tmp_path / "plan.json"
    dry = run_cli("run", *common, *LEVEL, "-o", str(tmp_path / "b.jsonl"), "--dry-run", "--report", str(report),
                  stub=stub)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "  kind: 134 cached\n  summary: 134 cached\n  level: 134 to ask — new field\n" in dry.stderr
    plan = json.loads(report.read_text())
    assert plan["calls"] == 7 and plan["fields"][2] == {"name": "level", "cached": 0, "to_ask": 134, "why": "new field"}
    assert len(stub.generate_calls) == sent
    second = run_cli("run", *common, *LEVEL, "-o", str(tmp_path / "b.jsonl"), stub=stub)
    assert second.returncode == 0, second.stderr
    asked = stub.generate_calls[sent:]
    assert len(asked) == 7 and all(set(c.schema["items"]["properties"]) <= {"id", "echo", "level"} for c in asked)
    before = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    after = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["summary"]) for r in after] == [(r["kind"], r["summary"]) for r in before]
