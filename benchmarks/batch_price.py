"""Live vs flex vs batch mode on the same 1,000 rows, against the Gemini stub: calls, jobs, tokens, price.

    .venv/bin/python benchmarks/batch_price.py        # about 10 seconds

The stub (``python -m enrichkit.testing``, in its own process) answers instantly and finishes a batch
job on its second look; tokens are its 4-characters-a-token count, prices those of ``prices.json``
for the default model. Each mode starts from an empty cache.
"""

from __future__ import annotations

import asyncio
import os
import tempfile

from enrichkit import aenrich
from enrichkit.api import Mode
from enrichkit.prices import price_of
from enrichkit.providers.gemini import DEFAULT_MODEL, make_client
from throughput import TASK, Stub, synthetic_rows

ROWS = 1_000


def run(mode: Mode, batch_size: int = 20) -> None:
    stub = Stub(0, 0, 0, None)
    try:
        with tempfile.TemporaryDirectory() as cache:
            client = make_client(api_key="benchmark", base_url=stub.url)
            result = asyncio.run(
                aenrich(
                    synthetic_rows(ROWS),
                    TASK,
                    client=client,
                    cache_dir=cache,
                    mode=mode,
                    poll=0.05,
                    batch_size=batch_size,
                )
            )
    finally:
        stub.stop()
    s = result.stats
    price = price_of(DEFAULT_MODEL)
    assert price is not None and s.enriched == ROWS
    cost = price.cost(s.prompt_tokens, s.output_tokens, batch=mode != "live")
    name = mode if batch_size > 1 else f"{mode}, 1 row a call"
    figures = f"{s.calls:>6} {len(s.jobs):>5} {s.prompt_tokens:>11,} {s.output_tokens:>10,} {cost:>10.4f}"
    print(f"{name:<18} {figures} {cost / ROWS * 1_000_000:>14,.2f}")


def main() -> None:
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    print(f"{ROWS:,} synthetic roadmap-like rows, {DEFAULT_MODEL}, packs of 20 (and the unpacked baseline)")
    print(f"{'mode':<18} {'calls':>6} {'jobs':>5} {'prompt tok':>11} {'out tok':>10} {'US$':>10} {'US$ / 1M rows':>14}")
    modes: tuple[Mode, ...] = ("live", "flex", "batch")
    run("live", batch_size=1)
    for mode in modes:
        run(mode)


if __name__ == "__main__":
    main()
