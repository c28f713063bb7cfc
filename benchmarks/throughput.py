"""Throughput of enrichkit against a rate-limited Gemini stub, next to the designs it replaces.

    .venv/bin/python benchmarks/throughput.py            # the full table (about 6 minutes)
    .venv/bin/python benchmarks/throughput.py --quick    # 1,000 rows only, no baselines at 10,000
    .venv/bin/python benchmarks/throughput.py --overhead # only enrichkit's own cost at 100,000 rows
    .venv/bin/python benchmarks/throughput.py --million  # and 1,000,000 rows file to file (bounded memory)
    .venv/bin/python benchmarks/throughput.py --overhead --json  # file to file, median of 3, one JSON line
    .venv/bin/python benchmarks/throughput.py --window   # 30 requests per 6 s window at 0.4 s (--runs N, default 3)
    .venv/bin/python benchmarks/throughput.py --window --runs 5 --against 78f5b5f  # and that revision's, interleaved
    .venv/bin/python benchmarks/throughput.py --check    # the check of a 1,000,000-line JSONL file before a run
    .venv/bin/python benchmarks/throughput.py --startup  # where a run's start-up goes, before its first call
    .venv/bin/python benchmarks/throughput.py --startup --runs 9 --against f32b0bb  # and the whole command's

The stub (``python -m enrichkit.testing``) runs in its own process and answers like Gemini:
0.8 s + 5 ms per output token + up to 0.2 s jitter, and a 429 with RetryInfo above RPM requests a
minute. Rows are synthetic. Every figure printed is measured in this run, except lines marked
"projected", which scale a measured figure (they would take over half an hour to run).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from enrichkit import Task, aenrich
from enrichkit.cli.flags import CliOptions
from enrichkit.cli.runner import run_job
from enrichkit.options import RunOptions
from enrichkit.providers.base import Capabilities, Reply, Request, Usage
from enrichkit.providers.gemini import make_client
from enrichkit.result import Stats
from enrichkit.rows.files import iter_rows
from enrichkit.rows.precheck import check_input
from enrichkit.testing import FunctionProvider, ids_of

ROOT = Path(__file__).resolve().parent.parent
TASK_FILE = ROOT / "schemas" / "roadmap-topic.json"
TASK = Task.from_file(TASK_FILE)
STATS = {f.name for f in dataclasses.fields(Stats)} - {"by_model", "audit", "pack_size", "jobs"}
RPM = 600
LATENCY, PER_TOKEN, JITTER = 0.8, 0.005, 0.2


def iter_synthetic_rows(n: int) -> Iterator[dict[str, Any]]:
    """``n`` rows one at a time (writing a big input file this way does not count in peak RSS)."""
    for i in range(n):
        yield {
            "id": f"row-{i}",
            "category": f"Area {i % 37}",
            "topic": f"Topic {i}",
            "description": f"Row {i} describes a practice that teams adopt to ship software safely and often.",
        }


def synthetic_rows(n: int) -> list[dict[str, Any]]:
    return list(iter_synthetic_rows(n))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stub:
    """``python -m enrichkit.testing`` in a child process (a fresh rate-limit window each time)."""

    def __init__(
        self,
        latency: float,
        per_token: float,
        jitter: float,
        rpm: int | None,
        window: float = 60.0,
        fixed: bool = False,
    ) -> None:
        self.port = free_port()
        args = ["--port", str(self.port), "--latency", str(latency), "--per-output-token", str(per_token)]
        args += ["--jitter", str(jitter), "--window", str(window)] + (["--rpm", str(rpm)] if rpm else [])
        args += ["--fixed-window"] if fixed else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "enrichkit.testing", *args], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.process.stdout.readline()  # "listening on ..."

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def live(
    n: int, *, pack_size: int, concurrency: int | None, rpm: int | None, latency: bool = True, **options: Any
) -> dict[str, Any]:
    """One clean run (empty cache) against a fresh stub; ``options`` go to ``aenrich`` (``mode=``, ...)."""
    stub = Stub(LATENCY, PER_TOKEN, JITTER, RPM) if latency else Stub(0, 0, 0, None)
    try:
        with tempfile.TemporaryDirectory() as cache:
            client = make_client(api_key="benchmark", base_url=stub.url)
            result = asyncio.run(
                aenrich(
                    synthetic_rows(n),
                    TASK,
                    client=client,
                    pack_size=pack_size,
                    concurrency=concurrency,
                    rpm=rpm,
                    cache_dir=cache,
                    progress=False,
                    **options,
                )
            )
    finally:
        stub.stop()
    s = result.stats
    assert s.enriched == n, f"{s.failed} rows failed"
    return {
        "rows": n,
        "calls": s.calls,
        "retries": s.retries,
        "prompt_tokens": s.prompt_tokens,
        "output_tokens": s.output_tokens,
        "seconds": s.seconds,
        "jobs": len(s.jobs),
    }


def instant(request: Request) -> Reply:
    """Answer at once, in process: what is left is enrichkit's own overhead."""
    values = {"tldr": "A short summary of this topic.", "challenge": "practice"}
    if not ids_of(request):
        return Reply(json.dumps(values), usage=Usage(len(request.prompt) // 4, 12))
    items = [{"id": rid, **values} for rid in ids_of(request)]  # no echo: a task with free text does not ask it
    return Reply(json.dumps(items), usage=Usage(len(request.prompt) // 4, 12 * len(items)))


def instant_provider() -> FunctionProvider:
    capabilities = Capabilities(concurrency=8, timeout=None)
    return FunctionProvider(instant, name="instant", model="instant", capabilities=capabilities, record=False)


def _pss_kb(pid: int | str) -> int:
    """A process's proportional set size (its pages, each shared page divided among its sharers), 0 if gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            return next(int(line.split()[1]) for line in rollup if line.startswith("Pss:"))
    except (OSError, StopIteration):
        return 0


def _children() -> list[str]:
    pids: list[str] = []
    for task in os.listdir("/proc/self/task"):
        try:
            pids += Path(f"/proc/self/task/{task}/children").read_text().split()
        except OSError:
            continue
    return pids


class TreeMemory:
    """The peak of this process's and its children's summed PSS, sampled every 50 ms in a thread: the memory
    a run with forked processes holds (their RSS summed would count each page they share once per process)."""

    def __init__(self) -> None:
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            if children := _children():  # else this process's ru_maxrss says it all
                self.peak_kb = max(self.peak_kb, _pss_kb("self") + sum(map(_pss_kb, children)))

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_kb


def child(kind: str, n: int, folder: str) -> None:
    """Run in a child process (so peak RSS is this run's alone) and print the figures as JSON.

    ``memory``: rows in a list through ``aenrich`` (enrichkit's own cost). ``file``: what the CLI does
    (``run_job``): a JSONL file read, enriched and written to CSV a chunk at a time, or, on a cached re-run,
    swept by one process per core (``enrichkit.output.sweep``).
    """
    cache = Path(folder) / "cache"
    tree_kb = 0
    started, cpu_before = time.perf_counter(), time.process_time()
    if kind.startswith("memory"):
        stats = asyncio.run(
            aenrich(synthetic_rows(n), TASK, provider=instant_provider(), cache_dir=cache, progress=False)
        ).stats
    else:
        source = Path(folder) / "rows.jsonl"
        if not source.exists():
            with source.open("w", encoding="utf-8") as out:
                out.writelines(json.dumps(row) + "\n" for row in iter_synthetic_rows(n))
        started, cpu_before = time.perf_counter(), time.process_time()
        tree = TreeMemory()
        report = Path(folder) / "report.json"
        options = RunOptions(provider=instant_provider(), cache_dir=cache)
        code = run_job(iter_rows(source), TASK_FILE, Path(folder) / "out.csv", options,
                       CliOptions(report=report, quiet=True, source=source))  # fmt: skip
        assert code == 0, f"exit code {code}"
        stats = Stats(**{k: v for k, v in json.loads(report.read_text()).items() if k in STATS})
        tree_kb = tree.stop()
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    forked = resource.getrusage(resource.RUSAGE_CHILDREN)  # a swept re-run's processes (ru_maxrss: the largest)
    cpu = usage.ru_utime + usage.ru_stime + forked.ru_utime + forked.ru_stime - cpu_before
    # this process's peak RSS; with forked processes (a swept re-run), the sampled peak of their summed PSS
    peak = max(usage.ru_maxrss, tree_kb) / 1024
    print(json.dumps({"kind": kind, "rows": n, "calls": stats.calls, "hits": stats.cache_hits, "seconds": seconds,
                      "cpu_seconds": round(cpu, 2), "peak_mb": peak}))  # fmt: skip


def in_child(kind: str, n: int, folder: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(n), folder], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout))


def overhead(kind: str, n: int) -> None:
    """A fresh run with the instant provider, then its cached re-run, in child processes."""
    with tempfile.TemporaryDirectory() as folder:
        fresh = in_child(f"{kind}-fresh", n, folder)
        print(f"{kind + ', fresh':<15} {n:>9,} {fresh['calls']:>7,} {fresh['seconds']:>8.1f}"
              f" {n / fresh['seconds']:>8,.0f} {fresh['peak_mb']:>8.0f}", flush=True)  # fmt: skip
        again = in_child(f"{kind}-cached", n, folder)
        print(f"{kind + ', cached':<15} {n:>9,} {again['calls']:>7,} {again['seconds']:>8.1f}"
              f" {n / again['seconds']:>8,.0f} {again['peak_mb']:>8.0f}", flush=True)  # fmt: skip


def overhead_json(n: int, runs: int = 3) -> None:
    """File to file (JSONL in, CSV out): the median rows/s of ``runs`` fresh runs and their cached re-runs."""
    fresh, cached, peak = [], [], 0.0
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as folder:
            first = in_child("file-fresh", n, folder)
            again = in_child("file-cached", n, folder)
        fresh.append(n / first["seconds"])
        cached.append(n / again["seconds"])
        peak = max(peak, first["peak_mb"], again["peak_mb"])
    figures = {
        "fresh_rows_per_s": round(statistics.median(fresh)),
        "cached_rows_per_s": round(statistics.median(cached)),
    }
    print(json.dumps({**figures, "peak_rss_mb": round(peak), "rows": n}))


def byte_compiled() -> None:
    """Compile enrichkit's modules once, as an installed package is: an editable install under
    ``PYTHONDONTWRITEBYTECODE=1`` (this machine's environment) compiles them from source at every start."""
    source = Path(__file__).resolve().parents[1] / "src" / "enrichkit"
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(source)], check=True)
    print(f"(enrichkit's modules byte-compiled first, as an installed package's are: {source})")


def window_limited(fixed: bool, runs: int = 3, against: str | None = None) -> None:
    """1,000 rows against a stub allowing 30 requests per 6 s window at 0.4 s a call, default settings: the
    ``enrichkit run`` command in a child process, timed from its start (start-up included) to its exit; its
    CPU seconds too (user + system: what a loaded machine's wall clock blurs), and min / median / max.
    ``against``: a git revision whose ``src`` runs too, each run of it just before this tree's (old, new)."""
    byte_compiled()
    rpm, window, latency, n = 30, 6.0, 0.4, 1_000
    calls = math.ceil(n / 20)
    bound = (math.ceil(calls / rpm) - 1) * window + latency
    kind = "fixed" if fixed else "sliding"
    print(f"stub: {rpm} requests per {window:g} s ({kind} window), {latency} s a call; {n:,} rows; bound {bound:.1f} s")
    print(f"{'tree':<8} {'run':>3} {'calls':>6} {'429s':>5} {'command':>7} {'in run':>6} {'cpu s':>5} {'bound s':>7}"
          f" {'÷bnd':>5}  limit found")  # fmt: skip
    with tempfile.TemporaryDirectory() as old:
        trees = {"this": ROOT / "src"}
        if against is not None:
            trees = {against[:8]: checked_out(against, Path(old)), **trees}
        figures: dict[str, list[tuple[int, float, float]]] = {name: [] for name in trees}
        for run in range(1, runs + 1):
            for name, tree in trees.items():
                r = window_run(tree, fixed, (rpm, window, latency, n))
                figures[name].append((r["calls"], r["command"], r["cpu"]))
                print(f"{name:<8} {run:>3} {r['calls']:>6} {r['retries']:>5} {r['command']:>7.2f}"
                      f" {r['seconds']:>6.2f} {r['cpu']:>5.2f} {bound:>7.1f} {r['command'] / bound:>5.2f}"
                      f"  {r['rate_limit']}", flush=True)  # fmt: skip
    for name, rows in figures.items():
        for what, values in zip(("calls", "command s", "cpu s"), zip(*rows, strict=True), strict=True):
            low, mid, high = min(values), statistics.median(values), max(values)
            ratio = (
                f" (÷bound {low / bound:.2f} / {mid / bound:.2f} / {high / bound:.2f})" if what == "command s" else ""
            )
            print(f"{name:<8} {what:>9} min / median / max: {low:.2f} / {mid:.2f} / {high:.2f}{ratio}")


def checked_out(revision: str, folder: Path) -> Path:
    """``src`` of ``revision`` (this repository's), unpacked into ``folder`` and byte-compiled."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "src"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(folder / "src")], check=True)
    return folder / "src"


def window_run(tree: Path, fixed: bool, scenario: tuple[int, float, float, int]) -> dict[str, Any]:
    """One window run of ``python -m enrichkit run`` from the sources in ``tree``: its report's calls, 429s
    (``retries``), own seconds and the limit found, with the command's seconds and CPU seconds."""
    rpm, window, latency, n = scenario
    stub = Stub(latency, 0, 0, rpm, window, fixed)
    try:
        with tempfile.TemporaryDirectory() as folder:
            source, report = Path(folder) / "rows.jsonl", Path(folder) / "report.json"
            source.write_text("".join(json.dumps(row) + "\n" for row in iter_synthetic_rows(n)))
            args = [str(source), "-t", str(TASK_FILE), "-o", f"{folder}/out.csv", "--cache-dir", f"{folder}/cache"]
            args += ["--provider", "gemini", "--base-url", stub.url, "--report", str(report), "-q"]
            env = {**os.environ, "GEMINI_API_KEY": "benchmark", "PYTHONPATH": str(tree)}
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "enrichkit", "run", *args], check=True, env=env)
            seconds = time.perf_counter() - started
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            s = json.loads(report.read_text())
    finally:
        stub.stop()
    assert s["enriched"] == n, f"{s['failed']} rows failed"
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"calls": s["calls"], "retries": s["retries"], "seconds": s["seconds"], "rate_limit": s["rate_limit"],
            "command": seconds, "cpu": cpu}  # fmt: skip


STARTUP = """
import json, sys, time
from pathlib import Path
marks = [("interpreter", time.time(), time.process_time())]
def mark(stage):
    marks.append((stage, time.time(), time.process_time()))
import enrichkit.cli
try:  # the collector paused for the start-up, as the program does (enrichkit.cli.collector; older trees: not)
    from enrichkit.cli import collector
    collector.pause()
except ImportError:
    collector = None
mark("import enrichkit.cli (click, the commands)")
from enrichkit.cli.runner import run_job
from enrichkit.output.stdio import count_rows
from enrichkit.rows.files import iter_rows
mark("import the runner (engine, output, rows)")
count_rows(sys.argv[1])
mark("count the input's rows")
from enrichkit.task.task import Task
task = Task.from_file(sys.argv[2])
mark("read the task")
from enrichkit.engine.context import RunContext
from enrichkit.options import RunOptions
context = RunContext.open(task, RunOptions(provider="gemini", base_url=sys.argv[3], cache_dir=sys.argv[4]))
if collector is not None:
    collector.started()
mark("open the run (provider SDK, cache)")
from enrichkit.rows.precheck import check_input
check_input(Path(sys.argv[1]), iter_rows(sys.argv[1]), task)
mark("check the input")
context.cache.close()
start = float(sys.argv[5])
print(json.dumps([(stage, at - start, cpu) for stage, at, cpu in marks]))
"""


def startup(runs: int = 5, against: str | None = None) -> None:
    """Where a run's time outside its calls goes, median of ``runs``: the seconds from a child process's start to
    each stage before a run's first call (cumulative, ``STARTUP``); then the whole ``enrichkit run`` command on
    1,000 rows against a stub answering at once, from its start to its exit, with its CPU seconds, the seconds
    its run took (the report's) and those from the output's rename to the exit (receipt, closing, exit).
    ``against``: a git revision's ``src`` too, each run of it just before this tree's."""
    byte_compiled()
    stub = Stub(0, 0, 0, None)
    try:
        with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryDirectory() as old:
            trees = {"this": ROOT / "src"}
            if against is not None:
                trees = {against[:8]: checked_out(against, Path(old)), **trees}
            source = Path(folder) / "rows.jsonl"
            source.write_text("".join(json.dumps(row) + "\n" for row in iter_synthetic_rows(1_000)))
            stages: dict[str, dict[str, list[tuple[float, float]]]] = {name: {} for name in trees}
            whole: dict[str, dict[str, list[float]]] = {name: {} for name in trees}
            for run in range(runs):
                for name, tree in trees.items():
                    env = {**os.environ, "GEMINI_API_KEY": "benchmark", "PYTHONPATH": str(tree)}
                    args = [str(source), str(TASK_FILE), stub.url, f"{folder}/cache-{name}-{run}", repr(time.time())]
                    done = subprocess.run([sys.executable, "-c", STARTUP, *args], env=env, check=True,
                                          capture_output=True, text=True)  # fmt: skip
                    for stage, seconds, cpu in json.loads(done.stdout):
                        stages[name].setdefault(stage, []).append((seconds, cpu))
                    for what, value in command_run(source, stub.url, Path(folder) / f"{name}-{run}", env).items():
                        whole[name].setdefault(what, []).append(value)
    finally:
        stub.stop()
    print(f"seconds from the command's start to each stage before the first call, and CPU seconds (median of {runs})")
    print(f"{'stage':<45} " + " ".join(f"{name + ' s':>10} {'cpu':>6}" for name in trees))
    for stage in stages["this"]:
        medians = [[statistics.median(values) for values in zip(*stages[name][stage], strict=True)] for name in trees]
        print(f"{stage:<45} " + " ".join(f"{wall:10.3f} {cpu:6.3f}" for wall, cpu in medians))
    print("\nthe whole command, 1,000 rows against a stub answering at once (min / median)")
    for what in whole["this"]:
        figures = (f"{min(whole[name][what]):.3f} / {statistics.median(whole[name][what]):.3f}" for name in trees)
        print(f"{what:<45} " + " ".join(f"{figure:>15}" for figure in figures) + f"  ({', '.join(trees)})")


def command_run(source: Path, url: str, folder: Path, env: dict[str, str]) -> dict[str, float]:
    """One ``enrichkit run`` of ``source`` into ``folder`` against ``url``: its seconds, CPU seconds, the run's
    own seconds (its report's) and the seconds from the output's rename to the process's end."""
    folder.mkdir()
    out, report = folder / "out.csv", folder / "report.json"
    args = [str(source), "-t", str(TASK_FILE), "-o", str(out), "--cache-dir", str(folder / "cache")]
    args += ["--provider", "gemini", "--base-url", url, "--report", str(report), "-q"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.time()
    subprocess.run([sys.executable, "-m", "enrichkit", "run", *args], check=True, env=env)
    ended = time.time()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "command seconds": ended - started,
        "command CPU seconds": after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime,
        "in-run seconds (the report's)": json.loads(report.read_text())["seconds"],
        "output renamed to exit, seconds": ended - out.stat().st_mtime,
    }


def check_rate(n: int = 1_000_000, runs: int = 3) -> None:
    """Lines a second of the check a file input gets before its first paid call (``rows.precheck``), best of
    ``runs``, on a JSONL file of ``n`` synthetic rows."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "rows.jsonl"
        with source.open("wb") as out:
            out.writelines(orjson.dumps(row) + b"\n" for row in iter_synthetic_rows(n))
        best = math.inf
        for _ in range(runs):
            started = time.perf_counter()
            assert check_input(source, iter_rows(source), TASK) == n
            best = min(best, time.perf_counter() - started)
        size = source.stat().st_size
    rate = f"{n / best:,.0f} lines/s"
    print(f"check before paying: {n:,} JSONL lines ({size / n:.0f} bytes each) in {best:.2f} s: {rate}")


def line(name: str, r: dict[str, Any], bound: float | None = None, note: str = "") -> str:
    ratio = f"{r['seconds'] / bound:5.2f}" if bound else "     "
    b = f"{bound:7.1f}" if bound else "       "
    return (
        f"{name:<34} {r['rows']:>7,} {r['calls']:>7,} {r['retries']:>5} {r['prompt_tokens']:>10,}"
        f" {r['output_tokens']:>9,} {r['seconds']:>8.1f} {r['rows'] / r['seconds']:>8.0f} {b} {ratio} {note}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--overhead", action="store_true", help="only the overhead figures (instant provider)")
    parser.add_argument("--million", action="store_true", help="also 1,000,000 rows file to file (about 8 minutes)")
    parser.add_argument("--json", action="store_true", help="with --overhead: one JSON line, median of 3 runs")
    parser.add_argument("--window", action="store_true", help="only the 30-requests-per-6-s-window scenario")
    parser.add_argument("--fixed-window", action="store_true", help="with --window: a window that resets whole")
    parser.add_argument("--runs", type=int, help="with --window or --startup: how many runs (default 3; 5)")
    parser.add_argument("--against", metavar="REVISION", help="with --window or --startup: that revision's too")
    parser.add_argument("--check", action="store_true", help="only the check of a file before its run")
    parser.add_argument("--startup", action="store_true", help="only where a run's start-up goes")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "N", "CACHE"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    if args.window:
        window_limited(args.fixed_window, args.runs or 3, args.against)
        return
    if args.check:
        check_rate()
        return
    if args.startup:
        startup(args.runs or 5, args.against)
        return
    if args.overhead and args.json:
        overhead_json(100_000)
        return
    if not args.overhead:
        rate_limited(args.quick)
    print("\noverhead: an instant in-process provider; 'file' reads JSONL and writes CSV in chunks, as the CLI does")
    print(f"{'run':<15} {'rows':>9} {'calls':>7} {'wall s':>8} {'rows/s':>8} {'peak MB':>8}")
    overhead("memory", 100_000)
    overhead("file", 100_000)
    check_rate()
    if args.million:
        overhead("file", 1_000_000)


def rate_limited(quick: bool) -> None:
    """The table against the rate-limited stub: enrichkit next to the designs it replaces."""
    print(f"stub: {LATENCY} s + {PER_TOKEN * 1000:.0f} ms/output token + ≤{JITTER} s jitter, {RPM} RPM; batch 20")
    print(f"{'run':<34} {'rows':>7} {'calls':>7} {'429s':>5} {'prompt tok':>10} {'out tok':>9} {'wall s':>8}"
          f" {'rows/s':>8} {'bound s':>7} {'÷bnd':>5}")  # fmt: skip
    sizes = [1_000] if quick else [1_000, 10_000]
    for n in sizes:
        bound = math.ceil(n / 20) / RPM * 60
        packed = live(n, pack_size=20, concurrency=None, rpm=RPM)
        print(line("enrichkit (packed, concurrent)", packed, bound), flush=True)
        if n == 1_000:
            single = live(n, pack_size=1, concurrency=None, rpm=RPM)
            print(line("one row per call (concurrent)", single, n / RPM * 60), flush=True)
            sequential = live(n, pack_size=20, concurrency=1, rpm=RPM)
            print(line("sequential packer (one at a time)", sequential, bound), flush=True)
            per_call = sequential["seconds"] / sequential["calls"]
        else:
            calls = math.ceil(n / 20)
            print(f"{'one row per call':<34} {n:>7,} {n:>7,}   (projected: {n / RPM:.0f} min at {RPM} RPM)")
            print(f"{'sequential packer':<34} {n:>7,} {calls:>7,}   (projected: {calls * per_call / 60:.0f} min"
                  f" at the measured {per_call:.2f} s a call)")  # fmt: skip
    zero = live(10_000, pack_size=20, concurrency=None, rpm=None, latency=False)
    print(line("zero-latency stub over HTTP", zero), flush=True)


if __name__ == "__main__":
    main()
