"""Helpers shared by the tests: rows, paths, fast retries, and the CLI run in-process or as a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, TypeVar

from click.testing import CliRunner, Result

from enrichkit import EnrichResult, RetryPolicy, Task, aenrich
from enrichkit.cli import main
from enrichkit.providers.base import Provider, Reply, Request
from enrichkit.testing import Asked, FunctionProvider, GeminiStub, Scripted
from enrichkit.testing.media import COLOURS

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
FAST_RETRY = RetryPolicy(attempts=3, backoff=0.01, max_backoff=0.05)


def topic_rows(n: int, prefix: str = "t") -> list[dict[str, Any]]:
    """Synthetic roadmap-like rows (no roadmap.sh content: its licence forbids copying it)."""
    return [
        {
            "id": f"{prefix}{i}",
            "category": f"Area {i % 7}",
            "topic": f"Topic number {i}",
            "description": f"Synthetic description {i} of a topic, with enough words to summarise it.",
        }
        for i in range(n)
    ]


TASK = str(ROOT / "schemas" / "roadmap-topic.json")


def invoke(stub: GeminiStub | None, *args: str, key: bool = True, stdin: str | None = None) -> Result:
    env = {"GEMINI_API_KEY": "test-key" if key else ""}
    base = ["--base-url", stub.url] if stub is not None else []
    return CliRunner().invoke(main, [*args, *base], env=env, input=stdin, catch_exceptions=False)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def start(stub: GeminiStub, rows: Path, out: Path, cache: Path, *more: str) -> subprocess.Popen[str]:
    env = {**os.environ, "GEMINI_API_KEY": "test-key", "ENRICHKIT_BASE_URL": stub.url}
    args = ["run", str(rows), "-t", TASK, "-o", str(out), "--cache-dir", str(cache), "--concurrency", "2", "-q", *more]
    return subprocess.Popen(
        [sys.executable, "-m", "enrichkit", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_calls(stub: GeminiStub, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while len(stub.generate_calls) < n:
        assert time.monotonic() < deadline, f"only {len(stub.generate_calls)} calls arrived"
        time.sleep(0.02)


SRC = str(ROOT / "src")


def env(stub: GeminiStub | None = None) -> dict[str, str]:
    extra = {"ENRICHKIT_BASE_URL": stub.url} if stub is not None else {}
    return {**os.environ, "PYTHONPATH": SRC, "GEMINI_API_KEY": "test-key", **extra}


def run_cli(
    *args: str, stub: GeminiStub | None = None, limit: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "enrichkit", *args], env=env(stub), capture_output=True, text=True, timeout=120,
        preexec_fn=limit,
    )  # fmt: skip


def rows_jsonl(folder: Path, n: int) -> Path:
    path = folder / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in topic_rows(n)), encoding="utf-8")
    return path


def temps(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.part"))


TLDR_TASK = Task(
    instruction="x",
    inputs=["topic"],
    output={
        "type": "object",
        "properties": {
            "tldr": {"type": "string", "maxWords": 3},
            "challenge": {"type": "string", "enum": ["practice", "expert"]},
        },
    },
)


def sender(call: Asked) -> str:
    return next(v for k, v in call.headers.items() if k.lower() == "x-goog-api-key")


def hold_until_both_sent(stub: GeminiStub) -> None:
    """Hold every call until both processes have sent one, so the runs overlap however their start-up differs."""
    senders: set[str] = set()
    both = threading.Event()

    def gate(call: Asked) -> None:
        senders.add(sender(call))
        if len(senders) == 2:
            both.set()
        both.wait(30)

    stub.rule(gate)


def most_in_any_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times if s <= t < s + window) for s in times)


PHOTO_TASK = Task.from_columns(
    "Name the product photo's main colour and describe it.",
    ["title", "photo:image"],
    [f"colour: {'|'.join(COLOURS)}", "caption: text"],
    id_field="sku",
)
"""The media tests' task: a product's photo, its main colour (one of the stubs' ``COLOURS``) and a caption."""

T = TypeVar("T")


class VirtualClock(asyncio.SelectorEventLoop):
    """An event loop whose clock jumps: when nothing is ready and no thread works for it, time moves at once
    to the next timer. A test of timing (rate limits, pacing, backoff, deadlines) runs in no time and
    asserts exact durations; the code under test reads ``loop.time()`` as usual. While a thread works for
    the loop (``run_in_executor``: the cache's I/O) the clock waits for it, so no timer fires early.
    Only for tests without network I/O."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.working = 0  # executor jobs not yet done
        poll = self._selector.select  # type: ignore[attr-defined]

        def select(timeout: float | None = None) -> list[Any]:
            if timeout is None or timeout <= 0 or self.working:
                return poll(timeout)  # type: ignore[no-any-return]
            ready: list[Any] = poll(0)
            if not ready:
                self.now += timeout
            return ready

        self._selector.select = select  # type: ignore[attr-defined]

    def time(self) -> float:
        return self.now

    def run_in_executor(  # type: ignore[override]
        self, executor: Executor | None, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        self.working += 1
        job = super().run_in_executor(executor, func, *args)
        job.add_done_callback(self._done)
        return job

    def _done(self, _: object) -> None:
        self.working -= 1


def in_virtual_time(job: Coroutine[Any, Any, T]) -> T:
    """Run ``job`` on a ``VirtualClock``."""
    with asyncio.Runner(loop_factory=VirtualClock) as runner:
        return runner.run(job)


async def timed(script: Scripted, rows: list[dict[str, Any]], task: Task, **options: Any) -> tuple[EnrichResult, float]:
    """``aenrich`` at the seam, and how long it took on the event loop's clock."""
    model, counts = options.pop("model", "function"), options.pop("counts", False)
    provider = FunctionProvider(script, model=model, count=script.count if counts else None)
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = await aenrich(rows, task, provider=provider, retry=FAST_RETRY, progress=False, **options)
    return result, loop.time() - start


def run_at_seam(
    rows: list[dict[str, Any]], task: Task, script: Scripted, cache_dir: Path, **options: Any
) -> EnrichResult:
    """``aenrich`` on a ``FunctionProvider(script)`` (``model=``, ``counts=``: it counts tokens for free, as
    Gemini does), on a virtual clock."""
    return in_virtual_time(timed(script, rows, task, cache_dir=cache_dir, **options))[0]


def generated(script: Scripted) -> list[Asked]:
    """The requests for answers (not the free token counts), in the order they were sent."""
    return [a for a in script.calls if a.action == "generate"]


def pack_sizes(script: Scripted) -> list[int]:
    """Rows per call (a pack's id count, or 1 for a single-row call), largest first: packs run
    concurrently, so their order is not fixed."""
    return sorted((len(a.ids) or 1 for a in generated(script)), reverse=True)


def ask(provider: Provider, request: Request) -> Reply:
    """One request sent through ``provider`` (closed after), in an event loop of its own."""

    async def go() -> Reply:
        try:
            return await provider.generate(request)
        finally:
            await provider.aclose()

    return asyncio.run(go())
