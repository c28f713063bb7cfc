"""``--preview``: the output's first rows as a table whose longest cells are cut to fit the terminal (or
``--preview-width``), whole when there is no width."""

from __future__ import annotations

from pathlib import Path

from enrichkit import Task
from enrichkit.output.stdio import preview_text
from enrichkit.testing import GeminiStub
from helpers import TASK, invoke, topic_rows, write_jsonl

TASK_OF_TWO = Task("x", ["text"], {"type": "object", "properties": {"summary": {"type": "string"}}}, id_field="id")


def test_the_longest_cells_are_cut_to_fit_the_width() -> None:
    rows = [{"id": "r1", "summary": "word " * 30}, {"id": "r22", "summary": "short"}]
    lines = preview_text(rows, TASK_OF_TWO, 40).splitlines()
    assert lines[0] == "first 2 rows:" and all(len(line) <= 40 for line in lines)
    assert lines[2].startswith("r1   word word") and lines[2].endswith("…")
    assert lines[3] == "r22  short"


def test_no_width_cuts_nothing_and_a_narrow_one_keeps_a_few_characters() -> None:
    rows = [{"id": "r1", "summary": "word " * 30}]
    assert preview_text(rows, TASK_OF_TWO, 0).splitlines()[2] == "r1  " + ("word " * 30).rstrip()
    assert preview_text(rows, TASK_OF_TWO, 5).splitlines()[2] == "r1  word wo…"


def test_preview_width_on_the_command_line(stub: GeminiStub, tmp_path: Path) -> None:
    rows = [{**row, "description": row["description"] * 4} for row in topic_rows(2)]
    path, out = write_jsonl(tmp_path / "rows.jsonl", rows), str(tmp_path / "out.jsonl")
    args = ["run", str(path), "-t", TASK, "-o", out, "--no-cache", "--preview", "2"]
    wide = invoke(stub, *args, "--preview-width", "0").stderr.splitlines()
    narrow = invoke(stub, *args, "--preview-width", "30").stderr.splitlines()
    at = wide.index("first 2 rows:")
    assert max(map(len, narrow[at + 1 :])) <= 30 < max(map(len, wide[at + 1 :]))
    assert not any(line.endswith("…") for line in wide[at + 1 :])
