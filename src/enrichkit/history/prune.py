"""Old history dropped: the call-log segments and kept answers of runs older than an age (``cache prune``).
The run history itself (a line a run) is kept."""

from __future__ import annotations

import time
from pathlib import Path

from enrichkit.history.answers import FOLDER as ANSWERS
from enrichkit.history.calls import calls_dir
from enrichkit.history.files import history_dir


def prune_history(cache_dir: Path, older_than_seconds: float) -> int:
    """Delete the call logs and kept answers last written more than ``older_than_seconds`` ago; how many
    runs' call logs went."""
    cutoff = time.time() - older_than_seconds
    gone = 0
    for folder, pattern in ((calls_dir(cache_dir), "*.jsonl"), (history_dir(cache_dir) / ANSWERS, "*.jsonl.gz")):
        for path in folder.glob(pattern) if folder.is_dir() else ():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    gone += folder.name != ANSWERS
            except FileNotFoundError:
                continue
    return gone
