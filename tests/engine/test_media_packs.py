"""Packs of media rows at the seam: sized by the media's tokens and bytes, their media's bytes in flight
bounded, each row's media right after its record."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from enrichkit import Task, enrich
from enrichkit.engine import media_room
from enrichkit.engine.codec import PackCodec
from enrichkit.providers.base import Capabilities, JobStatus, MediaLimits, Reply, Request
from enrichkit.providers.function import FunctionProvider, ids_of
from enrichkit.providers.media_cost import ANTHROPIC, GEMINI, OPENAI, media_tokens
from enrichkit.rows.media import MediaRef
from enrichkit.rows.work import Work
from enrichkit.testing import scripted
from enrichkit.testing.media import COLOURS, png
from helpers import FAST_RETRY, in_virtual_time

TASK = Task.from_columns("Name the colour.", ["title", "photo:image"], ["colour: red|green|blue"])


def work(n: int, size: int, width: int = 100) -> list[Work]:
    ref = MediaRef("x.png", "0" * 64, "image/png", size, width, width)
    return [Work(f"k{i}", {"title": f"t{i}", "photo": ref}) for i in range(n)]


def test_the_documented_token_counts() -> None:
    assert media_tokens("gemini", False, 384, 384) == 258
    assert media_tokens("gemini", False, 1000, 1000) == 4 * 258  # 2 x 2 tiles of 768
    assert media_tokens("gemini", True, 0, 0, 3) == 3 * 258
    assert media_tokens("openai", False, 1024, 1024) == 765  # OpenAI's worked example
    assert media_tokens("openai", False, 2048, 4096) == 1105
    assert media_tokens("anthropic", False, 1000, 1000) == 1334  # Anthropic's table: ~1,334
    assert media_tokens("anthropic", False, 4000, 3000) == math.ceil(1_150_000 / 750)  # scaled to 1.15 megapixels


def test_a_pack_closes_at_the_providers_request_bytes_and_media_tokens() -> None:
    gemini = PackCodec(TASK, media=GEMINI)
    assert [len(p) for p in gemini.packs(work(20, 3_000_000), 20)] == [4] * 5  # 4 MB encoded each, 19 MB room
    anthropic = PackCodec(TASK, media=ANTHROPIC)
    assert [len(p) for p in anthropic.packs(work(60, 1000, width=1500), 50)] == [50, 10]  # 1,800 tokens
    big = PackCodec(TASK, media=OPENAI)
    assert [len(p) for p in big.packs(work(60, 1000, width=8000), 50)] == [50, 10]  # 1,105 tokens each
    many = PackCodec(TASK, media=ANTHROPIC).packs(work(120, 10, width=4000), 50)
    assert [len(p) for p in many] == [20] * 6  # more than 20 images a request: Anthropic takes none over 2000 px
    assert [len(p) for p in PackCodec(TASK, media=ANTHROPIC).packs(work(120, 10, width=2000), 50)] == [50, 50, 20]


@pytest.mark.parametrize("extra", [{}, {"audit": 1.0}, {"confidence": True}], ids=["run", "audit", "agreement"])
def test_the_requests_in_flight_hold_at_most_the_media_room(
    extra: dict[str, Any], tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(media_room, "MEDIA_IN_FLIGHT", 30_000)
    for i in range(40):
        (tmp_path / f"{i}.png").write_bytes(png(60, 60, COLOURS["red"], noise=5_000 + i))
    rows = [{"title": f"photo {i}", "photo": f"{i}.png"} for i in range(40)]
    held: list[int] = []
    flying = 0

    async def answer(request: Request) -> list[dict[str, Any]]:
        nonlocal flying
        size = sum(len(m.data) for m in request.media)
        flying += size
        held.append(flying)
        await asyncio.sleep(1.0)
        flying -= size
        return [{"id": rid, "colour": "red"} for rid in ids_of(request)]

    provider = FunctionProvider(answer, capabilities=Capabilities(media=OPENAI, concurrency=8))

    async def go() -> Any:
        from enrichkit import aenrich

        return await aenrich(
            rows, TASK, provider=provider, cache_dir=cache_dir, media_root=tmp_path, pack_size=2, echo=False,
            retry=FAST_RETRY, progress=False, **extra,
        )  # fmt: skip

    result = in_virtual_time(go())
    assert result.stats.enriched == 40
    assert len(held) > 20 if extra else len(held) == 20  # the audit's or the second packing's calls too
    assert max(held) <= 30_000  # without the room, 12 packs of 2 (126 KB) were in flight at once (and the
    # audit's 40 single rows, or the second packing's 20 packs, all at once)
    assert max(held) > 2 * 5_000  # several packs in flight all the same


def test_a_row_whose_media_no_request_can_hold_fails_alone_unsent(tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "small.png").write_bytes(png(8, 8, COLOURS["red"]))
    (tmp_path / "big.png").write_bytes(png(8, 8, COLOURS["red"], noise=1_500_000))
    limits = MediaLimits(request_bytes=2_000_000, items=10, accounting="openai")
    script = scripted()
    provider = FunctionProvider(script, capabilities=Capabilities(media=limits))
    rows = [{"title": "small", "photo": "small.png"}, {"title": "big", "photo": "big.png"}]
    result = enrich(rows, TASK, provider=provider, cache_dir=cache_dir, media_root=tmp_path, progress=False)
    [failure] = result.failures
    assert (
        failure.reason
        == "its media take 2.1 MB base64-encoded, more than one function request holds (2 MB with its text)"
    )
    assert [len(a.media) for a in script.calls] == [1]


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("big.png", png(8, 8, COLOURS["red"], noise=4_000_000), "its image takes 5.5 MB base64-encoded, more than the"
         " 5.2 MB function takes of one image"),
        ("wide.png", png(9_000, 1, COLOURS["red"]), "its image is 9000x1 px, more than the 8000 px a side"
         " function takes"),
        ("long.pdf", b"%PDF-1.4\n" + b"<< /Type /Page >>\n" * 101, "its PDFs have 101 pages, more than the 100 one"
         " function request takes"),
    ],
)  # fmt: skip
def test_a_row_over_anthropics_limits_on_one_media_fails_alone_unsent(
    name: str, data: bytes, reason: str, tmp_path: Path, cache_dir: Path
) -> None:
    (tmp_path / "small.png").write_bytes(png(8, 8, COLOURS["red"]))
    (tmp_path / name).write_bytes(data)
    task = Task.from_columns("Name the colour.", ["title", "photo:media"], ["colour: red|green|blue"])
    script = scripted()
    provider = FunctionProvider(script, capabilities=Capabilities(media=ANTHROPIC))
    rows = [{"title": "small", "photo": "small.png"}, {"title": "over", "photo": name}]
    result = enrich(rows, task, provider=provider, cache_dir=cache_dir, media_root=tmp_path, progress=False)
    [failure] = result.failures
    assert failure.reason == reason and failure.attempts == 0
    assert [len(a.media) for a in script.calls] == [1]


def test_a_dataframes_binary_column_is_a_media_input(cache_dir: Path) -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(
        {"title": ["a", "b", "c"], "photo": [png(4, 4, COLOURS[c]) for c in ("red", "green", "blue")]}
    )
    script = scripted()
    provider = FunctionProvider(script, capabilities=Capabilities(media=GEMINI))
    result = enrich(frame, TASK, provider=provider, cache_dir=cache_dir, progress=False)
    assert result.frame is not None
    assert list(result.frame["colour"]) == ["red", "green", "blue"]
    [call] = script.calls
    assert [(rid, mime) for rid, mime, _ in call.media] == [
        ("r1", "image/png"),
        ("r2", "image/png"),
        ("r3", "image/png"),
    ]


class HoldingJobs:
    """A batch API that reads each job's requests in order and keeps them without their media's bytes,
    noting how many requests read so far were still alive at each read (held by the engine)."""

    def __init__(self) -> None:
        self.script = scripted()
        self.jobs: dict[str, list[tuple[str, Request]]] = {}
        self.alive: list[int] = []
        self.media = 0

    @property
    def model(self) -> str:
        return "function"

    def split(self, requests: Sequence[tuple[str, Request]]) -> list[Sequence[tuple[str, Request]]]:
        return [requests]

    async def submit(self, requests: Sequence[tuple[str, Request]], display_name: str) -> str:
        read: list[weakref.ref[Request]] = []
        kept = []
        for key, request in requests:
            read.append(weakref.ref(request))
            self.alive.append(sum(r() is not None for r in read))
            self.media += sum(len(m.data) for m in request.media)
            kept.append((key, dataclasses.replace(request, media=())))
            del request
        self.jobs[name := f"jobs/{len(self.jobs)}"] = kept
        return name

    async def find(self, display_name: str) -> str | None:
        return None

    async def status(self, name: str) -> JobStatus:
        return JobStatus(name, "succeeded")

    async def results(self, name: str) -> dict[str, Reply | str]:
        return {key: await self.script(request) for key, request in self.jobs[name]}

    async def cancel(self, name: str) -> None: ...


def test_a_batch_job_is_submitted_holding_one_requests_media_at_a_time(tmp_path: Path, cache_dir: Path) -> None:
    for i in range(30):
        (tmp_path / f"{i}.png").write_bytes(png(8, 8, COLOURS["red"], noise=2_000 + i))
    rows = [{"title": f"photo {i}", "photo": f"{i}.png"} for i in range(30)]
    jobs = HoldingJobs()

    class Batching(FunctionProvider):
        def batches(self) -> HoldingJobs:
            return jobs

    provider = Batching(jobs.script, capabilities=Capabilities(media=OPENAI))
    result = enrich(
        rows, TASK, provider=provider, cache_dir=cache_dir, media_root=tmp_path, mode="batch", pack_size=5,
        poll=0.01, progress=False,
    )  # fmt: skip
    assert result.stats.enriched == 30
    assert len(jobs.alive) == 6 and jobs.media > 30 * 2_000  # six packs of five, their media read
    assert max(jobs.alive) == 1  # each request freed once read: the job's media never all in memory
