"""``python -m enrichkit.testing [--api gemini|openai|anthropic]``: serve a provider's stub until interrupted,
and say how to point enrichkit at it."""

from __future__ import annotations

import argparse
import contextlib
import threading

from enrichkit.testing.anthropic import AnthropicStub
from enrichkit.testing.faults import logprobs_refused
from enrichkit.testing.gemini import GeminiStub
from enrichkit.testing.logprobs import Probs
from enrichkit.testing.openai import OpenAIStub
from enrichkit.testing.wire import ANY_MODEL, PRICED, Pacing, WireStub

KEYS = {"gemini": "GEMINI_API_KEY", "openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m enrichkit.testing",
        description="A local HTTP server that speaks a provider's API (live calls and batch jobs), for trying"
        " enrichkit, tests and benchmarks without a key.",
    )
    parser.add_argument("--api", choices=list(KEYS), default="gemini", help="the API to speak (default gemini)")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--any-model", action="store_true", help="answer for any model name (default: the priced ones)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per call")
    parser.add_argument("--per-output-token", type=float, default=0.0, help="seconds per output token")
    parser.add_argument("--jitter", type=float, default=0.0, help="up to this many extra seconds per call")
    parser.add_argument("--rpm", type=int, default=None, help="requests per window before 429")
    parser.add_argument("--window", type=float, default=60.0, help="the rate-limit window in seconds")
    parser.add_argument("--fixed-window", action="store_true", help="count in windows that reset whole, not sliding")
    parser.add_argument("--shuffle-outputs", action="store_true", help="serve batch results out of order")
    parser.add_argument(
        "--drop-inline-metadata", action="store_true", help="gemini: leave keys off inline batch results"
    )
    parser.add_argument(
        "--probability",
        type=float,
        default=Probs.default,
        help="the probability of each value written, in the log-probabilities returned when asked (default 0.99)",
    )
    parser.add_argument(
        "--refuse-logprobs", action="store_true", help="answer a request for log-probabilities as a model without them"
    )
    parser.add_argument(
        "--fill-alternatives",
        action="store_true",
        help="give as many alternatives a token as asked, as the real APIs do (made-up unlikely ones)",
    )
    args = parser.parse_args()
    if not 0 < args.probability <= 1:
        parser.error("--probability must be in (0, 1]")
    pacing = Pacing(
        latency=args.latency,
        per_output_token=args.per_output_token,
        jitter=args.jitter,
        rpm=args.rpm,
        window=args.window,
        fixed_window=args.fixed_window,
        port=args.port,
    )
    models = ANY_MODEL if args.any_model else PRICED
    stub: WireStub
    if args.api == "gemini":
        stub = GeminiStub(
            shuffle_outputs=args.shuffle_outputs,
            drop_inline_metadata=args.drop_inline_metadata,
            models=models,
            **pacing,
        )
    elif args.api == "openai":
        stub = OpenAIStub(shuffle_outputs=args.shuffle_outputs, models=models, **pacing)
    else:
        stub = AnthropicStub(shuffle_outputs=args.shuffle_outputs, models=models, **pacing)
    stub.probs = Probs(args.probability)
    stub.filled = args.fill_alternatives
    if args.refuse_logprobs:
        stub.rule(logprobs_refused())
    with stub:
        print(usage(args.api, stub), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


def usage(api: str, stub: WireStub) -> str:
    """What to type to use ``stub``: its URL, the dummy key to set, the models it answers for."""
    known = "any model" if stub.models is None else ", ".join(sorted(stub.models))
    return "\n".join(
        [
            f"{api} stub listening on {stub.url}",
            f"  export {KEYS[api]}=stub   # any value: the stub checks no key, the SDK wants one",
            f"  enrichkit run rows.jsonl -t task.json -o out.csv --provider {api} --base-url {stub.url}",
            f"  models: {known} (another name is refused as the API refuses it; --any-model accepts any)",
        ]
    )


if __name__ == "__main__":
    main()
