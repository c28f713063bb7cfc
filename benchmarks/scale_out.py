"""Past one machine: Ray Data actors and worker processes on one Redis, against the Gemini stub.

    PYTHONPATH=src .venv/bin/python benchmarks/scale_out.py [PART ...]   # all parts: about 10 minutes

Every part starts its own redis-server (``--save ''``) and Gemini stub; Ray parts a local Ray cluster of 4
logical CPUs (the actors wait on the network; the machine's cores are what they are: see ``uptime``).

dedupe     10,000 rows, 20 % of them copies of rows in another partition (25 partitions of 400 rows: 320
           rows of their own, 80 copies, shuffled), 4 actors, stub at 0.2 s a call. "far": the copies'
           rows are 12 partitions away (enriched at another moment); "near": in the next partition
           (enriched at the same moment, so leases decide); "killed": far, one actor SIGKILLed at the
           150th call. Each then re-run whole. Ideal: ceil(8,000 unique rows / 20) = 400 calls.
rate       4 actors at rpm=300 against a stub that answers 429 above 300 calls in any 60 s; 18,000 rows
           (900 calls). The bound: the last 300 calls may start only 2 windows (120 s) after the first.
overhead   rows/s of enrichkit.integrations.ray.enrich for 1, 2 and 4 actors, 20,000 rows, stub at zero latency in
           its own process, a fresh Redis cache: wall from the call to the last row, actors' start included.
cache      the Redis cache's cost per row beside diskcache's (RowCache in a temp folder): 20,000 rows
           put and got in packs of 20 (a run's write and its look before a pack), got in one bulk
           read (a run's first look), and a lease per pack.
processes  separate processes (``enrich`` each, concurrency 4) on one Redis: rows paid twice when each
           row is in two workers' inputs (leases, no leases, one cache folder), and the most calls in
           any window under one limit shared in Redis vs one limiter each (40 calls per 5 s: 600 a minute
           scaled to 1/12; a process's first calls reach the stub ~0.1 s late, on a cold connection, more
           than the limiter's 2 % margin of a 5 s window, hence the figure in any 4.9 s too).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from enrichkit.cache.base import Cache
from enrichkit.cache.entry import Entry
from enrichkit.cache.folder import RowCache
from enrichkit.cache.redis import RedisCache
from enrichkit.testing import Asked, GeminiStub

ROOT = Path(__file__).resolve().parent.parent
TASK = str(ROOT / "schemas" / "roadmap-topic.json")
ENV = {"GEMINI_API_KEY": "bench", "NO_PROXY": "127.0.0.1,localhost"}
PARTS = ("dedupe", "rate", "overhead", "cache", "processes")


def row(i: int, row_id: str | None = None) -> dict[str, Any]:
    return {"id": row_id or f"r{i}", "category": f"Area {i % 7}", "topic": f"Topic {i}", "description": f"Row {i}."}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def redis_server() -> Iterator[str]:
    """A fresh redis-server's URL, stopped after."""
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        server = subprocess.Popen([*args, "--dir", folder], stdout=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        try:
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            yield url
        finally:
            client.close()
            server.terminate()
            server.wait()


@contextmanager
def stub_process(**flags: float) -> Iterator[str]:
    """The Gemini stub in a process of its own (so that it does not share the driver's GIL)."""
    port = free_port()
    args = [f"--{k.replace('_', '-')}={v}" for k, v in flags.items()]
    stub = subprocess.Popen(
        [sys.executable, "-m", "enrichkit.testing", "--port", str(port), *args], stdout=subprocess.PIPE, text=True
    )
    assert stub.stdout is not None
    stub.stdout.readline()  # listening
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stub.terminate()
        stub.wait()


@contextmanager
def ray_cluster() -> Iterator[Any]:
    import ray

    ray.init(num_cpus=4, include_dashboard=False, runtime_env={"env_vars": ENV}, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        yield ray
    finally:
        ray.shutdown()


@dataclass
class Job:
    wall: float  # seconds from the call to the last row
    ok: int  # rows that came back without an error
    first: float  # seconds to the first batch out (the actors' start, and a batch)
    first_rows: int  # rows in that batch
    errors: set[str]  # why rows failed


def ray_job(ray: Any, rows: list[dict[str, Any]], blocks: int, actors: int, **options: Any) -> Job:
    """Enrich ``rows`` on ``actors`` actors."""
    import enrichkit.integrations.ray

    started = time.monotonic()
    data = ray.data.from_items(rows, override_num_blocks=blocks)
    out = enrichkit.integrations.ray.enrich(data, TASK, actors=actors, provider="gemini", **options)
    job = Job(0.0, 0, 0.0, 0, set())
    count = 0
    batches: Iterator[Any] = iter(out.iter_batches(batch_size=None, batch_format="pandas"))
    for batch in batches:
        if not count:
            job.first, job.first_rows = time.monotonic() - started, len(batch)
        count += len(batch)
        errors = batch["_enrichkit_error"].dropna()
        job.ok += len(batch) - len(errors)
        job.errors.update(errors)
    job.wall = time.monotonic() - started
    assert count == len(rows)
    return job


# -- dedupe ------------------------------------------------------------------------------------------

BLOCKS, PER_BLOCK, OWN = 25, 400, 320


def with_copies(distance: int) -> list[dict[str, Any]]:
    """25 partitions of 320 rows of their own and 80 copies (other ids) of rows ``distance`` partitions on."""
    import random

    shuffle = random.Random(16)
    rows: list[dict[str, Any]] = []
    for b in range(BLOCKS):
        source = (b + distance) % BLOCKS
        block = [row(b * OWN + j) for j in range(OWN)]
        block += [row(source * OWN + j, f"copy{b}-{j}") for j in range(PER_BLOCK - OWN)]
        shuffle.shuffle(block)
        rows += block
    return rows


def actor_pids() -> list[int]:
    """The processes of Ray Data's actors (their title: ``ray::MapWorker(...)``)."""
    pids = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                if f.read().startswith(b"ray::MapWorker"):
                    pids.append(int(name))
        except (OSError, ValueError):
            continue
    return pids


def kill_an_actor_at(stub: GeminiStub, nth: int, killed: list[int]) -> Callable[[Asked], bool]:
    """A stub rule (it changes no answer) that SIGKILLs one actor when the ``nth`` call arrives; ``killed``
    gets the calls received in the last call's time (the calls in flight, all actors together)."""

    def rule(call: Asked) -> bool:
        if len(stub.generate_calls) == nth and not killed and (pids := actor_pids()):
            now = time.monotonic()
            os.kill(pids[0], signal.SIGKILL)
            killed.append(sum(c.received > now - stub.latency for c in stub.generate_calls))
        return False

    return rule


def dedupe() -> None:
    print("dedupe: 10,000 rows (8,000 unique, 2,000 copies across partitions), 4 actors, one Redis, 0.2 s a call")
    unique = BLOCKS * OWN
    ideal = math.ceil(unique / 20)
    with ray_cluster() as ray:
        for label, distance, kill in [("far", 12, False), ("near", 1, False), ("killed", 12, True)]:
            with redis_server() as url, GeminiStub(latency=0.2) as stub:
                killed: list[int] = []
                if kill:
                    stub.rule(lambda call: None, when=kill_an_actor_at(stub, 150, killed))
                rows = with_copies(distance)
                job = ray_job(ray, rows, BLOCKS, 4, cache=url, base_url=stub.url)
                calls = len(stub.generate_calls)
                sent = sum(len(c.records) for c in stub.generate_calls)
                again = ray_job(ray, rows, BLOCKS, 4, cache=url, base_url=stub.url)
                calls_again = len(stub.generate_calls) - calls
            note = f", one actor killed with {killed[0]} calls in flight (all actors)" if killed else ""
            print(
                f"  {label:6} {job.ok:,} of {len(rows):,} rows enriched, {calls} calls (ideal {ideal}), {sent:,} rows"
                f" sent for {unique:,} unique, {job.wall:.1f} s{note}; re-run: {again.ok:,} rows, {calls_again}"
                f" calls, {again.wall:.1f} s"
            )


# -- rate --------------------------------------------------------------------------------------------


def rate(rows_count: int) -> None:
    rpm = 300
    calls = math.ceil(rows_count / 20)
    bound = (math.ceil(calls / rpm) - 1) * 60.0
    print(f"rate: 4 actors at rpm={rpm}, {rows_count:,} rows ({calls} calls), stub: 429 above {rpm} calls in 60 s")
    rows = [row(i) for i in range(rows_count)]
    with ray_cluster() as ray, redis_server() as url, GeminiStub(rpm=rpm, window=60.0, latency=0.05) as stub:
        job = ray_job(ray, rows, rows_count // 400, 4, cache=url, base_url=stub.url, rpm=rpm)
        times = sorted(c.received for c in stub.generate_calls)
        print(
            f"  {job.ok:,} rows enriched, {len(times)} calls, {stub.rate_limited} answered 429; wall {job.wall:.1f} s,"
            f" the rate-limit bound {bound:.0f} s: {job.wall / bound:.3f} x; from the first call to the last"
            f" {times[-1] - times[0]:.1f} s ({(times[-1] - times[0]) / bound:.3f} x)"
        )


# -- overhead ----------------------------------------------------------------------------------------


def overhead(rows_count: int) -> None:
    print(f"overhead: {rows_count:,} rows, stub at zero latency in its own process, a fresh Redis cache each")
    rows = [row(i) for i in range(rows_count)]
    with ray_cluster() as ray, stub_process(latency=0) as stub:
        for actors in (1, 2, 4):
            with redis_server() as url:
                job = ray_job(ray, rows, rows_count // 400, actors, cache=url, base_url=stub)
            assert job.ok == rows_count, job.errors
            after = (rows_count - job.first_rows) / (job.wall - job.first)
            print(
                f"  {actors} actor{'s' if actors > 1 else ' '}  {job.wall:5.1f} s  {rows_count / job.wall:6,.0f}"
                f" rows/s; after the first batch out ({job.first:.1f} s): {after:6,.0f} rows/s"
            )


# -- cache -------------------------------------------------------------------------------------------


def cache_costs(rows_count: int) -> None:
    print(f"cache: {rows_count:,} rows, microseconds a row (Redis on loopback; diskcache in a temp folder)")
    values = {"tldr": "a short answer", "challenge": "practice"}
    entries = {f"{i:064x}": Entry(values, "m", 30.0, 12.0) for i in range(rows_count)}
    with redis_server() as url, tempfile.TemporaryDirectory() as folder:
        caches: list[tuple[str, Cache]] = [("redis", RedisCache(url)), ("diskcache", RowCache(folder))]
        for label, cache in caches:
            figures = costs(cache, entries)
            cache.close()
            print(f"  {label:9}  " + "   ".join(f"{k} {v / rows_count * 1e6:5.1f}" for k, v in figures.items()))


def costs(cache: Cache, entries: dict[str, Entry]) -> dict[str, float]:
    """Seconds to lease, put and get ``entries`` in packs of 20, and to get them all at once."""
    keys = list(entries)
    packs = [{k: entries[k] for k in keys[i : i + 20]} for i in range(0, len(keys), 20)]
    seconds: dict[str, float] = {}
    with clock(seconds, "lease (a pack)"):
        for pack in packs:
            cache.lease(list(pack))
    with clock(seconds, "put (packs of 20)"):
        for pack in packs:
            cache.put_many(pack)
    with clock(seconds, "get (packs of 20)"):
        for pack in packs:
            cache.get_many(pack)
    with clock(seconds, "get (bulk)"):
        cache.get_many(keys)
    return seconds


@contextmanager
def clock(seconds: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    seconds[name] = time.perf_counter() - started


# -- processes (worker processes, no Ray) ------------------------------------------------------------

WINDOW, LIMIT = 5.0, 40
WORKER = """
import json, sys
from enrichkit import enrich
from enrichkit.calls.limits import RateLimiter
from enrichkit.cache.redis import RedisCache
from enrichkit.calls.redis_limit import RedisRateLimiter
job = json.loads(sys.argv[1])
if job["no_leases"]:
    RedisCache.lease = lambda self, keys: []
options = {"cache": job["url"]} if job["cache"] == "redis" else {"cache_dir": job["folder"]}
if job["limit"] == "shared":
    options["limiter"] = RedisRateLimiter(job["url"], rpm=job["rpm"], window=job["window"], name="bench")
elif job["limit"] == "each":
    options["limiter"] = RateLimiter(rpm=job["rpm"], window=job["window"])
rows = [{"id": f"r{i}", "category": f"Area {i % 7}", "topic": f"Topic {i}", "description": f"Row {i}."}
        for i in range(job["start"], job["stop"])]
result = enrich(rows, job["task"], base_url=job["stub"], provider="gemini", concurrency=4, progress=False, **options)
print(json.dumps({"enriched": result.stats.enriched, "hits": result.stats.cache_hits}))
"""


def run_workers(stub: GeminiStub, jobs: list[dict[str, Any]]) -> None:
    env = {**os.environ, **ENV}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, json.dumps({**job, "task": TASK, "stub": stub.url})],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for job in jobs
    ]
    for w in workers:
        w.communicate(timeout=600)


def processes(workers: int) -> None:
    print(f"processes: {workers} workers; worker k gets rows [150k, 150k + 300): each row but 300 in two workers")
    with tempfile.TemporaryDirectory() as tmp:
        for label, cache, no_leases in [
            ("redis, leases", "redis", False),
            ("redis, no leases", "redis", True),
            ("one cache folder", "folder", False),
        ]:
            with redis_server() as url, GeminiStub(latency=0.3) as stub:
                base = {"url": url, "folder": f"{tmp}/{label}", "cache": cache, "no_leases": no_leases, "limit": None}
                run_workers(stub, [base | {"start": k * 150, "stop": k * 150 + 300} for k in range(workers)])
                sent = sum(len(call.records) for call in stub.generate_calls)
            distinct = 150 * (workers + 1)
            print(f"  {label:18} {sent - distinct:4} of {distinct} distinct rows paid twice")
    print(f"processes: {workers} workers, each 400 rows of its own (20 calls), limit {LIMIT} calls per {WINDOW:g} s:")
    for label, limit in [("shared in Redis", "shared"), ("one limiter each", "each")]:
        with redis_server() as url, GeminiStub(latency=0.05) as stub:
            base = {"url": url, "cache": "redis", "no_leases": False, "limit": limit, "rpm": LIMIT, "window": WINDOW}
            run_workers(
                stub, [base | {"start": 10_000 * (k + 1), "stop": 10_000 * (k + 1) + 400} for k in range(workers)]
            )
            times = sorted(c.received for c in stub.generate_calls)
        most, inner = (max(sum(1 for t in times if s <= t < s + w) for s in times) for w in (WINDOW, WINDOW * 0.98))
        print(f"  {label:18} at most {most:3} calls in any {WINDOW:g} s, {inner:3} in any {WINDOW * 0.98:g} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", metavar="PART", help=f"of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--rate-rows", type=int, default=18_000)
    parser.add_argument("--overhead-rows", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=4, help="processes: how many")
    args = parser.parse_args()
    if unknown := set(args.parts) - set(PARTS):
        parser.error(f"unknown part {sorted(unknown)[0]!r} (parts: {', '.join(PARTS)})")
    print(f"load average {os.getloadavg()[0]:.2f} at the start")
    for part in args.parts or PARTS:
        if part == "dedupe":
            dedupe()
        elif part == "rate":
            rate(args.rate_rows)
        elif part == "overhead":
            overhead(args.overhead_rows)
        elif part == "cache":
            cache_costs(20_000)
        else:
            processes(args.workers)
        print(f"  (load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
