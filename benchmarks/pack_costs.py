"""What checking one pack of 20 answers costs, step by step (µs, the least of 7 timeit repeats).

    PYTHONPATH=src .venv/bin/python benchmarks/pack_costs.py

The rows are ``throughput.py``'s synthetic ones and the answers its instant provider's, so these are
the per-pack figures behind its fresh-run rows/s. The steps are ones every version of the pack codec has,
so an older checkout can be timed the same way (``PYTHONPATH=<old checkout>/src``).

A second line gives what asking for token log-probabilities adds (issue 32): reading them from a
llama.cpp answer of that pack (``providers.local.logprobs``; one token for every four characters, as
llama.cpp returns them when asked), as a share of the steps above.

``--tiny N``: then N of those rows on the tiny SmolLM2 model (installed by ``make``), each asked alone with
and without log-probabilities: the output tokens both ways, how many answers are the same, and the
seconds (wall time on a shared machine is approximate).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import timeit
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from enrichkit.engine.codec import PackCodec
from enrichkit.engine.crosswire import suspects, text_fields
from enrichkit.engine.validation import check_pack, parse_items
from enrichkit.providers.base import Reply
from enrichkit.providers.local.logprobs import answer_tokens
from enrichkit.providers.local.provider import LocalProvider
from enrichkit.providers.local.weights import smollm2_path
from enrichkit.rows.work import Work
from enrichkit.task.schema import make_validator
from throughput import TASK, instant, iter_synthetic_rows


def least_us(step: Callable[[], Any]) -> float:
    return min(timeit.repeat(step, number=300, repeat=7)) / 300 * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", type=int, default=0, help="rows to ask the tiny model with and without")
    args = parser.parse_args()
    codec = PackCodec(TASK, affinity=True)
    rows = [{f: row[f] for f in TASK.inputs} for row in iter_synthetic_rows(20)]
    items = [Work(f"k{n}", inputs) for n, inputs in enumerate(rows)]
    ids, request = codec.pack_request(items)
    text = instant(request).text
    payload, _ = parse_items(text)
    validator, fields = make_validator(TASK.schema), TASK.fields
    check = check_pack(payload, ids, fields, validator)
    answers, inputs = check.valid, dict(zip(ids, rows, strict=True))
    steps: dict[str, Callable[[], Any]] = {
        "prompt and request": lambda: codec.pack_request(items),
        "parse the answer": lambda: parse_items(text),
        "check ids and values": lambda: check_pack(payload, ids, fields, validator),
        "cross-wiring check": lambda: suspects(answers, inputs, text_fields(TASK.schema)),
    }
    costs = {name: round(least_us(step)) for name, step in steps.items()}
    print(json.dumps(costs))
    doc = llama_cpp_answer(text or "")
    read = least_us(lambda: answer_tokens(doc))
    print(
        json.dumps(
            {"read the log-probabilities": round(read), "share of the steps": round(read / sum(costs.values()), 3)}
        )
    )
    if args.tiny:
        print(json.dumps(asyncio.run(on_tiny_model(codec, items[: args.tiny]))))


async def on_tiny_model(codec: PackCodec, items: list[Work]) -> dict[str, Any]:
    """Each row asked alone on SmolLM2 without, then with, log-probabilities."""
    path = smollm2_path()
    if path is None:
        raise SystemExit("the SmolLM2 model is not installed (make installs it)")
    provider = LocalProvider(path, threads=1, slots=1)
    figures: dict[str, Any] = {"rows": len(items)}
    answers: dict[bool, list[Reply]] = {}
    for logprobs in (False, True):
        started = time.perf_counter()
        answers[logprobs] = [
            await provider.generate(replace(codec.single_request(item), logprobs=logprobs)) for item in items
        ]
        name = "with" if logprobs else "without"
        figures[f"output tokens {name}"] = sum(r.usage.output_tokens for r in answers[logprobs])
        figures[f"seconds {name}"] = round(time.perf_counter() - started, 2)
    figures["same answers"] = sum(a.text == b.text for a, b in zip(answers[False], answers[True], strict=True))
    return figures


def llama_cpp_answer(text: str) -> dict[str, Any]:
    """A chat completion of ``text`` with log-probabilities, shaped as xllamacpp returns it (a token of four
    characters, its one top alternative, and the end of generation)."""
    entries = []
    for at in range(0, len(text), 4):
        piece = text[at : at + 4]
        raw = list(piece.encode())
        entry = {"id": at, "token": piece, "bytes": raw, "logprob": -0.01}
        entries.append({**entry, "top_logprobs": [dict(entry)]})
    entries.append({"id": 0, "token": "", "bytes": [], "logprob": -0.01, "top_logprobs": []})
    message = {"role": "assistant", "content": text}
    return {"choices": [{"index": 0, "finish_reason": "stop", "message": message, "logprobs": {"content": entries}}]}


if __name__ == "__main__":
    main()
