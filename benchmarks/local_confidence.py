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
     (about 5-10 s a row on two shared cores); ``--rows N``: the first N of the 200; ``--held-out``: rows
     outside the first 200 (the sample the reading of the confidence and the task's wording were chosen
     on), drawn with another seed; ``--task FILE``: a variant of the demo's task; ``--prompt-tokens``: only
     the task's prompt size; ``--spare``: only the rows in neither sample nor the demo (the task's examples
     come from these; a run warns if the task quotes a row it measures); ``--staged``: each row asked as a
     run asks it (decoded in stages, the enum's choice debiased by the priors learned on the rows so far)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from enrichkit.engine.codec import PackCodec
from enrichkit.providers.local.priors import FILE as PRIORS_FILE
from enrichkit.providers.local.provider import LocalProvider
from enrichkit.providers.local.weights import embedded_model_path
from enrichkit.rows.work import Work
from enrichkit.task.task import Task
from local_runs import DEMO_TASK, PREFIXES, SEED, SHARED, awesome_rows, demo_rows

ALTERNATIVES = 20  # the alternatives kept per token (llama.cpp's top_logprobs)
DEV_ROWS = 200  # the first sample (seed SEED), on which confidence.py's score was chosen


def held_out_rows(n: int) -> list[dict[str, Any]]:
    """``n`` rows drawn with another seed from those in neither the demo nor the dev sample."""
    skip = {r["id"] for r in awesome_rows(DEV_ROWS)} | {r["id"] for r in demo_rows()}
    rows = [json.loads(line) for line in SHARED.read_text(encoding="utf-8").splitlines() if line.strip()]
    return random.Random(SEED + 1).sample([r for r in rows if r["id"] not in skip], n)


def spare_rows() -> list[dict[str, Any]]:
    """The rows in none of the demo, the dev sample and the held-out sample: where the task's worked
    examples come from, so that no measured row is answered in its own prompt."""
    used = {r["id"] for r in [*demo_rows(), *awesome_rows(DEV_ROWS), *held_out_rows(DEV_ROWS)]}
    rows = [json.loads(line) for line in SHARED.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in rows if r["id"] not in used]


def answer(provider: LocalProvider, codec: PackCodec, row: dict[str, Any]) -> dict[str, Any]:
    """One row asked on its own, with the answer's tokens and their alternatives."""
    request = codec.single_request(Work(row["id"], {"name": row["name"], "description": row["description"]}))
    body = {**provider.body(request), "logprobs": True, "top_logprobs": ALTERNATIVES}
    started = time.perf_counter()
    doc = provider._complete(body)
    choice = doc["choices"][0]
    usage = doc.get("usage") or {}
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
        "prompt_tokens": usage.get("prompt_tokens"),
        "cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens"),
    }


async def staged_answer(provider: LocalProvider, codec: PackCodec, row: dict[str, Any]) -> dict[str, Any]:
    """One row as a run asks it (``generate``: decoded in stages, its enum debiased), with the answer's
    tokens: only the decisions have alternatives, the corrected ones the choice was made on."""
    request = codec.single_request(Work(row["id"], {"name": row["name"], "description": row["description"]}))
    started = time.perf_counter()
    reply = await provider.generate(replace(request, logprobs=True))
    tokens = [[t.text, t.logprob, [list(a) for a in t.top]] for t in reply.tokens or ()]
    return {
        "id": row["id"],
        "truth": row["group"],
        "text": reply.text,
        "finish": reply.finish,
        "tokens": tokens,
        "seconds": round(time.perf_counter() - started, 2),
        "prompt_tokens": reply.usage.prompt_tokens,
        "cached_tokens": reply.usage.cached_tokens,
    }


def quoted(task: Task, rows: list[dict[str, Any]]) -> list[str]:
    """The ids of ``rows`` whose name the task's instruction quotes (as a worked example's)."""
    return [r["id"] for r in rows if f'"name": {json.dumps(r["name"], ensure_ascii=False)}' in task.instruction]


def prompt_tokens(provider: LocalProvider, codec: PackCodec, rows: list[dict[str, Any]]) -> None:
    """Print the task's prompt in tokens: its fixed start (the system prompt, processed once a run and
    kept on disk) and the mean of each row's own part (the user message and the template around it)."""
    _, prefix = provider._loaded()

    def count(text: str) -> int:
        return len(prefix._post("/tokenize", {"content": text})["tokens"])

    own = []
    for row in rows:
        sent = provider.as_sent(codec.single_request(Work(row["id"], {k: row[k] for k in ("name", "description")})))
        before, after = prefix.parts(sent.system)
        own.append(count(before + sent.prompt + after) - count(before))
    print(
        f"prompt tokens: fixed start {count(before)}, each row's own part {sum(own) / len(own):.1f}"
        f" (mean of {len(own)} rows)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--slots", type=int, default=2, help="rows decoded together")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp's (spinning threads crawl on a busy machine)")
    parser.add_argument("--held-out", action="store_true", help=f"rows outside the first {DEV_ROWS} (another seed)")
    parser.add_argument("--task", type=Path, default=DEMO_TASK, help="a variant of the demo's task (same fields)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/out/local-confidence.jsonl"))
    parser.add_argument("--prompt-tokens", action="store_true", help="only print the task's prompt size in tokens")
    parser.add_argument("--spare", action="store_true", help="only list the rows a task's examples may come from")
    parser.add_argument(
        "--staged",
        action="store_true",
        help=f"ask as a run does (in stages, the enum debiased; priors in {PREFIXES}, fresh unless resuming)",
    )
    parser.add_argument("--no-debias", action="store_true", help="the task's enums without their debias mark")
    args = parser.parse_args()
    if args.spare:
        for row in spare_rows():
            print(f"{row['group']:<20} {row['name']:<20} {row['description']}")
        return
    task = Task.from_file(args.task)
    if args.no_debias:
        fields = {
            name: {k: v for k, v in sub.items() if k != "debias"} for name, sub in task.schema["properties"].items()
        }
        output = {**task.schema, "properties": fields}
        task = Task(task.instruction, task.inputs, output, task.id_field, task.name, task.source, task.together)
    prefixes = PREFIXES if args.staged else None
    provider = LocalProvider(embedded_model_path(), threads=args.threads, slots=args.slots, prefix_dir=prefixes)
    codec = PackCodec(task, id_style=provider.capabilities.id_style, reads_schema=provider.capabilities.reads_schema)
    if args.prompt_tokens:
        prompt_tokens(provider, codec, awesome_rows(DEV_ROWS)[: args.rows])
        return
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if args.out.is_file():
        done = {json.loads(line)["id"] for line in args.out.read_text(encoding="utf-8").splitlines() if line}
    rows = held_out_rows(DEV_ROWS)[: args.rows] if args.held_out else awesome_rows(DEV_ROWS)[: args.rows]
    if leaked := quoted(task, rows):
        print(f"warning: the task's instruction quotes measured rows as examples: {', '.join(leaked)}")
    todo = [r for r in rows if r["id"] not in done]
    if args.staged and not done:
        (PREFIXES / PRIORS_FILE).unlink(missing_ok=True)  # a fresh start: the priors learned on these rows alone
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for row in todo:
        queue.put_nowait(row)

    async def worker() -> None:
        while not queue.empty():
            row = queue.get_nowait()
            if args.staged:
                res = await staged_answer(provider, codec, row)
            else:
                res = await asyncio.to_thread(answer, provider, codec, row)
            with args.out.open("a", encoding="utf-8") as out:
                out.write(json.dumps(res, ensure_ascii=False) + "\n")

    await asyncio.gather(*(worker() for _ in range(args.slots)))
    await provider.aclose()
    print(f"{len(done) + len(todo)} rows in {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
