"""``enrichkit run --cache redis://...`` as a subprocess against the Gemini stub and a real redis-server:
a re-run pays nothing, an unreachable server is one line before anything is sent, and a server killed
mid-run stops the run as a fatal stop does, with every answer received in the output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enrichkit.cache.redis import RedisCache
from enrichkit.cli.runner import STOPPED
from enrichkit.testing import GeminiStub
from helpers import TASK, rows_jsonl, run_cli, temps
from redisd import redis_process

pytestmark = pytest.mark.subprocess


@pytest.mark.redis
def test_the_cache_flag_shares_answers_through_redis(redis_url: str, tmp_path: Path) -> None:
    rows, out = rows_jsonl(tmp_path, 50), tmp_path / "out.jsonl"
    with GeminiStub() as stub:
        first = run_cli("run", str(rows), "-t", TASK, "-o", str(out), "--cache", redis_url, stub=stub)
        calls = len(stub.generate_calls)
        again = run_cli("run", str(rows), "-t", TASK, "-o", str(out), "--cache", redis_url, "-q", stub=stub)
        assert len(stub.generate_calls) == calls == 3  # the re-run: every row from Redis
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert f"cache: {redis_url}" in first.stderr.splitlines()[0]
    assert not (tmp_path / "cache").exists()  # no folder cache beside it
    cache = RedisCache(redis_url)
    assert len(cache) == 50
    cache.close()


def test_an_unreachable_redis_is_one_line_exit_2_and_nothing_sent(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with GeminiStub() as stub:
        args = ["run", str(rows_jsonl(tmp_path, 30)), "-t", TASK, "-o", str(out)]
        done = run_cli(*args, "--cache", "redis://:hunter22@127.0.0.1:1/0", "-q", stub=stub)
        bad = run_cli(*args, "--cache", str(tmp_path / "folder"), stub=stub)
        assert stub.calls == []  # not even a token count
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("error: redis at redis://:[redacted]@127.0.0.1:1/0: cannot open (")
    assert "hunter22" not in done.stderr
    assert bad.returncode == 2 and bad.stderr.splitlines()[-1].startswith("error: cache must be a Redis URL")
    assert not out.exists() and not temps(tmp_path)


@pytest.mark.redis
def test_redis_killed_mid_run_stops_the_run_with_every_answer_received_written(tmp_path: Path) -> None:
    """One call in flight at a time (``--concurrency 1``), so the order is fixed, not timed: the server dies as
    the 5th call arrives, after its pack's leases were taken and before its answer comes back; the next pack's
    leases are only asked once that answer has settled. So the first write to fail is of an answer received
    (the 5th pack's, or the 4th's if its commit was still on its way), and that answer is in the output."""
    out, failures = tmp_path / "out.jsonl", tmp_path / "failures.jsonl"
    rows = rows_jsonl(tmp_path, 2_000)
    args = ["run", str(rows), "-t", TASK, "-o", str(out), "--failures", str(failures), "--concurrency", "1", "-q"]
    with GeminiStub(latency=0.1) as stub, redis_process(tmp_path) as (url, server):
        stored: list[int] = []

        def kill_after_four_calls(call: object) -> bool:
            if len(stub.generate_calls) == 5:
                cache = RedisCache(url)
                stored.append(len(cache))  # the first answers are stored; the pack in flight finds no server
                cache.close()
                server.kill()
                server.wait()
            return False

        stub.rule(lambda call: None, when=kill_after_four_calls)
        done = run_cli(*args, "--cache", url, stub=stub)
        calls = len(stub.generate_calls)
    assert done.returncode == STOPPED, done.stderr
    [line] = done.stderr.splitlines()  # -q: the stop's one line
    assert line.startswith(f"stopped: redis at {url}: cannot ") and "Traceback" not in done.stderr
    written = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    failed = [json.loads(x) for x in failures.read_text(encoding="utf-8").splitlines()]
    answered = [r for r in written if r["tldr"] is not None]
    assert len(written) == 2_000 and len(answered) + len(failed) == 2_000 and not temps(tmp_path)
    assert len(answered) >= stored[0] + 20  # those stored before the kill, and the pack whose write failed
    assert {f["id"] for f in failed} == {r["id"] for r in written if r["tldr"] is None}
    assert all("the run stopped (redis at" in f["error"] for f in failed)
    assert calls == 5  # stopped at once, not after the whole input (100 packs)
