"""Fewer garbage collections while a run is on.

A run makes and drops many small containers (rows, answers, entries) that hold no reference cycles,
and every 700 of them Python's cycle collector looks at the young objects (and now and then at all of
them): about a fifth of a cached re-run's time. While any run is on, the collector waits for
``GEN0`` new objects instead; cycles are still collected, just later. The user's thresholds are put
back when the last run ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

GEN0 = 100_000

_lock = threading.Lock()

_runs = 0

_saved = gc.get_threshold()


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Raise the collector's first threshold to ``GEN0`` (if it is lower) for the block."""
    global _runs, _saved
    with _lock:
        if _runs == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(max(_saved[0], GEN0), *_saved[1:])
        _runs += 1
    try:
        yield
    finally:
        with _lock:
            _runs -= 1
            if _runs == 0:
                gc.set_threshold(*_saved)
