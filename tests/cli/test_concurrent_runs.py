"""Two processes enriching overlapping inputs on the same cache directory: no corruption, no lost rows,
consistent output.

What is guaranteed: both runs succeed, each output is complete and valid, rows both runs share get
equal values, and the cache ends up holding exactly the union (a later run over it pays nothing).
What is cheap and done: once a second run opens the folder, each run leases a pack's rows before sending
it and leaves the rows the other holds to it (``cache.leases``), and looks at the cache again when the
other has written to it; so only rows both had in flight before the second run's first pack can be paid
twice (at most concurrency x pack size rows; none here, where the two runs begin on different rows).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from enrichkit.cache.folder import RowCache
from enrichkit.testing import GeminiStub
from helpers import ROOT, hold_until_both_sent, read_jsonl, sender, topic_rows, write_jsonl

pytestmark = pytest.mark.subprocess


TASK = str(ROOT / "schemas" / "roadmap-topic.json")
ROWS = topic_rows(450)
INPUTS = {"key-a": ROWS[0:300], "key-b": ROWS[150:450]}  # rows 150-299 are in both


def start(stub: GeminiStub, key: str, rows: Path, out: Path, cache: Path) -> subprocess.Popen[str]:
    """``enrichkit run`` in a subprocess; the API key tells the stub which process sent a call."""
    report = out.with_suffix(".report.json")
    args = ["run", str(rows), "-t", TASK, "-o", str(out), "--report", str(report), "--cache-dir", str(cache)]
    return subprocess.Popen(
        [sys.executable, "-m", "enrichkit", *args, "--base-url", stub.url, "--concurrency", "4", "-q"],
        env={**os.environ, "GEMINI_API_KEY": key},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], out: Path) -> dict[str, Any]:
    """Wait for a run to exit 0; its --report."""
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    report: dict[str, Any] = json.loads(out.with_suffix(".report.json").read_text(encoding="utf-8"))
    return report


def assert_valid(rows: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert [r["id"] for r in rows] == [r["id"] for r in expected]
    for row, source in zip(rows, expected, strict=True):
        assert {k: row[k] for k in source} == source
        assert row["challenge"] in ("practice", "expert")
        assert isinstance(row["tldr"], str) and 0 < len(row["tldr"].split()) <= 12


def test_two_processes_on_one_cache_lose_nothing_and_agree(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    outs = {key: tmp_path / f"{key}.jsonl" for key in INPUTS}
    with GeminiStub(latency=0.1) as stub:
        hold_until_both_sent(stub)
        processes = {
            key: start(stub, key, write_jsonl(tmp_path / f"{key}.in.jsonl", rows), outs[key], cache)
            for key, rows in INPUTS.items()
        }
        reports = {key: finish(process, outs[key]) for key, process in processes.items()}
        calls = list(stub.generate_calls)
        arrived = {key: [c.received for c in calls if sender(c) == key] for key in INPUTS}
        assert min(arrived["key-a"]) < max(arrived["key-b"]) and min(arrived["key-b"]) < max(arrived["key-a"])

        a, b = (read_jsonl(outs[key]) for key in INPUTS)
        assert_valid(a, INPUTS["key-a"])
        assert_valid(b, INPUTS["key-b"])
        assert a[150:] == b[:150]  # the shared rows, enriched once or twice, agree

        store = RowCache(cache)
        try:
            assert len(store) == len(ROWS)  # exactly the union: no lost row, no stray key
        finally:
            store.close()

        sent = {key: sum(len(c.ids) for c in calls if sender(c) == key) for key in INPUTS}
        for key, report in reports.items():
            assert report["failed"] == 0 and report["cache_hits"] + report["enriched"] == 300
            assert sent[key] == report["enriched"]  # every row sent was validated and counted once
        paid_twice = sum(sent.values()) - len(ROWS)
        assert 0 <= paid_twice <= 4 * 20  # rows in flight in both before both had opened the folder, at most
        print(
            f"\nrows sent {sent} for {len(ROWS)} distinct rows: {paid_twice} paid twice;"
            f" cache hits { {k: r['cache_hits'] for k, r in reports.items()} },"
            f" calls { {k: r['calls'] for k, r in reports.items()} }"
        )

        union = tmp_path / "union.jsonl"
        report = finish(start(stub, "key-c", write_jsonl(tmp_path / "union.in.jsonl", ROWS), union, cache), union)
        assert len(stub.generate_calls) == len(calls)  # the third run sent nothing
    assert report["cache_hits"] == len(ROWS) and report["calls"] == 0
    assert read_jsonl(union) == a + b[150:]  # the cache holds what the two runs wrote out
