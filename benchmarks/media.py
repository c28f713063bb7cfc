"""Image rows: enrichkit's own overhead per row (read, hash, pack, encode) and its peak memory.

    PYTHONPATH=src .venv/bin/python benchmarks/media.py [ROWS] [KB]      # default 1,000 rows of 100 KB
    PYTHONPATH=src .venv/bin/python benchmarks/media.py --memory [ROWS] [KB]   # default 1,000 rows of 1 MB

Each run writes ROWS distinct PNG files of about KB kilobytes in a temp folder and enriches them on an
instant provider at the seam (``FunctionProvider``) whose function does the wire's work, encoding each
request's media as the OpenAI body does (base64 data URLs, the body serialised to JSON), and answers from
the records' ids: what is timed is enrichkit's part alone (the files read and hashed, packs formed, media
read again and encoded, answers checked and cached). It prints the rows per second of a fresh run, and of
the key phase alone (reading and hashing).

``--memory`` runs the same in a child process and prints its peak resident memory (``ru_maxrss``), with the
memory it had once imported, so the figure is the run's, not the input's: the media of a pack are read when
its request is made and freed once answered (``engine.media_room`` bounds those in flight).

``--batch-memory`` does the same in batch mode, through the real google-genai SDK against the Gemini stub
(served by this process, so the child's peak is enrichkit's and the SDK's alone): a job's JSONL file, media
inline, written and uploaded while the child's peak is taken (default 200 rows of 1 MB: a 270 MB file).

    PYTHONPATH=src .venv/bin/python benchmarks/media.py --batch-memory [ROWS] [KB]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from enrichkit import RunOptions, Task, enrich
from enrichkit.providers.base import Capabilities, Request
from enrichkit.providers.function import FunctionProvider, ids_of
from enrichkit.providers.media_cost import OPENAI
from enrichkit.providers.openai import content
from enrichkit.rows.keys import key_rows
from enrichkit.rows.media import MediaReader
from enrichkit.testing.media import COLOURS, png

TASK = Task.from_columns("Name the photo's colour.", ["title", "photo:image"], [f"colour: {'|'.join(COLOURS)}"])


def photos(folder: Path, rows: int, kb: int) -> list[dict[str, Any]]:
    """``rows`` distinct PNGs of about ``kb`` KB (a red square and noise, which does not compress)."""
    folder.mkdir(parents=True, exist_ok=True)
    base = png(64, 64, COLOURS["red"], noise=kb * 1000)
    out = []
    for n in range(rows):
        (folder / f"{n}.png").write_bytes(base + n.to_bytes(4, "big"))  # bytes after IEND: another file
        out.append({"title": f"Photo {n}", "photo": f"photos/{n}.png"})
    return out


def answer(request: Request) -> list[dict[str, Any]]:
    """The wire's work (the OpenAI body of the request, as JSON), then an answer for every id."""
    body = json.dumps({"messages": [{"role": "user", "content": content(request)}]})
    del body
    return [{"id": rid, "echo": "", "colour": "red"} for rid in ids_of(request)]


def provider() -> FunctionProvider:
    return FunctionProvider(answer, capabilities=Capabilities(media=OPENAI), record=False)


def run(folder: Path, rows: list[dict[str, Any]]) -> float:
    """Seconds to enrich ``rows`` from an empty cache."""
    options = RunOptions(provider=provider(), cache_dir=folder / "cache", media_root=folder, echo=False, log=False)
    started = time.perf_counter()
    result = enrich(rows, TASK, options, progress=False)
    took = time.perf_counter() - started
    assert result.stats.enriched == len(rows), result.stats
    return took


def overhead(rows_n: int, kb: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = photos(folder / "photos", rows_n, kb)
        started = time.perf_counter()
        key_rows(rows, TASK, "fingerprint", media=MediaReader(folder))
        keyed = time.perf_counter() - started
        took = run(folder, rows)
    print(f"{rows_n:,} image rows of ~{kb} KB (PNG, each file distinct)")
    print(f"  read + hash (key phase):          {rows_n / keyed:8,.0f} rows/s ({keyed:.2f} s)")
    print(f"  whole run, instant provider:      {rows_n / took:8,.0f} rows/s ({took:.2f} s)")
    print("  (target: >= 200 image rows/s for 100 KB images; 2 shared cores: wall-clock figures are noisy)")


def batch_run(folder: Path, rows: list[dict[str, Any]]) -> None:
    """Enrich ``rows`` in one Gemini batch job on the stub at ``$BENCH_GEMINI_URL``."""
    from enrichkit.providers.gemini import gemini_provider

    provider = gemini_provider("gemini-2.5-flash", base_url=os.environ["BENCH_GEMINI_URL"])
    options = RunOptions(
        provider=provider, cache_dir=folder / "cache", media_root=folder, echo=False, log=False, mode="batch", poll=0.01
    )
    result = enrich(rows, TASK, options, progress=False)
    assert result.stats.enriched == len(rows), result.stats


def child(rows_n: int, kb: int, *, batch: bool = False) -> None:
    """Runs in the child: the peak resident memory after the imports, and after the run (MB)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = photos(folder / "photos", rows_n, kb)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        (batch_run if batch else run)(folder, rows)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"imported_mb": before, "peak_mb": after}))


def memory(rows_n: int, kb: int, *, batch: bool = False) -> None:
    env = dict(os.environ)
    stub = None
    if batch:
        from enrichkit.testing import GeminiStub

        stub = GeminiStub().start()
        env |= {"BENCH_GEMINI_URL": stub.url, "GEMINI_API_KEY": "stub"}
    try:
        done = subprocess.run(
            [sys.executable, __file__, "--batch-child" if batch else "--child", str(rows_n), str(kb)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
    finally:
        if stub is not None:
            stub.stop()
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    total_mb = rows_n * kb / 1000
    print(
        f"{rows_n:,} image rows of ~{kb} KB ({total_mb:,.0f} MB of images){', one Gemini batch job' if batch else ''}"
    )
    print(f"  peak resident memory: {figures['peak_mb']:.0f} MB (after the imports: {figures['imported_mb']:.0f} MB)")
    print("  (target: <= 300 MB for 1,000 rows of 1 MB)" if not batch else "  (bounded by a request, not the job)")


def main(argv: list[str]) -> None:
    mode = argv[0] if argv and argv[0].startswith("--") else ""
    numbers = [int(a) for a in argv[1 if mode else 0 :]]
    if mode in ("--child", "--batch-child"):
        child(*numbers, batch=mode == "--batch-child")
    elif mode == "--memory":
        memory(*(numbers or [1000, 1000]))
    elif mode == "--batch-memory":
        memory(*(numbers or [200, 1000]), batch=True)
    else:
        overhead(*(numbers or [1000, 100]))


if __name__ == "__main__":
    main(sys.argv[1:])
