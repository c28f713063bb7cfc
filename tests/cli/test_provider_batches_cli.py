"""Batch mode on openai and anthropic through the real CLI: kill -9 while waiting, re-attach, ``jobs``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from enrichkit.engine.batch import JobStore
from enrichkit.testing import AnthropicStub, OpenAIStub
from helpers import ROOT, topic_rows

pytestmark = pytest.mark.subprocess


TASK = str(ROOT / "schemas" / "roadmap-topic.json")
Stubs = OpenAIStub | AnthropicStub


@pytest.fixture(params=["openai", "anthropic"])
def stub(request: pytest.FixtureRequest) -> Iterator[Stubs]:
    with OpenAIStub(auto=False) if request.param == "openai" else AnthropicStub(auto=False) as server:
        assert isinstance(server, OpenAIStub | AnthropicStub)
        yield server


def provider(stub: Stubs) -> str:
    return "openai" if isinstance(stub, OpenAIStub) else "anthropic"


def model(stub: Stubs) -> str:
    return "gpt-4.1-mini" if isinstance(stub, OpenAIStub) else "claude-haiku-4-5"


def enrichkit(stub: Stubs, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OPENAI_API_KEY": "test-key", "ANTHROPIC_API_KEY": "test-key", "ENRICHKIT_BASE_URL": stub.url}
    return subprocess.Popen(
        [sys.executable, "-m", "enrichkit", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finished(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def batch_run(stub: Stubs, rows: Path, out: Path, cache: Path, *extra: str) -> subprocess.Popen[str]:
    args = ["run", str(rows), "-t", TASK, "-o", str(out), "--cache-dir", str(cache), "--mode", "batch"]
    return enrichkit(
        stub, *args, "--provider", provider(stub), "--model", model(stub), "--poll-interval", "0.05", *extra
    )


def rows_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in topic_rows(n)), encoding="utf-8")
    return path


def looks(stub: Stubs) -> int:
    return sum(1 for action, _ in stub.api_calls if action == "retrieve")


def test_kill_9_while_waiting_then_the_rerun_reattaches_without_a_second_job(stub: Stubs, tmp_path: Path) -> None:
    rows, out, cache = rows_file(tmp_path, 1000), tmp_path / "out.csv", tmp_path / "cache"
    process = batch_run(stub, rows, out, cache)
    deadline = time.monotonic() + 30
    while looks(stub) == 0:  # created, saved, now waiting
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    [name] = stub.jobs
    assert len(stub.jobs) == 1 and [m.provider for m in JobStore(cache).all()] == [provider(stub)]
    stub.advance(name)  # the job finishes while no process waits for it
    code, _, err = finished(batch_run(stub, rows, out, cache))
    assert code == 0, err
    assert len(stub.jobs) == 1  # re-attached: no second job
    assert len(stub.requests_of(name)) == 50
    assert len(out.read_text(encoding="utf-8").splitlines()) == 1001
    assert "calls: 50 (50 in batch jobs" in err and "at the batch price" in err


def test_no_wait_and_the_jobs_commands(stub: Stubs, tmp_path: Path) -> None:
    rows, out, cache = rows_file(tmp_path, 45), tmp_path / "out.jsonl", tmp_path / "cache"
    code, _, err = finished(batch_run(stub, rows, out, cache, "--no-wait"))
    assert code == 0 and "45 rows wait in batch job" in err, err
    [name] = stub.jobs
    code, listed, err = finished(enrichkit(stub, "jobs", "list", "--cache-dir", str(cache)))
    assert code == 0 and f"{name}  " in listed and f"45 rows in 3 requests  {model(stub)}" in listed, err
    code, said, err = finished(enrichkit(stub, "jobs", "status", name, "--cache-dir", str(cache)))
    assert code == 0 and ("pending" in said or "running" in said), err
    stub.advance(name)
    code, said, err = finished(enrichkit(stub, "jobs", "collect", name, "--cache-dir", str(cache)))
    assert code == 0 and "succeeded: 45 of 45 rows valid and cached" in said, err
    code, _, err = finished(batch_run(stub, rows, out, cache))
    assert code == 0 and len(stub.jobs) == 1 and len(out.read_text(encoding="utf-8").splitlines()) == 45, err


def test_jobs_cancel_cancels_at_the_provider(stub: Stubs, tmp_path: Path) -> None:
    rows, out, cache = rows_file(tmp_path, 20), tmp_path / "out.jsonl", tmp_path / "cache"
    assert finished(batch_run(stub, rows, out, cache, "--no-wait"))[0] == 0
    [name] = stub.jobs
    code, said, err = finished(enrichkit(stub, "jobs", "cancel", name, "--cache-dir", str(cache)))
    assert code == 0 and f"cancelled {name} (20 rows)" in said, err
    assert ("cancel", f"/v1/batches/{name}/cancel") in stub.api_calls or (
        "cancel",
        f"/v1/messages/batches/{name}/cancel",
    ) in stub.api_calls
    assert JobStore(cache).all() == []


def test_batch_mode_on_a_provider_without_a_batch_api_is_one_line(tmp_path: Path) -> None:
    rows, out, model = rows_file(tmp_path, 5), tmp_path / "out.jsonl", tmp_path / "fake.gguf"
    model.touch()
    with OpenAIStub() as stub:
        args = ["run", str(rows), "-t", TASK, "-o", str(out), "--cache-dir", str(tmp_path / "cache"), "--mode", "batch"]
        code, _, err = finished(enrichkit(stub, *args, "--provider", "local", "--model-path", str(model)))
        assert stub.calls == [] and stub.api_calls == []
    assert code == 2 and err.splitlines()[-1] == "error: --mode batch is not available for local" and not out.exists()
