"""The iterate loop of the README, run for real: the CLI (subprocesses) against the Gemini stub, each step
printed with what it said and the model calls it cost (the stub's count of generate requests).

    .venv/bin/python benchmarks/iterate_loop.py [--rows 200] [--sample 50]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from enrichkit.testing import GeminiStub

TASK = [
    "--instruction", "Describe each roadmap topic.", "--input", "topic", "--input", "description", "--id-field", "id",
    "--column", "kind: concept|tool|practice -- what the topic is",
    "--column", "summary: text, at most 12 words -- the topic in one line",
]  # fmt: skip
LEVEL = ["--column", "level: beginner|intermediate|advanced -- who the topic is for"]


def rows(n: int) -> list[dict[str, str]]:
    return [
        {"id": f"t{i}", "topic": f"Topic number {i}", "description": f"Synthetic description {i} of a topic."}
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--sample", type=int, default=50)
    args = parser.parse_args()
    with GeminiStub() as stub, tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        Path("rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(args.rows)), encoding="utf-8")
        env = {**os.environ, "GEMINI_API_KEY": "stub-key", "ENRICHKIT_BASE_URL": stub.url}
        sample = ["--limit", str(args.sample)]
        wider = [*TASK, *LEVEL]
        reworded = [c.replace("the topic in one line", "what a learner gets from it") for c in wider]
        instructed = [
            c.replace("Describe each roadmap topic.", "Describe each topic for a beginner.") for c in reworded
        ]
        steps = [
            ("sample", ["run", "rows.jsonl", *TASK, *sample, "-o", "sample.csv"]),
            ("look", ["runs"]),
            ("add a column: what will it ask?", ["run", "rows.jsonl", *wider, *sample, "-o", "s2.csv", "--dry-run"]),
            ("add a column", ["run", "rows.jsonl", *wider, *sample, "-o", "s2.csv"]),
            ("diff", ["diff", "last~1", "last"]),
            ("full run: what will it ask?", ["run", "rows.jsonl", *wider, "-o", "all.csv", "--dry-run"]),
            ("full run", ["run", "rows.jsonl", *wider, "-o", "all.csv"]),
            ("reword a description: what will it ask?", ["run", "rows.jsonl", *reworded, "-o", "all.csv", "--dry-run"]),
            ("reword a description", ["run", "rows.jsonl", *reworded, "-o", "all.csv"]),
            ("a new instruction: what will it ask?", ["run", "rows.jsonl", *instructed, "-o", "all.csv", "--dry-run"]),
        ]  # fmt: skip
        for name, command in steps:
            before = len(stub.generate_calls)
            done = subprocess.run(
                [sys.executable, "-m", "enrichkit", *command], env=env, capture_output=True, text=True
            )
            shown = " ".join(c if " " not in c else repr(c) for c in command)
            print(f"## {name}: {len(stub.generate_calls) - before} calls (exit {done.returncode})\n$ enrichkit {shown}")
            print((done.stdout + done.stderr).rstrip() + "\n")


if __name__ == "__main__":
    main()
