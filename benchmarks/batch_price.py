"""Live vs flex vs batch mode on the same 1,000 rows, against the Gemini, OpenAI and Anthropic stubs:
calls, jobs, tokens, price.

    .venv/bin/python benchmarks/batch_price.py        # about 15 seconds

The Gemini stub (``python -m enrichkit.testing``, in its own process) and the OpenAI (Files +
Batches) and Anthropic (Message Batches) stubs (in this process, driven by the real SDKs) answer
instantly and finish a batch job on its second look; tokens are their 4-characters-a-token count,
prices those of ``prices.json`` for each provider's default model. Each run starts from an empty cache.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

from enrichkit import enrich
from enrichkit.calls.prices import price_of
from enrichkit.options import Mode
from enrichkit.providers import anthropic, openai
from enrichkit.providers.base import Provider
from enrichkit.providers.gemini import DEFAULT_MODEL
from enrichkit.testing import AnthropicStub, OpenAIStub
from throughput import TASK, live, synthetic_rows

ROWS = 1_000


def run(mode: Mode, pack_size: int = 20) -> None:
    r = live(ROWS, pack_size=pack_size, concurrency=None, rpm=None, latency=False, mode=mode, poll=0.05)
    price = price_of(DEFAULT_MODEL)
    assert price is not None
    cost = price.cost(r["prompt_tokens"], r["output_tokens"], batch=mode != "live")
    name = mode if pack_size > 1 else f"{mode}, 1 row a call"
    figures = f"{r['calls']:>6} {r['jobs']:>5} {r['prompt_tokens']:>11,} {r['output_tokens']:>10,} {cost:>10.4f}"
    print(f"{name:<18} {figures} {cost / ROWS * 1_000_000:>14,.2f}")


def other(name: str, model: str, stub: OpenAIStub | AnthropicStub, make: Callable[..., Provider]) -> None:
    """Live and batch on an in-process stub of ``name``'s wire API, priced for ``model``."""
    price = price_of(model)
    assert price is not None
    for mode in ("live", "batch"):
        with tempfile.TemporaryDirectory() as cache:
            provider = make(model, base_url=stub.url)
            r = enrich(
                synthetic_rows(ROWS), TASK, provider=provider, cache_dir=cache, mode=mode, poll=0.05, progress=False
            ).stats
        cost = price.cost(r.prompt_tokens, r.output_tokens, batch=mode == "batch")
        figures = f"{r.calls:>6} {len(r.jobs):>5} {r.prompt_tokens:>11,} {r.output_tokens:>10,} {cost:>10.4f}"
        print(f"{name + ' ' + mode:<18} {figures} {cost / ROWS * 1_000_000:>14,.2f}")


def main() -> None:
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    os.environ.setdefault("OPENAI_API_KEY", "stub-key")
    os.environ.setdefault("ANTHROPIC_API_KEY", "stub-key")
    print(f"{ROWS:,} synthetic roadmap-like rows, {DEFAULT_MODEL}, packs of 20 (and the unpacked baseline)")
    print(f"{'mode':<18} {'calls':>6} {'jobs':>5} {'prompt tok':>11} {'out tok':>10} {'US$':>10} {'US$ / 1M rows':>14}")
    modes: tuple[Mode, ...] = ("live", "flex", "batch")
    run("live", pack_size=1)
    for mode in modes:
        run(mode)
    with OpenAIStub() as chat:
        other("openai", openai.DEFAULT_MODEL, chat, openai.openai_provider)
    with AnthropicStub() as claude:
        other("anthropic", anthropic.DEFAULT_MODEL, claude, anthropic.anthropic_provider)


if __name__ == "__main__":
    main()
