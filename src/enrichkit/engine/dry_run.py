"""The dry run: what a run would send and roughly what it would cost, without calling the model, and per
output field how many rows are cached and how many will be asked, and why (against the latest run of the
task's name in the cache folder's history); and ``--show-prompt``: the exact request of the first pack."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from enrichkit.cache.folder import default_dir
from enrichkit.calls.prices import cost_of
from enrichkit.engine.cascade import doubtful
from enrichkit.engine.chunks import Chunk, keyed_rows, lookup, oversized, plan
from enrichkit.engine.codec import PackCodec, asking
from enrichkit.engine.context import RunContext
from enrichkit.engine.prompt import ECHO_TOKENS
from enrichkit.history.runs import RunHistory, RunRecord
from enrichkit.providers.base import estimate_tokens
from enrichkit.result import Cost, Stats
from enrichkit.rows.work import Work


@dataclass(frozen=True)
class FieldPlan:
    """One output field in a dry run: rows whose answer is cached, rows to ask, and why they are asked."""

    name: str
    cached: int
    to_ask: int
    why: str = ""
    """Why the rows to ask are asked: "its description changed", "new field", "the instruction changed",
    "new rows" ... (empty: none to ask)."""

    def __str__(self) -> str:
        if not self.to_ask:
            return f"{self.name}: {self.cached:,} cached"
        cached = f", {self.cached:,} cached" if self.cached else ""
        return f"{self.name}: {self.to_ask:,} to ask — {self.why}{cached}"


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
    partly_cached: int = 0
    """Of ``to_send``: the rows asked for some fields only, their others cached."""
    fields: tuple[FieldPlan, ...] = ()
    """Per output field, the rows cached and to ask, and why (the calls and tokens count only what is asked)."""
    since: str | None = None
    """The run of the history the reasons compare with (None: none of this task's name)."""
    media: tuple[int, int, int] | None = None
    """For a task with media inputs: the images and documents to send, their prompt tokens (in
    ``prompt_tokens``, priced with them), and the rows that fail for their media (None: the task has none)."""

    escalation: EscalationPlan | None = None
    """The most an escalation may ask (None: no escalation)."""

    @property
    def calls(self) -> int:
        return len(self.packs)


@dataclass(frozen=True)
class EscalationPlan:
    """The most a run's escalation may ask on ``model``: every row to send (which fall below ``below`` is known
    only once answered) and the cached rows below it not escalated yet; their estimated tokens and cost."""

    model: str
    below: float
    rows: int
    prompt_tokens: int
    output_tokens: int
    cost: Cost | None


async def _chunk(context: RunContext, rows: Iterable[Mapping[str, Any]], stats: Stats) -> Chunk:
    """Every row in one chunk, keyed and looked up as the run would."""
    keyed = await keyed_rows(context, list(rows))
    found, _ = await lookup(context, keyed)
    chunk = plan(keyed, found, stats, context.keys)
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
    packs = codec.packs(sorted(chunk.work.values(), key=asking), context.pack_size)
    requests = [codec.pack_request(pack, load=False)[1] for pack in packs]
    estimated = [estimate_tokens(r.system + r.prompt) + r.media_tokens for r in requests]
    counted = await provider.count_tokens(requests[0]) if requests else None
    scale = counted / estimated[0] if counted and estimated else 1.0
    prompt_tokens, output_tokens = round(sum(estimated) * scale), sum(map(_output_tokens, [codec] * len(packs), packs))
    previous = latest_run(context)
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
        partly_cached=len(chunk.partial),
        fields=tuple(field_plans(context, chunk, stats.cache_hits, previous)),
        since=None if previous is None else previous.run,
        media=(sum(len(r.media) for r in requests), sum(r.media_tokens for r in requests), failed)
        if context.task.media
        else None,
        escalation=_escalation(context, chunk, scale),
    )


def _escalation(context: RunContext, chunk: Chunk, scale: float) -> EscalationPlan | None:
    """The most the escalation may ask: every row to send and the cached doubtful ones, packed on the stronger
    model (prompt tokens scaled as the main pass's)."""
    strong, escalate = context.escalation, context.options.escalate
    if strong is None or escalate is None:
        return None
    inputs = dict(zip(chunk.keys, chunk.inputs, strict=True))
    work = [*chunk.work.values(), *(Work(key, inputs[key]) for key in doubtful(chunk.found, escalate.below))]
    codec = context.codec(strong)
    packs = codec.packs(sorted(work, key=asking), min(context.pack_size, strong.capabilities.max_pack_size))
    requests = [codec.pack_request(pack, load=False)[1] for pack in packs]
    prompt_tokens = round(sum(estimate_tokens(r.system + r.prompt) + r.media_tokens for r in requests) * scale)
    output_tokens = sum(_output_tokens(codec, pack) for pack in packs)
    free = strong.name == "local"
    cost = Cost(0.0, 0.0, free=True) if free else cost_of(strong.model, prompt_tokens, output_tokens)
    name = f"{strong.name}:{strong.model}"
    return EscalationPlan(name, escalate.below, len(work), prompt_tokens, output_tokens, cost)


def _output_tokens(codec: PackCodec, pack: list[Work]) -> int:
    """The answer tokens a pack is expected to take: its fields' (and its echo's)."""
    part = codec.of(pack)
    return part.expected_output_tokens(len(pack)) + (ECHO_TOKENS * len(pack) if part.echo else 0)


def latest_run(context: RunContext) -> RunRecord | None:
    """The latest run in the history of the cache folder of a task of the same name (None: none)."""
    folder = context.options.cache_dir or default_dir()
    if not (folder / "history").is_dir():
        return None
    name = context.task.name
    return next((run for run in RunHistory(folder).runs() if run.task.get("name") == name), None)


def field_plans(context: RunContext, chunk: Chunk, hits: int, previous: RunRecord | None) -> list[FieldPlan]:
    """Per output field, the rows cached (``hits`` rows hold every field) and to ask, and why."""
    fields = context.task.fields
    to_ask = dict.fromkeys(fields, 0)
    for item in chunk.work.values():
        for name in item.fields or fields:
            to_ask[name] += item.rows
    rows = hits + sum(item.rows for item in chunk.work.values())
    return [
        FieldPlan(name, rows - to_ask[name], to_ask[name], why(context, name, previous) if to_ask[name] else "")
        for name in fields
    ]


def why(context: RunContext, name: str, previous: RunRecord | None) -> str:
    """Why rows are asked for the field ``name``, from what changed since the ``previous`` run of the task."""
    if previous is None:
        return "no earlier run of this task in the cache folder"
    task, before = context.task, previous.task
    if previous.key_fingerprint != context.fingerprint:
        if before.get("instruction") != task.instruction:
            return "the instruction changed"
        if before.get("inputs") != list(task.inputs):
            return "the inputs changed"
        if (previous.provider, previous.model) != (context.provider.name, context.provider.model):
            return f"the model changed (was {previous.provider} / {previous.model})"
        return "the prompt format or the model's settings changed"
    prints = previous.field_fingerprints or {}
    if name not in prints:
        return "new field"
    if prints[name] != context.keys.by_field()[name]:
        was = before.get("output", {}).get("properties", {}).get(name, {})
        now = task.schema["properties"][name]
        if was == now:
            return "a field it is asked with changed"
        if {**was, "description": None} == {**now, "description": None}:
            return "its description changed"
        return "its schema changed"
    return "new rows (or rows not answered before)"


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
