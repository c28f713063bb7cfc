"""When batch mode looks at its jobs and when it stops waiting, on a virtual clock: a batch API at the
provider seam whose jobs take a given time on the event loop's clock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from enrichkit import Task, aenrich
from enrichkit.providers.base import JobStatus, Reply, Request
from enrichkit.providers.function import FunctionProvider
from enrichkit.result import EnrichResult
from enrichkit.testing import Scripted, scripted
from helpers import FAST_RETRY, in_virtual_time, topic_rows


class ClockJobs:
    """A batch API whose jobs succeed ``takes`` seconds after they were submitted (unless cancelled first);
    ``script`` answers their requests. ``looks`` holds when each status was asked."""

    def __init__(self, script: Scripted, takes: float) -> None:
        self.script = script
        self.takes = takes
        self.jobs: dict[str, tuple[float, list[tuple[str, Request]]]] = {}
        self.cancelled: set[str] = set()
        self.looks: list[float] = []

    @property
    def model(self) -> str:
        return "function"

    def split(self, requests: Sequence[tuple[str, Request]]) -> list[Sequence[tuple[str, Request]]]:
        return [requests]

    async def submit(self, requests: Sequence[tuple[str, Request]], display_name: str) -> str:
        name = f"jobs/{len(self.jobs)}"
        self.jobs[name] = (asyncio.get_running_loop().time(), list(requests))
        return name

    async def find(self, display_name: str) -> str | None:
        return None

    async def status(self, name: str) -> JobStatus:
        now = asyncio.get_running_loop().time()
        self.looks.append(now)
        if name in self.cancelled:
            return JobStatus(name, "cancelled")
        return JobStatus(name, "succeeded" if now - self.jobs[name][0] >= self.takes else "running")

    async def results(self, name: str) -> dict[str, Reply | str]:
        if name in self.cancelled:
            return {}
        return {key: await self.script(request) for key, request in self.jobs[name][1]}

    async def cancel(self, name: str) -> None:
        self.cancelled.add(name)


class Batching(FunctionProvider):
    def __init__(self, jobs: ClockJobs) -> None:
        super().__init__(jobs.script)
        self.jobs = jobs

    def batches(self) -> ClockJobs:
        return self.jobs


def run(jobs: ClockJobs, task: Task, cache_dir: Path, **options: Any) -> tuple[EnrichResult, float]:
    async def go() -> tuple[EnrichResult, float]:
        loop = asyncio.get_running_loop()
        start = loop.time()
        result = await aenrich(
            topic_rows(40), task, provider=Batching(jobs), cache_dir=cache_dir, mode="batch", retry=FAST_RETRY,
            progress=False, **options,
        )  # fmt: skip
        return result, loop.time() - start

    return in_virtual_time(go())


def test_a_job_done_at_once_is_collected_at_the_first_early_look(task: Task, cache_dir: Path) -> None:
    jobs = ClockJobs(scripted(), takes=0.5)
    result, seconds = run(jobs, task, cache_dir, poll=30.0)
    assert jobs.looks == [0.0, 1.0]  # at once, then a second later: not after the 30 s poll interval
    assert result.stats.enriched == 40 and seconds == 1.0


def test_the_looks_back_off_up_to_the_poll_interval(task: Task, cache_dir: Path) -> None:
    jobs = ClockJobs(scripted(), takes=100)
    result, _ = run(jobs, task, cache_dir, poll=30.0)
    assert jobs.looks == [0, 1, 3, 7, 15, 31, 61, 91, 121]
    assert result.stats.enriched == 40


def test_the_batch_timeout_cancels_at_its_time_and_finishes_live(task: Task, cache_dir: Path) -> None:
    script = scripted()
    jobs = ClockJobs(script, takes=24 * 3600)
    result, seconds = run(jobs, task, cache_dir, poll=30.0, batch_timeout=3600.0)
    assert jobs.cancelled == {"jobs/0"} and seconds == 3600  # cancelled at the hour, then asked live at once
    live = [a for a in script.calls if a.action == "generate"]
    assert [a.received for a in live] == [3600, 3600]  # the job's two packs, live (the job answered none)
    assert result.stats.enriched == 40 and result.stats.finished_live == 40 and result.stats.pending == 0
