"""The embedded model's token log-probabilities on awesome-python rows, asked the demo's task one row at
a time, straight through the local provider (the engine's single-row request, as a run sends it), for
``confidence.py`` to score.

Data: a seeded sample of the shared awesome-python rows (``local_runs.awesome_rows``; by Vinta Chen and
contributors, https://github.com/vinta/awesome-python, CC BY 4.0), none of the demo's 20; the truth is
the row's own ``group``, never sent. Each answer is written as one JSON line as soon as it is back
(a rerun skips the rows the file holds): the row's id and group, the answer, and each answer token
with its log-probability and the model's most likely alternatives there (llama.cpp's raw
distribution, before the grammar and sampling), so the variants of ``confidence.py`` can be
computed again without the model.

Run: PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/local_confidence.py [--rows 200] [--out FILE]
     (about 5-10 s a row on two shared cores); ``--held-out``: rows outside the first 200 (the sample the
     reading of the confidence was chosen on), drawn with another seed
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any

from enrichkit.engine.codec import PackCodec
from enrichkit.providers.local.provider import LocalProvider
from enrichkit.providers.local.weights import embedded_model_path
from enrichkit.rows.work import Work
from enrichkit.task.task import Task
from local_runs import DEMO_TASK, SEED, SHARED, awesome_rows, demo_rows

ALTERNATIVES = 20  # the alternatives kept per token (llama.cpp's top_logprobs)
DEV_ROWS = 200  # the first sample (seed SEED), on which confidence.py's score was chosen


def held_out_rows(n: int) -> list[dict[str, Any]]:
    """``n`` rows drawn with another seed from those in neither the demo nor the dev sample."""
    skip = {r["id"] for r in awesome_rows(DEV_ROWS)} | {r["id"] for r in demo_rows()}
    rows = [json.loads(line) for line in SHARED.read_text(encoding="utf-8").splitlines() if line.strip()]
    return random.Random(SEED + 1).sample([r for r in rows if r["id"] not in skip], n)


def answer(provider: LocalProvider, codec: PackCodec, row: dict[str, Any]) -> dict[str, Any]:
    """One row asked on its own, with the answer's tokens and their alternatives."""
    request = codec.single_request(Work(row["id"], {"name": row["name"], "description": row["description"]}))
    body = {**provider.body(request), "logprobs": True, "top_logprobs": ALTERNATIVES}
    started = time.perf_counter()
    doc = provider._complete(body)
    choice = doc["choices"][0]
    tokens = [
        [t["token"], t["logprob"], [[a["token"], a["logprob"]] for a in t["top_logprobs"]]]
        for t in choice["logprobs"]["content"]
    ]
    return {
        "id": row["id"],
        "truth": row["group"],
        "text": choice["message"]["content"],
        "finish": choice["finish_reason"],
        "tokens": tokens,
        "seconds": round(time.perf_counter() - started, 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--slots", type=int, default=2, help="rows decoded together")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp's (spinning threads crawl on a busy machine)")
    parser.add_argument("--held-out", action="store_true", help=f"rows outside the first {DEV_ROWS} (another seed)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/local-confidence.jsonl"))
    args = parser.parse_args()
    task = Task.from_file(DEMO_TASK)
    provider = LocalProvider(embedded_model_path(), threads=args.threads, slots=args.slots)
    codec = PackCodec(task, id_style=provider.capabilities.id_style, reads_schema=provider.capabilities.reads_schema)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.out.is_file():
        done = {json.loads(line)["id"] for line in args.out.read_text(encoding="utf-8").splitlines() if line}
    rows = held_out_rows(args.rows) if args.held_out else awesome_rows(args.rows)
    todo = [r for r in rows if r["id"] not in done]
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for row in todo:
        queue.put_nowait(row)

    async def worker() -> None:
        while not queue.empty():
            row = queue.get_nowait()
            res = await asyncio.to_thread(answer, provider, codec, row)
            with args.out.open("a", encoding="utf-8") as out:
                out.write(json.dumps(res, ensure_ascii=False) + "\n")

    await asyncio.gather(*(worker() for _ in range(args.slots)))
    print(f"{len(done) + len(todo)} rows in {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
