"""--check-against, --escalate-below / --escalate-model and --confidence through the real CLI and the Gemini stub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enrichkit.testing import GeminiStub
from helpers import TASK, invoke, topic_rows, write_jsonl


@pytest.fixture
def rows_file(tmp_path: Path) -> Path:
    rows = [{**r, "known": "practice" if n % 2 else "expert"} for n, r in enumerate(topic_rows(6))]
    return write_jsonl(tmp_path / "rows.jsonl", rows)


def test_known_answers_are_never_sent_and_the_receipt_gives_the_match(
    stub: GeminiStub, rows_file: Path, tmp_path: Path
) -> None:
    out, report = tmp_path / "out.jsonl", tmp_path / "report.json"
    args = ["run", str(rows_file), "-t", TASK, "-o", str(out), "--cache-dir", str(tmp_path / "c")]
    result = invoke(stub, *args, "--check-against", "challenge=known", "--report", str(report))
    assert result.exit_code == 0, result.output
    assert stub.generate_calls and not any("known" in json.dumps(call.body) for call in stub.generate_calls)
    answers = [json.loads(line) for line in out.read_text().splitlines()]
    matched = sum(r["challenge"] == r["known"] for r in answers)
    assert f"known answers: challenge {matched}/6 match known" in result.output
    doc = json.loads(report.read_text())["known"]["challenge"]
    assert (doc["column"], doc["matched"], doc["rows"]) == ("known", matched, 6)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--escalate-below", "1.5", "--escalate-model", "gemini-3-pro"], "escalate below must be in (0, 1], not 1.5"),
        (["--escalate-below", "0", "--escalate-model", "gemini-3-pro"], "escalate below must be in (0, 1], not 0"),
        (["--escalate-below", "0.5"], "--escalate-below P and --escalate-model [PROVIDER:]MODEL go together"),
        (["--escalate-below", "0.5", "--escalate-model", "x", "--no-confidence"], "drop --no-confidence"),
        (["--check-against", "size=known"], "the task has no output field 'size'"),
        (["--check-against", "challenge=nowhere"], "row 1 has no column 'nowhere'"),
        (["--check-against", "challenge=topic"], "'topic' is an input of the task"),
    ],
)
def test_bad_confidence_flags_are_one_line_exit_2_and_nothing_sent(
    stub: GeminiStub, rows_file: Path, tmp_path: Path, flags: list[str], message: str
) -> None:
    out = tmp_path / "out.jsonl"
    result = invoke(stub, "run", str(rows_file), "-t", TASK, "-o", str(out), "--cache-dir", str(tmp_path / "c"), *flags)
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1].startswith("error: ")
    assert message in result.output
    assert len(result.output.strip().splitlines()) <= 2  # the header line at most, then the error
    assert stub.generate_calls == []
    assert not out.exists()
