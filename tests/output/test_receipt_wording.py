"""The receipt's words: a count of one is singular, single calls are not called packed, and ``-o -`` is
named standard output (through the real CLI against the Gemini stub)."""

from __future__ import annotations

import json
from pathlib import Path

from enrichkit.result import EnrichResult, Stats, counted
from enrichkit.testing import GeminiStub
from helpers import TASK, invoke, topic_rows, write_jsonl


def test_counts_of_one_are_singular() -> None:
    assert [counted(n, "row") for n in (0, 1, 2, 1_000)] == ["0 rows", "1 row", "2 rows", "1,000 rows"]


def test_a_one_row_result_says_row() -> None:
    result = EnrichResult([{"id": 1, "tldr": "x"}], [], Stats(rows=1, enriched=1))
    assert repr(result).startswith("EnrichResult: 1 row · 0 from the cache · 1 newly enriched · 0 failed")


def test_a_one_row_run_and_its_dry_run_say_row_and_hit(stub: GeminiStub, tmp_path: Path) -> None:
    rows, cache = write_jsonl(tmp_path / "rows.jsonl", topic_rows(1)), str(tmp_path / "cache")
    args = ["run", str(rows), "-t", TASK, "-o", str(tmp_path / "o.jsonl"), "--cache-dir", cache]
    first = invoke(stub, *args)
    assert first.exit_code == 0, first.output
    assert "enrichkit: 1 row · gemini" in first.stderr and "1 row: 0 cache hits, 1 newly enriched" in first.stderr
    again = invoke(stub, *args, "--dry-run")
    assert "1 row: 1 cache hit, 0 in-run duplicates, 0 to send" in again.stderr
    assert "calls: none" in again.stderr


def test_dry_run_names_single_calls_and_packs_apart(stub: GeminiStub, tmp_path: Path) -> None:
    rows = write_jsonl(tmp_path / "rows.jsonl", topic_rows(30))
    args = ["run", str(rows), "-t", TASK, "-o", str(tmp_path / "o.jsonl"), "--no-cache", "--dry-run"]
    single = invoke(stub, *args, "--pack-size", "1")
    assert "calls: 30 single calls (one row each)" in single.stderr and "packed" not in single.stderr
    packed = invoke(stub, *args, "--pack-size", "10")
    assert "calls: 3 packed calls (pack sizes [10])" in packed.stderr
    mixed = invoke(stub, *args, "--pack-size", "29")
    assert "calls: 2: 1 packed (pack sizes [29]), 1 single" in mixed.stderr


def test_standard_output_is_named_so(stub: GeminiStub, tmp_path: Path) -> None:
    rows = write_jsonl(tmp_path / "rows.jsonl", topic_rows(2))
    result = invoke(stub, "run", str(rows), "-t", TASK, "-o", "-", "--format", "csv", "--no-cache")
    assert result.exit_code == 0, result.output
    assert "output: standard output" in result.stderr and "/dev/stdout" not in result.stderr
    doc = tmp_path / "rows.json"
    doc.write_text(json.dumps(topic_rows(1)), encoding="utf-8")
    plain = invoke(None, "scrape", "json", str(doc), "-o", "-")
    assert plain.exit_code == 0 and "wrote 1 row to standard output" in plain.stderr
