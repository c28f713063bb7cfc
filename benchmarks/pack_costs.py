"""What checking one pack of 20 answers costs, step by step (µs, the least of 7 timeit repeats).

    PYTHONPATH=src .venv/bin/python benchmarks/pack_costs.py

The rows are ``throughput.py``'s synthetic ones and the answers its instant provider's, so these are
the per-pack figures behind its fresh-run rows/s. The steps are ones every version of the pack codec has,
so an older checkout can be timed the same way (``PYTHONPATH=<old checkout>/src``).
"""

from __future__ import annotations

import json
import timeit
from collections.abc import Callable
from typing import Any

from enrichkit.engine.codec import PackCodec
from enrichkit.engine.crosswire import suspects, text_fields
from enrichkit.engine.validation import check_pack, parse_items
from enrichkit.rows.work import Work
from enrichkit.task.schema import make_validator
from throughput import TASK, instant, iter_synthetic_rows


def least_us(step: Callable[[], Any]) -> float:
    return min(timeit.repeat(step, number=300, repeat=7)) / 300 * 1e6


def main() -> None:
    codec = PackCodec(TASK, affinity=True)
    rows = [{f: row[f] for f in TASK.inputs} for row in iter_synthetic_rows(20)]
    items = [Work(f"k{n}", inputs) for n, inputs in enumerate(rows)]
    ids, request = codec.pack_request(items)
    text = instant(request).text
    payload, _ = parse_items(text)
    validator, fields = make_validator(TASK.schema), TASK.fields
    check = check_pack(payload, ids, fields, validator)
    answers, inputs = check.valid, dict(zip(ids, rows, strict=True))
    steps: dict[str, Callable[[], Any]] = {
        "prompt and request": lambda: codec.pack_request(items),
        "parse the answer": lambda: parse_items(text),
        "check ids and values": lambda: check_pack(payload, ids, fields, validator),
        "cross-wiring check": lambda: suspects(answers, inputs, text_fields(TASK.schema)),
    }
    print(json.dumps({name: round(least_us(step)) for name, step in steps.items()}))


if __name__ == "__main__":
    main()
