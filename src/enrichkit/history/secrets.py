"""Secrets out of what the history writes: a quick look first, ``providers.redact`` where it finds one."""

from __future__ import annotations

import os

from enrichkit.providers import keys
from enrichkit.providers.redact import MIN_LENGTH, redact

SHAPES = (b"AIza", b"sk-")  # how the keys ``redact`` finds by their shape start


def configured_keys() -> list[bytes]:
    """The API keys the environment holds now (those ``redact`` blanks out), as UTF-8."""
    return [v.encode() for name in keys.ALL if len(v := os.environ.get(name, "").strip()) >= MIN_LENGTH]


def redacted(line: bytes, configured: list[bytes]) -> bytes:
    """``line`` (UTF-8 JSON) without API keys: as it is when it holds neither a configured key nor the start
    of one ``redact`` knows by its shape (most lines), else redacted."""
    if any(shape in line for shape in SHAPES) or any(key in line for key in configured):
        return redact(line.decode()).encode()
    return line
