"""Cache entries prove themselves: an entry whose values no longer fit the task's schema (hand-edited in the
folder's SQLite or in Redis: a number where text belongs, a value outside the enum) is a miss, asked again,
overwritten, and counted in the receipt."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from enrichkit import enrich
from enrichkit.cache.redis import connect
from enrichkit.cli.flags import CliOptions
from enrichkit.cli.runner import run_job
from enrichkit.options import RunOptions
from enrichkit.output import sweep
from enrichkit.providers.base import Reply, Request, Usage
from enrichkit.rows.files import iter_rows
from enrichkit.testing import FunctionProvider, ids_of
from helpers import ROOT, topic_rows, write_jsonl

TASK = ROOT / "schemas" / "roadmap-topic.json"

EDITS = ("json_set(value, '$.v.tldr', 42)", "json_set(value, '$.v.challenge', 'beginner')")


def answer(request: Request) -> Reply:
    items = [{"id": rid, "tldr": "A short summary.", "challenge": "practice"} for rid in ids_of(request)]
    return Reply(json.dumps(items), usage=Usage(100, 10 * len(items)))


def run(source: Path, output: Path, cache: Path) -> tuple[dict[str, Any], int]:
    provider = FunctionProvider(answer, name="fn", model="fn")
    report = output.with_suffix(".report.json")
    options = RunOptions(provider=provider, cache_dir=cache)
    code = run_job(iter_rows(source), TASK, output, options, CliOptions(report=report, quiet=True, source=source))
    assert code == 0
    return json.loads(report.read_text()), len(provider.requests)


@pytest.mark.parametrize("swept", [False, True])
def test_hand_edited_folder_entries_are_asked_again_and_counted(
    swept: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if swept and sweep.workers() < 2:
        pytest.skip("the sweep needs two cores")
    monkeypatch.setenv("ENRICHKIT_SWEEP_MIN_BYTES", "0" if swept else str(10**12))
    source, out, cache = write_jsonl(tmp_path / "rows.jsonl", topic_rows(600)), tmp_path / "out.jsonl", tmp_path / "c"
    run(source, out, cache)
    with sqlite3.connect(cache / "rows" / "cache.db") as con:
        for rowid, edit in zip((100, 400), EDITS, strict=True):
            assert con.execute(f"UPDATE Cache SET value = {edit} WHERE rowid = ?", (rowid,)).rowcount == 1
    con.close()
    report, calls = run(source, out, cache)
    assert (report["damaged"], report["cache_hits"], report["enriched"], calls) == (2, 598, 2, 1)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(row["tldr"] == "A short summary." and row["challenge"] == "practice" for row in rows)
    again, calls = run(source, out, cache)  # the entries were overwritten with the new answers
    assert (again["damaged"], again["cache_hits"], calls) == (0, 600, 0)


@pytest.mark.redis
def test_hand_edited_redis_entries_are_asked_again_and_counted(redis_url: str) -> None:
    rows = topic_rows(100)

    def again() -> tuple[int, int, int]:
        provider = FunctionProvider(answer, name="fn", model="fn")
        stats = enrich(rows, str(TASK), provider=provider, cache=redis_url, progress=False).stats
        return stats.damaged, stats.cache_hits, len(provider.requests)

    again()
    client = connect(redis_url)
    keys = sorted(client.scan_iter(match="enrichkit:row:*"))
    for key, (field, value) in zip(keys[:2], [("tldr", 42), ("challenge", "beginner")], strict=True):
        raw = client.get(key)
        assert raw is not None
        doc = json.loads(raw)
        doc["v"][field] = value
        client.set(key, json.dumps(doc))
    assert again() == (2, 98, 1)
    assert again() == (0, 100, 0)


def test_the_receipt_says_how_many_entries_were_asked_again() -> None:
    from enrichkit.output.receipt import run_report, run_text
    from enrichkit.result import Stats

    text = run_text(run_report(Stats(rows=10, cache_hits=8, enriched=2, damaged=2), "fn", "fn"))
    assert "cache: 2 damaged cache entries asked again" in text
    assert "damaged" not in run_text(run_report(Stats(rows=10, cache_hits=10), "fn", "fn"))
