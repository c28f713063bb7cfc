"""The review page at 100,000 rows (issue 34): the server pages and filters, the browser gets one page.

    .venv/bin/python benchmarks/review.py                 # 100,000 rows, 5 tries each
    .venv/bin/python benchmarks/review.py --rows 1000000

A CSV output of synthetic roadmap-like rows (the task ``schemas/roadmap-topic.json``) with ``_confidence``
and ``_flags`` columns, reviewed by a ``ReviewServer`` on 127.0.0.1; each request a real HTTP GET of the
whole page (the HTML of 50 rows). Printed: the load (read, keyed, ranked, once), then the median and worst
time of the first page, and of filters over every row: confidence below 0.1, a search word, a field's
value, and all three with the failed and flagged boxes. Targets: first page <= 300 ms, a filter <= 1 s.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

from enrichkit.output.files import columns_of, write_rows
from enrichkit.review.server import ReviewServer
from enrichkit.review.session import Session
from enrichkit.task.task import Task

ROOT = Path(__file__).resolve().parents[1]
TASK = ROOT / "schemas" / "roadmap-topic.json"


def output(path: Path, n: int) -> None:
    rows = [
        {
            "id": f"t{i}",
            "category": f"Area {i % 7}",
            "topic": f"Topic number {i}",
            "description": f"Synthetic description {i} of a topic, with enough words to summarise it.",
            "tldr": None if i % 97 == 0 else f"What topic {i} is about, briefly.",
            "challenge": None if i % 97 == 0 else ("expert" if i % 5 == 0 else "practice"),
            "_confidence": None if i % 97 == 0 else round(((i * 7919) % 1000) / 1000, 3),
            "_flags": "repaired" if i % 50 == 3 else "",
        }
        for i in range(n)
    ]
    write_rows(path, rows, columns_of(rows[:1]))


def get(port: int, token: str, **params: str) -> tuple[float, int]:
    """One page, its time in seconds and size in bytes."""
    connection = http.client.HTTPConnection("127.0.0.1", port)
    started = time.perf_counter()
    connection.request("GET", "/?" + urlencode({"token": token, **params}), headers={"Host": f"127.0.0.1:{port}"})
    reply = connection.getresponse()
    body = reply.read()
    seconds = time.perf_counter() - started
    connection.close()
    assert reply.status == 200, reply.status
    return seconds, len(body)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--tries", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "out.csv"
        output(path, args.rows)
        started = time.perf_counter()
        session = Session(path, Task.from_file(TASK), Path(folder) / "cache")
        loaded = time.perf_counter() - started
        print(f"{args.rows:,} rows ({path.stat().st_size / 1e6:.1f} MB CSV): loaded in {loaded:.2f} s")
        server = ReviewServer(session)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        cases = {
            "first page": ({}, 0.300),
            "confidence below 0.1": ({"below": "0.1"}, 1.0),
            "search 'topic 99'": ({"q": "topic 99"}, 1.0),
            "challenge is expert": ({"field": "challenge", "value": "expert"}, 1.0),
            "all filters, page 3": (
                {"below": "0.5", "q": "area 3", "field": "challenge", "value": "practice", "flagged": "1", "page": "2"},
                1.0,
            ),
            "failed": ({"failed": "1"}, 1.0),
        }
        try:
            for name, (params, target) in cases.items():
                times = []
                for _ in range(args.tries):
                    seconds, size = get(server.port, server.token, **params)
                    times.append(seconds)
                median, worst = statistics.median(times), max(times)
                verdict = "ok" if worst <= target else "OVER"
                print(
                    f"{name:24} median {median * 1000:7.1f} ms, worst {worst * 1000:7.1f} ms"
                    f" (target {target * 1000:.0f} ms: {verdict}); page {size / 1000:.0f} kB"
                )
        finally:
            server.shutdown()
            server.server_close()
            session.close()


if __name__ == "__main__":
    main()
