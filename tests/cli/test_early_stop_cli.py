"""Rows that can never pass, through the real CLI against the Gemini stub: the first run and its re-run
both stop early, write the output, print the receipt (and the JSON receipt) with a hint naming the limit
the model keeps breaking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enrichkit.cli.runner import STOPPED
from enrichkit.testing import GeminiStub, set_field
from helpers import run_cli, write_jsonl

pytestmark = pytest.mark.subprocess

STARS = {
    "instruction": "Rate each review.",
    "inputs": ["review"],
    "id_field": "id",
    "output": {"type": "object", "properties": {"stars": {"type": "integer", "minimum": 1, "maximum": 5}}},
}


def test_the_first_run_and_its_rerun_stop_early_write_the_output_and_print_the_report(tmp_path: Path) -> None:
    task = tmp_path / "task.json"
    task.write_text(json.dumps(STARS), encoding="utf-8")
    rows = write_jsonl(tmp_path / "rows.jsonl", [{"id": i, "review": f"Review {i} of a thing"} for i in range(30)])
    with GeminiStub() as stub:
        stub.rule(set_field(lambda record: not record["review"].startswith("Review 2 "), "stars", 14))
        args = ["run", str(rows), "-t", str(task), "--cache-dir", str(tmp_path / "cache"), "--json"]
        first = run_cli(*args, "-o", str(tmp_path / "first.csv"), stub=stub)
        first_calls = len(stub.generate_calls)
        again = run_cli(*args, "-o", str(tmp_path / "again.csv"), stub=stub)
        again_calls = len(stub.generate_calls) - first_calls
    for done, name in ((first, "first"), (again, "again")):
        assert done.returncode == STOPPED, done.stderr
        report = json.loads(done.stdout)
        assert report["stopped"].startswith("no answer satisfies the task's schema")
        assert "`stars: value is greater than the maximum of 5`" in report["hint"]
        assert "hint: the model keeps breaking `stars: value is greater than the maximum of 5`" in done.stderr
        written = (tmp_path / f"{name}.csv").read_text(encoding="utf-8").splitlines()
        assert len(written) == 31 and written[3].split(",")[:2] == ["2", "Review 2 of a thing"]
        assert written[3].split(",")[2] in {"1", "2", "3", "4", "5"}  # the one valid row, from the cache the 2nd time
        failed = (tmp_path / f"{name}-failures.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(failed) == 29 and report["failed"] == 29
    assert first_calls < 50  # not 7 attempts for each of the 29 rows (105 calls before)
    assert json.loads(again.stdout)["cache_hits"] == 1 and again_calls < 40
