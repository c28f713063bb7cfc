"""What reading the confidence costs the engine: a 20-row pack's answer checked with and without tokens.

    .venv/bin/python benchmarks/confidence_read.py [--packs 2000]

Prints the microseconds per pack of ``PackCodec.read_pack`` on the same answer, without token
log-probabilities and with one token per value (``scored``), old vs new in one run (wall-clock on a shared
machine: approximate; re-run on a quiet one).
"""

from __future__ import annotations

import argparse
import time

from enrichkit import Task
from enrichkit.engine.codec import PackCodec
from enrichkit.providers.base import Reply
from enrichkit.providers.function import scored
from enrichkit.rows.work import Work

TASK = Task(
    "Classify each library.",
    ["name", "description"],
    {
        "type": "object",
        "properties": {
            "kind": {"type": "string", "enum": ["tool", "library", "framework", "other"]},
            "typed": {"type": "boolean"},
            "summary": {"type": "string", "maxWords": 12},
        },
        "required": ["kind", "typed", "summary"],
    },
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packs", type=int, default=2000)
    args = parser.parse_args()
    items = [Work(f"k{i}", {"name": f"lib{i}", "description": f"Library number {i} parses files."}) for i in range(20)]
    for logprobs in (False, True):
        codec = PackCodec(TASK, logprobs=logprobs)
        ids, _ = codec.pack_request(items)
        answer = [
            {"id": rid, "kind": "library", "typed": True, "summary": f"Parses files, library {n}."}
            for n, rid in enumerate(ids)
        ]
        reply = scored(answer, {"kind": 0.8, "typed": 0.95})
        if not logprobs:
            reply = Reply(reply.text, usage=reply.usage)
        checked = codec.read_pack(reply, ids, items)
        assert len(checked.valid) == 20 and len(checked.confidence) == (20 if logprobs else 0)
        started = time.perf_counter()
        for _ in range(args.packs):
            codec.read_pack(reply, ids, items)
        per_pack = (time.perf_counter() - started) / args.packs * 1e6
        tokens = len(reply.tokens or ())
        print(f"read_pack, 20 rows, {'with' if logprobs else 'without'} tokens ({tokens}): {per_pack:,.0f} µs a pack")


if __name__ == "__main__":
    main()
