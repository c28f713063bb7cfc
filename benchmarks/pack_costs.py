"""What a pack costs enrichkit itself, apart from waiting on the provider, and what reading the token
log-probabilities adds to it (issue 32: within 5 %), on each provider path.

    PYTHONPATH=src:benchmarks .venv/bin/python benchmarks/pack_costs.py [--packs 31] [--rounds 5] [--against REV]

The first line: the pack codec's own steps for a pack of 20 (µs, least of 7 timeit repeats; the README's
"Where the time goes").

**Own overhead per pack**, without tokens (``confidence=False``: nothing asked) and with them (the default:
the task has a closed field, so log-probabilities with ``ALTERNATIVES`` alternatives a token are asked):

- ``gemini``, ``openai``: whole runs (``aenrich``, packs of 20 of ``throughput.py``'s synthetic rows, a fresh
  cache folder, the call log on) through the real SDK client against the wire stub in another process,
  answering at once and giving as many alternatives a token as asked, as the real APIs do
  (``--fill-alternatives``). The figure is this process's CPU time (every thread: the prompt, the SDK's
  request, the HTTP client, reading the body, validation, confidence, the cache write ...) of a whole run
  of ``packs`` packs, over ``packs`` (the run's own start and end, ~1 ms a pack at 30, counted in both).
- ``llama.cpp``: the same whole runs on the local provider, whose pack is one row, with its loaded model
  replaced by one that returns at once the dict xllamacpp would (made here in its shape: the stubs' answer
  and tokens, ``ALTERNATIVES`` alternatives each): the model's own work is the wait.

Each figure is the least of ``rounds`` rounds, with and without interleaved (a busy machine's bursts hit
both alike; still approximate on a shared machine). ``--against REV`` runs that revision's ``src`` too, in
the same rounds (old, new), for a before/after in one run. The output tokens of the runs are printed both
ways (the stubs count them from the text; on a real model see ``--tiny``).

``--tiny N``: then N rows on the tiny SmolLM2 model (installed by ``make``), each asked alone with and
without log-probabilities: the output tokens both ways, how many answers are the same, and the seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import enrichkit
from enrichkit import aenrich
from enrichkit.engine.codec import PackCodec
from enrichkit.engine.crosswire import suspects, text_fields
from enrichkit.engine.validation import check_pack, parse_items
from enrichkit.providers.base import ALTERNATIVES, Reply
from enrichkit.providers.local.provider import LocalProvider
from enrichkit.providers.local.weights import smollm2_path
from enrichkit.rows.work import Work
from enrichkit.task.schema import make_validator
from enrichkit.testing.faults import Answer, Asked, tokens_of
from enrichkit.testing.logprobs import Probs
from throughput import TASK, checked_out, free_port, instant, iter_synthetic_rows, synthetic_rows

ROOT = Path(__file__).resolve().parents[1]
PACK = 20
APIS = ("gemini", "openai")
PATHS = (*APIS, "llama.cpp")
LOCAL_PACKS = 5
"""The local runs have this many times ``--packs`` (their one-row packs cost less: more steady so)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--packs", type=int, default=31, help="packs a run holds")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", metavar="REVISION", help="that revision's src too, interleaved")
    parser.add_argument("--tiny", type=int, default=0, help="rows to ask the tiny model with and without")
    parser.add_argument("--child", nargs=3, metavar=("PATH", "URL", "PACKS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        path, url, packs = args.child
        print(json.dumps({**measure(path, url, int(packs)), "module": enrichkit.__file__}))
        return
    print(json.dumps(steps()))
    with tempfile.TemporaryDirectory() as old:
        trees = {"this tree": ROOT / "src"}
        if args.against:
            trees = {args.against[:8]: checked_out(args.against, Path(old)), **trees}
        stubs = {api: Stub(api) for api in APIS}
        try:
            best: dict[tuple[str, str], dict[str, Any]] = {}
            for _ in range(args.rounds):
                for path in PATHS:
                    for tree, src in trees.items():
                        url = stubs[path].url if path in stubs else ""
                        got = child(src, path, url, args.packs)
                        kept = best.setdefault((tree, path), got)
                        for mode in ("without", "with"):
                            kept[mode] = min(kept[mode], got[mode])
        finally:
            for stub in stubs.values():
                stub.stop()
    print(f"own overhead per pack (CPU µs, least of {args.rounds} rounds; {PACK} rows a pack, 1 for llama.cpp):")
    print(f"{'path':<11}{'tree':<12}{'without':>9}{'with':>9}{'read':>8}{'ratio':>8}   output tokens without/with")
    for (tree, path), got in best.items():
        read = got["with"] - got["without"]
        print(
            f"{path:<11}{tree:<12}{got['without']:>9,.0f}{got['with']:>9,.0f}{read:>8,.0f}"
            f"{100 * read / got['without']:>7.1f}%   {got['output_tokens']['without']}/{got['output_tokens']['with']}"
        )
    if args.tiny:
        codec = PackCodec(TASK, affinity=True)
        rows = enumerate(iter_synthetic_rows(args.tiny))
        items = [Work(f"k{n}", {f: row[f] for f in TASK.inputs}) for n, row in rows]
        print(json.dumps(asyncio.run(on_tiny_model(codec, items))))


def steps() -> dict[str, int]:
    """The pack codec's steps for one pack of 20 answers (µs, the least of 7 timeit repeats, wall time): the
    figures the README's "Where the time goes" quotes."""
    codec = PackCodec(TASK, affinity=True)
    rows = [{f: row[f] for f in TASK.inputs} for row in iter_synthetic_rows(PACK)]
    items = [Work(f"k{n}", inputs) for n, inputs in enumerate(rows)]
    ids, request = codec.pack_request(items)
    text = instant(request).text
    payload, _ = parse_items(text)
    validator, fields = make_validator(TASK.schema), TASK.fields
    check = check_pack(payload, ids, fields, validator)
    answers, inputs = check.valid, dict(zip(ids, rows, strict=True))
    timed: dict[str, Callable[[], Any]] = {
        "prompt and request": lambda: codec.pack_request(items),
        "parse the answer": lambda: parse_items(text),
        "check ids and values": lambda: check_pack(payload, ids, fields, validator),
        "cross-wiring check": lambda: suspects(answers, inputs, text_fields(TASK.schema)),
    }
    return {name: round(min(timeit.repeat(step, number=300, repeat=7)) / 300 * 1e6) for name, step in timed.items()}


class Stub:
    """A wire stub in a process of its own (its CPU is not counted), answering at once, alternatives filled."""

    def __init__(self, api: str) -> None:
        port = free_port()
        command = [sys.executable, "-m", "enrichkit.testing", "--api", api, "--port", str(port), "--fill-alternatives"]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=_env(ROOT / "src"))
        assert self.process.stdout is not None
        self.process.stdout.readline()  # "listening on ..."
        self.url = f"http://127.0.0.1:{port}" + ("/v1" if api == "openai" else "")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


def child(src: Path, path: str, url: str, packs: int) -> dict[str, Any]:
    """One round of ``path``'s figures, measured by this script in a process running ``src``."""
    command = [sys.executable, __file__, "--child", path, url or "-", str(packs)]
    out = subprocess.run(command, capture_output=True, text=True, env=_env(src))
    if out.returncode:
        raise SystemExit(f"{path} on {src} failed:\n{out.stderr}")
    got = dict(json.loads(out.stdout.splitlines()[-1]))
    module = got.pop("module")
    assert Path(module).is_relative_to(src), f"{path}: enrichkit imported from {module}, not from {src}"
    return got


def _env(src: Path) -> dict[str, str]:
    keys = {"GEMINI_API_KEY": "benchmark", "OPENAI_API_KEY": "benchmark"}
    return {**os.environ, **keys, "PYTHONPATH": f"{src}{os.pathsep}{ROOT / 'benchmarks'}"}


def measure(path: str, url: str, packs: int) -> dict[str, Any]:
    """CPU µs a pack without and with tokens (``path``'s way, see the module's docstring) and the output tokens."""
    figures: dict[str, Any] = {"output_tokens": {}}
    run(path, url, 1, None)  # imports and first-call costs out of the way
    packs *= LOCAL_PACKS if path == "llama.cpp" else 1
    for mode, confidence in (("without", False), ("with", None)):
        took, tokens = run(path, url, packs, confidence)
        figures[mode] = took / packs * 1e6
        figures["output_tokens"][mode] = tokens
    return figures


def run(path: str, url: str, packs: int, confidence: bool | None) -> tuple[float, int]:
    """The CPU seconds of a fresh run of ``packs`` packs, and its output tokens."""
    size = 1 if path == "llama.cpp" else PACK
    with tempfile.TemporaryDirectory() as cache:
        if path == "gemini":
            from enrichkit.providers.gemini import make_client

            options: dict[str, Any] = {"client": make_client(api_key="benchmark", base_url=url)}
        elif path == "openai":
            from enrichkit.providers.openai import openai_provider

            options = {"provider": openai_provider("gpt-4.1-mini", base_url=url)}
        else:
            options = {"provider": answering_at_once(Path(cache) / "model.gguf")}
        started = time.process_time()
        result = asyncio.run(
            aenrich(
                synthetic_rows(packs * size),
                TASK,
                pack_size=size,
                cache_dir=Path(cache) / "cache",
                progress=False,
                confidence=confidence,
                **options,
            )
        )
        took = time.process_time() - started
    stats = result.stats
    assert stats.enriched == packs * size and stats.calls == packs, f"{stats.failed} rows failed, {stats.calls} calls"
    found = stats.confidence.rows if stats.confidence is not None else 0
    assert found == (0 if confidence is False else packs * size), f"{found} rows with a confidence"
    return took, stats.output_tokens


class AtOnce:
    """In place of xllamacpp's server: the stubs' answer to the task, as a chat completion in llama.cpp's
    shape (with log-probabilities where the body asks), returned at once."""

    def __init__(self) -> None:
        codec = PackCodec(TASK)
        self.docs = {asks: llama_cpp_answer(codec, asks) for asks in (False, True)}

    def handle_chat_completions(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.docs[bool(body.get("logprobs"))]


def answering_at_once(weights: Path) -> LocalProvider:
    """The local provider with ``AtOnce`` as its loaded model (a file stands in for the weights)."""
    weights.write_bytes(b"")
    provider = LocalProvider(weights, prompt_cache=False, slots=1)
    provider._server, provider.prefix = AtOnce(), cast(Any, object())
    provider.staged = False  # the answer whole in one completion, as AtOnce gives it (a tree before staging: no-op)
    return provider


def least_cpu_us(step: Callable[[], Any], number: int, repeat: int = 3) -> float:
    best = math.inf
    for _ in range(repeat):
        started = time.process_time()
        for _ in range(number):
            step()
        best = min(best, (time.process_time() - started) / number * 1e6)
    return best


def llama_cpp_answer(codec: PackCodec, logprobs: bool) -> dict[str, Any]:
    """A chat completion of the stubs' answer to a row asked alone, shaped as xllamacpp returns it: with
    ``logprobs``, each token (the stubs' cut) with its bytes, its id and ``ALTERNATIVES`` alternatives
    (the rival value's where it has one, made-up unlikely ones to fill, as the stubs' ``--fill-alternatives``;
    written here so that an older tree's child runs it too), and the end of generation."""
    row = next(iter_synthetic_rows(1))
    request = codec.single_request(Work("k0", {f: row[f] for f in TASK.inputs}))
    asked = Asked("m", request.system, request.prompt, request.schema, wrapped=False, logprobs=True)
    answer = Answer(asked.answer)
    text = answer.content(asked) or ""
    pairs = tokens_of(answer, asked, Probs()) or []
    message = {"role": "assistant", "content": text}
    choice: dict[str, Any] = {"index": 0, "finish_reason": "stop", "message": message}
    if logprobs:
        entries = []
        for n, (piece, logprob, rival) in enumerate(pairs):
            entry = {"id": n, "token": piece, "bytes": list(piece.encode()), "logprob": logprob}
            top = [dict(entry)]
            if rival is not None:
                left = math.log(max(1e-9, 1 - math.exp(logprob)))
                top.append({"id": 1, "token": rival, "bytes": list(rival.encode()), "logprob": left})
            top += [
                {"id": 2 + k, "token": token, "bytes": list(token.encode()), "logprob": lp}
                for k, (token, lp) in enumerate((f"~{k}", -20.0 - k) for k in range(ALTERNATIVES - len(top)))
            ]
            entries.append({**entry, "top_logprobs": top})
        entries.append({"id": 0, "token": "", "bytes": [], "logprob": -0.01, "top_logprobs": []})
        choice["logprobs"] = {"content": entries}
    usage = {"prompt_tokens": len(request.prompt) // 4, "completion_tokens": len(pairs) + 1}
    return {"choices": [choice], "usage": usage}


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


if __name__ == "__main__":
    main()
