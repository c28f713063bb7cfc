"""Batch mode through the real CLI: kill -9 while waiting, re-attach, and the `jobs` commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enrichkit.engine.batch import JobStore
from enrichkit.testing import GeminiStub
from helpers import TASK, topic_rows

pytestmark = pytest.mark.subprocess


def enrichkit(stub: GeminiStub, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "GEMINI_API_KEY": "test-key", "ENRICHKIT_BASE_URL": stub.url}
    return subprocess.Popen(
        [sys.executable, "-m", "enrichkit", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finished(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def creates(stub: GeminiStub) -> int:
    return sum(1 for c in stub.api_calls if c.action == "batchGenerateContent")


def batch_run(stub: GeminiStub, rows: Path, out: Path, cache: Path, *extra: str) -> subprocess.Popen[str]:
    args = ["run", str(rows), "-t", TASK, "-o", str(out), "--cache-dir", str(cache), "--mode", "batch"]
    return enrichkit(stub, *args, "--poll-interval", "0.05", *extra)


def rows_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in topic_rows(n)), encoding="utf-8")
    return path


def test_kill_9_while_waiting_then_the_rerun_reattaches_without_a_second_job(tmp_path: Path) -> None:
    rows, out, cache = rows_file(tmp_path, 1000), tmp_path / "out.csv", tmp_path / "cache"
    with GeminiStub(batch_auto=False) as stub:
        process = batch_run(stub, rows, out, cache)
        deadline = time.monotonic() + 30
        while not any(c.action == "batches.get" for c in stub.api_calls):  # created, saved, now waiting
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        [job] = stub.jobs.values()
        assert len(job.requests) == 50  # 1,000 rows: 50 packed requests in ONE job
        stub.advance(job.name)  # the job finishes while no process is waiting for it

        code, _, err = finished(batch_run(stub, rows, out, cache))
    assert code == 0, err
    assert creates(stub) == 1  # re-attached: no second job
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1001
    assert "calls: 50 (50 in batch jobs" in err and "batch: re-attached to 1 job; 50 answered" in err
    assert "at the batch price" in err


def test_no_wait_and_the_jobs_commands(tmp_path: Path) -> None:
    rows, out, cache = rows_file(tmp_path, 45), tmp_path / "out.jsonl", tmp_path / "cache"
    with GeminiStub(batch_auto=False) as stub:
        code, _, err = finished(batch_run(stub, rows, out, cache, "--no-wait"))
        assert code == 0, err
        assert "45 rows wait in batch job batches/" in err and not out.exists()
        [job] = stub.jobs.values()

        code, listed, err = finished(enrichkit(stub, "jobs", "list", "--cache-dir", str(cache)))
        assert code == 0 and f"{job.name}  pending  45 rows in 3 requests" in listed, err
        code, said, _ = finished(enrichkit(stub, "jobs", "collect", job.name, "--cache-dir", str(cache)))
        assert code == 0 and "nothing to collect yet" in said

        stub.advance(job.name)
        code, said, err = finished(enrichkit(stub, "jobs", "collect", job.name, "--cache-dir", str(cache)))
        assert code == 0 and "succeeded: 45 of 45 rows valid and cached" in said, err
        assert JobStore(cache).all() == []

        code, _, err = finished(batch_run(stub, rows, out, cache))  # everything is in the cache now
        assert code == 0 and creates(stub) == 1, err
        assert len(out.read_text(encoding="utf-8").splitlines()) == 45


@pytest.mark.redis
def test_jobs_collect_stores_a_redis_runs_answers_in_redis(redis_url: str, tmp_path: Path) -> None:
    rows, out, cache = rows_file(tmp_path, 45), tmp_path / "out.jsonl", tmp_path / "cache"
    with GeminiStub(batch_auto=False) as stub:
        code, _, err = finished(batch_run(stub, rows, out, cache, "--cache", redis_url, "--no-wait"))
        assert code == 0 and "45 rows wait in batch job" in err, err
        [job] = stub.jobs.values()
        stub.advance(job.name)

        collect = ["jobs", "collect", job.name, "--cache-dir", str(cache)]
        code, said, err = finished(enrichkit(stub, *collect))  # the run kept its answers in Redis, not here
        assert code == 2 and err.startswith("error: batch job") and "--cache" in err and said == "", err
        assert len(JobStore(cache).all()) == 1  # nothing collected, nothing forgotten

        code, said, err = finished(enrichkit(stub, *collect, "--cache", redis_url))
        assert code == 0 and "succeeded: 45 of 45 rows valid and cached" in said, err

        code, _, err = finished(batch_run(stub, rows, out, cache, "--cache", redis_url))
        assert code == 0 and "45 cache hits" in err, err
    assert creates(stub) == 1  # the re-run found every row in Redis: no second job
    assert len(out.read_text(encoding="utf-8").splitlines()) == 45


def test_jobs_cancel_forgets_the_job_and_the_next_run_submits_again(tmp_path: Path) -> None:
    rows, out, cache = rows_file(tmp_path, 20), tmp_path / "out.jsonl", tmp_path / "cache"
    with GeminiStub(batch_auto=False) as stub:
        assert finished(batch_run(stub, rows, out, cache, "--no-wait"))[0] == 0
        [job] = stub.jobs.values()
        code, said, err = finished(enrichkit(stub, "jobs", "cancel", job.name, "--cache-dir", str(cache)))
        assert code == 0 and f"cancelled {job.name} (20 rows)" in said, err
        assert stub.jobs[job.name].state == "BATCH_STATE_CANCELLED" and JobStore(cache).all() == []
        code, _, err = finished(enrichkit(stub, "jobs", "status", job.name, "--cache-dir", str(cache)))
        assert code == 2 and err.startswith("error: no batch job") and len(err.splitlines()) == 1
        assert finished(batch_run(stub, rows, out, cache, "--no-wait"))[0] == 0
        assert creates(stub) == 2


def test_batch_mode_refuses_the_local_provider_in_one_line(tmp_path: Path) -> None:
    rows, out = rows_file(tmp_path, 5), tmp_path / "out.jsonl"
    with GeminiStub() as stub:
        process = enrichkit(stub, "run", str(rows), "-t", TASK, "-o", str(out), "--mode", "batch", "--no-cache")
        code, _, err = finished(process)
    assert code == 2 and err.splitlines()[-1].startswith("error: --mode batch keeps its jobs") and not out.exists()
