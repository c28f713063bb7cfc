"""What the cross-wiring checks cost: output tokens a row with none, the default (the free text check)
and the echo, on the roadmap task; and whether a swap inside a pack is caught.

    .venv/bin/python benchmarks/echo_cost.py

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


def main() -> None:
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    task = Task.from_file(ROOT / "schemas" / "roadmap-topic.json")
    rows = [
        {"id": f"t{i}", "category": f"Area {i % 7}", "topic": f"Topic number {i}",
         "description": f"Synthetic description {i} of a topic, with enough words to summarise it."}
        for i in range(ROWS)
    ]  # fmt: skip
    base = 0.0
    for name, echo in (("no check (echo=False)", False), ("default", None), ("echo=True", True)):
        with GeminiStub() as stub, tempfile.TemporaryDirectory() as cache:
            client = make_client(api_key="benchmark", base_url=stub.url)
            stats = enrich(rows, task, client=client, cache_dir=cache, echo=echo, progress=False).stats
            stub.script(swap_answers("r3", "r7"))
            caught = enrich(rows[:20], task, client=client, cache_dir=f"{cache}/swap", echo=echo, progress=False)
        per_row = stats.output_tokens / ROWS
        base = base or per_row
        print(f"{name:<22} calls {stats.calls}, output tokens {per_row:.1f} a row ({per_row / base - 1:+.1%}),"
              f" prompt tokens {stats.prompt_tokens / ROWS:.1f} a row; a swap in a pack of 20:"
              f" {caught.stats.crosswired} of 2 caught")  # fmt: skip


if __name__ == "__main__":
    main()
