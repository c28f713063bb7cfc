"""What ``local_speed.py`` and ``local_quality.py`` share: the data sets, an old version of enrichkit
checked out beside this one, and one run of the embedded local model in a fresh child process (so
its peak memory is its own), on either version.

Data: the demo's 20 rows (``examples/awesome-python.json``) and a seeded sample of 100 rows of
awesome-python (read in place from ../shared/data; by Vinta Chen and contributors,
https://github.com/vinta/awesome-python, CC BY 4.0), both on the demo's task
(``schemas/library-group.json``); and 30 product reviews written for this benchmark
(``benchmarks/data/reviews-30.jsonl``, task ``reviews-task.json``).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA_FILE = Path("shared") / "data" / "awesome-python" / "awesome-python.jsonl"
SHARED = next((p / DATA_FILE for p in ROOT.parents if (p / DATA_FILE).is_file()), DATA_FILE)
DEMO_TASK = ROOT / "schemas" / "library-group.json"
REVIEWS = ROOT / "benchmarks" / "data" / "reviews-30.jsonl"
REVIEWS_TASK = ROOT / "benchmarks" / "data" / "reviews-task.json"
SEED = 20261206
OLD = "9860f0d"  # main before issue 36's local-model changes: the "old" of both benchmarks


def demo_rows() -> list[dict[str, Any]]:
    doc = json.loads((ROOT / "examples" / "awesome-python.json").read_text(encoding="utf-8"))
    return list(doc["libraries"])


def awesome_rows(n: int = 100) -> list[dict[str, Any]]:
    """``n`` rows of the shared awesome-python data, drawn with a fixed seed, none of the demo's."""
    demo = {r["id"] for r in demo_rows()}
    rows = [json.loads(line) for line in SHARED.read_text(encoding="utf-8").splitlines() if line.strip()]
    return random.Random(SEED).sample([r for r in rows if r["id"] not in demo], n)


def review_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in REVIEWS.read_text(encoding="utf-8").splitlines() if line.strip()]


DATASETS = {
    "demo20": (demo_rows, DEMO_TASK, ("name", "description")),
    "awesome100": (awesome_rows, DEMO_TASK, ("name", "description")),
    "reviews30": (review_rows, REVIEWS_TASK, ("product", "review")),
}


def checkout(ref: str, into: Path) -> Path:
    """The ``src`` folder of ``ref`` of this repository, extracted under ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "src"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


# Runs in the child process on the version whose src is first on sys.path. The old version's
# LocalProvider takes no ``slots`` nor ``prefix_dir`` and its Capabilities no ``own_words``: each is
# passed only where asked for. ``prefix``: "cold" (a new empty folder: the system prompt is processed
# in this run) or "warm" (``PREFIXES``: its state on disk from an earlier run).
_CHILD = r"""
import asyncio, json, resource, sys, tempfile, time
from dataclasses import replace
args = json.loads(sys.argv[1])
from enrichkit import Task, aenrich
from enrichkit.providers.local.provider import CAPABILITIES, LocalProvider
from enrichkit.providers.local.weights import embedded_model_path
task = Task.from_file(args["task"])
rows = args["rows"]
extra = {"slots": args["slots"]} if args["slots"] else {}
own = {"own_words": args["own_words"]} if args["own_words"] is not None else {}
caps = replace(CAPABILITIES, max_pack_size=args["pack"], concurrency=args["slots"] or 1, **own)
prefixes = tempfile.mkdtemp() if args["prefix"] == "cold" else args["prefix"]
if args["prefix"]:
    extra["prefix_dir"] = __import__("pathlib").Path(prefixes)
provider = LocalProvider(embedded_model_path(), threads=args["threads"], capabilities=caps, **extra)
started = time.perf_counter()
with tempfile.TemporaryDirectory() as cache:
    result = asyncio.run(aenrich(rows, task, provider=provider, pack_size=args["pack"], cache_dir=cache,
                                 concurrency=args["slots"] or 1, progress=False))
seconds = time.perf_counter() - started
fields = list(task.schema["properties"])
print(json.dumps({
    "answers": {str(r[task.id_field]): {f: r.get(f) for f in fields} for r in result.rows},
    "seconds": seconds, "failed": result.stats.failed, "calls": result.stats.calls,
    "invalid": result.stats.invalid_items, "repaired": result.stats.repaired,
    "prompt_tokens": result.stats.prompt_tokens, "cached_tokens": result.stats.cached_tokens,
    "output_tokens": result.stats.output_tokens,
    "prefix_seconds": getattr(getattr(provider, "prefix", None), "seconds", None),
    "load_seconds": getattr(provider, "load_seconds", None),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "cpu_seconds": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
}))
"""


PREFIXES = ROOT / "benchmarks" / "out" / "prefixes"


def run(
    src: Path,
    dataset: str,
    *,
    slots: int | None,
    pack: int = 1,
    threads: int = 2,
    own_words: bool | None = None,
    prefix: str | None = None,
) -> dict[str, Any]:
    """One run of the local model on ``dataset`` by the enrichkit in ``src``, in a child process
    (``own_words``, ``prefix``: this version's settings, None for the version's own default)."""
    make_rows, task, inputs = DATASETS[dataset]
    rows = [{"id": r["id"], **{k: r[k] for k in inputs}} for r in make_rows()]  # never the truth
    folder = str(PREFIXES) if prefix == "warm" else prefix
    args = {"task": str(task), "rows": rows, "slots": slots, "pack": pack, "threads": threads}
    args |= {"own_words": own_words, "prefix": folder}
    if prefix == "warm":  # one row first puts the task's system prompt on disk (if an earlier run did not)
        PREFIXES.mkdir(parents=True, exist_ok=True)
        child(src, {**args, "rows": rows[:1]})
    return child(src, args)


def child(src: Path, args: dict[str, Any], script: str = _CHILD) -> dict[str, Any]:
    """``script`` run on ``args`` in a process of its own with ``src`` on its path: the JSON of its last line."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(args)], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the run failed:\n{done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def versions(old: str) -> tuple[tempfile.TemporaryDirectory[str], dict[str, Path]]:
    """The folder holding the old checkout (keep it open) and each version's ``src``: old and new."""
    folder = tempfile.TemporaryDirectory(prefix="enrichkit-old-")
    return folder, {"old": checkout(old, Path(folder.name)), "new": ROOT / "src"}


def runs_file(path: Path | None) -> dict[str, Any]:
    """Saved runs (``--save``), keyed by ``key``: empty when there is no file yet."""
    return json.loads(path.read_text(encoding="utf-8")) if path is not None and path.is_file() else {}


def key(
    version: str,
    dataset: str,
    slots: int | None,
    pack: int,
    own_words: bool | None,
    prefix: str | None,
    threads: int = 2,
) -> str:
    extra = "" if own_words is None else f"/own_words={own_words}"
    extra += "" if threads == 2 else f"/threads={threads}"
    return f"{version}/{dataset}/slots={slots or 1}/pack={pack}{extra}" + (f"/prefix={prefix}" if prefix else "")


def cached_run(
    saved: dict[str, Any],
    save: Path | None,
    src: Path,
    version: str,
    dataset: str,
    slots: int | None,
    pack: int = 1,
    own_words: bool | None = None,
    prefix: str | None = None,
    threads: int = 2,
) -> dict[str, Any]:
    """A run, taken from ``saved`` where it is there (``--save`` of an earlier call), else run and saved."""
    name = key(version, dataset, slots, pack, own_words, prefix, threads)
    if name not in saved:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        saved[name] = run(src, dataset, slots=slots, pack=pack, own_words=own_words, prefix=prefix, threads=threads)
        if save is not None:
            save.write_text(json.dumps(saved, ensure_ascii=False, indent=1), encoding="utf-8")
    return dict(saved[name])
