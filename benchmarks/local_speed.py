"""Speed of the embedded local model, the old version (``--old``, default: before issue 36) against this one in
one run: rows a second on the demo's 20 rows and 100 awesome-python rows, peak memory of each run,
the load time, and the wall time of a whole CLI run of one row (the first row a user waits for).

Every run is a fresh child process with an empty cache (``local_runs.run``); ``old`` is the version's
own default (one slot), ``new`` this version's default (``default_slots``: rows decoded together, one a
core, at most 4), twice: ``cold``, the system prompt's state not yet on disk (processed once in the run,
copied into the other slots), and ``warm``, restored from disk as every run of the same task after
the first does (``providers/local/prefix.py``). Token columns, a row on average: prompt tokens
processed (not taken from a cache), and output tokens; CPU seconds a row (user + system, of the
whole child process: steadier than wall time on a shared machine, though llama.cpp's threads spin
while they wait for each other, which a busy machine makes longer). The model file must be in the page cache for
the CLI figure (the first run puts it there and saves the prefix: it is run twice, the second
counts). The load: the llama.cpp server built from scratch ``--loads`` times with and without
``fit_params`` (llama.cpp fitting the model to the devices first).

Run: .venv/bin/python benchmarks/local_speed.py [--old REF] [--datasets demo20 awesome100] [--slots N]
        [--save runs.json]   # --save keeps each run; a later call with the same file reuses them
Figures on a shared 2-core machine are approximate: re-run on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from enrichkit.providers.local.provider import default_slots
from local_runs import DEMO_TASK, OLD, cached_run, demo_rows, runs_file, versions

_LOAD = r"""
import sys, time, xllamacpp
from enrichkit.providers.local.weights import embedded_model_path
params = xllamacpp.CommonParams()
params.model.path = str(embedded_model_path())
params.n_ctx, params.warmup, params.verbosity = 8192, False, 0
params.fit_params = sys.argv[1] == "1"
started = time.perf_counter()
xllamacpp.Server(params)
print(time.perf_counter() - started)
"""


def load_seconds(fit: bool) -> float:
    done = subprocess.run(
        [sys.executable, "-c", _LOAD, "1" if fit else "0"], capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def cli_one_row(src: Path) -> float:
    """Wall seconds of ``enrichkit run`` on one row, from process start to exit."""
    with tempfile.TemporaryDirectory() as folder:
        rows = Path(folder) / "one.jsonl"
        rows.write_text(json.dumps(demo_rows()[0]) + "\n", encoding="utf-8")
        command = [sys.executable, "-m", "enrichkit", "run", str(rows), "-t", str(DEMO_TASK), "--provider", "local"]
        command += ["-o", str(Path(folder) / "out.jsonl"), "--cache-dir", str(Path(folder) / "cache"), "-q"]
        started = time.perf_counter()
        subprocess.run(command, env={**os.environ, "PYTHONPATH": str(src)}, capture_output=True, check=True)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old", default=OLD, help=f"git ref of the version to compare with (default {OLD})")
    parser.add_argument("--datasets", nargs="*", default=["demo20", "awesome100"], help="none: CLI and load only")
    parser.add_argument("--slots", type=int, default=default_slots(), help="the new version's slots (default: its own)")
    parser.add_argument("--loads", type=int, default=3)
    parser.add_argument("--save", type=Path, help="keep the runs in this JSON file (and reuse those it holds)")
    args = parser.parse_args()
    folder, srcs = versions(args.old)
    saved = runs_file(args.save)
    with folder:
        print(f"old = {args.old}, new = this tree ({args.slots} slots); {os.cpu_count()} cores")
        head = f"{'dataset':<11} {'version':<9} {'rows/s':>7} {'s':>7} {'failed':>6} {'peak MB':>8} {'load s':>7}"
        print(head + f" {'cpu s/row':>9} {'prompt tok/row':>14} {'output tok/row':>14}")
        for dataset in args.datasets:
            rates = {}
            for version, prefix in (("old", None), ("new", "cold"), ("new", "warm")):
                slots = args.slots if version == "new" else None
                res = cached_run(saved, args.save, srcs[version], version, dataset, slots, prefix=prefix)
                n = len(res["answers"])
                label = version + (f" {prefix}" if prefix else "")
                rates[label] = n / res["seconds"]
                load = f"{res['load_seconds']:.1f}" if res["load_seconds"] is not None else "-"
                processed = (res.get("prompt_tokens", 0) - res.get("cached_tokens", 0)) / n
                print(
                    f"{dataset:<11} {label:<9} {rates[label]:>7.3f} {res['seconds']:>7.1f} {res['failed']:>6}"
                    f" {res['peak_rss_mb']:>8.0f} {load:>7} {res.get('cpu_seconds', 0) / n:>9.2f} {processed:>14.0f}"
                    f" {res.get('output_tokens', 0) / n:>14.1f}"
                )
            for label in ("new cold", "new warm"):
                print(f"{dataset:<11} {label} / old {rates[label] / rates['old']:>5.2f} x")
        for version, src in srcs.items():
            cli_one_row(src)  # the model into the page cache
            print(f"CLI run of one row, {version}: {cli_one_row(src):.1f} s (model in the page cache)")
        for fit in (True, False):
            loads = [load_seconds(fit) for _ in range(args.loads)]
            print(f"llama.cpp server load, fit_params={fit}: " + ", ".join(f"{s:.2f}" for s in loads) + " s")


if __name__ == "__main__":
    main()
