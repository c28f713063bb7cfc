"""What the default cross-wiring checks catch, how often they cry wolf, and what they cost in output tokens.

    PYTHONPATH=src .venv/bin/python benchmarks/crosswire_catch.py [--swaps 3] [--seed 1] [--words-only]

Rows: the 9,426 roadmap.sh topics of shared/data (read in place, never copied) in file order, so a
pack holds neighbouring topics of one roadmap (the hard case: they share their category and many
words). Packs of 20, 10, 5 and 2 rows get answers in one of these styles (no model is called: each
answer goes through the engine's own pack codec, with the checks a run of its task uses by default):

- on the roadmap task (``tldr``: free text of at most 12 words, long enough to carry its row's words:
  the free word check alone, no echo):
  - ``topic``: the tldr names the topic and a few words of its description (what most answers do);
  - ``description``: ten words from the middle of the description, the topic not named;
  - ``stock phrase``: one of a few stock phrases that name nothing of the row (a check on text cannot
    see these, and must not accuse them);
- on an extraction task (``name``: at most 3 words, too short to carry a row's words: the echo of the
  cheapest input that tells the pack's rows apart, plus the word check):
  - ``name``: the topic's name (a name, one to three words);
  - ``word``: one word of the description (its longest: a term picked out of the text);
  - ``stock phrase``: one of a few short stock answers ("Not stated", "Unknown", "General").

An answer's echo, when asked, copies the first words of the field the codec asks for, as written.
Per task, style and size: false alarms (honest answers held cross-wired, per answer), then for
``--swaps`` random pairs a pack, the answers of the two rows swapped (echo included, ids kept): the
share of swaps whose two rows were both caught (no wrong row kept), and the share of rows that kept
another row's answer; last, the answers' output tokens a row (four characters a token) against the
same answers with no check (``echo=False``). Then what false alarms cost: the calls ``enrich()``
makes for the first 1,000 rows when every answer is written in each roadmap style (an in-process
provider; 50 calls when nothing is re-asked).
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from enrichkit import Task, enrich
from enrichkit.engine.codec import PackCodec
from enrichkit.engine.context import crosswire_checks
from enrichkit.engine.prompt import cheapest_echo
from enrichkit.providers.base import Reply
from enrichkit.rows.work import Work
from enrichkit.testing import FunctionProvider, ids_of, records_of

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "roadmaps" / "all-roadmaps.jsonl"
TASK = Task.from_file(ROOT / "schemas" / "roadmap-topic.json")
INPUTS = ("category", "topic", "description")
EXTRACT = Task(
    "Name the tool or concept each topic is about.",
    INPUTS,
    {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxWords": 3, "description": "Its name, as the topic gives it."},
            "challenge": TASK.schema["properties"]["challenge"],
        },
    },
)
SIZES = (20, 10, 5, 2)
STOCK = ("A key skill for any team.", "Worth learning early on.", "Useful in daily practice.")
SHORT_STOCK = ("Not stated", "Unknown", "General")

Style = Callable[[dict[str, Any], random.Random], str]


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


def name_style(row: dict[str, Any], rng: random.Random) -> str:
    return " ".join(str(row["topic"]).split()[:3])


def word_style(row: dict[str, Any], rng: random.Random) -> str:
    words = [w.strip(".,;:()'\"") for w in str(row["description"]).split()]
    return max(words, key=len) if words else name_style(row, rng)


def short_stock_style(row: dict[str, Any], rng: random.Random) -> str:
    return rng.choice(SHORT_STOCK)


CASES: list[tuple[str, Task, str, Style]] = [
    ("roadmap", TASK, "topic", topic_style),
    ("roadmap", TASK, "description", description_style),
    ("roadmap", TASK, "stock phrase", generic_style),
    ("extraction", EXTRACT, "name", name_style),
    ("extraction", EXTRACT, "word", word_style),
    ("extraction", EXTRACT, "stock phrase", short_stock_style),
]


def answers(codec: PackCodec, items: list[Work], ids: list[str], text: list[str]) -> list[dict[str, Any]]:
    """Honest items for a pack: id, the echo the codec asks for (as written in the row), the answer."""
    field = TASK.fields[0] if codec.task is TASK else "name"
    echo: dict[str, str] = {}
    if codec.echo:
        name, words = cheapest_echo([w.inputs for w in items], codec.task.inputs)
        echo = {rid: " ".join(str(w.inputs.get(name, "")).split()[:words]) for rid, w in zip(ids, items, strict=True)}
    return [
        {"id": rid, **({"echo": echo[rid]} if echo else {}), field: said, "challenge": "practice"}
        for rid, said in zip(ids, text, strict=True)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swaps", type=int, default=3, help="random pairs swapped in each pack")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--words-only", action="store_true", help="the word check alone, on every task (no echo)")
    args = parser.parse_args()
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [{name: r.get(name, "") or "" for name in INPUTS} for r in rows]
    print(f"# {len(rows)} roadmap rows in file order; {args.swaps} swaps a pack; seed {args.seed}")
    print(
        f"{'task':<11} {'style':<13} {'checks':<11} {'pack':>4} {'packs':>6} {'false alarms':>13} {'swaps':>6}", end=""
    )
    print(f" {'both caught':>12} {'rows wrong':>11} {'out tok/row':>12} {'vs none':>8}")
    for label, task, style, write in CASES:
        for size in SIZES:
            echo, affinity = (False, True) if args.words_only else crosswire_checks(task, None, size)
            codec = PackCodec(task, echo=echo, affinity=affinity)
            bare = PackCodec(task)
            checks = "+".join(name for name, on in (("words", affinity), ("echo", echo)) if on) or "none"
            rng = random.Random(args.seed)
            packs = [rows[start : start + size] for start in range(0, len(rows) - size + 1, size)]
            alarms = n_answers = swaps = both = wrong = chars = bare_chars = 0
            for pack in packs:
                items = [Work(f"k{n}", row) for n, row in enumerate(pack)]
                ids, _ = codec.pack_request(items)
                text = [write(row, rng) for row in pack]
                honest = answers(codec, items, ids, text)
                chars += len(json.dumps(honest))
                bare_chars += len(json.dumps(answers(bare, items, ids, text)))
                alarms += codec.read_pack(Reply(json.dumps(honest)), ids, items).crosswired
                n_answers += len(honest)
                for _ in range(args.swaps):
                    a, b = rng.sample(range(len(ids)), 2)
                    if {k: v for k, v in honest[a].items() if k != "id"} == {
                        k: v for k, v in honest[b].items() if k != "id"
                    }:
                        continue
                    swapped = list(honest)
                    swapped[a], swapped[b] = {**honest[b], "id": ids[a]}, {**honest[a], "id": ids[b]}
                    caught = codec.read_pack(Reply(json.dumps(swapped)), ids, items).invalid
                    swaps += 1
                    both += items[a] in caught and items[b] in caught
                    wrong += (items[a] not in caught) + (items[b] not in caught)
            print(
                f"{label:<11} {style:<13} {checks:<11} {size:>4} {len(packs):>6} {alarms / n_answers:>13.2%}"
                f" {swaps:>6} {both / max(1, swaps):>12.1%} {wrong / max(1, 2 * swaps):>11.1%}"
                f" {chars / 4 / n_answers:>12.1f} {chars / bare_chars:>7.3f}x"
            )
    for _, _task, style, write in CASES[:3]:
        print(f"# calls for the first 1,000 rows, roadmap {style} answers: {calls(rows[:1000], write)}")


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
