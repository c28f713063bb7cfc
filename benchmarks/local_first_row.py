"""Where the first row of a CLI run on the embedded model spends its time: ``enrichkit run`` on one row
of the demo, in a fresh child process, with the local provider's steps timed from inside, in wall and
CPU seconds (user + system of the whole process: on a shared machine the steadier figure).

Stages (wall from the process's start, ``/proc/self/stat``):
- ``imports``: the interpreter's start and enrichkit's imports up to the command;
- ``pre``: from there to the model's load (reading the row and the task, the cache, the engine);
- ``load``: ``LocalProvider._load``, llama.cpp's server built; split by llama.cpp's own log into
  ``file`` (the GGUF's metadata and vocabulary read, the weights memory-mapped and repacked),
  ``ctx`` (the context: its KV cache allocated and cleared) and ``probe`` (llama.cpp's server decodes
  two tokens at start-up to learn whether the context can drop part of a sequence: the first forward
  pass, which faults the weights in);
- ``prefix``: the system prompt's state restored from disk into the slots (``Prefix.warm``);
- ``call``: the row's calls to llama.cpp (one, or one a stage where it is decoded in stages), split by
  llama.cpp's own timings into the row's prompt tokens processed, the tokens decoded, and the rest of
  the calls (``other``: the grammar's set-up, tokenizing, sampling, the server's queue);
- ``rest``: after the row's answer to the process's exit (validation, the cache, output, receipt).

The model file must be in the page cache and the prefix on disk: the command is run ``--runs`` times
(default 3) and each is printed; the first puts them there. ``--calls`` also prints each call.
``--served``: the runs go to the model ``enrichkit serve`` holds, started here first (and stopped
after): no load, and llama.cpp's grammar already set up.

Run: .venv/bin/python benchmarks/local_first_row.py [--runs 3] [--slots N] [--model NAME] [--calls]
        [--served] [-- EXTRA enrichkit run FLAGS]
Figures on a shared machine are approximate: re-run on a quiet one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from enrichkit.providers.local.served import served_dir
from local_runs import DEMO_TASK, ROOT, demo_rows

_CHILD = r"""
import json, os, resource, sys, time
clock = time.monotonic()
ticks = os.sysconf("SC_CLK_TCK")
with open("/proc/self/stat") as f:
    start = int(f.read().rsplit(")", 1)[1].split()[19]) / ticks
with open("/proc/uptime") as f:
    now = float(f.read().split()[0])
origin = clock - (now - start)  # the process's start on the monotonic clock
def cpu():
    return sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
spans = {}
def timed(owner, name, label):
    inner = getattr(owner, name)
    def wrapper(*args, **kwargs):
        started, used = time.monotonic(), cpu()
        try:
            out = inner(*args, **kwargs)
        finally:
            spans.setdefault(label, []).append((started - origin, time.monotonic() - started, cpu() - used))
        if isinstance(out, dict) and "timings" in out:
            spans.setdefault("timings", []).append(out["timings"])
        return out
    setattr(owner, name, wrapper)
import xllamacpp
_Server = xllamacpp.Server
def logged(params):
    params.verbosity = 4  # llama.cpp's log on stderr, read for the load's parts
    return _Server(params)
xllamacpp.Server = logged
from enrichkit.providers.local import prefix, provider
timed(provider.LocalProvider, "_load", "load")
timed(prefix.Prefix, "warm", "warm")
timed(provider.LocalProvider, "_complete", "call")
timed(provider.LocalProvider, "_staged", "call")
timed(provider.LocalProvider, "_call", "stage")
from enrichkit.cli import main
spans["imported"] = [(time.monotonic() - origin, 0.0, cpu())]
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
spans["exit"] = [(time.monotonic() - origin, 0.0, cpu())]
print("\nSPANS " + json.dumps(spans), file=sys.stderr, flush=True)
"""

TIMINGS = ("prompt_ms", "prompt_n", "predicted_ms", "predicted_n")

# llama.cpp's log lines (stamped minutes.seconds.ms.us from the server's start) that end each part of the load
_MARKS = {"file": "constructing llama_context", "ctx": "llama threadpool init", "probe": "initializing, n_slots"}
_STAMP = re.compile(r"^(\d+)\.(\d+)\.(\d+)\.(\d+) ")


def load_parts(log: str) -> dict[str, float]:
    """The load's parts in seconds (``_MARKS``), from llama.cpp's log; empty where a mark is missing."""
    ends: dict[str, float] = {}
    for line in log.splitlines():
        if (m := _STAMP.match(line)) is None:
            continue
        minutes, seconds, ms, us = (int(x) for x in m.groups())
        for part, mark in _MARKS.items():
            if part not in ends and mark in line:
                ends[part] = minutes * 60 + seconds + ms / 1e3 + us / 1e6
    if len(ends) < len(_MARKS):
        return {}
    return {"file": ends["file"], "ctx": ends["ctx"] - ends["file"], "probe": ends["probe"] - ends["ctx"]}


def one_run(folder: Path, extra: list[str]) -> tuple[dict[str, Any], dict[str, float]]:
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
    line = next(x for x in reversed(done.stderr.splitlines()) if x.startswith("SPANS "))
    spans: dict[str, Any] = json.loads(line.removeprefix("SPANS "))
    return spans, load_parts(done.stderr)


@contextlib.contextmanager
def served(serve: bool, flags: list[str]) -> Iterator[None]:
    """Where ``serve``: ``enrichkit serve`` with ``flags`` running (its ready line printed), stopped after."""
    if not serve:
        if list(served_dir().glob("*.json")):
            print(f"note: a model is served ({served_dir()}): runs on it do not load it")
        yield
        return
    command = [sys.executable, "-m", "enrichkit", "serve", *flags]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    print(process.stderr.readline().strip())
    try:
        yield
    finally:
        process.terminate()
        process.wait()


def _sum(spans: dict[str, Any], label: str, at: int) -> float:
    return float(sum(span[at] for span in spans.get(label, [])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--slots", type=int, help="--concurrency of the run (default: the provider's own)")
    parser.add_argument("--model", help="--model of the run (default: the embedded model)")
    parser.add_argument("--calls", action="store_true", help="print each call to llama.cpp too")
    parser.add_argument("--served", action="store_true", help="the runs on the model enrichkit serve holds")
    parser.add_argument("extra", nargs="*", help="more flags of enrichkit run (after --)")
    args = parser.parse_args()
    extra = [
        *(["--concurrency", str(args.slots)] if args.slots else []),
        *(["--model", args.model] if args.model else []),
        *args.extra,
    ]
    serving = [*(["--slots", str(args.slots)] if args.slots else []), *(["--model", args.model] if args.model else [])]
    with tempfile.TemporaryDirectory() as name, served(args.served, serving):
        folder = Path(name)
        (folder / "one.jsonl").write_text(json.dumps(demo_rows()[0]) + "\n", encoding="utf-8")
        stages = [
            "imports",
            "pre",
            "load",
            "file",
            "ctx",
            "probe",
            "prefix",
            "call",
            "prompt",
            "decode",
            "other",
            "rest",
        ]
        print(f"{'run':>3} {'':<4} " + " ".join(f"{s:>7}" for s in stages) + f" {'total':>7}  tokens")
        for i in range(args.runs):
            s, parts = one_run(folder, extra)
            wall: dict[str, float] = {}
            cpu: dict[str, float] = {}
            wall["imports"], cpu["imports"] = s["imported"][0][0], s["imported"][0][2]
            load_start = s["load"][0][0] if s.get("load") else s["imported"][0][0]
            wall["pre"] = load_start - wall["imports"]
            for stage, label in (("load", "load"), ("prefix", "warm"), ("call", "call")):
                wall[stage], cpu[stage] = _sum(s, label, 1), _sum(s, label, 2)
            wall["call"] -= wall["load"] + wall["prefix"]  # the first call loads the model and warms the prefix
            cpu["call"] -= cpu["load"] + cpu["prefix"]
            wall.update(parts)
            t = {k: sum(stage.get(k, 0) for stage in s.get("timings", [])) for k in TIMINGS}
            wall["prompt"], wall["decode"] = t["prompt_ms"] / 1000, t["predicted_ms"] / 1000
            wall["other"] = wall["call"] - wall["prompt"] - wall["decode"]
            total, total_cpu = s["exit"][0][0], s["exit"][0][2]
            wall["rest"] = total - wall["imports"] - wall["pre"] - wall["load"] - wall["prefix"] - wall["call"]
            cpu["rest"] = total_cpu - cpu["imports"] - cpu["load"] - cpu["prefix"] - cpu["call"]
            cpu["pre"] = cpu["rest"]  # ``pre`` and ``rest`` are one CPU figure (no CPU mark at the load's start)
            tokens = f"{t['prompt_n']:.0f} prompt, {t['predicted_n']:.0f} decoded, {len(s.get('stage', []))} calls"
            walls = " ".join(f"{wall.get(k, 0):>7.2f}" for k in stages)
            print(f"{i + 1:>3} wall {walls} {total:>7.2f}  {tokens}")
            cpu_row = " ".join(f"{cpu[k]:>7.2f}" if k in cpu and k != "pre" else f"{'':>7}" for k in stages)
            print(f"{'':>3} cpu  {cpu_row} {total_cpu:>7.2f}")
            if args.calls:
                for (_, seconds, used), timings in zip(s.get("stage", []), s.get("timings", []), strict=False):
                    print(
                        f"      call {seconds:.3f} s wall, {used:.3f} s cpu: {timings.get('prompt_n', 0)} prompt tokens"
                        f" in {timings.get('prompt_ms', 0) / 1000:.3f} s, {timings.get('predicted_n', 0)} decoded in"
                        f" {timings.get('predicted_ms', 0) / 1000:.3f} s"
                    )
        print("seconds; wall from the process's start; load = file + ctx + probe (llama.cpp's log); call = prompt +")
        print("decode (llama.cpp's own timings, summed over the calls) + other; cpu: the process's user + system")
        print("seconds in the stage (pre's CPU is counted in rest)")


if __name__ == "__main__":
    main()
