"""What the default cross-wiring check (``enrichkit.engine.crosswire``) catches, and how often it cries wolf.

    PYTHONPATH=src .venv/bin/python benchmarks/crosswire_catch.py [--swaps 3] [--seed 1]

Rows: the 9,426 roadmap.sh topics of shared/data (read in place, never copied) in file order, so a
pack holds neighbouring topics of one roadmap (the hard case: they share their category and many
words). Each pack of size 20, 10, 5 and 2 gets answers in one of three styles (no model is called;
the check only looks at the text):

- ``topic``: the tldr names the topic and a few words of its description (what most answers do);
- ``description``: ten words from the middle of the description, the topic not named (the topic
  style where a row has no description);
- ``generic``: one of a few stock phrases that name nothing of the row (a check on text cannot see
  these, and must not accuse them).

Per style and size: false alarms (honest answers held cross-wired, per answer), then for ``--swaps``
random pairs a pack, the answers of the two rows swapped: the share of swaps whose two rows were both
caught (no wrong row kept), and the share of rows that kept another row's answer. Last, what false
alarms cost: the calls ``enrich()`` makes for the first 1,000 rows when every answer is written in
each style (an in-process provider; 50 calls when nothing is re-asked).
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from enrichkit import Task, enrich
from enrichkit.engine.crosswire import suspects
from enrichkit.testing import FunctionProvider, ids_of, records_of

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "roadmaps" / "all-roadmaps.jsonl"
TASK = Task.from_file(ROOT / "schemas" / "roadmap-topic.json")
INPUTS = ("category", "topic", "description")
SIZES = (20, 10, 5, 2)
STOCK = ("A key skill for any team.", "Worth learning early on.", "Useful in daily practice.")


def topic_style(row: dict[str, Any], rng: random.Random) -> str:
    return f"{row['topic']}: " + " ".join(str(row["description"]).split()[2:6])


def description_style(row: dict[str, Any], rng: random.Random) -> str:
    words = str(row["description"]).split()
    if not words:  # a row with no description gets an answer about its topic
        return topic_style(row, rng)
    start = max(0, len(words) // 2 - 5)
    return " ".join(words[start : start + 10])


def generic_style(row: dict[str, Any], rng: random.Random) -> str:
    return rng.choice(STOCK)


STYLES: dict[str, Callable[[dict[str, Any], random.Random], str]] = {
    "topic": topic_style,
    "description": description_style,
    "generic": generic_style,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swaps", type=int, default=3, help="random pairs swapped in each pack")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [{name: r.get(name, "") for name in INPUTS} for r in rows]
    print(f"# {len(rows)} roadmap rows in file order; {args.swaps} swaps a pack; seed {args.seed}")
    print(f"{'style':<12} {'pack':>4} {'packs':>6} {'false alarms':>13} {'swaps':>6} {'both caught':>12}", end="")
    print(f" {'rows wrong':>11}")
    for style, write in STYLES.items():
        for size in SIZES:
            rng = random.Random(args.seed)
            packs = [rows[start : start + size] for start in range(0, len(rows) - size + 1, size)]
            alarms = answers = swaps = both = wrong = 0
            for pack in packs:
                ids = [f"r{i + 1}" for i in range(len(pack))]
                inputs = dict(zip(ids, pack, strict=True))
                honest = {rid: {"tldr": write(row, rng)} for rid, row in inputs.items()}
                alarms += len(suspects(honest, inputs, ["tldr"]))
                answers += len(honest)
                for _ in range(args.swaps):
                    a, b = rng.sample(ids, 2)
                    if honest[a] == honest[b]:
                        continue
                    swapped = {**honest, a: honest[b], b: honest[a]}
                    caught = suspects(swapped, inputs, ["tldr"])
                    swaps += 1
                    both += {a, b} <= caught
                    wrong += (a not in caught) + (b not in caught)
            print(
                f"{style:<12} {size:>4} {len(packs):>6} {alarms / answers:>13.2%} {swaps:>6}"
                f" {both / max(1, swaps):>12.1%} {wrong / max(1, 2 * swaps):>11.1%}"
            )
    for style, write in STYLES.items():
        print(f"# calls for the first 1,000 rows, {style} answers: {calls(rows[:1000], write)}")


def calls(rows: list[dict[str, Any]], write: Callable[[dict[str, Any], random.Random], str]) -> int:
    """The calls ``enrich`` makes for ``rows`` when every answer's tldr is written by ``write``."""
    rng = random.Random(0)

    def answer(request: Any) -> Any:
        found = records_of(request)
        items = [{"tldr": write(row, rng), "challenge": "practice"} for row in found]
        ids = ids_of(request)
        return [{"id": rid, **item} for rid, item in zip(ids, items, strict=True)] if ids else items[0]

    provider = FunctionProvider(answer, record=False)
    rows = [{"id": f"row{i}", **row} for i, row in enumerate(rows)]
    return enrich(rows, TASK, provider=provider, use_cache=False, progress=False).stats.calls


if __name__ == "__main__":
    main()
