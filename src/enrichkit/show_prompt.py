"""``--dry-run --show-prompt``: the exact request the run's first pack would send."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from enrichkit.api import choose, crosswire_checks
from enrichkit.backends import open_cache
from enrichkit.options import RunOptions
from enrichkit.packer import Packer
from enrichkit.prepare import prepare
from enrichkit.result import Stats
from enrichkit.task import Task


def first_prompt(rows: Iterable[Mapping[str, Any]], task: Task, options: RunOptions) -> str | None:
    """The system instruction, user prompt and answer schema of the first pack of rows the cache does
    not hold, as the provider of ``options`` would get them; None when there is nothing to send."""
    provider = choose(options).provider
    size = min(options.pack_size, provider.capabilities.max_pack_size)
    echo = crosswire_checks(task, options.echo, size)[0]
    cache = open_cache(options)
    try:
        work = list(prepare(rows, task, provider, cache, echo, Stats()).work.values())
    finally:
        if cache is not None:
            cache.close()
    if not work:
        return None
    packer = Packer(task, Stats(), id_style=provider.capabilities.id_style, echo=echo)
    pack = packer.packs(work, size)[0]
    request = packer.single_request(pack[0]) if len(pack) == 1 else packer.pack_request(pack)[1]
    return "\n".join(
        [
            f"--- system ({provider.name} / {provider.model}) ---",
            request.system,
            f"--- user (the first pack: {len(pack)} rows) ---",
            request.prompt,
            "--- answer schema ---",
            json.dumps(request.schema, indent=1, ensure_ascii=False),
        ]
    )
