"""A file input is checked whole before the first paid call; stdin is read as it comes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from enrichkit.options import CHUNK_ROWS
from enrichkit.testing import GeminiStub
from helpers import TASK, invoke, topic_rows


def test_a_malformed_line_at_the_end_stops_the_run_before_any_paid_call(stub: GeminiStub, tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    good = topic_rows(CHUNK_ROWS + 2)  # more than a chunk: the run would pay for the first before reading the last
    rows.write_text("".join(json.dumps(r) + "\n" for r in good) + '{"id": "last", "topic": \n', encoding="utf-8")
    out = tmp_path / "out.csv"
    result = invoke(stub, "run", str(rows), "-t", TASK, "-o", str(out), "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == 2, result.output
    assert f"rows.jsonl:{CHUNK_ROWS + 3}: malformed JSON" in result.stderr
    assert stub.generate_calls == []
    assert not out.exists()


def test_a_ragged_csv_line_at_the_end_stops_the_run_before_any_paid_call(stub: GeminiStub, tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    with rows.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["id", "category", "topic", "description"])
        writer.writeheader()
        writer.writerows(topic_rows(CHUNK_ROWS + 1))
        f.write("last,a,b\n")
    result = invoke(stub, "run", str(rows), "-t", TASK, "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 2, result.output
    assert f"rows.csv:{CHUNK_ROWS + 3}: 3 fields, but the header has 4" in result.stderr
    assert stub.generate_calls == []


@pytest.mark.slow
def test_stdin_is_read_as_it_comes(stub: GeminiStub, tmp_path: Path) -> None:
    good = "".join(json.dumps(r) + "\n" for r in topic_rows(CHUNK_ROWS))
    args = ["run", "-", "-t", TASK, "-o", str(tmp_path / "out.csv"), "--cache-dir", str(tmp_path / "cache")]
    result = invoke(stub, *args, stdin=good + "{broken\n")
    assert result.exit_code == 2, result.output
    assert f"<stdin>:{CHUNK_ROWS + 1}: malformed JSON" in result.stderr
    assert len(stub.generate_calls) == CHUNK_ROWS // 20  # the rows before the mistake were paid for (and cached)
