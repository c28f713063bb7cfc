"""Live vs flex vs batch mode on the same 1,000 rows, against the Gemini stub: calls, jobs, tokens, price.

    .venv/bin/python benchmarks/batch_price.py        # about 10 seconds

The stub (``python -m enrichkit.testing``, in its own process) answers instantly and finishes a batch
job on its second look; tokens are its 4-characters-a-token count, prices those of ``prices.json``
for the default model. Each mode starts from an empty cache.
"""

from __future__ import annotations

import os

from enrichkit.options import Mode
from enrichkit.prices import price_of
from enrichkit.providers.gemini import DEFAULT_MODEL
from throughput import live

ROWS = 1_000


def run(mode: Mode, pack_size: int = 20) -> None:
    r = live(ROWS, pack_size=pack_size, concurrency=None, rpm=None, latency=False, mode=mode, poll=0.05)
    price = price_of(DEFAULT_MODEL)
    assert price is not None
    cost = price.cost(r["prompt_tokens"], r["output_tokens"], batch=mode != "live")
    name = mode if pack_size > 1 else f"{mode}, 1 row a call"
    figures = f"{r['calls']:>6} {r['jobs']:>5} {r['prompt_tokens']:>11,} {r['output_tokens']:>10,} {cost:>10.4f}"
    print(f"{name:<18} {figures} {cost / ROWS * 1_000_000:>14,.2f}")


def main() -> None:
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    print(f"{ROWS:,} synthetic roadmap-like rows, {DEFAULT_MODEL}, packs of 20 (and the unpacked baseline)")
    print(f"{'mode':<18} {'calls':>6} {'jobs':>5} {'prompt tok':>11} {'out tok':>10} {'US$':>10} {'US$ / 1M rows':>14}")
    modes: tuple[Mode, ...] = ("live", "flex", "batch")
    run("live", pack_size=1)
    for mode in modes:
        run(mode)


if __name__ == "__main__":
    main()
