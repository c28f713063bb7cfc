"""CPU time a row of the embedded model costs, by slots (rows decoding together) and pack size (rows a call):
a figure a shared machine does not move much, where wall time under other work says little.

Each mode runs in a fresh child process on this version: ``--threads`` llama.cpp threads (default 1:
one thread never waits for another, so its CPU time is the work done, not spinning at a barrier
while the other thread is off the CPU), the demo's task, the system prompt's state already on disk
(one row run first, untimed), an empty cache. Columns: CPU seconds a row (user + system of the child,
between the first row and the end), rows a second of wall time (load-dependent), output and prompt
tokens processed a row (from the run's usage), peak memory of the process; the answers' quality as
``local_quality.py`` scores it (accuracy against the data's truth, near-copies, foreign script, glued words);
and the rows' confidence (median, rows below 0.6, rows without one), as the receipt gives it.

Modes ``SxP``: S slots, packs of P rows (ids pinned with ``prefixItems``), the engine's concurrency S;
a single row's answer decoded in stages (``providers/local/staged.py``: the JSON the schema fixes written
into the prompt, only the values decoded), or with ``w`` (``1x1w``) decoded whole under one grammar as
before. Output tokens are the tokens decoded.

``--notes NAME=0|1 ...`` changes the local prompt's notes (``prompting.Notes``), e.g. ``remind_first=0``:
the reminder at the end of the user message, as before it moved to its start.

Run: .venv/bin/python benchmarks/local_slots.py [--modes 1x1w 1x1 2x1w 2x1 4x1 2x2 2x3 2x5] [--dataset demo20]
        [--threads 1] [--notes remind_first=0] [--save out/slots.json]   # --save keeps runs; a later call reuses them
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from local_quality import score
from local_runs import DATASETS, PREFIXES, ROOT, child, runs_file

_CHILD = r"""
import asyncio, json, resource, sys, tempfile, time
from dataclasses import replace
from pathlib import Path
from enrichkit import Task, aenrich
from enrichkit.providers.local.prompting import NOTES
from enrichkit.providers.local.provider import CAPABILITIES, LocalProvider
from enrichkit.providers.local.weights import embedded_model_path
args = json.loads(sys.argv[1])
task = Task.from_file(args["task"])
rows, slots, pack = args["rows"], args["slots"], args["pack"]
caps = replace(CAPABILITIES, max_pack_size=pack, concurrency=slots)
llm = LocalProvider(embedded_model_path(), threads=args["threads"], capabilities=caps, slots=slots,
                    prefix_dir=Path(args["prefixes"]), staged=args["staged"], notes=replace(NOTES, **args["notes"]))
def run(rows):
    with tempfile.TemporaryDirectory() as cache:
        return asyncio.run(aenrich(rows, task, provider=llm, pack_size=pack, cache_dir=cache, concurrency=slots,
                                   progress=False))
run(rows[:1])  # the model loaded, the prefix restored into every slot
cpu, started = sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), time.perf_counter()
result = run(rows)
fields = list(task.schema["properties"])
print(json.dumps({
    "cpu_seconds": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - cpu, "seconds": time.perf_counter() - started,
    "rows": len(rows), "failed": result.stats.failed, "calls": result.stats.calls,
    "prompt_tokens": result.stats.prompt_tokens, "cached_tokens": result.stats.cached_tokens,
    "output_tokens": result.stats.output_tokens,
    "answers": {str(r[task.id_field]): {f: r.get(f) for f in fields} for r in result.rows},
    "confidence": [r.get("_confidence") for r in result.rows],
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def run(dataset: str, slots: int, pack: int, threads: int, staged: bool, notes: dict[str, bool]) -> dict[str, Any]:
    make_rows, task, inputs = DATASETS[dataset]
    rows = [{"id": r["id"], **{k: r[k] for k in inputs}} for r in make_rows()]
    PREFIXES.mkdir(parents=True, exist_ok=True)
    args = {
        "task": str(task),
        "rows": rows,
        "slots": slots,
        "pack": pack,
        "threads": threads,
        "prefixes": str(PREFIXES),
        "staged": staged,
        "notes": notes,
    }
    return child(ROOT / "src", args, _CHILD)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modes", nargs="+", default=["1x1w", "1x1", "2x1w", "2x1"])
    parser.add_argument("--dataset", default="demo20", choices=list(DATASETS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--save", type=Path, help="keep the runs in this JSON file (and reuse those it holds)")
    parser.add_argument(
        "--notes", nargs="*", default=[], metavar="NAME=0|1", help="the prompt notes changed (e.g. remind_first=0)"
    )
    args = parser.parse_args()
    notes = {k: v == "1" for k, v in (item.split("=", 1) for item in args.notes)}
    saved = runs_file(args.save)
    print(f"{args.dataset}, {args.threads} thread(s), {os.cpu_count()} cores")
    print(
        f"{'mode':<5} {'cpu s/row':>9} {'rows/s':>7} {'output tok/row':>14} {'prompt tok/row':>14}"
        f" {'failed':>6} {'peak MB':>8} {'accuracy':>8} {'copies':>6} {'foreign':>7} {'glued':>5}"
        f" {'conf med':>8} {'<0.6':>4} {'none':>4}"
    )
    for mode in args.modes:
        slots, pack = (int(x) for x in mode.removesuffix("w").split("x"))
        name = f"{args.dataset}/{mode}/threads={args.threads}" + ("" if mode.endswith("w") else "/staged")
        name += "".join(f"/{k}={int(v)}" for k, v in sorted(notes.items()))
        if name not in saved:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            saved[name] = run(args.dataset, slots, pack, args.threads, not mode.endswith("w"), notes)
            if args.save is not None:
                args.save.write_text(json.dumps(saved, ensure_ascii=False, indent=1), encoding="utf-8")
        r = saved[name]
        n = r["rows"]
        processed = (r["prompt_tokens"] - r["cached_tokens"]) / n
        q = score(args.dataset, r)
        print(
            f"{mode:<5} {r['cpu_seconds'] / n:>9.2f} {n / r['seconds']:>7.3f} {r['output_tokens'] / n:>14.1f}"
            f" {processed:>14.1f} {r['failed']:>6} {r['peak_rss_mb']:>8.0f} {100 * q['right'] / q['rows']:>7.1f}%"
            f" {q['copies']:>6} {len(q['foreign']):>7} {len(q['glued']):>5} {_confidence(r.get('confidence'))}"
        )


def _confidence(values: list[float | None] | None) -> str:
    """Median confidence, rows below 0.6 and rows without one (blank for a run saved without them)."""
    if values is None:
        return ""
    known = sorted(v for v in values if v is not None)
    median = f"{statistics.median(known):.2f}" if known else "-"
    return f"{median:>8} {sum(v < 0.6 for v in known):>4} {len(values) - len(known):>4}"


if __name__ == "__main__":
    main()
