"""Chunked runs: rows read, enriched and written a chunk at a time, with one set of figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from enrichkit import EnrichResult, Task
from enrichkit.api import aenrich_chunks
from enrichkit.cache.folder import RowCache
from enrichkit.cli.flags import CliOptions
from enrichkit.cli.runner import STOPPED, run_job
from enrichkit.errors import UserError
from enrichkit.options import RunOptions
from enrichkit.rows.files import iter_rows
from enrichkit.testing import FunctionProvider, GeminiStub, Scripted, http_error, scripted
from helpers import ROOT, in_virtual_time, topic_rows


def chunked(rows: list[dict[str, Any]], task: Task, script: Scripted, cache_dir: Path) -> list[EnrichResult]:
    """``aenrich_chunks`` in chunks of 50 rows, at the provider seam."""
    provider = FunctionProvider(script)

    async def collect() -> list[EnrichResult]:
        return [r async for r in aenrich_chunks(rows, task, provider=provider, cache_dir=cache_dir, chunk_rows=50)]

    return in_virtual_time(collect())


def test_chunks_share_one_set_of_figures_and_the_cache(task: Task, cache_dir: Path) -> None:
    rows = topic_rows(100) + [{**r, "id": f"again-{r['id']}"} for r in topic_rows(20)]  # same content, new ids
    script = scripted()
    results = chunked(rows, task, script, cache_dir)
    assert [len(r.rows) for r in results] == [50, 50, 20]
    assert [r.stats.rows for r in results] == [50, 100, 120]  # each result: the run's figures up to its chunk
    stats = results[-1].stats
    assert stats.rows == 120 and stats.enriched == 100 and stats.cache_hits == 20  # the last chunk: all hits
    assert len(script.calls) == 6  # 3 packs for each of the first two chunks, none for the third
    assert [row["id"] for r in results for row in r.rows] == [row["id"] for row in rows]
    assert results[2].rows[0]["tldr"] == results[0].rows[0]["tldr"]


def test_a_duplicate_id_in_a_later_chunk_names_both_rows(task: Task, cache_dir: Path) -> None:
    rows = [*topic_rows(60), topic_rows(1)[0]]
    with pytest.raises(UserError, match=r"rows 1 and 61: duplicate id 't0'"):
        chunked(rows, task, scripted(), cache_dir)


def test_run_job_writes_chunk_by_chunk_into_one_file(stub: GeminiStub, tmp_path: Path) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in topic_rows(130)), encoding="utf-8")
    out, failures = tmp_path / "out.csv", tmp_path / "failures.jsonl"
    options = RunOptions(provider="gemini", base_url=stub.url, cache_dir=tmp_path / "cache", chunk_rows=50)
    cli = CliOptions(failures=failures, quiet=True)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GEMINI_API_KEY", "test-key")
        code = run_job(iter_rows(source), ROOT / "schemas" / "roadmap-topic.json", out, options, cli)
    assert code == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "id,category,topic,description,tldr,challenge,_confidence,_flags" and len(lines) == 131
    assert not failures.exists()  # no row failed: no failures file


def test_a_fatal_error_in_a_later_chunk_still_writes_every_row(stub: GeminiStub, tmp_path: Path) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in topic_rows(130)), encoding="utf-8")
    out, cache = tmp_path / "out.jsonl", tmp_path / "cache"
    options = RunOptions(provider="gemini", base_url=stub.url, cache_dir=cache, chunk_rows=50)
    stub.rule(http_error(403, "API key revoked"), when=lambda call: len(stub.generate_calls) > 3)  # after chunk 1
    failures = tmp_path / "failures.jsonl"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GEMINI_API_KEY", "test-key")
        code = run_job(
            iter_rows(source),
            ROOT / "schemas" / "roadmap-topic.json",
            out,
            options,
            CliOptions(failures=failures, quiet=True),
        )
    assert code == STOPPED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "failures.jsonl", "out.jsonl", "rows.jsonl"]
    written = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    answered = sum(row.get("tldr") is not None for row in written)
    assert len(written) == 130 and answered >= 50  # the first chunk at least; the rest have empty columns
    failed = [json.loads(line) for line in failures.read_text(encoding="utf-8").splitlines()]
    assert len(failed) == 130 - answered and all("stopped" in f["error"] for f in failed[-50:])
    store = RowCache(cache)
    try:
        assert len(store) == 50  # the first chunk is kept: a re-run pays only for the rest
    finally:
        store.close()
