"""The command line's conventions, through real runs against the Gemini stub: -m and ENRICHKIT_MODEL,
--help with environment variables and examples, -o - and CSV on stdin, --json, --show-prompt, a
progress total for files, and "did you mean" for a mistyped input column."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from enrichkit.output.stdio import count_rows
from enrichkit.testing import GeminiStub
from helpers import ROOT, TASK, invoke, topic_rows, write_jsonl


def enrichkit(stub: GeminiStub, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GEMINI_API_KEY": "test-key", "ENRICHKIT_BASE_URL": stub.url, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "enrichkit", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


def test_help_shows_environment_variables_and_an_example() -> None:
    text = " ".join(invoke(None, "run", "--help").output.split())  # unwrapped
    for variable in ("ENRICHKIT_MODEL", "ENRICHKIT_CACHE_DIR", "ENRICHKIT_BASE_URL"):
        assert f"[env var: {variable}]" in text
    assert "-m, --model" in text
    assert "Examples:" in text and "enrichkit run rows.csv -t task.json -o enriched.csv" in text


@pytest.mark.subprocess
def test_the_model_from_m_or_the_environment(stub: GeminiStub, tmp_path: Path) -> None:
    rows = write_jsonl(tmp_path / "rows.jsonl", topic_rows(2))
    given = invoke(stub, "run", str(rows), "-t", TASK, "-o", str(tmp_path / "a.jsonl"), "--no-cache", "-m", "gemini-m")
    assert given.exit_code == 0, given.output
    env = {**os.environ, "ENRICHKIT_MODEL": "gemini-env"}
    done = subprocess.run(
        [sys.executable, "-m", "enrichkit", "run", str(rows), "-t", TASK, "-o", str(tmp_path / "b.jsonl"), "--no-cache",
         "--base-url", stub.url],
        env={**env, "GEMINI_API_KEY": "test-key", "PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [call.model for call in stub.generate_calls] == ["gemini-m", "gemini-env"]


@pytest.mark.subprocess
def test_rows_to_stdout_as_jsonl_with_the_receipt_on_stderr(stub: GeminiStub, tmp_path: Path) -> None:
    rows = write_jsonl(tmp_path / "rows.jsonl", topic_rows(3))
    done = enrichkit(stub, "run", str(rows), "-t", TASK, "-o", "-", "--no-cache")
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["id"] for r in out] == ["t0", "t1", "t2"] and all(r["tldr"] for r in out)
    assert "3 rows: 0 cache hits, 3 newly enriched" in done.stderr
    assert list(tmp_path.iterdir()) == [rows]


@pytest.mark.subprocess
def test_csv_on_stdin_to_csv_on_stdout(stub: GeminiStub) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, ["id", "category", "topic", "description"])
    writer.writeheader()
    writer.writerows(topic_rows(4))
    done = enrichkit(stub, "run", "-", "--stdin-format", "csv", "-t", TASK, "-o", "-", "--format", "csv",
                     "--no-cache", stdin=text.getvalue())  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [r["id"] for r in got] == ["t0", "t1", "t2", "t3"] and list(got[0])[-4:] == [
        "tldr",
        "challenge",
        "_confidence",
        "_flags",
    ]


@pytest.mark.subprocess
def test_json_prints_the_receipt_on_stdout(stub: GeminiStub, tmp_path: Path) -> None:
    rows = write_jsonl(tmp_path / "rows.jsonl", topic_rows(3))
    done = enrichkit(stub, "run", str(rows), "-t", TASK, "-o", str(tmp_path / "o.csv"), "--no-cache", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rows"] == 3 and report["enriched"] == 3 and report["failure_reasons"] == {}
    clash = enrichkit(stub, "run", str(rows), "-t", TASK, "-o", "-", "--json")
    assert clash.returncode == 2 and "error: -o - and --json both write to stdout" in clash.stderr


@pytest.mark.subprocess
def test_show_prompt_prints_the_first_packs_request_and_sends_nothing(stub: GeminiStub, tmp_path: Path) -> None:
    rows = write_jsonl(tmp_path / "rows.jsonl", topic_rows(30))
    done = enrichkit(stub, "run", str(rows), "-t", TASK, "-o", str(tmp_path / "o.csv"), "--no-cache", "--dry-run",
                     "--show-prompt")  # fmt: skip
    assert done.returncode == 0, done.stderr
    system, rest = done.stdout.split("--- user (the first pack: 20 rows) ---\n")
    prompt, schema = rest.split("--- answer schema ---\n")
    assert system.startswith("--- system (gemini / gemini-3.1-flash-lite) ---\n") and "tldr" in system
    assert "Topic number 19" in prompt and "Topic number 20" not in prompt
    assert json.loads(schema)["type"] == "array"
    assert stub.generate_calls == [] and "dry run — nothing sent" in done.stderr
    alone = invoke(stub, "run", str(rows), "-t", TASK, "-o", str(tmp_path / "o.csv"), "--show-prompt")
    assert alone.exit_code == 2 and "--show-prompt goes with --dry-run" in alone.stderr


def test_a_files_rows_are_counted_up_front(stub: GeminiStub, tmp_path: Path) -> None:
    rows = write_jsonl(tmp_path / "rows.jsonl", topic_rows(7))
    with (tmp_path / "rows.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["id", "category", "topic", "description"])
        writer.writeheader()
        writer.writerows({**r, "description": "two\nlines"} for r in topic_rows(5))
    assert count_rows(rows) == 7 and count_rows(tmp_path / "rows.csv") == 5
    assert count_rows("-") is None and count_rows(tmp_path / "none.jsonl") is None
    result = invoke(stub, "run", str(rows), "-t", TASK, "-o", str(tmp_path / "o.jsonl"), "--no-cache", "--limit", "5")
    assert result.exit_code == 0 and "enrichkit: 5 rows · gemini" in result.stderr


def test_a_mistyped_input_column_names_the_close_one_and_the_real_ones(stub: GeminiStub, tmp_path: Path) -> None:
    mistyped = [{("Categroy" if k == "category" else k): v for k, v in r.items()} for r in topic_rows(2)]
    rows = write_jsonl(tmp_path / "rows.jsonl", mistyped)
    result = invoke(stub, "run", str(rows), "-t", TASK, "-o", str(tmp_path / "o.jsonl"), "--no-cache")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "error: row 1 (id 't0'): input field 'category' is missing (did you mean 'Categroy'?);"
        " the row has: id, Categroy, topic, description"
    )
