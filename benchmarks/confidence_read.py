"""What reading the confidence costs the engine: a 20-row pack's answer checked with and without tokens.

    .venv/bin/python benchmarks/confidence_read.py [--packs 2000]
    .venv/bin/python benchmarks/confidence_read.py --same FILE.jsonl ...   # same confidences as at BEFORE?

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
from enrichkit.providers.base import ALTERNATIVES, Reply, Token, Tokens, Usage
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


def old_module(path: str, name: str, revision: str) -> Any:
    """``path`` (under ``src/enrichkit``) as it was at ``revision``, loaded as a module of its own."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{revision}:src/enrichkit/{path}"], check=True, capture_output=True, text=True
    ).stdout
    module = types.ModuleType(name)
    exec(compile(source, f"{name}.py", "exec"), module.__dict__)
    return module


def llama_cpp_doc(saved: Mapping[str, Any]) -> dict[str, Any]:
    """A chat completion as xllamacpp returns it, from a row ``local_confidence.py`` saved (each token with
    its first ``ALTERNATIVES`` alternatives, as the provider asks)."""
    entries = [
        {
            "token": text,
            "bytes": list(text.encode()),
            "logprob": logprob,
            "top_logprobs": [{"token": a, "bytes": list(a.encode()), "logprob": b} for a, b in alts[:ALTERNATIVES]],
        }
        for text, logprob, alts in saved["tokens"]
    ]
    message = {"role": "assistant", "content": saved["text"]}
    return {"choices": [{"index": 0, "message": message, "logprobs": {"content": entries}}]}


def same(files: list[str]) -> None:
    """Each saved answer's confidence read by this tree (``answer_tokens``, ``ConfidenceReader``) and by
    ``BEFORE``'s; stops at the first difference."""
    from enrichkit.engine.confidence import ConfidenceReader
    from enrichkit.providers.local.logprobs import answer_tokens

    old_tokens = old_module("providers/local/logprobs.py", "old_local_logprobs", BEFORE).answer_tokens
    old_reader = old_module("engine/confidence.py", "old_confidence", BEFORE).ConfidenceReader
    schema = json.loads((ROOT / "schemas" / "library-group.json").read_text(encoding="utf-8"))["output"]
    new, old = ConfidenceReader(schema), old_reader(schema)
    compared = valued = 0
    for file in files:
        for line in Path(file).read_text(encoding="utf-8").splitlines():
            saved = json.loads(line)
            doc = llama_cpp_doc(saved)
            try:
                answers: dict[str | None, Mapping[str, Any]] = {None: json.loads(saved["text"])}
            except json.JSONDecodeError:
                continue
            before_tokens, after_tokens = old_tokens(doc), answer_tokens(doc)
            before = old.read(before_tokens, answers) if before_tokens else {}
            after = new.read(after_tokens, answers) if after_tokens else {}
            assert before == after, f"{file} {saved['id']}: {before} before, {after} now"
            compared += 1
            valued += bool(after.get(None))
    print(f"{compared} answers, {valued} with a confidence: the same as at {BEFORE}")


BEFORE = "f32b0bb"  # main before the lazy reading of the tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--packs", type=int, default=2000)
    parser.add_argument("--same", nargs="+", metavar="FILE", help="saved answers (local_confidence.py --out)")
    args = parser.parse_args()
    if args.same:
        same(args.same)
        return
    items = [Work(f"k{i}", {"name": f"lib{i}", "description": f"Library number {i} parses files."}) for i in range(20)]
    new, old = PackCodec(TASK, logprobs=True), OldCodec(TASK, logprobs=True)
    ids, _ = new.pack_request(items)
    answer = [
        {"id": rid, "kind": "library", "typed": True, "summary": f"Parses files, library {n}."}
        for n, rid in enumerate(ids)
    ]
    text, tokens = tokens_of(answer)
    plain, scored = Reply(text, usage=Usage(output_tokens=len(tokens))), Reply(text, tokens=Tokens.of(tokens))
    assert new.read_pack(scored, ids, items).confidence == {item: {"kind": 0.8, "typed": 0.95} for item in items}, (
        "the renormalised share of a scripted value is its probability"
    )
    runs = {
        "without tokens": (new, plain),
        f"with tokens, old reading ({OLD})": (old, Reply(text, tokens=tokens)),  # as its providers gave them
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
