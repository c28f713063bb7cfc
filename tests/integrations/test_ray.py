"""Ray Data on a real local cluster (2 CPUs) against the Gemini stub, with a real redis-server:
a Dataset comes back with the columns and an error column, and rows repeated across partitions are paid once."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enrichkit import UserError
from enrichkit.cache.redis import RedisCache
from enrichkit.calls.limits import RateLimiter
from enrichkit.testing import GeminiStub, set_field
from helpers import ROOT, topic_rows

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'enrichkit[ray]')")
enrichkit_ray = pytest.importorskip("enrichkit.integrations.ray")
pytestmark = pytest.mark.ray
TASK = ROOT / "schemas" / "roadmap-topic.json"


@pytest.fixture(scope="module", autouse=True)
def cluster() -> Iterator[None]:
    env = {"GEMINI_API_KEY": "test-key", "NO_PROXY": os.environ["NO_PROXY"], "ENRICHKIT_LEASE_SECONDS": "2"}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env}, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.mark.redis
def test_a_dataset_comes_back_with_the_columns_and_an_error_column(redis_url: str) -> None:
    rows = topic_rows(60)
    with GeminiStub() as stub:
        stub.rule(set_field(lambda r: r.get("topic") == "Topic number 7", "challenge", "nonsense"))
        out = enrichkit_ray.enrich(
            ray.data.from_items(rows), TASK, cache=redis_url, base_url=stub.url, provider="gemini", block_rows=20
        )
        assert isinstance(out, ray.data.Dataset)
        got = {r["id"]: r for r in out.take_all()}
    assert set(got) == {r["id"] for r in rows}
    failed = got.pop("t7")
    assert failed["challenge"] is None and "challenge" in failed["_enrichkit_error"]
    assert all(r["_enrichkit_error"] is None and r["challenge"] in ("practice", "expert") for r in got.values())
    assert {k: got["t8"][k] for k in rows[8]} == rows[8]


@pytest.mark.redis
def test_rows_repeated_across_partitions_are_paid_once(redis_url: str) -> None:
    rows = topic_rows(150)
    copies: list[dict[str, Any]] = [{**r, "id": f"copy-{r['id']}"} for r in rows[50:150]]  # same content
    with GeminiStub(latency=0.05) as stub:
        data = ray.data.from_items(rows[:100] + copies + rows[100:], override_num_blocks=4)
        out = enrichkit_ray.enrich(data, TASK, cache=redis_url, base_url=stub.url, provider="gemini", block_rows=25)
        enriched = out.take_all()
        sent = sum(len(call.records) for call in stub.generate_calls)
    assert len(enriched) == 250 and all(r["_enrichkit_error"] is None for r in enriched)
    assert sent == 150  # 150 distinct rows, each paid once
    cache = RedisCache(redis_url)
    assert len(cache) == 150
    cache.close()


def actor_pids() -> list[int]:
    """The processes of Ray Data's actors (titled ``ray::MapWorker(...)``)."""
    pids = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::MapWorker"):
                pids.append(int(proc.name))
    return pids


@pytest.mark.redis
def test_a_worker_killed_mid_batch_is_retried_and_pays_only_what_was_not_cached(redis_url: str) -> None:
    rows = topic_rows(240)
    copies = [{**r, "id": f"copy-{r['id']}"} for r in rows[120:180]]  # in two partitions
    data = rows[:60] + copies + rows[60:]
    in_flight: list[int] = []
    with GeminiStub(latency=0.2) as stub:

        def kill_an_actor(call: object) -> bool:
            if len(stub.generate_calls) == 4 and not in_flight and (pids := actor_pids()):
                os.kill(pids[0], signal.SIGKILL)  # mid-batch: its packs in flight are paid, never stored
                in_flight.append(sum(len(c.records) for c in stub.generate_calls[-4:]))
            return False

        stub.rule(lambda call: None, when=kill_an_actor)
        options = {"cache": redis_url, "base_url": stub.url, "provider": "gemini", "block_rows": 60}
        enriched = enrichkit_ray.enrich(ray.data.from_items(data, override_num_blocks=5), TASK, **options).take_all()
        sent = sum(len(call.records) for call in stub.generate_calls)
        calls = len(stub.generate_calls)
        again = enrichkit_ray.enrich(ray.data.from_items(data, override_num_blocks=5), TASK, **options).take_all()
        assert len(stub.generate_calls) == calls  # the re-run: every row from the cache
    assert in_flight, "no actor was killed"
    assert len(enriched) == len(again) == 300
    assert all(r["_enrichkit_error"] is None for r in enriched + again)
    assert 240 <= sent <= 240 + in_flight[0]  # the retry paid only for the rows the killed actor had in flight


def test_objects_that_cannot_travel_to_the_actors_are_refused_up_front() -> None:
    data = ray.data.from_items(topic_rows(2))
    with pytest.raises(UserError, match="each actor makes its own"):
        enrichkit_ray.enrich(data, TASK, limiter=RateLimiter(rpm=5))
    with pytest.raises(UserError, match="not --mode batch"):
        enrichkit_ray.enrich(data, TASK, mode="batch")
