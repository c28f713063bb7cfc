"""What reading the confidence costs the engine: a 20-row pack's answer checked with and without tokens.

    .venv/bin/python benchmarks/confidence_read.py [--packs 2000]

Prints the microseconds per pack of ``PackCodec.read_pack`` on the same answer: without token
log-probabilities, and with them as a provider now gives them (the stubs' tokenisation: a token per word
or punctuation, each with ``ALTERNATIVES`` alternatives, the closed values' rivals among them), read by
this version's ``ConfidenceReader`` and by the reading of main before issue 32's second round (``OLD``:
the product of each value's tokens, the answer walked item by item), old vs new in one run: CPU time,
interleaved, the least of 7 rounds (on a shared machine still approximate; re-run on a quiet one).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import time
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from enrichkit import Task
from enrichkit.engine.codec import PackCodec
from enrichkit.providers.base import ALTERNATIVES, Reply, Token, Usage
from enrichkit.rows.work import Work
from enrichkit.testing.logprobs import Probs, scripted_tokens

ROUNDS = 7
OLD = "78f5b5f"  # main before this round: the product, the answer walked item by item
ROOT = Path(__file__).resolve().parents[1]
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


def old_reader() -> Any:
    """``engine/confidence.py`` as it was at ``OLD``, loaded as a module of its own."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{OLD}:src/enrichkit/engine/confidence.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType("old_confidence")
    exec(compile(source, "old_confidence.py", "exec"), module.__dict__)
    return module


class OldCodec(PackCodec):
    """The codec with the old reading of the confidence."""

    old = old_reader()

    def _confidence(
        self, reply: Reply, answers: Mapping[str | None, Mapping[str, Any]]
    ) -> dict[str | None, dict[str, float]]:
        if not reply.tokens or not answers:
            return {}
        found: dict[str | None, dict[str, float]] = self.old.read_confidence(reply.tokens, ["kind", "typed"], answers)
        return found


def tokens_of(answer: list[dict[str, Any]]) -> tuple[str, tuple[Token, ...]]:
    """The answer's JSON text and its tokens as the stubs write them, each with ``ALTERNATIVES`` alternatives."""
    text = json.dumps(answer)
    scripted = scripted_tokens(answer, text, Probs(values={"library": 0.8, True: 0.95}), {}, TASK.schema)
    tokens = []
    for piece, logprob, rival in scripted:
        top = [(piece, logprob)]
        if rival is not None:
            top.append((rival, math.log(max(1e-9, 1 - math.exp(logprob)))))
        top += [(f"{piece}~{k}", math.log(1e-9)) for k in range(ALTERNATIVES - len(top))]
        tokens.append(Token(piece, logprob, tuple(top)))
    return text, tuple(tokens)


def timed(codec: PackCodec, reply: Reply, ids: list[str], items: list[Work], packs: int) -> float:
    """CPU microseconds a pack (this process's: a busy machine's waits left out), over ``packs`` reads."""
    started = time.process_time()
    for _ in range(packs):
        codec.read_pack(reply, ids, items)
    return (time.process_time() - started) / packs * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packs", type=int, default=2000)
    args = parser.parse_args()
    items = [Work(f"k{i}", {"name": f"lib{i}", "description": f"Library number {i} parses files."}) for i in range(20)]
    new, old = PackCodec(TASK, logprobs=True), OldCodec(TASK, logprobs=True)
    ids, _ = new.pack_request(items)
    answer = [
        {"id": rid, "kind": "library", "typed": True, "summary": f"Parses files, library {n}."}
        for n, rid in enumerate(ids)
    ]
    text, tokens = tokens_of(answer)
    plain, scored = Reply(text, usage=Usage(output_tokens=len(tokens))), Reply(text, tokens=tokens)
    assert new.read_pack(scored, ids, items).confidence == {item: {"kind": 0.8, "typed": 0.95} for item in items}, (
        "the renormalised share of a scripted value is its probability"
    )
    runs = {
        "without tokens": (new, plain),
        f"with tokens, old reading ({OLD})": (old, scored),
        "with tokens, new reading": (new, scored),
    }
    for codec, reply in runs.values():
        checked = codec.read_pack(reply, ids, items)
        assert len(checked.valid) == 20 and len(checked.confidence) == (20 if reply.tokens else 0)
    figures = dict.fromkeys(runs, math.inf)
    for _ in range(ROUNDS):  # interleaved, the least of each: a busy machine's bursts hit all alike
        for name, (codec, reply) in runs.items():
            figures[name] = min(figures[name], timed(codec, reply, ids, items, args.packs // ROUNDS))
    base = figures["without tokens"]
    print(f"read_pack, 20 rows, {len(tokens)} tokens of {ALTERNATIVES} alternatives each; µs a pack:")
    for name, micros in figures.items():
        print(f"  {name:<40} {micros:>7,.0f} µs   (+{100 * (micros / base - 1):.0f} % over without)")


if __name__ == "__main__":
    main()
