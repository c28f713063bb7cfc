"""The rate-limited run of ``throughput.py --window`` on a virtual clock: the engine's own ramp, without
start-up, CPU time or a loaded machine's noise.

    PYTHONPATH=src .venv/bin/python benchmarks/window_ramp.py

1,000 rows (50 packs) at the provider seam against a server allowing 30 requests per 6 s sliding window
at 0.4 s a call (bound 6.4 s), the free count and the 429 each taking a round trip: for a few settings of
the 429's round trip, the first (cold) count's and the warm count's, prints the calls (50 + the 429s),
when the 30th call went out and the run's seconds. Issue 31's target: <= 51 calls.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from enrichkit import aenrich
from enrichkit.providers.base import Request
from enrichkit.testing import FunctionProvider, ServerLimit, scripted
from helpers import generated, in_virtual_time
from throughput import TASK, synthetic_rows

SETTINGS = [  # seconds: a 429's round trip, the first count's, a warm count's
    (0.005, 0.005, 0.005),
    (0.005, 0.05, 0.005),
    (0.01, 0.05, 0.01),
    (0.01, 0.05, 0.005),
    (0.002, 0.05, 0.002),
]


def ramp(refusal: float, cold: float, warm: float) -> tuple[int, int, float, float]:
    server = ServerLimit(rpm=30, window=6.0, latency=0.4, round_trip=refusal)
    script = scripted(rules=[server])
    counted = [0]

    async def count(request: Request) -> int:
        counted[0] += 1
        await asyncio.sleep(cold if counted[0] == 1 else warm)
        return script.count(request)

    async def run(folder: str) -> float:
        provider = FunctionProvider(script, count=count)
        loop = asyncio.get_running_loop()
        start = loop.time()
        result = await aenrich(synthetic_rows(1000), TASK, provider=provider, cache_dir=folder, progress=False)
        assert result.stats.enriched == 1000
        return loop.time() - start

    with tempfile.TemporaryDirectory() as folder:
        took = in_virtual_time(run(folder))
    sent = sorted(a.received for a in generated(script))
    return len(sent), server.refused, sent[29], took


def main() -> None:
    print("30 requests / 6 s sliding window, 0.4 s a call, 1,000 rows in packs of 20; bound 6.4 s (virtual time)")
    print(f"{'429 rt':>7} {'cold count':>10} {'warm count':>10} {'calls':>6} {'429s':>5} {'30th sent':>9} {'run s':>6}")
    for refusal, cold, warm in SETTINGS:
        calls, refused, thirtieth, took = ramp(refusal, cold, warm)
        print(f"{refusal:>7.3f} {cold:>10.3f} {warm:>10.3f} {calls:>6} {refused:>5} {thirtieth:>9.3f} {took:>6.3f}")


if __name__ == "__main__":
    main()
