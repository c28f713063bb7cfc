"""Models that give no token log-probabilities, remembered in the cache folder so later runs do not ask.

A provider that asked for log-probabilities and was refused (the Gemini API's ``Logprobs is not enabled
for models/…``) repeats the call without them and lists the model in its ``logprobs_refused``; the run
writes it here once it ends. The file is a JSON list of ``provider:model`` names.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from pathlib import Path

from enrichkit.providers.base import Provider

FILE = "no-logprobs.json"


def model_name(provider: Provider, model: str | None = None) -> str:
    return f"{provider.name}:{model or provider.model}"


def remembered(folder: Path) -> set[str]:
    """The models remembered as giving none (none when the file is missing or unreadable)."""
    with contextlib.suppress(OSError, ValueError):
        names = json.loads((folder / FILE).read_text())
        if isinstance(names, list):
            return {n for n in names if isinstance(n, str)}
    return set()


def refused(providers: Iterable[Provider]) -> set[str]:
    """The models ``providers`` found giving none in this run (``logprobs_refused``, where they keep it)."""
    return {model_name(p, m) for p in providers for m in getattr(p, "logprobs_refused", ())}


def remember(folder: Path, names: set[str]) -> None:
    """Add ``names`` to the folder's list (a folder that cannot be written is left alone: the next run asks again)."""
    known = remembered(folder)
    if names <= known:
        return
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / FILE
        temp = path.with_suffix(".tmp")
        temp.write_text(json.dumps(sorted(known | names)) + "\n")
        temp.replace(path)
