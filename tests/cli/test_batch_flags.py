"""The batch flags on the command line: --batch-timeout takes a duration, --stragglers a choice."""

from __future__ import annotations

from pathlib import Path

from enrichkit.testing import GeminiStub
from helpers import TASK, invoke, topic_rows, write_jsonl


def test_batch_timeout_takes_a_duration_and_refuses_anything_else_in_one_line(tmp_path: Path) -> None:
    rows = write_jsonl(tmp_path / "rows.jsonl", topic_rows(30))
    args = ["run", str(rows), "-t", TASK, "-o", str(tmp_path / "out.jsonl"), "--cache-dir", str(tmp_path / "c")]
    with GeminiStub() as stub:
        bad = invoke(stub, *args, "--mode", "batch", "--batch-timeout", "5 fortnights")
        assert bad.exit_code == 2 and "'5 fortnights' is not a duration (e.g. 90s, 30m, 2h)" in bad.output
        assert stub.calls == [] and not (tmp_path / "out.jsonl").exists()
        done = invoke(stub, *args, "--mode", "batch", "--batch-timeout", "30m", "--stragglers", "fail")
    assert done.exit_code == 0, done.output
    assert "batch: 2 requests in 1 job: 2 packs of up to 20 on" in done.output and "0 rows pending" in done.output
