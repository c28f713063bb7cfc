"""What the cross-wiring checks cost: output tokens a row with none, the default and ``echo=True``, on a
task with long free text (the roadmap task: its default is the free word check) and on an extraction
task (a name of no set length: its default adds the cheapest echo); and whether a swap inside a pack is
caught.

    PYTHONPATH=src .venv/bin/python benchmarks/echo_cost.py

1,000 synthetic rows against the in-process Gemini stub (which counts 4 characters a token).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from enrichkit import Task, enrich
from enrichkit.providers.gemini import make_client
from enrichkit.testing import GeminiStub, swap_answers

ROOT = Path(__file__).resolve().parent.parent
ROWS = 1_000
ROADMAP = Task.from_file(ROOT / "schemas" / "roadmap-topic.json")
EXTRACT = Task(
    "Name the tool or concept each topic is about.",
    ROADMAP.inputs,
    {
        "type": "object",
        "properties": {"name": {"type": "string"}, "challenge": ROADMAP.schema["properties"]["challenge"]},
    },
)


def main() -> None:
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    rows = [
        {"id": f"t{i}", "category": f"Area {i % 7}", "topic": f"Topic number {i}",
         "description": f"Synthetic description {i} of a topic, with enough words to summarise it."}
        for i in range(ROWS)
    ]  # fmt: skip
    for label, task in (("roadmap (long free text)", ROADMAP), ("extraction (a name)", EXTRACT)):
        base = 0.0
        for name, echo in (("no check (echo=False)", False), ("default", None), ("echo=True", True)):
            with GeminiStub() as stub, tempfile.TemporaryDirectory() as cache:
                client = make_client(api_key="benchmark", base_url=stub.url)
                stats = enrich(rows, task, client=client, cache_dir=cache, echo=echo, progress=False).stats
                stub.script(swap_answers("r3", "r7"))
                swap = enrich(rows[:20], task, client=client, cache_dir=f"{cache}/swap", echo=echo, progress=False)
            per_row = stats.output_tokens / ROWS
            base = base or per_row
            print(f"{label:<25} {name:<22} calls {stats.calls}, output tokens {per_row:.1f} a row"
                  f" ({per_row / base:.3f} x), prompt tokens {stats.prompt_tokens / ROWS:.1f} a row;"
                  f" a swap in a pack of 20: {swap.stats.crosswired} of 2 caught")  # fmt: skip


if __name__ == "__main__":
    main()
