"""The dry run: what a run would send and roughly what it would cost, without calling the model; and
``--show-prompt``: the exact request of the first pack."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from enrichkit.calls.prices import cost_of
from enrichkit.engine.chunks import Chunk, keyed_rows, lookup, oversized, plan
from enrichkit.engine.context import RunContext
from enrichkit.engine.prompt import ECHO_TOKENS, expected_output_tokens
from enrichkit.providers.base import estimate_tokens
from enrichkit.result import Cost, Stats


@dataclass(frozen=True)
class DryRun:
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
    cost: Cost | None
    """The tokens' cost at ``prices.json``'s rates, live and at the batch price (None: the model has no price)."""
    agreement: bool = False
    """The figures count every row twice: its confidence is measured by two packings (``engine.agreement``)."""
    media: tuple[int, int, int] | None = None
    """For a task with media inputs: the images and documents to send, their prompt tokens (in
    ``prompt_tokens``, priced with them), and the rows that fail for their media (None: the task has none)."""

    @property
    def calls(self) -> int:
        return len(self.packs)


async def _chunk(context: RunContext, rows: Iterable[Mapping[str, Any]], stats: Stats) -> Chunk:
    """Every row in one chunk, keyed and looked up as the run would."""
    keyed = await keyed_rows(context, list(rows))
    found, _ = await lookup(context, keyed)
    chunk = plan(keyed, found, stats)
    oversized(chunk, keyed.broken, context.provider)
    return chunk


async def dry_run(context: RunContext, rows: Iterable[Mapping[str, Any]]) -> DryRun:
    """The cache hits, packs and estimated tokens of a run, without calling the model.

    Prompt tokens are the provider's own count of the first pack (``countTokens`` is free on Gemini)
    scaled to all packs by length, or a four-characters-a-token estimate when it cannot count.
    """
    stats = Stats()
    chunk = await _chunk(context, rows, stats)
    failed = sum(chunk.broken.values())
    codec, provider = context.codec(), context.provider
    packs = codec.packs(list(chunk.work.values()), context.pack_size)
    requests = [codec.pack_request(pack, load=False)[1] for pack in packs]
    estimated = [estimate_tokens(r.system + r.prompt) + r.media_tokens for r in requests]
    counted = await provider.count_tokens(requests[0]) if requests else None
    scale = counted / estimated[0] if counted and estimated else 1.0
    per_row = expected_output_tokens(context.task) + (ECHO_TOKENS if context.echo else 0)
    prompt_tokens, output_tokens = round(sum(estimated) * scale), sum(len(pack) * per_row for pack in packs)
    sizes = [len(pack) for pack in packs]
    if twice := context.by_agreement:  # the second packing: the same rows in other packs of the same sizes
        sizes, prompt_tokens, output_tokens = sizes * 2, prompt_tokens * 2, output_tokens * 2
    local = provider.name == "local"
    return DryRun(
        provider=provider.name,
        model=provider.model,
        rows=stats.rows,
        cache_hits=stats.cache_hits,
        duplicates=stats.duplicates,
        to_send=len(chunk.work),
        packs=sizes,
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        tokens_counted=counted is not None,
        cost=Cost(0.0, 0.0, free=True) if local else cost_of(provider.model, prompt_tokens, output_tokens),
        agreement=twice,
        media=(sum(len(r.media) for r in requests), sum(r.media_tokens for r in requests), failed)
        if context.task.media
        else None,
    )


async def first_prompt(context: RunContext, rows: Iterable[Mapping[str, Any]]) -> str | None:
    """The system instruction, user prompt and answer schema of the first pack of rows the cache does
    not hold, as the run's provider sends them (with what it adds itself: its ``as_sent``, where it
    has one); None when there is nothing to send."""
    work = list((await _chunk(context, rows, Stats())).work.values())
    if not work:
        return None
    codec, provider = context.codec(), context.provider
    pack = codec.packs(work, context.pack_size)[0]
    request = codec.single_request(pack[0], load=False) if len(pack) == 1 else codec.pack_request(pack, load=False)[1]
    if (as_sent := getattr(provider, "as_sent", None)) is not None:  # a provider that adds to the request
        request = as_sent(request)
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
