"""Prompt tokens a run sends against a plain packed client's, on the README's tasks and the benchmarks'.

    PYTHONPATH=src .venv/bin/python benchmarks/prompt_tokens.py

A plain packed client sends the least a packed call can: the task's instruction as the system text,
the rows as a JSON array under short ids, and the answer schema (the task's fields, their values and
descriptions) as the response schema. enrichkit's requests are built by its pack codec in packs of
20, with the default cross-wiring check of each task. Tokens are counted as the test stubs count them
(four characters a token), per request: the text alone (what the stubs bill) and the text with the
compact JSON of the schema as Gemini's wire carries it (what a provider that counts its response schema
bills). No model is called. Target (issue 31 item 4): every ratio <= 1.05.

Tasks: the README's first-run task (product reviews, synthetic rows), the roadmap task
(schemas/roadmap-topic.json on the engineering-manager roadmap, read in place from the shared data
folder), the demo task (schemas/library-group.json: 14 groups) and issue 31's probe (the 74 sections
of awesome-python as an enum) on the 481 awesome-python rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from enrichkit import Task
from enrichkit.engine.codec import PackCodec
from enrichkit.engine.context import crosswire_checks
from enrichkit.engine.prompt import pack_ids
from enrichkit.providers.base import Request, estimate_tokens
from enrichkit.providers.gemini import SUPPORTED_KEYWORDS
from enrichkit.rows.work import Work
from enrichkit.task.schema import restrict

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
PACK = 20

REVIEWS = Task(
    "Summarise each product review and say whether it is positive.",
    ["review"],
    {
        "type": "object",
        "properties": {
            "summary": {"type": "string", "maxWords": 12},
            "sentiment": {"type": "string", "enum": ["positive", "negative", "mixed"]},
        },
    },
    id_field="id",
)


def sections_task(rows: Sequence[dict[str, Any]]) -> Task:
    """Issue 31's probe: each library's section of the list, one of its 74, and a tldr."""
    sections = sorted({row["section"] for row in rows})
    return Task(
        "Put each Python library into its section of the awesome-python list.",
        ["name", "description"],
        {
            "type": "object",
            "properties": {
                "section": {"type": "string", "enum": sections, "description": "The library's section."},
                "tldr": {"type": "string", "maxWords": 12, "description": "What it is for, in your own words."},
            },
        },
        id_field="id",
    )


def jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def reviews(n: int) -> list[dict[str, Any]]:
    moods = ("Arrived quickly and works perfectly.", "Stopped charging after a week.", "Fine, but the case cracked.")
    return [{"id": i, "review": f"{moods[i % 3]} Order {i}: battery lasts {i % 5 + 1} days."} for i in range(n)]


def plain(task: Task, records: list[dict[str, Any]]) -> Request:
    """A plain packed client's request: instruction, rows under ids, the task's schema for each item."""
    ids = pack_ids(len(records))
    body = json.dumps([{"id": rid, **rec} for rid, rec in zip(ids, records, strict=True)], ensure_ascii=False)
    item = {
        "type": "object",
        "properties": {"id": {"type": "string", "enum": ids}, **task.schema["properties"]},
        "required": ["id", *task.schema["required"]],
    }
    schema = {"type": "array", "items": item}
    return Request(system=task.instruction, prompt=body, schema=schema, max_output_tokens=0)


def tokens(request: Request, schema: bool) -> int:
    """The request's text tokens, and with ``schema`` those of its schema as Gemini's wire carries it."""
    text = estimate_tokens(request.system) + estimate_tokens(request.prompt)
    sent = restrict(request.schema, SUPPORTED_KEYWORDS)
    return text + (estimate_tokens(json.dumps(sent, separators=(",", ":"), ensure_ascii=False)) if schema else 0)


def packs(task: Task, rows: Sequence[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    records = [{name: row.get(name, "") for name in task.inputs} for row in rows]
    for start in range(0, len(records), PACK):
        yield records[start : start + PACK]


def main() -> None:
    awesome = jsonl(SHARED / "awesome-python" / "awesome-python.jsonl")
    tasks: list[tuple[str, Task, list[dict[str, Any]]]] = [
        ("README reviews", REVIEWS, reviews(200)),
        ("roadmap-topic", Task.from_file(ROOT / "schemas" / "roadmap-topic.json"), []),
        ("library-group", Task.from_file(ROOT / "schemas" / "library-group.json"), awesome),
        ("74 sections (issue 31)", sections_task(awesome), awesome),
    ]
    roadmap = SHARED / "roadmaps" / "engineering-manager.jsonl"
    tasks[1] = (tasks[1][0], tasks[1][1], jsonl(roadmap) if roadmap.exists() else [])
    print("# prompt tokens (4 characters a token) in packs of 20; ratio: enrichkit / plain packed client")
    print(f"{'task':<24} {'rows':>5} {'text':>8} {'plain':>8} {'ratio':>6} {'+schema':>8} {'plain':>8} {'ratio':>6}")
    for name, task, rows in tasks:
        if not rows:
            print(f"{name:<24} skipped: its rows are absent")
            continue
        echo, affinity = crosswire_checks(task, None, PACK)
        codec = PackCodec(task, echo=echo, affinity=affinity)
        ours = [0, 0]
        base = [0, 0]
        for records in packs(task, rows):
            request = codec.pack_request([Work(f"k{n}", rec) for n, rec in enumerate(records)])[1]
            for n, schema in enumerate((False, True)):
                ours[n] += tokens(request, schema)
                base[n] += tokens(plain(task, records), schema)
        print(
            f"{name:<24} {len(rows):>5} {ours[0]:>8,} {base[0]:>8,} {ours[0] / base[0]:>6.3f}"
            f" {ours[1]:>8,} {base[1]:>8,} {ours[1] / base[1]:>6.3f}"
        )


if __name__ == "__main__":
    main()
