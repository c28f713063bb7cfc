"""Where a cached re-run's time goes: each stage of the file-to-file path timed on its own, in one thread.

    PYTHONPATH=src .venv/bin/python benchmarks/overhead_stages.py [ROWS]   # default 100,000

A fresh run (``throughput.py``'s instant provider, in a child process) fills a cache in a temp folder;
then this process reads the JSONL, keys the rows, looks them up, checks the entries against the schema,
plans, builds the result rows and writes the CSV, 20,000 rows at a time as the CLI does, timing each stage.
Everything but SQLite holds the GIL, so the sum less the look-up's SQL is about the least a cached re-run can
take in one process.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from enrichkit.cache.folder import RowCache
from enrichkit.engine.cache_io import fits_task, sound
from enrichkit.engine.chunks import plan
from enrichkit.engine.collector import fewer_collections
from enrichkit.engine.context import run_fingerprint
from enrichkit.engine.fieldkeys import FieldKeys
from enrichkit.output.files import row_writer
from enrichkit.result import Stats
from enrichkit.rows.files import iter_rows
from enrichkit.rows.keys import key_rows
from enrichkit.rows.seen_ids import SeenIds
from throughput import TASK, in_child, instant_provider

CHUNK = 20_000


def stages(folder: Path) -> dict[str, float]:
    took: defaultdict[str, float] = defaultdict(float)
    provider, cache, stats = instant_provider(), RowCache(folder / "cache"), Stats()
    seen = SeenIds("id")
    keys = FieldKeys(TASK, run_fingerprint(TASK, provider))
    fits = fits_task(TASK, keys)
    clock = time.perf_counter
    with fewer_collections():
        start = clock()
        rows = list(iter_rows(folder / "rows.jsonl"))
        took["read JSONL"] += clock() - start
        columns = [*rows[0], *TASK.fields]
        with row_writer(folder / "out.csv", columns) as write:
            for offset in range(0, len(rows), CHUNK):
                start = clock()
                keyed = key_rows(rows[offset : offset + CHUNK], TASK, keys.fingerprint, seen, offset)
                mark = clock()
                took["keys"] += mark - start
                found = cache.get_many(set(keyed.keys))
                took["look-up (SQL + decode)"] += clock() - mark
                mark = clock()
                sound(found, fits)
                took["schema check"] += clock() - mark
                mark = clock()
                run = plan(keyed, found, stats, keys)
                took["plan"] += clock() - mark
                mark = clock()
                result = [{**row, **found[key].values} for row, key in zip(run.table, run.keys, strict=True)]
                took["result rows"] += clock() - mark
                mark = clock()
                write(result)
                took["write CSV"] += clock() - mark
    cache.close()
    assert stats.cache_hits == len(rows), f"{len(rows) - stats.cache_hits} rows not cached"
    return took


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as folder:
        in_child("file-fresh", n, folder)
        took = stages(Path(folder))
    for stage, seconds in took.items():
        print(f"{stage:<24} {seconds:6.2f} s")
    print(f"{'total':<24} {sum(took.values()):6.2f} s  ({n / sum(took.values()):,.0f} rows/s in one thread)")


if __name__ == "__main__":
    main()
