"""Resilience of enrichkit against faulty providers: the targets of issue 12.

    PYTHONPATH=src .venv/bin/python benchmarks/resilience.py              # seeds 1..5, about 3 minutes
    PYTHONPATH=src .venv/bin/python benchmarks/resilience.py --seed 7     # one seed
    PYTHONPATH=src .venv/bin/python benchmarks/resilience.py --only roadmap --seeds 20   # seeds 1..20, scenario 1
    PYTHONPATH=src .venv/bin/python benchmarks/resilience.py --json       # one JSON line a run instead

Every run goes through ``enrich()`` with the real SDK against an in-process stub (the Gemini stub with
google-genai, the OpenAI-compatible stub with the openai SDK), a fresh cache, fast retries and a 2 s
call deadline. Faults are drawn per call by an RNG seeded from the seed, the call's prompt and how many
times that prompt was sent before, so a seed gives the same faults whatever order concurrent calls
arrive in. The kinds: an unrecognised 400 (Groq's ``json_validate_failed`` on the OpenAI path), a bad
enum value, a dropped, duplicated or unknown id, two answers swapped (ids intact), an answer cut off at
the token limit, 429 with a 0.2 s retry delay, 500, 503, and a 3 s hang. Id faults only hit packs.

1. The 134 rows of the engineering-manager roadmap (read in place from the shared data folder; never
   copied into this repository), ~40 % faulty calls, and on top a proxy that refuses every pack of more
   than 10 rows with a 400 (a rule, every time). Targets: every row correct, none cross-wired, at most
   40 calls (falling back to single rows would take 164).
2. 1,000 synthetic rows on the Gemini stub, ~15 % faulty calls (no big-pack rule). Targets: every row
   correct, none cross-wired, at most 1.25 x 50 calls, output tokens at most 1.12 x a clean run's with
   ``echo=False``.
3. A clean run (no fault) of each, for the ratios.

A row is correct when its answer equals the stub's own default answer for that row asked on its own;
cross-wired when its tldr is the one the stub writes for another row; wrong when it is neither; failed
when the run gave it no answer. The figures report the engine as it is; nothing here tunes it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from enrichkit import EnrichResult, RetryPolicy, Task, enrich
from enrichkit.providers.gemini import make_client
from enrichkit.providers.openai import openai_provider
from enrichkit.testing import (
    Asked,
    Fault,
    GeminiStub,
    OpenAIStub,
    Outcome,
    add_unknown_id,
    default_answer,
    drop_ids,
    duplicate_id,
    hang,
    http_error,
    json_validate_failed,
    rate_limited,
    set_field,
    swap_answers,
    truncated,
)

ROOT = Path(__file__).resolve().parents[1]
ROADMAPS = ROOT.parent / "shared" / "data" / "roadmaps"
ROADMAP = ROADMAPS / "engineering-manager.jsonl"
TASK = Task.from_file(ROOT / "schemas" / "roadmap-topic.json")
RETRY = RetryPolicy(backoff=0.01, max_backoff=0.05)
TIMEOUT = 2.0  # the call deadline; a hang lasts HANG
HANG = 3.0
RETRY_DELAY = 0.2  # what a 429 asks to wait
BIG_PACK = 10  # the proxy of scenario 1 refuses packs of more rows than this
SYNTHETIC_ROWS = 1_000
CALL_TARGET_ROADMAP = 40
NAIVE_ROADMAP = 164  # issue 12: what falling back to single rows costs on this scenario
CALL_TARGET_SYNTHETIC = 1.25 * 50
TOKEN_TARGET_SYNTHETIC = 1.12
INVALID_ARGUMENT = "Request contains an invalid argument."

KINDS = ("400", "bad enum", "drop id", "dup id", "unknown id", "swap", "truncated", "429", "500", "503", "hang")
PACK_ONLY = frozenset({"drop id", "dup id", "unknown id", "swap"})


@dataclass
class Mix:
    """Which fault each call gets: none with probability ``1 - rate``, else one kind that fits the call
    (id faults only for packs), drawn from an RNG seeded by the seed, the prompt and its repeat count."""

    seed: int
    rate: float
    picked: Counter[str] = field(default_factory=Counter)
    _seen: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def pick(self, model: str, prompt: str, ids: Sequence[str]) -> tuple[str, list[str]] | None:
        """The fault kind for this call and the two pack ids it may target, or None (answer normally)."""
        with self._lock:
            repeat = self._seen[prompt]
            self._seen[prompt] += 1
        digest = hashlib.sha256(f"{self.seed}\0{model}\0{repeat}\0{prompt}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        if rng.random() >= self.rate:
            return None
        kind = rng.choice([k for k in KINDS if ids or k not in PACK_ONLY])
        with self._lock:
            self.picked[kind] += 1
        return kind, rng.sample(list(ids), 2) if len(ids) >= 2 else []

    def count(self, kind: str) -> None:
        """Count a fault a rule gave (not drawn)."""
        with self._lock:
            self.picked[kind] += 1


def random_fault(mix: Mix, groq: bool) -> Fault:
    """The fault ``mix`` draws for each call (``groq``: the 400 is Groq's ``json_validate_failed``)."""

    def fault(call: Asked) -> Outcome | None:
        chosen = mix.pick(call.model, call.prompt, call.ids)
        if chosen is None:
            return None
        kind, ids = chosen
        one = ids[0] if ids else None
        faults: dict[str, Callable[[], Fault]] = {
            "400": json_validate_failed if groq else lambda: http_error(400, INVALID_ARGUMENT),
            "bad enum": lambda: set_field(one, "challenge", "hard"),
            "drop id": lambda: drop_ids(ids[0]),
            "dup id": lambda: duplicate_id(ids[0]),
            "unknown id": lambda: add_unknown_id("r999"),
            "swap": lambda: swap_answers(ids[0], ids[1]),
            "truncated": truncated,
            "429": lambda: rate_limited(RETRY_DELAY, "Resource has been exhausted (e.g. check quota)."),
            "500": lambda: http_error(500, "Internal error encountered."),
            "503": lambda: http_error(503, "The model is overloaded. Please try again later."),
            "hang": lambda: hang(HANG),
        }
        return faults[kind]()(call)

    return fault


def big_pack_proxy(mix: Mix) -> Fault:
    """The proxy of scenario 1: a 400 for a pack of more than ``BIG_PACK`` rows (counted, not drawn)."""
    refuse = http_error(400, INVALID_ARGUMENT)

    def fault(call: Asked) -> Outcome | None:
        if len(call.ids) <= BIG_PACK:
            return None
        mix.count("400 big pack")
        return refuse(call)

    return fault


def expected(row: Mapping[str, Any]) -> dict[str, Any]:
    """The stubs' default answer for ``row`` asked on its own."""
    answer: dict[str, Any] = default_answer(TASK.schema, [{name: row[name] for name in TASK.inputs}])
    return answer


@dataclass
class Run:
    scenario: str
    stub: str
    seed: int | None
    fault_rate: float
    rows: int
    correct: int
    crosswired: int
    wrong: int
    failed: int
    calls: int
    calls_packed: int
    calls_single: int
    retries: int
    output_tokens: int
    stub_calls: int
    faults: dict[str, int]
    """Faults injected, by kind ("400 big pack": the proxy's refusals of scenario 1)."""
    failures: list[str]
    """Each failed row's id and last reason."""
    seconds: float


def score(rows: list[dict[str, Any]], result: EnrichResult) -> tuple[int, int, int, int]:
    """(correct, cross-wired, wrong, failed) rows of ``result``."""
    wanted = {row["id"]: expected(row) for row in rows}
    tldrs = Counter(answer["tldr"] for answer in wanted.values())
    correct = crosswired = wrong = 0
    for row in result.rows:
        own = wanted[row["id"]]
        if "tldr" not in row:
            continue
        if all(row.get(name) == value for name, value in own.items()):
            correct += 1
        elif row["tldr"] != own["tldr"] and tldrs[row["tldr"]] > 0:
            crosswired += 1
        else:
            wrong += 1
    return correct, crosswired, wrong, len(result.failures)


def run(
    scenario: str,
    stub_kind: str,
    rows: list[dict[str, Any]],
    seed: int | None,
    rate: float,
    *,
    refuse_big: bool = False,
    echo: bool | None = None,
) -> Run:
    mix = Mix(seed or 0, rate)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        options: dict[str, Any] = {"cache_dir": Path(cache), "retry": RETRY, "timeout": TIMEOUT, "echo": echo}
        stub = GeminiStub() if stub_kind == "gemini" else OpenAIStub()
        with stub:
            if refuse_big:
                stub.rule(big_pack_proxy(mix))
            stub.rule(random_fault(mix, groq=stub_kind != "gemini"))
            if isinstance(stub, GeminiStub):
                result = enrich(rows, TASK, client=make_client("benchmark", stub.url), progress=False, **options)
            else:
                provider = openai_provider("stub-model", stub.url)
                result = enrich(rows, TASK, provider=provider, progress=False, **options)
            stub_calls = len(stub.generate_calls)
    seconds = time.perf_counter() - started
    correct, crosswired, wrong, failed = score(rows, result)
    stats = result.stats
    return Run(
        scenario,
        stub_kind,
        seed,
        rate,
        len(rows),
        correct,
        crosswired,
        wrong,
        failed,
        stats.calls,
        stats.calls_packed,
        stats.calls_single,
        stats.retries,
        stats.output_tokens,
        stub_calls,
        dict(sorted(mix.picked.items())),
        [f"{f.row_id}: {f.reason}" for f in result.failures],
        seconds,
    )


def synthetic_rows(n: int) -> list[dict[str, Any]]:
    """Roadmap-like rows (as tests/helpers.py topic_rows)."""
    return [
        {
            "id": f"t{i}",
            "category": f"Area {i % 7}",
            "topic": f"Topic number {i}",
            "description": f"Synthetic description {i} of a topic, with enough words to summarise it.",
        }
        for i in range(n)
    ]


def roadmap_rows() -> list[dict[str, Any]] | None:
    if not ROADMAP.exists():
        return None
    with ROADMAP.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def commit() -> str:
    try:
        found = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain"], capture_output=True, text=True)
    return found.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


COLUMNS = [
    ("scenario", 23),
    ("stub", 6),
    ("seed", 5),
    ("faulty", 7),
    ("big 400", 8),
    ("rows", 5),
    ("correct", 8),
    ("x-wired", 8),
    ("wrong", 6),
    ("failed", 7),
    ("calls", 6),
    ("packed", 7),
    ("single", 7),
    ("retries", 8),
    ("out tok", 8),
    ("s", 6),
]


def line(r: Run) -> str:
    refused = r.faults.get("400 big pack", 0)
    injected = sum(r.faults.values()) - refused
    drawn = r.stub_calls - refused
    faulty = f"{injected / drawn:.0%}" if drawn else "-"
    seed = "-" if r.seed is None else str(r.seed)
    cells = [r.scenario, r.stub, seed, faulty, refused, r.rows, r.correct, r.crosswired]
    cells += [
        r.wrong,
        r.failed,
        r.calls,
        r.calls_packed,
        r.calls_single,
        r.retries,
        r.output_tokens,
        f"{r.seconds:.1f}",
    ]
    return " ".join(
        f"{cell!s:>{width}}" if n else f"{cell!s:<{width}}"
        for n, ((_, width), cell) in enumerate(zip(COLUMNS, cells, strict=True))
    )


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def targets(label: str, runs: list[Run], clean: Run, calls: float, tokens: float | None = None) -> list[str]:
    """The summary of a scenario's runs against its targets (its worst seed counts)."""
    correct = ", ".join(f"{r.correct}/{r.rows}" for r in runs)
    worst = max(r.calls for r in runs)
    lines = [
        f"{label}:",
        f"  every row correct: {verdict(all(r.correct == r.rows for r in runs))} ({correct})",
        f"  none cross-wired: {verdict(all(r.crosswired == 0 for r in runs))}"
        f" ({', '.join(str(r.crosswired) for r in runs)})",
        f"  calls at most {calls:g}: {verdict(worst <= calls)} (worst {worst}, clean {clean.calls})",
    ]
    if tokens is not None:
        ratio = max(r.output_tokens for r in runs) / clean.output_tokens
        lines.append(
            f"  output tokens at most {tokens:g} x clean no-echo: {verdict(ratio <= tokens)} (worst {ratio:.3f} x)"
        )
    for r in runs:
        lines += [f"  seed {r.seed} failed {failure}" for failure in r.failures]
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seed", type=int, action="append", help="a fault seed (repeatable; default 1 to 5)")
    parser.add_argument("--seeds", type=int, default=5, help="without --seed: seeds 1 to this")
    parser.add_argument("--only", choices=("roadmap", "synthetic"), help="run one scenario (and its clean run)")
    parser.add_argument("--json", action="store_true", help="one JSON line a run instead of the table")
    args = parser.parse_args(argv)
    seeds: list[int] = args.seed or list(range(1, args.seeds + 1))
    os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
    os.environ["OPENAI_API_KEY"] = "benchmark-dummy-key"  # this process only; the stub ignores it

    flags = "".join(f" --seed {s}" for s in args.seed or []) + (" --json" if args.json else "")
    flags += (f" --seeds {args.seeds}" if args.seeds != 5 and not args.seed else "") + (
        f" --only {args.only}" if args.only else ""
    )
    out: Callable[[Run], None]
    if args.json:
        out = lambda r: print(json.dumps(asdict(r)), flush=True)  # noqa: E731
    else:
        print(f"# enrichkit resilience (issue 12) at {commit()}, seeds {', '.join(map(str, seeds))}")
        print(f"# reproduce: PYTHONPATH=src .venv/bin/python benchmarks/resilience.py{flags}")
        print(f"# pack size 20, timeout {TIMEOUT:g} s, hang {HANG:g} s, a 429 asks {RETRY_DELAY:g} s; faulty: share of")
        print(f"# the calls given a random fault; big 400: packs over {BIG_PACK} rows refused (those draw no fault)")
        print(" ".join(f"{name:>{width}}" if n else f"{name:<{width}}" for n, (name, width) in enumerate(COLUMNS)))
        out = lambda r: print(line(r), flush=True)  # noqa: E731

    summary: list[str] = []
    roadmap = None if args.only == "synthetic" else roadmap_rows()
    if roadmap is None and args.only != "synthetic":
        print(f"# skipped the roadmap scenario: {ROADMAP} is absent", file=sys.stderr)
    for kind in ("gemini", "openai") if roadmap else ():
        assert roadmap is not None
        clean = run("roadmap clean", kind, roadmap, None, 0.0)
        out(clean)
        runs = [run("roadmap 40% faults", kind, roadmap, seed, 0.4, refuse_big=True) for seed in seeds]
        for r in runs:
            out(r)
        label = f"{len(roadmap)} roadmap rows on {kind} (naive single-row fallback: {NAIVE_ROADMAP} calls)"
        summary += targets(label, runs, clean, CALL_TARGET_ROADMAP)

    if args.only != "roadmap":
        rows = synthetic_rows(SYNTHETIC_ROWS)
        clean = run("synthetic clean no-echo", "gemini", rows, None, 0.0, echo=False)
        out(clean)
        runs = [run("synthetic 15% faults", "gemini", rows, seed, 0.15) for seed in seeds]
        for r in runs:
            out(r)
        label = f"{SYNTHETIC_ROWS:,} synthetic rows on gemini"
        summary += targets(label, runs, clean, CALL_TARGET_SYNTHETIC, TOKEN_TARGET_SYNTHETIC)
    if not args.json:
        print()
        for text in summary:
            print(f"# {text}")


if __name__ == "__main__":
    main(sys.argv[1:])
