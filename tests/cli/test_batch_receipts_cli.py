"""Batch receipts through the real CLI on each provider: --no-wait and Ctrl-C say where the rows are, the
wait shows its job, and `jobs list` finds the job on the run's own --base-url."""

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
from enrichkit.testing import AnthropicStub, GeminiStub, OpenAIStub
from helpers import TASK, topic_rows

pytestmark = pytest.mark.subprocess

Stubs = GeminiStub | OpenAIStub | AnthropicStub
KEY = "sk-test-0123456789abcdefghij"  # shaped like a key: it must reach no manifest


@pytest.fixture(params=["gemini", "openai", "anthropic"])
def stub(request: pytest.FixtureRequest) -> Iterator[Stubs]:
    server: Stubs
    if request.param == "gemini":
        server = GeminiStub(batch_auto=False)
    elif request.param == "openai":
        server = OpenAIStub(auto=False)
    else:
        server = AnthropicStub(auto=False)
    with server:
        yield server


def provider(stub: Stubs) -> str:
    return {GeminiStub: "gemini", OpenAIStub: "openai", AnthropicStub: "anthropic"}[type(stub)]


def enrichkit(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "ENRICHKIT_BASE_URL"}
    env |= {"GEMINI_API_KEY": KEY, "OPENAI_API_KEY": KEY, "ANTHROPIC_API_KEY": KEY}
    return subprocess.Popen(
        [sys.executable, "-m", "enrichkit", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def batch_run(stub: Stubs, tmp_path: Path, rows: int, *extra: str) -> subprocess.Popen[str]:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in topic_rows(rows)), encoding="utf-8")
    args = ["run", str(path), "-t", TASK, "-o", str(tmp_path / "out.jsonl"), "--cache-dir", str(tmp_path / "cache")]
    return enrichkit(*args, "--mode", "batch", "--provider", provider(stub), "--base-url", stub.url, *extra)


def finished(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def test_no_wait_counts_the_rows_as_waiting_and_jobs_list_calls_the_runs_endpoint(stub: Stubs, tmp_path: Path) -> None:
    code, _, err = finished(batch_run(stub, tmp_path, 30, "--no-wait"))
    assert code == 0, err
    assert "30 rows: 0 cache hits, 0 newly enriched, 30 submitted and waiting in batch jobs, 0 failed" in err
    assert "100.0% ok" not in err and "nothing was sent" not in err
    assert "so far (the 30 rows in batch jobs are counted when collected)" in err  # not a plain "cost $0"
    assert "batch: 2 requests in 1 job: 2 packs of up to 20 on" in err
    [manifest] = JobStore(tmp_path / "cache").all()
    assert manifest.base_url == stub.url
    assert KEY not in (tmp_path / "cache" / "jobs" / f"{manifest.display_name}.json").read_text(encoding="utf-8")
    code, listed, err = finished(enrichkit("jobs", "list", "--cache-dir", str(tmp_path / "cache")))
    assert code == 0 and f"{manifest.name}  " in listed and "30 rows in 2 requests" in listed, err


def test_ctrl_c_while_waiting_says_the_rows_are_in_the_job(stub: Stubs, tmp_path: Path) -> None:
    process = batch_run(stub, tmp_path, 30, "--poll-interval", "0.05")
    deadline = time.monotonic() + 30
    while len(JobStore(tmp_path / "cache").all()) != 1 or not JobStore(tmp_path / "cache").all()[0].name:
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.02)
    seen = len(stub.api_calls)
    while len(stub.api_calls) < seen + 2:  # two more looks at the job: the waiting line was shown
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    code, _, err = finished(process)
    [manifest] = JobStore(tmp_path / "cache").all()
    assert code == 130, err
    assert f"batch job {manifest.name}: " in err and "next look in" in err  # the line while waiting
    assert "interrupted: 30 rows: 0 cache hits, 0 newly enriched, 30 submitted and waiting in batch jobs" in err
    assert "Ctrl-C is safe, re-run the same command to re-attach" in err and "100.0% ok" not in err
