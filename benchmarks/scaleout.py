"""Many workers on one Redis: rows paid twice on overlapping inputs, and the total rate under one limit.

    PYTHONPATH=src .venv/bin/python benchmarks/scaleout.py [--workers 4]

Each worker is its own process (``enrich`` on its rows, concurrency 4, packs of 20) against one Gemini
stub (0.3 s a call) and a redis-server this script starts. Paid twice: worker k gets rows
[k*150, k*150+300), so each row but the first and last 150 is in two workers; on a Redis cache with
leases, on a Redis cache without (``lease`` patched to take nothing), and on one cache folder. Rate:
every worker enriches 400 rows of its own (20 calls), limited to 40 requests per 5 s window (600 a minute, scaled
to 1/12), by a limiter shared through Redis, and by one limiter each; the figure is the most calls the
stub saw in any 5 s, and in any 4.9 s: a process's first calls reach the stub ~0.1 s later than
the rest (a cold connection), more than the limiter's 2 % margin of a 5 s window (1.2 s of a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from enrichkit.testing import GeminiStub

ROOT = Path(__file__).resolve().parent.parent
TASK = str(ROOT / "schemas" / "roadmap-topic.json")
WINDOW, LIMIT = 5.0, 40
WORKER = """
import json, sys
from enrichkit import enrich
from enrichkit.limiter import RateLimiter
from enrichkit.redis_cache import RedisCache
from enrichkit.shared_limit import RedisRateLimiter
job = json.loads(sys.argv[1])
if job["no_leases"]:
    RedisCache.lease = lambda self, keys: []
options = {"cache": job["url"]} if job["cache"] == "redis" else {"cache_dir": job["folder"]}
if job["limit"] == "shared":
    options["limiter"] = RedisRateLimiter(job["url"], rpm=job["rpm"], window=job["window"], name="bench")
elif job["limit"] == "each":
    options["limiter"] = RateLimiter(rpm=job["rpm"], window=job["window"])
rows = [{"id": f"r{i}", "category": f"Area {i % 7}", "topic": f"Topic {i}", "description": f"Row {i} text."}
        for i in range(job["start"], job["stop"])]
result = enrich(rows, job["task"], base_url=job["stub"], provider="gemini", concurrency=4, progress=False, **options)
print(json.dumps({"enriched": result.stats.enriched, "hits": result.stats.cache_hits}))
"""


def redis_server(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(folder),
    ]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    time.sleep(0.3)
    return process, f"redis://127.0.0.1:{port}/0"


def run_workers(stub: GeminiStub, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    env = {**os.environ, "GEMINI_API_KEY": "bench", "NO_PROXY": "127.0.0.1,localhost"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps({**job, "task": TASK, "stub": stub.url})],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for job in jobs
    ]
    return [json.loads(w.communicate(timeout=600)[0]) for w in workers]


def paid_twice(url: str, folder: Path, workers: int, cache: str, no_leases: bool) -> tuple[int, int]:
    """Rows sent in all, less the distinct rows: what overlapping workers paid twice."""
    with GeminiStub(latency=0.3) as stub:
        jobs = [
            {"url": url, "folder": str(folder), "cache": cache, "no_leases": no_leases, "limit": None}
            | {"start": k * 150, "stop": k * 150 + 300}
            for k in range(workers)
        ]
        run_workers(stub, jobs)
        sent = sum(len(call.records) for call in stub.generate_calls)
    distinct = 150 * (workers + 1)
    return sent - distinct, distinct


def most_calls_in_a_window(url: str, workers: int, limit: str) -> tuple[int, int, float]:
    with GeminiStub(latency=0.05) as stub:
        jobs = [
            {"url": url, "cache": "redis", "no_leases": False, "limit": limit, "rpm": LIMIT, "window": WINDOW}
            | {"start": 10_000 * (k + 1), "stop": 10_000 * (k + 1) + 400}
            for k in range(workers)
        ]
        started = time.monotonic()
        run_workers(stub, jobs)
        seconds = time.monotonic() - started
        times = sorted(c.received for c in stub.generate_calls)
    most, inner = (max(sum(1 for t in times if s <= t < s + w) for s in times) for w in (WINDOW, WINDOW * 0.98))
    return most, inner, len(times) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    workers = parser.parse_args().workers
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{workers} workers, overlapping rows (each row but 300 in two workers):")
        for label, cache, no_leases in [
            ("redis, leases", "redis", False),
            ("redis, no leases", "redis", True),
            ("one cache folder", "folder", False),
        ]:
            server, url = redis_server(Path(tmp))
            twice, distinct = paid_twice(url, Path(tmp) / label, workers, cache, no_leases)
            server.terminate()
            server.wait()
            print(f"  {label:18} {twice:4} of {distinct} distinct rows paid twice")
        print(f"{workers} workers, each 400 rows of its own (20 calls), limit {LIMIT} calls per {WINDOW:g} s:")
        for label, limit in [("shared in Redis", "shared"), ("one limiter each", "each")]:
            server, url = redis_server(Path(tmp))
            most, inner, rate = most_calls_in_a_window(url, workers, limit)
            server.terminate()
            server.wait()
            print(
                f"  {label:18} at most {most:3} calls in any {WINDOW:g} s, {inner:3} in any {WINDOW * 0.98:g} s"
                f" ({rate * 60:.0f} calls a minute overall)"
            )


if __name__ == "__main__":
    main()
