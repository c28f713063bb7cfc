"""The shared cache on a real redis-server: the RowCache interface, leases, and two processes on one cache.

Two processes enriching overlapping inputs on one Redis cache pay each shared row once: a pack takes
its rows' leases before it is sent, and a pack whose rows another process is asking waits for their
answers instead (a folder does the same from the moment a second run opens it: ``test_folder_leases``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from enrichkit import Task, UserError, enrich
from enrichkit.cache.entry import Entry
from enrichkit.cache.folder import RowCache
from enrichkit.cache.redis import RedisCache, connect
from enrichkit.errors import StorageError
from enrichkit.rows.keys import row_key
from enrichkit.testing import GeminiStub
from helpers import ROOT, hold_until_both_sent, sender, topic_rows

TASK = str(ROOT / "schemas" / "roadmap-topic.json")
ROWS = topic_rows(450)
INPUTS = {"key-a": ROWS[0:300], "key-b": ROWS[150:450]}  # rows 150-299 are in both
RUN = """
import json, sys
from enrichkit import enrich
rows = json.load(open(sys.argv[1]))
result = enrich(rows, sys.argv[2], cache=sys.argv[3], base_url=sys.argv[4], provider="gemini", concurrency=4,
                progress=False)
print(json.dumps({"enriched": result.stats.enriched, "hits": result.stats.cache_hits, "failed": result.stats.failed}))
"""


@pytest.mark.redis
def test_same_interface_as_the_row_cache(redis_url: str) -> None:
    cache, other = RedisCache(redis_url), RedisCache(redis_url)
    key = row_key("run", {"topic": "A"})
    assert cache.get_many([key]) == {} and not cache.written_elsewhere()
    cache.put_many({key: Entry({"x": 1}, "m", 10.0, 2.0)})
    assert not cache.written_elsewhere() and other.written_elsewhere()
    found = other.get_many([key, "missing"])
    assert list(found) == [key] and found[key].values == {"x": 1} and found[key].stored_at > 0
    assert len(cache) == 1
    connect(redis_url).set(f"enrichkit:row:{key}", '{"v": cut')  # damaged: a miss, counted, deleted
    assert other.get_many([key]) == {} and other.damaged == 1 and len(other) == 0
    cache.close()
    other.close()


@pytest.mark.redis
def test_leases_are_taken_where_free_and_end_when_stored_or_released(redis_url: str) -> None:
    a, b = RedisCache(redis_url), RedisCache(redis_url)
    assert a.lease(["k1", "k2"]) == []
    assert a.lease(["k1", "k2"]) == []  # renewed by its holder
    assert b.lease(["k2", "k3"]) == ["k2"]  # b takes k3, the one that is free
    assert a.lease(["k3", "k4"]) == ["k3"]
    a.put_many({"k2": Entry({"x": 2}, "m")})
    assert b.lease(["k2"]) == ["k2"]  # stored: read it instead
    a.release(["k1", "k4"])
    assert b.lease(["k1", "k4"]) == []
    a.close()
    b.close()


@pytest.mark.redis
def test_the_lease_time_comes_from_the_environment(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENRICHKIT_LEASE_SECONDS", "0.2")
    cache = RedisCache(redis_url)
    assert cache.lease_seconds == 0.2
    cache.close()
    for bad in ("0", "-1", "soon", "inf"):
        monkeypatch.setenv("ENRICHKIT_LEASE_SECONDS", bad)
        with pytest.raises(UserError, match="ENRICHKIT_LEASE_SECONDS must be a positive number of seconds"):
            RedisCache(redis_url)


HOLD = """
import sys, time
from enrichkit.cache.redis import RedisCache
assert RedisCache(sys.argv[1], lease_seconds=0.5).lease(["k"]) == []
print("held", flush=True)
time.sleep(60)
"""


@pytest.mark.redis
@pytest.mark.subprocess
def test_the_lease_of_a_killed_worker_expires(redis_url: str) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, redis_url], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    b = RedisCache(redis_url)
    time.sleep(0.6)
    assert b.lease(["k"]) == ["k"]  # alive: renewed past its lease time
    holder.kill()  # died holding it, without a word
    holder.wait()
    time.sleep(0.6)
    assert b.lease(["k"]) == []  # after its lease time b may ask
    b.close()


@pytest.mark.redis
def test_a_live_holder_renews_its_leases_and_gives_them_up_when_closed(redis_url: str) -> None:
    a, b = RedisCache(redis_url, lease_seconds=0.3), RedisCache(redis_url)
    assert a.lease(["k1", "k2"]) == []
    time.sleep(1.0)  # three lease times: a pack waiting on the rate limit keeps its rows
    assert b.lease(["k1"]) == ["k1"]
    a.put_many({"k1": Entry({"x": 1}, "m")})  # stored: no longer renewed, nor held
    a.close()  # k2 was never answered: free at once, not after the lease time
    assert b.lease(["k2"]) == []
    b.close()


def test_an_unreachable_server_is_a_storage_error_and_a_bad_url_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"redis at redis://127.0.0.1:1/0: cannot open"):
        RedisCache("redis://127.0.0.1:1/0")
    with pytest.raises(StorageError, match=r"redis at redis://:\[redacted\]@127.0.0.1:1/0: cannot open") as raised:
        RedisCache("redis://:hunter22@127.0.0.1:1/0")
    assert "hunter22" not in str(raised.value)
    with pytest.raises(UserError, match="cache must be a Redis URL"):
        enrich([], TASK, cache=str(tmp_path))


@pytest.mark.redis
def test_a_run_on_redis_writes_the_same_entries_a_folder_would(redis_url: str, tmp_path: Path) -> None:
    rows = topic_rows(30)
    with GeminiStub() as stub:
        on_redis = enrich(rows, TASK, cache=redis_url, base_url=stub.url, provider="gemini", progress=False)
        again = enrich(rows, TASK, cache=redis_url, base_url=stub.url, provider="gemini", progress=False)
        on_disk = enrich(rows, TASK, cache_dir=tmp_path, base_url=stub.url, provider="gemini", progress=False)
    assert on_redis.rows == on_disk.rows and again.rows == on_redis.rows
    assert again.stats.cache_hits == 30 and again.stats.calls == 0
    folder, shared = RowCache(tmp_path), RedisCache(redis_url)
    keys = [key for key, _ in folder.find()]
    assert set(shared.get_many(keys)) == set(keys) and len(shared) == 30  # the same keys
    folder.close()
    shared.close()


@pytest.mark.redis
def test_a_column_added_on_redis_asks_that_column_alone(redis_url: str) -> None:
    rows = topic_rows(45)
    columns = ["kind: concept|tool|practice", "summary: text, at most 12 words"]
    two = Task.from_columns("Describe each topic.", ["topic", "description"], columns, id_field="id")
    three = Task.from_columns("Describe each topic.", ["topic", "description"], [*columns, "level: low|high"])
    with GeminiStub() as stub:
        first = enrich(rows, two, cache=redis_url, base_url=stub.url, provider="gemini", progress=False)
        sent = len(stub.generate_calls)
        second = enrich(rows, three, cache=redis_url, base_url=stub.url, provider="gemini", progress=False)
        asked = stub.generate_calls[sent:]
        again = enrich(rows, three, cache=redis_url, base_url=stub.url, provider="gemini", progress=False)
    assert len(asked) == 3 and all(set(c.schema["items"]["properties"]) <= {"id", "echo", "level"} for c in asked)
    assert [(r["kind"], r["summary"]) for r in second.rows] == [(r["kind"], r["summary"]) for r in first.rows]
    shared = RedisCache(redis_url)
    assert again.stats.calls == 0 and again.rows == second.rows and len(shared) == 45  # one entry a row
    shared.close()


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")


def start(stub: GeminiStub, key: str, rows: Path, url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "GEMINI_API_KEY": key}
    args = [sys.executable, "-c", RUN, str(rows), TASK, url, stub.url]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.redis
@pytest.mark.subprocess
def test_two_processes_on_one_redis_cache_pay_each_shared_row_once(redis_url: str, tmp_path: Path) -> None:
    with GeminiStub(latency=0.1) as stub:
        hold_until_both_sent(stub)
        processes = {}
        for name, rows in INPUTS.items():
            (tmp_path / name).write_text(json.dumps(rows), encoding="utf-8")
            processes[name] = start(stub, name, tmp_path / name, redis_url)
        reports: dict[str, dict[str, Any]] = {}
        for name, process in processes.items():
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
            reports[name] = json.loads(out)
        calls = list(stub.generate_calls)
    sent = {name: sum(len(c.records) for c in calls if sender(c) == name) for name in INPUTS}
    for name, report in reports.items():
        assert report["failed"] == 0 and report["enriched"] + report["hits"] == 300
        assert sent[name] == report["enriched"]
    assert min(sent.values()) > 0  # both worked
    assert sum(sent.values()) == len(ROWS)  # each shared row paid once
    shared = RedisCache(redis_url)
    assert len(shared) == len(ROWS)
    shared.close()
    print(f"\nrows sent {sent} for {len(ROWS)} distinct rows: {sum(sent.values()) - len(ROWS)} paid twice")
