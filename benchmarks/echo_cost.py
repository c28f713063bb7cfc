"""What the echo check costs: output tokens a row with and without it, on the roadmap task.

    .venv/bin/python benchmarks/echo_cost.py

1,000 synthetic rows against the in-process Gemini stub (which counts 4 characters a token).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from enrichkit import Task, enrich
from enrichkit.providers.gemini import make_client
from enrichkit.testing import GeminiStub

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
    for echo in (False, True):
        with GeminiStub() as stub, tempfile.TemporaryDirectory() as cache:
            client = make_client(api_key="benchmark", base_url=stub.url)
            stats = enrich(rows, task, client=client, cache_dir=cache, echo=echo).stats
        print(f"echo={echo!s:<5} calls {stats.calls}, output tokens {stats.output_tokens / ROWS:.1f} a row,"
              f" prompt tokens {stats.prompt_tokens / ROWS:.1f} a row")  # fmt: skip


if __name__ == "__main__":
    main()
