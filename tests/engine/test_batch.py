"""Batch mode against the stub's Batch API: one job for all packs, re-attach, salvage, job states."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from google import genai

from enrichkit import EnrichResult, FatalProviderError, Task, enrich
from enrichkit.cache.folder import RowCache
from enrichkit.engine import chunks
from enrichkit.engine.batch import JobStore
from enrichkit.providers.gemini import make_client
from enrichkit.testing import GeminiStub, drop_ids, http_error
from helpers import FAST_RETRY, topic_rows

POLL = 0.01


def batch(rows: list[dict[str, str]], task: Task, client: genai.Client, cache_dir: Path, **kw: Any) -> EnrichResult:
    return enrich(rows, task, client=client, cache_dir=cache_dir, mode="batch", poll=POLL, retry=FAST_RETRY, **kw)


def creates(stub: GeminiStub) -> int:
    return sum(1 for c in stub.api_calls if c.action == "batchGenerateContent")


def test_a_thousand_rows_are_fifty_requests_in_one_job(
    stub: GeminiStub, client: genai.Client, task: Task, cache_dir: Path
) -> None:
    result = enrich(topic_rows(1000), task, client=client, cache_dir=cache_dir, mode="batch", poll=POLL)
    assert creates(stub) == 1
    [job] = stub.jobs.values()
    assert len(job.requests) == 50 and len(stub.batch_requests) == 50
    assert stub.generate_calls == []  # nothing went live
    assert result.failures == [] and result.stats.enriched == 1000
    assert result.stats.calls_batch == 50 and result.stats.mode == "batch"
    assert all(row["challenge"] in ("practice", "expert") for row in result.rows)
    assert JobStore(cache_dir).all() == []  # collected: the manifest is gone
    again = enrich(topic_rows(1000), task, client=client, cache_dir=cache_dir, mode="batch", poll=POLL)
    assert again.stats.calls == 0 and again.stats.cache_hits == 1000 and creates(stub) == 1


def test_no_wait_submits_and_a_rerun_reattaches_without_a_second_job(task: Task, cache_dir: Path) -> None:
    with GeminiStub(batch_auto=False) as stub:
        client = genai_client(stub)
        first = batch(topic_rows(60), task, client, cache_dir, wait=False)
        assert first.stats.pending == 60 and len(first.failures) == 60
        assert "0 newly enriched · 0 failed · 60 waiting in a batch job" in repr(first)
        [manifest] = JobStore(cache_dir).all()
        assert manifest.name in stub.jobs and manifest.rows == 60
        assert creates(stub) == 1
        stub.advance(manifest.name)  # the job finishes while nobody waits
        second = batch(topic_rows(60), task, client, cache_dir)
        assert creates(stub) == 1  # re-attached, not submitted again
        assert second.stats.enriched == 60 and second.failures == []
        assert JobStore(cache_dir).all() == []


def test_a_run_killed_after_saving_the_manifest_finds_its_job_by_display_name(task: Task, cache_dir: Path) -> None:
    with GeminiStub(batch_auto=False) as stub:
        client = genai_client(stub)
        batch(topic_rows(40), task, client, cache_dir, wait=False)
        store = JobStore(cache_dir)
        [manifest] = store.all()
        name, manifest.name = manifest.name, None  # as if killed before the job's name was saved
        store.save(manifest)
        assert name is not None
        stub.advance(name)
        result = batch(topic_rows(40), task, client, cache_dir)
        assert creates(stub) == 1 and result.stats.enriched == 40


def test_rows_a_pack_lost_go_on_their_own_and_a_server_error_pack_again_in_one_second_job(
    stub: GeminiStub, client: genai.Client, task: Task, cache_dir: Path
) -> None:
    stub.script(drop_ids("r3", "r7"), http_error(500, "request failed"))  # pack 1 loses 2 rows, pack 2 fails
    result = batch(topic_rows(60), task, client, cache_dir)
    assert creates(stub) == 2
    first, second = stub.jobs.values()
    assert len(first.requests) == 3 and len(second.requests) == 3
    again = stub.batch_requests[3:]
    assert sorted(len(c.ids) for c in again) == [0, 0, 20]  # the two lost rows alone, the 500's pack as it was
    assert result.failures == [] and result.stats.enriched == 60


def test_realtime_fallback_salvages_live_in_smaller_packs(
    stub: GeminiStub, client: genai.Client, task: Task, cache_dir: Path
) -> None:
    stub.script(drop_ids("r3"))
    result = batch(topic_rows(40), task, client, cache_dir, realtime_fallback=True)
    assert creates(stub) == 1
    assert [len(c.ids) for c in stub.generate_calls] == [0]  # the one lost row, asked live on its own
    assert result.failures == [] and result.stats.enriched == 40


def test_an_expired_jobs_rows_go_to_the_next_round(task: Task, cache_dir: Path) -> None:
    with GeminiStub(batch_auto=False) as stub:
        client = genai_client(stub)
        batch(topic_rows(30), task, client, cache_dir, wait=False)
        [manifest] = JobStore(cache_dir).all()
        assert manifest.name is not None
        stub.advance(manifest.name, "BATCH_STATE_EXPIRED")
        expired = batch(topic_rows(30), task, client, cache_dir, wait=False)
        assert expired.stats.failed == 0 and expired.stats.pending == 30 and creates(stub) == 2  # submitted again
        [again] = JobStore(cache_dir).all()
        assert again.name != manifest.name and again.rows == 30
        stub.advance(again.name or "")
        done = batch(topic_rows(30), task, client, cache_dir)
        assert done.stats.enriched == 30 and done.failures == [] and creates(stub) == 2


def test_a_partly_failed_job_keeps_its_successes(task: Task, cache_dir: Path) -> None:
    with GeminiStub() as stub:
        stub.script(None, http_error(503, "overloaded"))  # the second request of the job fails (it may pass)
        client = genai_client(stub)
        result = batch(topic_rows(60), task, client, cache_dir, fallback=())
        store = RowCache(cache_dir)
        try:
            assert len(store) == 60
        finally:
            store.close()
        assert result.stats.calls_batch == 3 + 1  # the failed pack again, as a pack


def test_large_jobs_upload_a_jsonl_file(
    stub: GeminiStub, client: genai.Client, task: Task, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("enrichkit.providers.gemini.INLINE_LIMIT", 2)
    result = batch(topic_rows(100), task, client, cache_dir)
    [job] = stub.jobs.values()
    assert job.source == "file" and len(job.requests) == 5
    assert result.stats.enriched == 100


def genai_client(stub: GeminiStub) -> genai.Client:
    return make_client(api_key="test-key", base_url=stub.url)


def test_flex_mode_sends_the_flex_tier_and_shares_the_cache_with_live(
    stub: GeminiStub, client: genai.Client, task: Task, cache_dir: Path
) -> None:
    flex = enrich(topic_rows(40), task, client=client, cache_dir=cache_dir, mode="flex")
    assert [c.service_tier for c in stub.generate_calls] == ["flex", "flex"]
    assert flex.stats.mode == "flex" and flex.failures == []
    live = enrich(topic_rows(40), task, client=client, cache_dir=cache_dir)
    assert live.stats.calls == 0 and live.stats.cache_hits == 40  # the tier is not part of the cache key


def test_auto_mode_picks_batch_only_for_big_runs(
    stub: GeminiStub, client: genai.Client, task: Task, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chunks, "AUTO_BATCH_ROWS", 50)
    small = enrich(topic_rows(40), task, client=client, cache_dir=cache_dir, mode="auto", poll=POLL)
    assert small.stats.mode == "live" and creates(stub) == 0
    big = enrich(topic_rows(100, "b"), task, client=client, cache_dir=cache_dir, mode="auto", poll=POLL)
    assert big.stats.mode == "batch" and creates(stub) == 1 and big.failures == []


def test_a_refused_key_stops_the_run_and_leaves_no_manifest(
    stub: GeminiStub, client: genai.Client, task: Task, cache_dir: Path
) -> None:
    stub.refuse(401, "API key not valid")
    with pytest.raises(FatalProviderError, match="refused the API key"):
        batch(topic_rows(20), task, client, cache_dir)
    assert JobStore(cache_dir).all() == []


def test_a_failed_look_at_the_job_is_retried_at_the_next_poll(task: Task, cache_dir: Path) -> None:
    with GeminiStub(batch_auto=False) as stub, ThreadPoolExecutor(1) as pool:
        client = genai_client(stub)
        running = pool.submit(batch, topic_rows(20), task, client, cache_dir)
        deadline = time.monotonic() + 10
        while not stub.jobs:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        stub.refuse(503, "overloaded")  # every look at the job fails for a while
        time.sleep(0.2)
        assert not running.done()
        stub.refusal = None
        stub.advance(next(iter(stub.jobs)))
        result = running.result(30)
    assert result.failures == [] and result.stats.enriched == 20 and creates(stub) == 1


def test_results_out_of_order_are_joined_on_their_keys(task: Task, cache_dir: Path) -> None:
    with GeminiStub(shuffle_outputs=True) as stub:
        result = batch(topic_rows(100), task, genai_client(stub), cache_dir)
    assert result.failures == [] and creates(stub) == 1
    for row in result.rows:  # the stub's answers derive from each row's own record
        assert row["tldr"] == f"About {row['category']} {row['topic']} Synthetic"  # its own row's words


def test_results_without_their_keys_are_never_guessed_but_asked_again(task: Task, cache_dir: Path) -> None:
    with GeminiStub(drop_inline_metadata=True) as stub:
        result = batch(topic_rows(40), task, genai_client(stub), cache_dir, realtime_fallback=True)
    assert creates(stub) == 1 and result.stats.calls_batch == 2  # two packed requests, answers unattributable
    assert len(stub.generate_calls) >= 2 and result.failures == []  # every row asked again live
