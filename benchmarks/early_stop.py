"""The calls of a first run and of its re-run when 29 of 30 rows can never pass (the model answers stars
14 where the task allows 1-5), through the CLI against the Gemini stub.

    PYTHONPATH=src .venv/bin/python benchmarks/early_stop.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from enrichkit.testing import GeminiStub, set_field
from helpers import run_cli, write_jsonl

STARS = {
    "instruction": "Rate each review.",
    "inputs": ["review"],
    "id_field": "id",
    "output": {"type": "object", "properties": {"stars": {"type": "integer", "minimum": 1, "maximum": 5}}},
}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, GeminiStub() as stub:
        folder = Path(tmp)
        (folder / "task.json").write_text(json.dumps(STARS), encoding="utf-8")
        rows = write_jsonl(folder / "rows.jsonl", [{"id": i, "review": f"Review {i} of a thing"} for i in range(30)])
        stub.rule(set_field(lambda record: not record["review"].startswith("Review 2 "), "stars", 14))
        out = folder / "out.csv"
        args = ["run", str(rows), "-t", str(folder / "task.json"), "--cache-dir", str(folder / "c"), "--json"]
        for name in ("first run", "re-run"):
            before = len(stub.generate_calls)
            done = run_cli(*args, "-o", str(out), stub=stub)
            written = len(out.read_text(encoding="utf-8").splitlines()) - 1 if out.exists() else 0
            report = "printed" if done.stdout.strip() else "missing"
            calls = len(stub.generate_calls) - before
            print(f"{name}: exit {done.returncode}, {calls} calls, {written} output rows, --json report {report}")


if __name__ == "__main__":
    main()
