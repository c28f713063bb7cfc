"""The one-line task (--instruction/--input/--column/--id-field) on ``run``, and how failures and errors
name a row: by its id field's value when the task has one, else by its number in the input (from 1)."""

from __future__ import annotations

from pathlib import Path

from enrichkit.testing import GeminiStub, set_field
from helpers import invoke, read_jsonl, topic_rows, write_jsonl

ONE_LINE = ["--instruction", "Summarise each topic", "--input", "topic", "--column", "challenge: practice|expert"]


def test_id_field_names_the_failed_rows(stub: GeminiStub, tmp_path: Path) -> None:
    stub.rule(set_field(lambda rec: rec["topic"] == "Topic number 3", "challenge", "hard"))
    rows, out = write_jsonl(tmp_path / "rows.jsonl", topic_rows(5)), tmp_path / "out.jsonl"
    named = invoke(stub, "run", str(rows), *ONE_LINE, "--id-field", "id", "-o", str(out), "--no-cache")
    assert named.exit_code == 1, named.output
    [failure] = read_jsonl(tmp_path / "out-failures.jsonl")
    assert failure["id"] == "t3" and "row" not in failure
    numbered = invoke(stub, "run", str(rows), *ONE_LINE, "-o", str(out), "--no-cache")
    assert numbered.exit_code == 1, numbered.output
    [failure] = read_jsonl(tmp_path / "out-failures.jsonl")
    assert failure["row"] == 4 and "id" not in failure  # the fourth row, not "id": 3


def test_id_field_goes_with_a_one_line_task_only(tmp_path: Path) -> None:
    rows = write_jsonl(tmp_path / "rows.jsonl", topic_rows(2))
    result = invoke(None, "run", str(rows), "-t", "task.json", "--id-field", "id", "-o", str(tmp_path / "o.jsonl"))
    assert result.exit_code == 2
    assert result.stderr == 'error: --id-field goes with a one-line task: name it in task.json ("id_field")\n'


def test_a_row_without_its_id_field_is_named_with_the_fields_it_has(tmp_path: Path) -> None:
    rows = write_jsonl(tmp_path / "rows.jsonl", [{"ID": "a", "topic": "x"}])
    out = str(tmp_path / "o.jsonl")
    result = invoke(None, "run", str(rows), *ONE_LINE, "--id-field", "id", "-o", out, "--no-cache")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        "error: row 1: id field 'id' is missing (did you mean 'ID'?); the row has: ID, topic"
    )


def test_errors_name_a_row_by_number_and_by_id_apart(tmp_path: Path) -> None:
    rows = write_jsonl(tmp_path / "rows.jsonl", [{"slug": "a", "topic": "x"}, {"slug": "b", "title": "y"}])
    out = str(tmp_path / "o.jsonl")
    numbered = invoke(None, "run", str(rows), *ONE_LINE, "-o", out, "--no-cache").stderr.splitlines()[-1]
    assert numbered == "error: row 2: input field 'topic' is missing; the row has: slug, title"
    named = invoke(None, "run", str(rows), *ONE_LINE, "--id-field", "slug", "-o", out, "--no-cache")
    assert named.stderr.splitlines()[-1].startswith("error: row 2 (slug 'b'): input field 'topic' is missing")
