"""What the call log and the run history cost a fresh run (issue 33: the log ≤ 5 % of a fresh run's own overhead).

    .venv/bin/python benchmarks/history_cost.py            # 100,000 rows, 5 rounds
    .venv/bin/python benchmarks/history_cost.py --rows 20000 --rounds 3

Every figure is CPU time (``time.process_time``): on a machine shared with other jobs it moves less than
wall time does. Each round runs the CLI's file-to-file path (``run_job``: JSONL in, CSV out, the instant
in-process provider of ``throughput.py --overhead``) on an empty cache twice, in child processes, with the
call log and without (``--no-log``), in alternating order; the medians and their difference are printed.
The call log alone (every call of such a run logged: a pack of 20 rows, its request and instant answer) and
the kept answers (for ``diff``: the same rows' answers written as a run keeps them) are timed on their own
too. Compare the lines of one run, and re-run on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from enrichkit.cli.flags import CliOptions
from enrichkit.cli.runner import run_job
from enrichkit.engine.codec import PackCodec
from enrichkit.history.answers import AnswerKeeper
from enrichkit.history.calls import CallLog
from enrichkit.options import RunOptions
from enrichkit.result import EnrichResult, Stats
from enrichkit.rows.files import iter_rows
from enrichkit.rows.work import Work
from throughput import TASK, TASK_FILE, instant, instant_provider, iter_synthetic_rows

TARGET = 20_000  # rows/s: the fresh run's own-overhead target (``throughput.py --overhead``)


def child(folder: str, log: bool) -> None:
    source = Path(folder) / "rows.jsonl"
    options = RunOptions(provider=instant_provider(), cache_dir=Path(folder) / "cache", log=log)
    started = time.process_time()
    code = run_job(iter_rows(source), TASK_FILE, Path(folder) / "out.csv", options, CliOptions(quiet=True))
    assert code == 0
    print(json.dumps({"seconds": time.process_time() - started}))


def fresh(rows: int, log: bool) -> float:
    with tempfile.TemporaryDirectory() as folder:
        with (Path(folder) / "rows.jsonl").open("w", encoding="utf-8") as out:
            out.writelines(json.dumps(row) + "\n" for row in iter_synthetic_rows(rows))
        args = [sys.executable, __file__, "--child", folder] + ([] if log else ["--no-log"])
        done = subprocess.run(args, check=True, capture_output=True, text=True)
        return float(json.loads(done.stdout)["seconds"])


def kept_seconds(rows: int) -> float:
    """Writing ``rows`` rows' answers as a run keeps them, a chunk of 20,000 at a time."""
    answered = [
        {**row, "tldr": "A short summary of this topic.", "challenge": "practice"} for row in iter_synthetic_rows(rows)
    ]
    with tempfile.TemporaryDirectory() as folder:
        keeper = AnswerKeeper(Path(folder) / "kept.jsonl.gz", TASK.fields, TASK.id_field)
        started = time.process_time()
        for at in range(0, rows, 20_000):
            keeper.keep(EnrichResult(answered[at : at + 20_000], [], Stats()))
        keeper.close()
        return time.process_time() - started


def log_seconds(rows: int, pack: int = 20) -> float:
    """Logging the calls of ``rows`` rows in packs of ``pack`` (a pack's request and instant answer, all valid)."""
    codec = PackCodec(TASK)
    items = [Work(row["id"], {k: row[k] for k in TASK.inputs}, row_id=row["id"]) for row in iter_synthetic_rows(pack)]
    request = codec.pack_request(items)[1]
    reply = instant(request)
    valid = {w: {"tldr": "A short summary of this topic.", "challenge": "practice"} for w in items}
    with tempfile.TemporaryDirectory() as folder:
        log = CallLog(Path(folder), "bench")
        started = time.process_time()
        for _ in range(rows // pack):
            log.call("packed", "live", (pack, 0), "instant", "instant", items, request, reply, 0.001, valid, {})
        log.close()
        return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--child")
    parser.add_argument("--no-log", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args.child, not args.no_log)
        return
    on: list[float] = []
    off: list[float] = []
    for n in range(args.rounds):
        order = [True, False] if n % 2 == 0 else [False, True]
        for log in order:
            (on if log else off).append(fresh(args.rows, log))
    a, b = statistics.median(on), statistics.median(off)
    print(f"fresh run, {args.rows:,} rows, CPU seconds, median of {args.rounds} (file to file, instant provider):")
    for name, median, runs in (("with the call log", a, on), ("--no-log", b, off)):
        listed = ", ".join(f"{s:.2f}" for s in runs)
        print(f"  {name:<18}  {median:6.2f} s  {args.rows / median:>9,.0f} rows/s   runs: {listed}")
    print(f"  the call log costs  {a - b:+6.2f} s  ({(a - b) / b:+.1%} of the run)")
    logged = log_seconds(args.rows)
    budget = args.rows / TARGET
    print(
        f"the call log alone: {logged:.2f} s for {args.rows // 20:,} calls of 20 rows"
        f" ({logged / (args.rows // 20) * 1e6:.0f} us a call): {logged / b:.1%} of the --no-log run,"
        f" {logged / budget:.1%} of a run at the {TARGET:,} rows/s target ({budget:.1f} s)"
    )
    kept = kept_seconds(args.rows)
    print(
        f"kept answers for diff: {kept:.2f} s for {args.rows:,} rows ({kept / b:.1%} of the --no-log run,"
        f" {kept / budget:.1%} of a run at the target)"
    )


if __name__ == "__main__":
    main()
