"""``python -m enrichkit.testing``: serve the Gemini stub until interrupted."""

from __future__ import annotations

import argparse
import contextlib
import threading

from enrichkit.testing.gemini import GeminiStub


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m enrichkit.testing",
        description="A local HTTP server that speaks the Gemini REST API, for tests and benchmarks without a key.",
    )
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per call")
    parser.add_argument("--per-output-token", type=float, default=0.0, help="seconds per output token")
    parser.add_argument("--jitter", type=float, default=0.0, help="up to this many extra seconds per call")
    parser.add_argument("--rpm", type=int, default=None, help="requests per window before 429")
    parser.add_argument("--window", type=float, default=60.0, help="the rate-limit window in seconds")
    parser.add_argument("--fixed-window", action="store_true", help="count in windows that reset whole, not sliding")
    parser.add_argument("--shuffle-outputs", action="store_true", help="serve batch results out of order")
    parser.add_argument("--drop-inline-metadata", action="store_true", help="leave keys off inline batch results")
    args = parser.parse_args()
    stub = GeminiStub(
        latency=args.latency,
        per_output_token=args.per_output_token,
        jitter=args.jitter,
        rpm=args.rpm,
        window=args.window,
        fixed_window=args.fixed_window,
        port=args.port,
        shuffle_outputs=args.shuffle_outputs,
        drop_inline_metadata=args.drop_inline_metadata,
    )
    with stub:
        print(f"Gemini stub listening on {stub.url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
