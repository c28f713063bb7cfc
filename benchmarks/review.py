"""The review page at 100,000 rows (issue 34): the server pages and filters, the browser gets one page.

    .venv/bin/python benchmarks/review.py                 # 100,000 rows, 5 tries each
    .venv/bin/python benchmarks/review.py --rows 1000000

A CSV output of synthetic roadmap-like rows (the task ``schemas/roadmap-topic.json``) with ``_confidence``
and ``_flags`` columns, reviewed by a ``ReviewServer`` on 127.0.0.1; each request a real HTTP GET of the
whole page (the HTML of 50 rows). Printed: the load (read, keyed, ranked, once), then the median and worst
time of the first page, and of filters over every row: confidence below 0.1, a search word, a field's
value, all three with the failed and flagged boxes, and "changed since the previous run". Targets: first
page <= 300 ms, a filter <= 1 s.

The output is a run of the history (a synthetic ``runs.jsonl``: it and a previous run of the task, whose
output file differs on every 13th row; a call log of packs of 20 rows, each row carried once): its load
also reads the log (every row's story) and compares the previous run's answers, timed apart. Its cache
folder holds every answered row's entry (each field's confidence, as a run stores it): every page looks up
its rows' entries, and the time of that look-up alone for one page is printed too.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from enrichkit.cache.entry import Entry
from enrichkit.cache.folder import RowCache
from enrichkit.engine.fieldkeys import FieldKeys
from enrichkit.history.calls import calls_dir
from enrichkit.history.files import history_dir
from enrichkit.history.runs import RunHistory, RunRecord, stamp
from enrichkit.output.files import columns_of, write_rows
from enrichkit.review.past import changed_rows, past_of
from enrichkit.review.server import ReviewServer
from enrichkit.review.session import Session
from enrichkit.review.table import Query
from enrichkit.rows.jsontext import canonical
from enrichkit.rows.keys import fingerprint, row_key
from enrichkit.task.task import Task

ROOT = Path(__file__).resolve().parents[1]
TASK = ROOT / "schemas" / "roadmap-topic.json"

KEY_PRINT = "0" * 64  # what every cache key of the runs shares


def output(path: Path, n: int, changed: int = 0) -> list[dict[str, Any]]:
    rows = [
        {
            "id": f"t{i}",
            "category": f"Area {i % 7}",
            "topic": f"Topic number {i}",
            "description": f"Synthetic description {i} of a topic, with enough words to summarise it.",
            "tldr": None if i % 97 == 0 else f"What topic {i} is about, briefly.",
            "challenge": None
            if i % 97 == 0
            else ("expert" if (i % 5 == 0) != (changed and i % changed == 0) else "practice"),
            "_confidence": None if i % 97 == 0 else round(((i * 7919) % 1000) / 1000, 3),
            "_flags": "repaired" if i % 50 == 3 else "",
        }
        for i in range(n)
    ]
    write_rows(path, rows, columns_of(rows[:1]))
    return rows


def entries(cache: Path, task: Task, rows: list[dict[str, Any]]) -> None:
    """The cache entry of every answered row, as the run stored it: its values and ``challenge``'s confidence."""
    groups = FieldKeys(task, KEY_PRINT).all
    store = RowCache(cache)
    try:
        batch: dict[str, Entry] = {}
        for row in rows:
            if row["tldr"] is None:
                continue
            key = row_key(KEY_PRINT, canonical({f: str(row[f]) for f in task.inputs}))
            values = {"tldr": row["tldr"], "challenge": row["challenge"]}
            confidence = {"challenge": float(row["_confidence"])}
            batch[key] = Entry(values, "m", 100.0, 10.0, confidence=confidence, groups=groups)
            if len(batch) == 1000:
                store.put_many(batch)
                batch = {}
        store.put_many(batch)
    finally:
        store.close()


def history(cache: Path, task: Task, previous: Path, current: Path, n: int) -> None:
    """Two recorded runs of ``task`` (``previous`` then ``current``) and the current one's call log."""
    runs = RunHistory(cache)
    for at, (run, path) in enumerate((("20261206-000000-prev", previous), ("20261206-000100-curr", current))):
        record = RunRecord(
            run, float(at), task.document(), fingerprint(task.fingerprint()), None, "fn", "m", {}, {}, {}, None,
            "", 1.0, logged=True, output=str(path.resolve()), output_stamp=stamp(path), key_fingerprint=KEY_PRINT,
        )  # fmt: skip
        runs.add(record)
    log = calls_dir(cache) / "20261206-000100-curr.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        for start in range(0, n, 20):
            rows = [f"t{i}" for i in range(start, min(n, start + 20))]
            doc = {
                "run": "20261206-000100-curr", "at": 1.0, "provider": "fn", "model": "m", "mode": "live",
                "kind": "packed", "rung": [20, 0], "rows": rows, "seconds": 0.5, "outcome": "ok",
                "results": [{"v": {"tldr": "x", "challenge": "practice"}} for _ in rows],
            }  # fmt: skip
            out.write(json.dumps(doc) + "\n")
    assert history_dir(cache).is_dir()


def get(port: int, token: str, **params: str) -> tuple[float, bytes]:
    """One page, its time in seconds and its HTML."""
    connection = http.client.HTTPConnection("127.0.0.1", port)
    started = time.perf_counter()
    connection.request("GET", "/?" + urlencode({"token": token, **params}), headers={"Host": f"127.0.0.1:{port}"})
    reply = connection.getresponse()
    body = reply.read()
    seconds = time.perf_counter() - started
    connection.close()
    assert reply.status == 200, reply.status
    return seconds, body


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--tries", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path, before, cache = Path(folder) / "out.csv", Path(folder) / "before.csv", Path(folder) / "cache"
        rows = output(path, args.rows)
        output(before, args.rows, changed=13)
        task = Task.from_file(TASK)
        started = time.perf_counter()
        entries(cache, task, rows)
        print(f"cache: every answered row's entry written in {time.perf_counter() - started:.1f} s")
        history(cache, task, before, path, args.rows)
        runs = RunHistory(cache)
        started = time.perf_counter()
        session = Session(path, task, cache, runs.find("last"))
        loaded = time.perf_counter() - started
        print(f"{args.rows:,} rows ({path.stat().st_size / 1e6:.1f} MB CSV): loaded in {loaded:.2f} s")
        looked = []
        for page in range(args.tries):
            numbers = session.table.page(Query(below=1.0, page=page))[1]  # answered rows: the failed come first
            started = time.perf_counter()
            figures = session.confidences({n: None for n in numbers})
            looked.append(time.perf_counter() - started)
        found = sum(isinstance(c, float) for row in figures.values() for c in row.values())
        print(
            f"each field's confidence of a page of {len(numbers)} rows from the cache: median"
            f" {statistics.median(looked) * 1000:.1f} ms, worst {max(looked) * 1000:.1f} ms ({found} figures found)"
        )
        started = time.perf_counter()
        past = past_of(runs, runs.find("last"), path, session.table.rows, task)
        logged = time.perf_counter() - started
        changed = changed_rows(past, runs, path, session.table.rows, task)
        session.table.mark_changed(changed)
        compared = time.perf_counter() - started - logged
        print(f"history: every row's story read from the call log in {logged:.2f} s;")
        print(f"  {len(changed):,} rows changed since the previous run, found in {compared:.2f} s")
        server = ReviewServer(session, past=past)
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
            "changed since previous": ({"changed": "1"}, 1.0),
        }
        try:
            for name, (params, target) in cases.items():
                times = []
                for _ in range(args.tries):
                    seconds, body = get(server.port, server.token, **params)
                    times.append(seconds)
                median, worst = statistics.median(times), max(times)
                verdict = "ok" if worst <= target else "OVER"
                print(
                    f"{name:24} median {median * 1000:7.1f} ms, worst {worst * 1000:7.1f} ms"
                    f" (target {target * 1000:.0f} ms: {verdict}); page {len(body) / 1000:.0f} kB"
                )
        finally:
            server.shutdown()
            server.server_close()
            session.close()


if __name__ == "__main__":
    main()
