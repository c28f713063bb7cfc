"""Single rows vs packs on the embedded local model: answer quality and cost, through ``aenrich``.

Task: put each awesome-python library (rows read in place from shared/data, CC BY 4.0) into its
``group`` (a 14-value enum; the data holds the ground truth) and write a ``tldr`` of at most 12
words. Every mode gets the same seeded sample (``--per-group`` rows of each group, shuffled), an empty
cache and a fresh process, so the peak RSS is the mode's own.

Columns: accuracy = right group / all rows (a failed row counts as wrong); agree = same group as
the single-row run; tldr sim = mean similarity of the tldr to the single-row run's (the measure of
``--audit``: ``enrichkit.audit.similarity``, 0 to 1), over rows both answered; ids exact = packed
answers whose ids came back exactly, in order; invalid = items the validator refused (they go on
to smaller packs, then single rows); copied = tldrs of which at least 80 % of the words form one
contiguous run of the description's words; s/row = wall time of the run (model load included) / rows.

Run: .venv/bin/python benchmarks/local_packing.py [--sizes 1 5 10 20] [--per-group 3] [--threads 2] [--save F]
     .venv/bin/python benchmarks/local_packing.py --rescore F    # the table again from a saved run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import re
import resource
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from statistics import fmean
from typing import Any

from enrichkit import Task, aenrich
from enrichkit.audit import similarity
from enrichkit.local_models import embedded_model_path
from enrichkit.providers.base import Reply, Request
from enrichkit.providers.local import CAPABILITIES, LocalProvider
from enrichkit.validation import AnswerError, parse_answer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "awesome-python" / "awesome-python.jsonl"
SEED = 20261123
COPY_SHARE = 0.8


def read_data() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]


def sample_rows(rows: list[dict[str, Any]], per_group: int) -> list[dict[str, Any]]:
    """``per_group`` rows of every group, drawn with a fixed seed, in a seeded shuffled order."""
    rng = random.Random(SEED)
    groups = list(dict.fromkeys(r["group"] for r in rows))
    sample = [r for g in groups for r in rng.sample([r for r in rows if r["group"] == g], per_group)]
    rng.shuffle(sample)
    return sample


def make_task(groups: Sequence[str]) -> Task:
    return Task(
        instruction=(
            "You catalogue Python libraries from the awesome-python list. For each library, read its name "
            "and description, pick the group of the list it belongs to, and say what it does."
        ),
        inputs=["name", "description"],
        output={
            "type": "object",
            "properties": {
                "group": {"type": "string", "enum": list(groups), "description": "The library's group."},
                "tldr": {
                    "type": "string",
                    "maxWords": 12,
                    "description": "What the library does, in your own words; do not copy the description.",
                },
            },
        },
        id_field="id",
        name="awesome-python-group",
    )


class Recorder:
    """A provider that passes every call to ``inner`` and keeps the packed requests and replies."""

    name = "local"

    def __init__(self, inner: LocalProvider) -> None:
        self.inner = inner
        self.model = inner.model
        self.capabilities = inner.capabilities
        self.packed: list[tuple[Request, Reply]] = []

    def settings(self) -> dict[str, Any]:
        return self.inner.settings()

    async def generate(self, request: Request) -> Reply:
        reply = await self.inner.generate(request)
        if "prefixItems" in request.schema:
            self.packed.append((request, reply))
        return reply

    async def count_tokens(self, request: Request) -> int | None:
        return await self.inner.count_tokens(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def ids_exact(request: Request, reply: Reply) -> bool:
    expected = [item["properties"]["id"]["const"] for item in request.schema["prefixItems"]]
    try:
        items = parse_answer(reply.text, list)
    except AnswerError:
        return False
    return [item.get("id") if isinstance(item, dict) else None for item in items] == expected


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def copied(tldr: str, description: str) -> bool:
    """At least ``COPY_SHARE`` of the tldr's words are one contiguous run of the description's words."""
    t, d = words(tldr), words(description)
    if not t:
        return False
    best = 0
    run = [0] * (len(d) + 1)  # longest common run ending at t[i], d[j] (rolling row of the DP table)
    for ti in t:
        prev = 0
        for j, dj in enumerate(d, start=1):
            prev, run[j] = run[j], (prev + 1 if ti == dj else 0)
            best = max(best, run[j])
    return best / len(t) >= COPY_SHARE


def run_mode(size: int, rows: list[dict[str, Any]], groups: list[str], model: Path, threads: int) -> dict[str, Any]:
    """One mode in this (fresh) process: the answers per row id and the run's figures."""
    provider = LocalProvider(model, threads=threads, capabilities=replace(CAPABILITIES, max_pack_size=size))
    recorder = Recorder(provider)
    # Only what the task reads: a failed row keeps its input fields, so it must not carry the true group.
    inputs = [{k: r[k] for k in ("id", "name", "description")} for r in rows]
    with tempfile.TemporaryDirectory() as cache:
        result = asyncio.run(
            aenrich(inputs, make_task(groups), provider=recorder, pack_size=size, cache_dir=cache, progress=False)
        )
    stats = result.stats
    return {
        "answers": {r["id"]: (r.get("group"), r.get("tldr")) for r in result.rows},
        "ids_exact": [ids_exact(req, rep) for req, rep in recorder.packed],
        "calls": stats.calls,
        "invalid": stats.invalid_items,
        "failed": stats.failed,
        "seconds": stats.seconds,
        "output_tokens": stats.output_tokens,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def table_row(size: int, res: dict[str, Any], rows: list[dict[str, Any]], single: dict[str, Any]) -> str:
    """One mode's line of the table; ``single`` holds the single-row answers (empty if not run)."""
    n = len(rows)
    answers = res["answers"]
    right = sum(answers[r["id"]][0] == r["group"] for r in rows)
    compared = [i for i, (group, _) in single.items() if group is not None]
    agree = sum(answers[i][0] == single[i][0] for i in compared)
    both = [(answers[i][1], single[i][1]) for i in single if answers[i][1] and single[i][1]]
    sim = f"{fmean(similarity(a, b) for a, b in both):.2f}" if both else "-"
    tldrs = [(answers[r["id"]][1], r["description"]) for r in rows if answers[r["id"]][1]]
    exact = res["ids_exact"]
    cells = [
        "single row" if size == 1 else f"packs of {size}",
        pct(right, n),
        "-" if size == 1 else pct(agree, len(compared)),
        "-" if size == 1 else sim,
        "-" if size == 1 else f"{sum(exact)}/{len(exact)}",
        str(res["invalid"]),
        str(res["failed"]),
        str(res["calls"]),
        pct(sum(copied(t, d) for t, d in tldrs), len(tldrs)),
        f"{res['output_tokens'] / n:.0f}",
        f"{res['seconds'] / n:.2f}",
        f"{res['peak_rss_mb']:,.0f} MB",
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| mode | accuracy | agree w/ single | tldr sim w/ single | ids exact | invalid items | failed | calls"
    " | tldr copied | out tok/row | s/row | peak RSS |"
)
RULE = "|" + "---|" * (HEADER.count("|") - 1)


def print_table(results: dict[int, dict[str, Any]], rows: list[dict[str, Any]]) -> None:
    print(HEADER)
    print(RULE)
    single = results[1]["answers"] if 1 in results else {}
    for size, res in sorted(results.items()):
        print(table_row(size, res, rows, single))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--per-group", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model-dir", type=Path, default=Path.home() / ".cache" / "enrichkit")
    parser.add_argument("--save", type=Path, help="Also write every mode's answers and figures to this JSON file.")
    parser.add_argument("--rescore", type=Path, help="Print the table from a --save file instead of running.")
    args = parser.parse_args(argv)
    data = read_data()
    groups = list(dict.fromkeys(r["group"] for r in data))
    rows = sample_rows(data, args.per_group)
    if args.rescore:
        saved = {int(k): v for k, v in json.loads(args.rescore.read_text(encoding="utf-8")).items()}
        print(f"{len(rows)} rows ({args.per_group} per group, seed {SEED}), re-scored from {args.rescore}\n")
        print_table(saved, rows)
        return
    model = embedded_model_path(args.model_dir)
    print(f"{len(rows)} rows ({args.per_group} per group, seed {SEED}), model {model.name}, threads={args.threads}\n")
    print(HEADER)
    print(RULE, flush=True)
    results: dict[int, dict[str, Any]] = {}
    spawn = multiprocessing.get_context("spawn")
    for size in args.sizes:
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            results[size] = pool.submit(run_mode, size, rows, groups, model, args.threads).result()
        single = results[1]["answers"] if 1 in results else {}
        print(table_row(size, results[size], rows, single), flush=True)
        if args.save:
            args.save.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"\ntotal {sum(r['seconds'] for r in results.values()):.0f} s of runs")


if __name__ == "__main__":
    main()
