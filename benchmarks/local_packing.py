"""Prompt variants, single rows vs packs, on the embedded local model: answer quality and cost, through ``aenrich``.

Task: put each awesome-python library (rows read in place from shared/data, CC BY 4.0) into its
``group`` (a 14-value enum; the data holds the ground truth) and write a ``tldr`` of at most 12
words. Every mode gets the same seeded sample (``--per-group`` rows of each group, shuffled), an empty
cache and a fresh process, so the peak RSS is the mode's own.

Variants (each a flag, all off by default; the mode's label lists those on):
``--notes values,own_words,remind,text_first`` the local provider's prompt notes
(``enrichkit.prompt.Notes``; ``none`` for none); ``--spaced-json`` lets the model lay its JSON out (not
compact); ``--describe`` the group field's description names the list's sections in each group
(generated from the data's ``section`` headings); ``--examples N`` N rows of other groups, outside the
sample, with their group, as worked examples in the instruction; ``--no-prompt-cache`` llama.cpp
processes the whole prompt on every call instead of reusing the system prompt's KV cache.

Columns: accuracy = right group / all rows (a failed row counts as wrong); agree = same group as
the single-row run; tldr sim = mean similarity of the tldr to the single-row run's (the measure of
``--audit``: ``enrichkit.audit.similarity``, 0 to 1), over rows both answered; ids exact = packed
answers whose ids came back exactly, in order; invalid = items the validator refused (they go on
to smaller packs, then single rows); copied = tldrs of which at least 80 % of the words form one
contiguous run of the description's words; prompt tok/row and cached = prompt tokens a row and the
share of them llama.cpp took from its KV cache; s/row = wall time of the run (model load included) / rows.

Run: .venv/bin/python benchmarks/local_packing.py [--sizes 1 5 10 20] [--per-group 3] [--threads 2] [--save F]
        [--notes values,own_words,remind,text_first] [--spaced-json] [--describe] [--examples 2] [--no-prompt-cache]
     .venv/bin/python benchmarks/local_packing.py --rescore F [F ...]   # the table again from saved runs
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
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import fmean
from typing import Any

from enrichkit import Task, aenrich
from enrichkit.engine.audit import similarity
from enrichkit.engine.validation import AnswerError, parse_answer
from enrichkit.providers.base import Reply, Request
from enrichkit.providers.local.prompting import Notes
from enrichkit.providers.local.provider import CAPABILITIES, LocalProvider
from enrichkit.providers.local.weights import embedded_model_path

DATA_FILE = Path("shared") / "data" / "awesome-python" / "awesome-python.jsonl"
# ../shared beside the clone (a worktree further down finds it too)
DATA = next((p / DATA_FILE for p in Path(__file__).resolve().parents if (p / DATA_FILE).is_file()), DATA_FILE)
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


NO_NOTES = Notes(values=False, own_words=False)


@dataclass(frozen=True)
class Variant:
    """One mode of the benchmark: pack size and what the prompt holds."""

    size: int = 1
    notes: Notes = NO_NOTES
    describe: bool = False
    examples: int = 0
    prompt_cache: bool = True

    def label(self) -> str:
        parts = ["single row" if self.size == 1 else f"packs of {self.size}"]
        parts += [name.replace("_", " ") for name, on in vars(self.notes).items() if on and name != "compact"]
        parts += ["spaced JSON"] * (not self.notes.compact)
        parts += ["group sections"] * self.describe + [f"{self.examples} examples"] * bool(self.examples)
        return ", ".join(parts + ["no prompt cache"] * (not self.prompt_cache))


def group_sections(data: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Each group of the list and the section headings it holds, in the list's order."""
    out: dict[str, list[str]] = {}
    for r in data:
        sections = out.setdefault(r["group"], [])
        if r["section"] not in sections:
            sections.append(r["section"])
    return out


def worked_examples(data: list[dict[str, Any]], sample: list[dict[str, Any]], n: int) -> str:
    """``n`` rows outside the sample, of different groups (seeded), with their group."""
    taken = {r["id"] for r in sample}
    rng = random.Random(SEED + 1)
    pool = [r for r in data if r["id"] not in taken]
    rng.shuffle(pool)
    picked: list[dict[str, Any]] = []
    for r in pool:
        if len(picked) < n and r["group"] not in {p["group"] for p in picked}:
            picked.append(r)
    shown = [(json.dumps({k: r[k] for k in ("name", "description")}, ensure_ascii=False), r["group"]) for r in picked]
    lines = [f'- {record}: group "{group}"' for record, group in shown]
    return "\n\nFor example:\n" + "\n".join(lines) if lines else ""


def make_task(groups: Sequence[str], sections: dict[str, list[str]] | None = None, examples: str = "") -> Task:
    group_text = "The library's group."
    if sections:
        group_text += " The sections of the list each group holds: " + "; ".join(
            f"{g}: {', '.join(sections[g])}" for g in groups
        )
    return Task(
        instruction=(
            "You catalogue Python libraries from the awesome-python list. For each library, read its name "
            "and description, pick the group of the list it belongs to, and say what it does." + examples
        ),
        inputs=["name", "description"],
        output={
            "type": "object",
            "properties": {
                "group": {"type": "string", "enum": list(groups), "description": group_text},
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

    def with_model(self, model: str) -> LocalProvider:
        return self.inner.with_model(model)

    def on_tier(self, tier: str) -> LocalProvider:
        return self.inner.on_tier(tier)

    def batches(self) -> None:
        return None

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


def run_mode(variant: Variant, rows: list[dict[str, Any]], task: Task, model: Path, threads: int) -> dict[str, Any]:
    """One mode in this (fresh) process: the answers per row id and the run's figures."""
    size = variant.size
    caps = replace(CAPABILITIES, max_pack_size=size)
    provider = LocalProvider(
        model, threads=threads, capabilities=caps, notes=variant.notes, prompt_cache=variant.prompt_cache
    )
    recorder = Recorder(provider)
    # Only what the task reads: a failed row keeps its input fields, so it must not carry the true group.
    inputs = [{k: r[k] for k in ("id", "name", "description")} for r in rows]
    with tempfile.TemporaryDirectory() as cache:
        result = asyncio.run(aenrich(inputs, task, provider=recorder, pack_size=size, cache_dir=cache, progress=False))
    stats = result.stats
    return {
        "label": variant.label(),
        "size": size,
        "answers": {r["id"]: (r.get("group"), r.get("tldr")) for r in result.rows},
        "ids_exact": [ids_exact(req, rep) for req, rep in recorder.packed],
        "calls": stats.calls,
        "invalid": stats.invalid_items,
        "failed": stats.failed,
        "seconds": stats.seconds,
        "prompt_tokens": stats.prompt_tokens,
        "cached_tokens": stats.cached_tokens,
        "output_tokens": stats.output_tokens,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def table_row(res: dict[str, Any], rows: list[dict[str, Any]], single: dict[str, Any]) -> str:
    """One mode's line of the table; ``single`` holds the plain single-row answers (empty if not run)."""
    n = len(rows)
    answers = res["answers"]
    right = sum(answers[r["id"]][0] == r["group"] for r in rows)
    compared = [i for i, (group, _) in single.items() if group is not None]
    agree = sum(answers[i][0] == single[i][0] for i in compared)
    both = [(answers[i][1], single[i][1]) for i in single if answers[i][1] and single[i][1]]
    sim = f"{fmean(similarity(a, b) for a, b in both):.2f}" if both else "-"
    tldrs = [(answers[r["id"]][1], r["description"]) for r in rows if answers[r["id"]][1]]
    exact = res["ids_exact"]
    packed = res["size"] > 1
    cells = [
        res["label"],
        pct(right, n),
        pct(agree, len(compared)) if single else "-",
        sim if single else "-",
        f"{sum(exact)}/{len(exact)}" if packed else "-",
        str(res["invalid"]),
        str(res["failed"]),
        str(res["calls"]),
        pct(sum(copied(t, d) for t, d in tldrs), len(tldrs)),
        f"{res['prompt_tokens'] / n:.0f}" if "prompt_tokens" in res else "-",
        pct(res["cached_tokens"], res["prompt_tokens"]) if "prompt_tokens" in res else "-",
        f"{res['output_tokens'] / n:.0f}",
        f"{res['seconds'] / n:.2f}",
        f"{res['peak_rss_mb']:,.0f} MB",
    ]
    return "| " + " | ".join(cells) + " |"


HEADER = (
    "| mode | accuracy | agree w/ first | tldr sim w/ first | ids exact | invalid items | failed | calls"
    " | tldr copied | prompt tok/row | cached | out tok/row | s/row | peak RSS |"
)
RULE = "|" + "---|" * (HEADER.count("|") - 1)


def parse_notes(text: str, spaced: bool) -> Notes:
    names = set() if text == "none" else set(text.split(","))
    known = set(vars(Notes())) - {"compact"}
    if names - known:
        raise SystemExit(f"--notes: unknown {', '.join(sorted(names - known))} ({', '.join(sorted(known))} or none)")
    return Notes(**{name: name in names for name in known}, compact=not spaced)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5, 10, 20])
    parser.add_argument("--per-group", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--notes", default="none", help="The local prompt notes: values,own_words or none.")
    parser.add_argument("--describe", action="store_true", help="Name each group's sections in its description.")
    parser.add_argument("--examples", type=int, default=0, help="Worked examples (rows outside the sample).")
    parser.add_argument("--spaced-json", action="store_true", help="JSON laid out as the model likes, not compact.")
    parser.add_argument("--no-prompt-cache", action="store_true")
    parser.add_argument("--save", type=Path, help="Also write every mode's answers and figures to this JSON file.")
    parser.add_argument(
        "--rescore", type=Path, nargs="+", help="Print the table from --save files (the first run is 'first')."
    )
    args = parser.parse_args(argv)
    data = read_data()
    groups = list(dict.fromkeys(r["group"] for r in data))
    rows = sample_rows(data, args.per_group)
    print(f"{len(rows)} rows ({args.per_group} per group, seed {SEED})", end="")
    if args.rescore:
        saved = [res for f in args.rescore for res in json.loads(f.read_text(encoding="utf-8"))]
        print(f", re-scored from {' '.join(map(str, args.rescore))}\n\n{HEADER}\n{RULE}")
        for res in saved:
            print(table_row(res, rows, saved[0]["answers"] if res is not saved[0] else {}))
        return
    model = embedded_model_path()
    print(f", model {model.name}, threads={args.threads}\n\n{HEADER}\n{RULE}", flush=True)
    task = make_task(
        groups, group_sections(data) if args.describe else None, worked_examples(data, rows, args.examples)
    )
    results: list[dict[str, Any]] = []
    spawn = multiprocessing.get_context("spawn")
    for size in args.sizes:
        variant = Variant(
            size, parse_notes(args.notes, args.spaced_json), args.describe, args.examples, not args.no_prompt_cache
        )
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            results.append(pool.submit(run_mode, variant, rows, task, model, args.threads).result())
        print(table_row(results[-1], rows, results[0]["answers"] if len(results) > 1 else {}), flush=True)
        if args.save:
            args.save.write_text(json.dumps(results, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"\ntotal {sum(r['seconds'] for r in results):.0f} s of runs")


if __name__ == "__main__":
    main()
