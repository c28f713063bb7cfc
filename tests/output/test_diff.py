"""``enrichkit diff`` of two output files, in every format enrichkit writes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from enrichkit.cli import main
from enrichkit.output.files import write_rows
from helpers import TASK, topic_rows

COLUMNS = ["id", "category", "topic", "description", "tldr", "challenge", "tags"]


def answered(n: int) -> list[dict[str, Any]]:
    return [
        {**row, "tldr": f"Summary {i}", "challenge": "expert" if i % 3 else "practice", "tags": ["a", str(i)]}
        for i, row in enumerate(topic_rows(n))
    ]


def diff(*args: str) -> dict[str, Any]:
    shown = CliRunner().invoke(main, ["diff", *args, "--json", "--cache-dir", "no-such-cache"])
    assert shown.exit_code == 0, shown.output
    report: dict[str, Any] = json.loads(shown.output)
    return report


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json", ".parquet", ".sqlite"])
def test_the_same_rows_in_another_format_differ_in_nothing(tmp_path: Path, suffix: str) -> None:
    rows = answered(12)
    write_rows(tmp_path / "a.jsonl", rows, COLUMNS)
    write_rows(tmp_path / f"b{suffix}", rows, COLUMNS)
    report = diff(str(tmp_path / "a.jsonl"), str(tmp_path / f"b{suffix}"), "-t", TASK)
    assert {name: f["changed"] for name, f in report["fields"].items()} == {"tldr": 0, "challenge": 0}
    assert report["fields"]["challenge"]["distribution"] == {"practice": {"a": 4, "b": 4}, "expert": {"a": 8, "b": 8}}
    assert report["a"]["rows"] == report["b"]["rows"] == 12 and report["a"]["failed"] == 0


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".sqlite"])
def test_changed_added_removed_and_failed_rows_between_files(tmp_path: Path, suffix: str) -> None:
    before, after = answered(10), answered(11)[1:]
    after[0]["challenge"] = "practice"  # t1: expert -> practice
    after[4]["tldr"] = "Another summary"  # t5
    after[2].update(tldr=None, challenge=None, tags=None)  # t3 failed in B
    write_rows(tmp_path / f"a{suffix}", before, COLUMNS)
    write_rows(tmp_path / "b.jsonl", after, COLUMNS)
    report = diff(str(tmp_path / f"a{suffix}"), str(tmp_path / "b.jsonl"), "-t", TASK)
    assert {name: f["changed"] for name, f in report["fields"].items()} == {"tldr": 1, "challenge": 1}
    assert report["fields"]["challenge"]["examples"] == [{"id": "t1", "a": "expert", "b": "practice"}]
    assert report["rows"]["added"] == ["t10"] and report["rows"]["removed"] == ["t0"]
    assert report["rows"]["failed_in_b_only"] == ["t3"]
    blind = diff(str(tmp_path / f"a{suffix}"), str(tmp_path / "b.jsonl"))  # no task: every column, t3's empties too
    changed = {name: f["changed"] for name, f in blind["fields"].items() if f["changed"]}
    assert changed == {"tldr": 2, "challenge": 2, "tags": 1}  # a list read back from JSON text compares equal
    assert blind["rows"]["failed_in_b_only"] == [] and blind["fields"]["topic"]["changed"] == 0


def test_fail_above_gates_on_the_share_of_one_field(tmp_path: Path) -> None:
    before, after = answered(10), answered(10)
    for row in after[:3]:
        row["tldr"] = "Changed"
    write_rows(tmp_path / "a.csv", before, COLUMNS)
    write_rows(tmp_path / "b.csv", after, COLUMNS)
    args = ["diff", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "-t", TASK, "--cache-dir", "none"]
    over = CliRunner().invoke(main, [*args, "--fail-above", "0.25"])
    assert over.exit_code == 1 and "changed more than 25.0%: tldr 30.0%" in over.stderr
    assert CliRunner().invoke(main, [*args, "--fail-above", "0.3"]).exit_code == 0


def test_a_file_without_its_id_column_is_one_clear_line(tmp_path: Path) -> None:
    write_rows(tmp_path / "a.jsonl", answered(3), COLUMNS)
    shown = CliRunner().invoke(main, ["diff", str(tmp_path / "a.jsonl"), "nothing-here", "--cache-dir", str(tmp_path)])
    assert shown.exit_code == 2 and shown.stderr.startswith("error: nothing-here: no such run in")
    bad = CliRunner().invoke(main, ["diff", str(tmp_path / "a.jsonl"), str(tmp_path / "a.jsonl"), "--id", "key"])
    assert bad.exit_code == 2 and "row 1 has no id column 'key'" in bad.stderr
