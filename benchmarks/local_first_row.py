"""Where the first row of a CLI run on the embedded model spends its time: ``enrichkit run`` on one row
of the demo, in a fresh child process, with the local provider's steps timed from inside.

Phases (seconds from the process's start, ``/proc/self/stat``): the interpreter's start and enrichkit's
imports up to the command; the model's load (``LocalProvider._load``: llama.cpp's server built, the
weights memory-mapped); the system prompt's state restored from disk into the slots (``Prefix.warm``);
the row's call (``handle_chat_completions``, or the calls of an answer decoded in stages), split by
llama.cpp's own timings into the row's prompt tokens processed and the tokens decoded; and the rest
(reading the row, the cache, validation, the output and receipt written, the exit). The model file
must be in the page cache and the prefix on disk: the command is run ``--runs`` times (default 3) and
each is printed; the first puts them there.

Run: .venv/bin/python benchmarks/local_first_row.py [--runs 3] [--slots N] [--model NAME]
Figures on a shared machine are approximate: re-run on a quiet one.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from local_runs import DEMO_TASK, ROOT, demo_rows

_CHILD = r"""
import json, os, sys, time
clock = time.monotonic()
ticks = os.sysconf("SC_CLK_TCK")
with open("/proc/self/stat") as f:
    start = int(f.read().rsplit(")", 1)[1].split()[19]) / ticks
with open("/proc/uptime") as f:
    now = float(f.read().split()[0])
origin = clock - (now - start)  # the process's start on the monotonic clock
spans = {}
def timed(owner, name, label):
    inner = getattr(owner, name)
    def wrapper(*args, **kwargs):
        started = time.monotonic()
        try:
            out = inner(*args, **kwargs)
        finally:
            spans.setdefault(label, []).append((started - origin, time.monotonic() - started))
        if isinstance(out, dict) and "timings" in out:
            spans.setdefault("timings", []).append(out["timings"])
        return out
    setattr(owner, name, wrapper)
from enrichkit.providers.local import prefix, provider
timed(provider.LocalProvider, "_load", "load")
timed(prefix.Prefix, "warm", "warm")
timed(provider.LocalProvider, "_complete", "call")
timed(provider.LocalProvider, "_staged", "call")
timed(provider.LocalProvider, "_call", "stage")
from enrichkit.cli import main
spans["imported"] = [(time.monotonic() - origin, 0.0)]
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
spans["exit"] = [(time.monotonic() - origin, 0.0)]
print(json.dumps(spans), file=sys.stderr)
"""


TIMINGS = ("prompt_ms", "prompt_n", "predicted_ms", "predicted_n")


def one_run(folder: Path, extra: list[str]) -> dict[str, Any]:
    out = folder / "out.jsonl"
    out.unlink(missing_ok=True)
    command = [sys.executable, "-c", _CHILD, "run", str(folder / "one.jsonl"), "-t", str(DEMO_TASK)]
    command += [
        "--provider",
        "local",
        "-o",
        str(out),
        "--cache-dir",
        str(folder / f"cache-{os.urandom(4).hex()}"),
        "-q",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(command + extra, env=env, capture_output=True, text=True, check=False)
    if not out.is_file():
        raise RuntimeError(f"the run failed:\n{done.stderr[-2000:]}")
    spans: dict[str, Any] = json.loads(done.stderr.strip().splitlines()[-1])
    return spans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--slots", type=int, help="--concurrency of the run (default: the provider's own)")
    parser.add_argument("--model", help="--model of the run (default: the embedded model)")
    args = parser.parse_args()
    extra = [
        *(["--concurrency", str(args.slots)] if args.slots else []),
        *(["--model", args.model] if args.model else []),
    ]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        (folder / "one.jsonl").write_text(json.dumps(demo_rows()[0]) + "\n", encoding="utf-8")
        print(
            f"{'run':>3} {'imports':>8} {'load':>6} {'prefix':>7} {'prompt':>12} {'decode':>12}"
            f" {'call':>6} {'rest':>6} {'total':>6}"
        )
        for i in range(args.runs):
            s = one_run(folder, extra)
            total = s["exit"][0][0]
            imported = s["imported"][0][0]
            load = sum(d for _, d in s.get("load", []))
            warm = sum(d for _, d in s.get("warm", []))
            call = sum(d for _, d in s.get("call", [])) - load - warm
            t = {k: sum(stage.get(k, 0) for stage in s.get("timings", [])) for k in TIMINGS}
            prompt = f"{t['prompt_ms'] / 1000:.2f}/{t['prompt_n']:.0f}t"
            decode = f"{t['predicted_ms'] / 1000:.2f}/{t['predicted_n']:.0f}t"
            rest = total - imported - load - warm - call
            print(
                f"{i + 1:>3} {imported:>8.2f} {load:>6.2f} {warm:>7.2f} {prompt:>12} {decode:>12}"
                f" {call:>6.2f} {rest:>6.2f} {total:>6.2f}"
            )
        print("seconds from the process's start; call: the row's request to llama.cpp, of which prompt and decode")
        print("are llama.cpp's own timings / tokens, summed over its calls where it is decoded in stages")
        print("(the rest of it: the grammar's set-up, sampling)")


if __name__ == "__main__":
    main()
