"""Rows with images and PDFs through every provider's real SDK and wire stub, live and in batch mode: each
record's text part, then its media in the wire's own shape; the stub answers each row from what it sees in
its image (its colour), so an image sent with another row's record would show."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from enrichkit import EnrichResult, Task, enrich
from enrichkit.providers import gemini
from enrichkit.providers.anthropic import anthropic_provider
from enrichkit.providers.base import Provider
from enrichkit.providers.gemini import gemini_provider
from enrichkit.providers.openai import openai_provider
from enrichkit.testing import AnthropicStub, GeminiStub, OpenAIStub
from enrichkit.testing.faults import Asked
from enrichkit.testing.media import COLOURS, pdf, png
from helpers import FAST_RETRY, PHOTO_TASK

Stub = GeminiStub | OpenAIStub | AnthropicStub
NAMES = list(COLOURS)
TASK = PHOTO_TASK


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GEMINI_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.setenv(name, "test-key")


@pytest.fixture(params=["gemini", "openai", "anthropic"])
def stub(request: pytest.FixtureRequest) -> Iterator[Stub]:
    kinds: dict[str, type[Stub]] = {"gemini": GeminiStub, "openai": OpenAIStub, "anthropic": AnthropicStub}
    with kinds[request.param]() as server:
        yield server


def provider_on(stub: Stub) -> Provider:
    if isinstance(stub, GeminiStub):
        return gemini_provider("gemini-2.5-flash", base_url=stub.url)
    if isinstance(stub, OpenAIStub):
        return openai_provider("gpt-4.1-mini", base_url=stub.url)
    return anthropic_provider("claude-haiku-4-5", base_url=stub.url)


def photos(folder: Path, n: int, broken: int = 0) -> list[dict[str, Any]]:
    """``n`` product rows, each with a small PNG of the colour ``NAMES[i % 6]`` written under ``folder``; the
    last ``broken`` rows' photos are missing, not an image, and empty."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        path = folder / f"p{i}.png"
        path.write_bytes(png(8 + i % 5, 8, COLOURS[NAMES[i % len(NAMES)]]))
        rows.append({"sku": f"s{i}", "title": f"Product number {i}", "photo": f"{folder.name}/p{i}.png"})
    bad = [("missing.png", None), ("notes.png", b"just some text"), ("empty.png", b"")][:broken]
    for row, (name, data) in zip(rows[n - broken :], bad, strict=True):
        if data is not None:
            (folder / name).write_bytes(data)
        row["photo"] = f"{folder.name}/{name}"
    return rows


def run(stub: Stub, rows: list[dict[str, Any]], root: Path, cache_dir: Path, **kw: Any) -> EnrichResult:
    options = {"retry": FAST_RETRY, "poll": 0.01, "progress": False, **kw}
    return enrich(rows, TASK, provider=provider_on(stub), cache_dir=cache_dir, media_root=root, **options)


def answered(stub: Stub) -> list[Asked]:
    return [a for a in stub.calls if a.action == "generate"]


@pytest.mark.parametrize("mode", ["live", "batch"])
def test_a_hundred_photo_rows_are_five_calls_each_answered_from_its_own_photo(
    stub: Stub, mode: str, tmp_path: Path, cache_dir: Path
) -> None:
    rows = photos(tmp_path / "photos", 100, broken=3)
    result = run(stub, rows, tmp_path, cache_dir, mode=mode)
    calls = answered(stub)
    assert len(calls) == 5  # ceil(97 / 20): the broken rows were never sent
    assert sorted(len(a.media) for a in calls) == [17, 20, 20, 20, 20]
    assert all(rid is not None and mime == "image/png" for a in calls for rid, mime, _ in a.media)
    good = [r for r in result.rows if "colour" in r]
    assert len(good) == 97
    assert all(r["colour"] == NAMES[int(r["sku"][1:]) % len(NAMES)] for r in good)
    assert all(r["colour"] in r["caption"] for r in good)  # the stub's caption says what it saw
    failed = {f.row_id: f.reason for f in result.failures}
    assert set(failed) == {"s97", "s98", "s99"}
    assert "no such file" in failed["s97"]
    assert "no image (PNG, JPEG, WebP, GIF) or PDF" in failed["s98"]
    assert "an empty file" in failed["s99"]
    assert all(f.attempts == 0 for f in result.failures)

    again = run(stub, rows, tmp_path, cache_dir, mode=mode)
    assert len(answered(stub)) == 5  # all hits: no call
    assert again.stats.cache_hits == 97

    moved = tmp_path / "renamed"
    shutil.copytree(tmp_path / "photos", moved)
    renamed = [{**r, "photo": r["photo"].replace("photos/p", "renamed/q")} for r in rows[:97]]
    for row, old in zip(renamed, rows, strict=False):
        (tmp_path / old["photo"]).rename(tmp_path / row["photo"].replace("/q", "/p").replace("renamed", "photos"))
        (moved / Path(old["photo"]).name).rename(tmp_path / row["photo"])
    third = run(stub, renamed, tmp_path, cache_dir, mode=mode)
    assert len(answered(stub)) == 5  # the same images under other names: hits
    assert third.stats.cache_hits == 97


def test_a_changed_image_is_asked_again_and_swapped_images_get_their_own_answers(
    stub: Stub, tmp_path: Path, cache_dir: Path
) -> None:
    rows = photos(tmp_path / "photos", 4)
    run(stub, rows, tmp_path, cache_dir)
    (tmp_path / "photos" / "p0.png").write_bytes(png(8, 8, COLOURS["yellow"]))
    swapped = [{**rows[0]}, {**rows[1], "photo": rows[2]["photo"]}, {**rows[2], "photo": rows[1]["photo"]}, rows[3]]
    result = run(stub, swapped, tmp_path, cache_dir)
    _, second = answered(stub)
    assert len(second.media) == 3  # the changed image and the swapped ones: new contents; the last row a hit
    assert [r["colour"] for r in result.rows] == ["yellow", "blue", "green", "yellow"]


def test_pdfs_travel_as_documents_and_are_read(stub: Stub, tmp_path: Path, cache_dir: Path) -> None:
    task = Task.from_columns("Summarise the invoice.", ["scan:pdf"], ["summary: text"])
    for i in range(3):
        (tmp_path / f"invoice{i}.pdf").write_bytes(pdf(f"Invoice {i} total {10 * i} EUR"))
    rows = [{"scan": f"invoice{i}.pdf"} for i in range(3)] + [{"scan": "photo.png"}]
    (tmp_path / "photo.png").write_bytes(png(4, 4, COLOURS["red"]))
    result = enrich(rows, task, provider=provider_on(stub), cache_dir=cache_dir, media_root=tmp_path, progress=False)
    [call] = answered(stub)
    assert [m[1] for m in call.media] == ["application/pdf"] * 3
    assert [r.get("summary") for r in result.rows[:3]] == [f"About Invoice {i} total {10 * i} EUR" for i in range(3)]
    [failure] = result.failures
    assert "an image, where the input takes PDFs" in failure.reason


def test_the_wire_carries_each_records_text_then_its_image(stub: Stub, tmp_path: Path, cache_dir: Path) -> None:
    rows = photos(tmp_path / "photos", 2)
    run(stub, rows, tmp_path, cache_dir)
    [call] = answered(stub)
    assert [rid for rid, _, _ in call.media] == ["r1", "r2"]
    assert "photos/p0.png" not in call.prompt  # neither the path nor the name reaches the model
    assert call.prompt.count('"photo": "(the image after this record)"') == 2


def test_a_gemini_job_whose_media_pass_the_inline_limit_goes_as_a_file(
    tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gemini, "INLINE_MEDIA_BYTES", 1_000)
    rows = photos(tmp_path / "photos", 30)
    with GeminiStub() as stub:
        result = run(stub, rows, tmp_path, cache_dir, mode="batch")
        assert [call.action for call in stub.api_calls].count("files.upload") == 1
        assert len(answered(stub)) == 2
    assert all(r["colour"] == NAMES[int(r["sku"][1:]) % len(NAMES)] for r in result.rows)
