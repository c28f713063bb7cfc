"""Gemini media above the inline limit go through the Files API: the real google-genai SDK uploads them to
the stub (resumable upload, processing, get, delete), the requests name them by URI, and the stub answers each
row from the uploaded bytes, so a file given to the wrong row would show."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from enrichkit import EnrichResult, enrich
from enrichkit.errors import FatalProviderError
from enrichkit.providers.base import Media, Request
from enrichkit.providers.gemini import GeminiProvider, make_client
from enrichkit.providers.gemini_files import by_file
from enrichkit.providers.media_cost import GEMINI
from enrichkit.testing import GeminiStub
from enrichkit.testing.faults import Error
from enrichkit.testing.media import COLOURS, png
from helpers import FAST_RETRY, PHOTO_TASK

NAMES = list(COLOURS)
TASK = PHOTO_TASK
FILE_ABOVE = 1_000  # bytes: the test's stand-in for Gemini's 5 MB


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")


def photos(folder: Path, n: int) -> list[dict[str, Any]]:
    """``n`` rows: odd ones with a photo over ``FILE_ABOVE`` (noise makes it big), even ones with a small
    one; rows 1 and 3 share the same big content under two names."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        colour = COLOURS[NAMES[i % len(NAMES)]]
        data = png(8, 8, colour, noise=3_000 + (0 if i == 3 else i)) if i % 2 else png(8, 8, colour)
        if i == 3:
            data = png(8, 8, COLOURS[NAMES[1]], noise=3_001)
        (folder / f"p{i}.png").write_bytes(data)
        rows.append({"sku": f"s{i}", "title": f"Product number {i}", "photo": f"{folder.name}/p{i}.png"})
    return rows


def expected(row: dict[str, Any]) -> str:
    i = int(row["sku"][1:])
    return NAMES[1] if i == 3 else NAMES[i % len(NAMES)]


def run(stub: GeminiStub, rows: list[dict[str, Any]], root: Path, cache_dir: Path, **kw: Any) -> EnrichResult:
    client = make_client(base_url=stub.url)
    provider = GeminiProvider(client, "gemini-2.5-flash", owns_client=True, file_above=FILE_ABOVE)
    options = {"retry": FAST_RETRY, "poll": 0.01, "progress": False, **kw}
    return enrich(rows, TASK, provider=provider, cache_dir=cache_dir, media_root=root, **options)


def actions(stub: GeminiStub, action: str) -> int:
    return [c.action for c in stub.api_calls].count(action)


def generated(stub: GeminiStub) -> list[Any]:
    return [c for c in stub.calls if c.action == "generate"]


def file_parts(stub: GeminiStub) -> list[dict[str, Any]]:
    return [
        part["fileData"]
        for call in stub.calls
        for content in call.body.get("contents", [])
        for part in content.get("parts", [])
        if "fileData" in part
    ]


def test_big_photos_go_by_file_once_each_and_every_row_gets_its_own_answer(tmp_path: Path, cache_dir: Path) -> None:
    rows = photos(tmp_path / "photos", 10)
    with GeminiStub(processing=2) as stub:
        result = run(stub, rows, tmp_path, cache_dir)
        [call] = generated(stub)
        assert len(call.media) == 10  # one pack: the big photos take the request's room by their tokens alone
        assert len(file_parts(stub)) == 5 and actions(stub, "files.upload") == 4  # rows 1 and 3: one content
        assert actions(stub, "files.get") == 2 * 4  # each waited on while PROCESSING
        assert all(r["colour"] == expected(r) for r in result.rows)
        assert result.stats.enriched == 10
        assert actions(stub, "files.delete") == 4 and not stub.files  # deleted when the run ended

        again = run(stub, rows, tmp_path, cache_dir)
        assert len(generated(stub)) == 1 and actions(stub, "files.upload") == 4  # all hits: no call, no upload
        assert again.stats.cache_hits == 10


def test_an_upload_that_fails_once_is_retried_and_loses_no_row(tmp_path: Path, cache_dir: Path) -> None:
    rows = photos(tmp_path / "photos", 6)
    with GeminiStub() as stub:
        stub.fail_api("files.upload", Error(500, "Internal error encountered."))
        result = run(stub, rows, tmp_path, cache_dir)
        assert result.stats.enriched == 6 and not result.failures
        assert all(r["colour"] == expected(r) for r in result.rows)
        assert actions(stub, "files.upload") == 2 + 1  # two contents, one upload asked again


def test_files_gemini_cannot_process_fail_their_rows_alone(tmp_path: Path, cache_dir: Path) -> None:
    rows = photos(tmp_path / "photos", 12)
    broken = ["s5", "s7", "s9"]  # each fails alone, its reason naming its file; the run goes on
    with GeminiStub() as stub:
        for sku in broken:
            stub.failing_files.add(hashlib.sha256((tmp_path / "photos" / f"p{sku[1:]}.png").read_bytes()).hexdigest())
        result = run(stub, rows, tmp_path, cache_dir)
        assert not result.stats.stopped
        assert sorted(f.row_id for f in result.failures) == broken
        assert all(
            re.search(
                r"Gemini could not process the uploaded image files/\w+: stub: the file could not be processed",
                f.reason,
            )
            for f in result.failures
        )
        assert all(r["colour"] == expected(r) for r in result.rows if r["sku"] not in broken)


def test_a_batch_job_carries_big_photos_by_file_and_leaves_them_for_the_job(tmp_path: Path, cache_dir: Path) -> None:
    rows = photos(tmp_path / "photos", 10)
    with GeminiStub() as stub:
        result = run(stub, rows, tmp_path, cache_dir, mode="batch")
        assert len(file_parts(stub)) == 5 and actions(stub, "files.upload") == 4
        assert all(r["colour"] == expected(r) for r in result.rows)
        assert actions(stub, "files.delete") == 0  # a job may outlive its run: Gemini drops them after 48 h


def request(*sizes: int, prompt: str = "p") -> Request:
    media = tuple(Media(0, "image/png", bytes([n % 256]) * size, sha256=str(n)) for n, size in enumerate(sizes))
    return Request("s", prompt, {}, 10, media=media)


def test_what_goes_by_file_is_what_is_over_the_threshold_then_the_largest_until_the_rest_fits() -> None:
    assert by_file(request(10, 20), None) == []
    assert [len(m.data) for m in by_file(request(6_000_000, 100), GEMINI)] == [6_000_000]
    four = request(4_000_000, 4_000_000, 4_900_000, 4_000_000, 1_000)  # 22.6 MB encoded inline
    assert [len(m.data) for m in by_file(four, GEMINI)] == [4_900_000]  # then 16 MB stays inline


def test_an_upload_refused_for_its_key_stops_the_run_without_the_key(tmp_path: Path, cache_dir: Path) -> None:
    rows = photos(tmp_path / "photos", 4)
    with GeminiStub() as stub:
        stub.fail_api("files.upload", Error(400, "API key not valid. Please pass a valid API key."))
        with pytest.raises(FatalProviderError, match="API key not valid") as stopped:
            run(stub, rows, tmp_path, cache_dir)
        assert "test-key" not in str(stopped.value)
        assert len(generated(stub)) == 0  # the pack waiting on its upload was never sent
