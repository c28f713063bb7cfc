"""A JSON file written whole or not at all (a temporary file beside it, then renamed over it): a reader
in another process sees the old document or the new one, never half of one."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json(path: Path, doc: Any) -> None:
    """``doc`` written to ``path`` atomically; an ``OSError`` leaves ``path`` as it was."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
