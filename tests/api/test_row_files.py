"""``enrich``, ``aenrich_chunks`` and ``dry_run`` take a row file's path as ``enrichkit run`` does: the same
readers (JSONL, JSON, CSV, its delimiter sniffed), the same rows as the dicts would give."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import pytest

from enrichkit import EnrichResult, RunOptions, Task, aenrich_chunks, dry_run, enrich
from enrichkit.testing import GeminiStub
from helpers import write_jsonl

TASK = Task.from_columns("Summarise", "topic", ["challenge: practice|expert"], id_field="id")
ROWS = [{"id": f"r{i}", "topic": f"Topic {i}"} for i in range(3)]


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")


def semicolon_csv(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["id", "topic"], delimiter=";")
        writer.writeheader()
        writer.writerows(ROWS)
    return path


def test_enrich_reads_a_path_as_the_cli_does(stub: GeminiStub, tmp_path: Path) -> None:
    options = RunOptions(base_url=stub.url, cache_dir=tmp_path / "c")
    from_dicts = enrich(ROWS, TASK, options, progress=False)
    for path in (semicolon_csv(tmp_path / "rows.csv"), write_jsonl(tmp_path / "rows.jsonl", ROWS)):
        for given in (path, str(path)):
            result = enrich(given, TASK, options, progress=False)
            assert result.rows == from_dicts.rows and result.stats.cache_hits == 3


def test_dry_run_and_chunks_read_a_path(stub: GeminiStub, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", ROWS)
    plan = dry_run(str(path), TASK, base_url=stub.url, cache_dir=tmp_path / "c")
    assert plan.rows == 3 and plan.to_send == 3 and not stub.generate_calls

    async def chunks() -> list[EnrichResult]:
        return [r async for r in aenrich_chunks(path, TASK, base_url=stub.url, cache_dir=tmp_path / "c", chunk_rows=2)]

    results = asyncio.run(chunks())
    assert [len(r.rows) for r in results] == [2, 1] and results[-1].stats.enriched == 3
