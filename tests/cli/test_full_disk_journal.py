"""Answers a full cache disk could not keep are kept beside the output, and the re-run after space was freed
stores them instead of paying for them again (a real tmpfs filled mid-run, the real CLI in a child process)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from disks import tiny_disk
from enrichkit.cli.runner import STOPPED
from enrichkit.testing import GeminiStub
from helpers import TASK, rows_jsonl, run_cli

pytestmark = pytest.mark.subprocess

ROWS = 3_000


def test_answers_a_full_cache_disk_could_not_keep_are_not_paid_for_again(tmp_path: Path) -> None:
    rows, out = rows_jsonl(tmp_path, ROWS), tmp_path / "out.jsonl"
    journal = tmp_path / "out-uncached.jsonl"  # where the answers the cache could not take are kept
    with tiny_disk(tmp_path / "disk", "1m") as disk:
        args = ["run", str(rows), "-t", TASK, "-o", str(out), "--cache-dir", str(disk / "cache")]
        with GeminiStub() as stub:
            first = run_cli(*args, "--report", str(tmp_path / "first.json"), stub=stub)
        assert first.returncode == STOPPED, first.stderr
        assert "no space left on device" in first.stderr
        assert f"answers the cache could not take are kept in {journal}" in first.stderr
        before = json.loads((tmp_path / "first.json").read_text())
        # (the disk may fill while the last packs are answered: then every row was, and the re-run asks none)
        assert 0 < len(journal.read_text().splitlines()) <= before["enriched"] <= ROWS

        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)  # space freed
        # a stub of its own: the stopped run's last requests may still be read by the first one's threads
        with GeminiStub() as stub:
            again = run_cli(*args, "-q", "--report", str(tmp_path / "again.json"), stub=stub)
        assert again.returncode == 0, again.stderr
        after = json.loads((tmp_path / "again.json").read_text())
        assert after["cache_hits"] == before["enriched"]  # every answer paid for once, none asked again
        assert after["enriched"] == ROWS - before["enriched"]
        assert len(stub.generate_calls) == after["calls"]
        assert not journal.exists()
