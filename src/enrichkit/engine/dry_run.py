"""The dry run: what a run would send and roughly what it would cost, without calling the model;
and ``--show-prompt``: the exact request of the first pack."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from enrichkit.api import choose, crosswire_checks, load_task, options_of, run_sync
from enrichkit.cache.open import open_cache
from enrichkit.engine.codec import Packer
from enrichkit.engine.prepare import prepare
from enrichkit.engine.prompt import ECHO_WORDS, expected_output_tokens
from enrichkit.options import RunOptions
from enrichkit.providers.base import estimate_tokens
from enrichkit.result import Stats
from enrichkit.rows.frames import source
from enrichkit.task.task import Task

if TYPE_CHECKING:
    from enrichkit.rows.frames import Rows


@dataclass(frozen=True)
class Plan:
    """What a run would do, found without spending anything."""

    provider: str
    model: str
    rows: int
    cache_hits: int
    duplicates: int
    to_send: int
    packs: list[int]
    prompt_tokens: int
    output_tokens: int
    tokens_counted: bool

    @property
    def calls(self) -> int:
        return len(self.packs)


async def adry_run(rows: Rows, task: Task | str | Path, options: RunOptions | None = None, **given: Any) -> Plan:
    """The cache hits, packs and estimated tokens of a run, without calling the model.

    Prompt tokens are the provider's own count of the first pack (``countTokens`` is free on Gemini)
    scaled to all packs by length, or a four-characters-a-token estimate when it cannot count.
    """
    opts = options_of(options, given)
    task = load_task(task)
    primary = choose(opts).provider
    cache = open_cache(opts)
    size = min(opts.pack_size, primary.capabilities.max_pack_size)
    echo = crosswire_checks(task, opts.echo, size)[0]
    try:
        stats = Stats()
        run = prepare(source(rows).rows, task, primary, cache, echo, stats)
        packer = Packer(task, stats, id_style=primary.capabilities.id_style, echo=echo)
        packs = packer.packs(list(run.work.values()), size)
        requests = [packer.pack_request(pack)[1] for pack in packs]
        estimated = [estimate_tokens(r.system + r.prompt) for r in requests]
        counted = await primary.count_tokens(requests[0]) if requests else None
    finally:
        await primary.aclose()
        if cache is not None:
            cache.close()
    scale = counted / estimated[0] if counted and estimated else 1.0
    per_row = expected_output_tokens(task) + (ECHO_WORDS * 2 + 4 if echo else 0)
    return Plan(
        provider=primary.name,
        model=primary.model,
        rows=stats.rows,
        cache_hits=stats.cache_hits,
        duplicates=stats.duplicates,
        to_send=len(run.work),
        packs=[len(pack) for pack in packs],
        prompt_tokens=round(sum(estimated) * scale),
        output_tokens=sum(len(pack) * per_row for pack in packs),
        tokens_counted=counted is not None,
    )


def dry_run(rows: Rows, task: Task | str | Path, options: RunOptions | None = None, **given: Any) -> Plan:
    """What ``enrich`` would send, and roughly how many tokens, without calling the model."""
    return run_sync(adry_run(rows, task, options, **given))


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
