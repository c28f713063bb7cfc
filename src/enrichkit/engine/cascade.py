"""The cascade: rows the model was not sure of, asked again, packed, on a stronger model after the main pass.

A row escalates when its confidence (its lowest closed field's, ``engine.confidence``) is below the
threshold and its answer was not escalated before (a cached re-run asks nothing again). The stronger
model's valid answer replaces the first in the results and in the cache (same key, flagged
``escalated``); a row it cannot answer keeps the first. Its calls go through a scheduler of their own
(the stronger model's limits), counted in the run's figures and in ``Stats.escalation``. In batch mode
they are the second pass of the batch jobs (``engine.batch``: a job on the stronger model, its rounds,
stragglers and ``--realtime-fallback`` as the main pass has them), priced at the batch price. Under
``--max-cost`` the escalation spends from the run's budget: live calls stop where the main pass's would, and
a batch job (it cannot stop part-way) is not sent when its estimate does not fit what is left; either way
the run says it stopped, the doubtful rows not escalated keep their first answer and a re-run asks them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from enrichkit.cache.entry import Entry
from enrichkit.calls.budget import Budget, BudgetReached
from enrichkit.calls.limits import open_limiter
from enrichkit.calls.prices import cost_of, price_of, run_cost
from enrichkit.calls.scheduler import Scheduler
from enrichkit.engine.batch import BatchRun
from enrichkit.engine.confidence import closed_fields, row_confidence
from enrichkit.engine.context import RunContext
from enrichkit.engine.ladder import Ladder
from enrichkit.engine.live import LiveRun
from enrichkit.engine.settle import Settlement
from enrichkit.errors import FatalProviderError, ProviderError, UserError
from enrichkit.providers.base import BatchBackend, Provider
from enrichkit.result import BatchRung, Escalation, ModelStats, Stats
from enrichkit.rows.keys import fingerprint
from enrichkit.rows.work import Work

ESCALATED = "escalated"

PREFLIGHT_SECONDS = 30.0

OVER_BUDGET = "every answer is cached: re-run with a higher --max-cost to escalate the doubtful rows left"


def doubtful(entries: Mapping[str, Entry], below: float) -> list[str]:
    """The keys of the answers whose confidence is below ``below`` and that were not escalated before."""
    return [
        key
        for key, entry in entries.items()
        if (c := row_confidence(entry.confidence)) is not None and c < below and ESCALATED not in entry.flags
    ]


async def check_model(context: RunContext, work: Sequence[Work]) -> None:
    """Refuse an escalation model that does not exist, before anything is sent: the provider's free count of
    a request (a provider that cannot count finds out at its first escalated call)."""
    strong = context.escalation
    if strong is None or not work:
        return
    if context.options.max_cost is not None and strong.name != "local" and price_of(strong.model) is None:
        raise UserError(
            f"--max-cost: no price is known for the escalation model {strong.model!r} (add it with ENRICHKIT_PRICES)"
        )
    codec = context.codec(strong)
    request = codec.pack_request(codec.packs(list(work), context.pack_size)[0], load=False)[1]
    try:
        await asyncio.wait_for(strong.count_tokens(request), PREFLIGHT_SECONDS)
    except FatalProviderError as exc:
        raise UserError(f"--escalate-model {strong.name}:{strong.model}: {exc}") from None
    except (ProviderError, TimeoutError):
        return


async def escalate(
    context: RunContext,
    entries: dict[str, Entry],
    inputs: Mapping[str, dict[str, Any]],
    stats: Stats,
    row_ids: Mapping[str, Any] | None = None,
    budget: Budget | None = None,
) -> dict[str, Entry]:
    """Ask the doubtful ``entries`` (by key; ``inputs``: each key's row inputs, ``row_ids``: the id the call
    log names each by) again on the stronger model, within the run's ``budget``; the answers that replace
    theirs (already stored in the cache), counted into ``stats.escalation``."""
    strong, options = context.escalation, context.options
    assert strong is not None and options.escalate is not None
    keys = doubtful(entries, options.escalate.below)
    summary = stats.escalation = stats.escalation or Escalation(_name(strong), options.escalate.below)
    if not keys:
        return {}
    before = _used(stats, strong.model)
    size = min(context.pack_size, strong.capabilities.max_pack_size)
    work = [Work(key, inputs[key], row_id=(row_ids or {}).get(key)) for key in keys]
    backend = strong.batches() if stats.mode == "batch" else None
    if backend is None:
        scheduler = Scheduler(
            stats,
            concurrency=strong.capabilities.concurrency,
            retry=options.retry,
            limiter=open_limiter(options, strong),
            budget=budget,
        )
        scratch = Settlement(Stats(), context.io, mark=(ESCALATED,))
        live = LiveRun(context.codec(strong), scratch, scheduler, [strong], Ladder(size, 1), log=context.log)
        try:
            await live.run(work)
        except BudgetReached as exc:
            stats.stopped, stats.hint = str(exc), OVER_BUDGET
        finally:
            await scratch.flush()
    elif budget is not None and (over := _over_budget(context, strong, work, size, stats, budget)):
        stats.stopped, stats.hint = over
        return {}
    else:
        scratch = await _in_batch(context, strong, backend, work, size, stats)
    after = _used(stats, strong.model)
    closed = closed_fields(context.task.schema) or context.task.fields
    summary.rows += len(keys)
    summary.answered += len(scratch.results)
    summary.changed += sum(
        any(entries[key].values.get(f) != entry.values.get(f) for f in closed) for key, entry in scratch.results.items()
    )
    summary.calls += after.calls - before.calls
    summary.prompt_tokens += after.prompt_tokens - before.prompt_tokens
    summary.output_tokens += after.output_tokens - before.output_tokens
    tokens = summary.prompt_tokens, summary.output_tokens
    if backend is None:
        summary.cost = None if strong.name == "local" else cost_of(strong.model, *tokens)
    else:
        summary.cost = run_cost(scratch.stats)
    return scratch.results


def _over_budget(
    context: RunContext, strong: Provider, work: list[Work], size: int, stats: Stats, budget: Budget
) -> tuple[str, str] | None:
    """Why an escalation batch job of ``work`` is not sent (what was spent, with its estimate at the batch
    price, would pass the budget) and what to do; None when it fits."""
    codec = context.codec(strong)
    packs = codec.packs(work, size)
    requests = [codec.pack_request(pack, load=False)[1] for pack in packs]
    estimate = budget.job_cost(strong.model, requests, sum(codec.expected_output_tokens(len(p)) for p in packs))
    spent = run_cost(stats)
    so_far = 0.0 if spent is None else spent.usd
    if so_far + estimate <= budget.limit:
        return None
    return (
        f"budget reached: ${so_far:.4f} spent of --max-cost ${budget.limit:g}, and the escalation's batch job"
        f" ({len(work)} rows on {strong.model}) would cost about ${estimate:.4f}: it was not sent",
        OVER_BUDGET,
    )


async def _in_batch(
    context: RunContext, strong: Provider, backend: BatchBackend, work: list[Work], size: int, stats: Stats
) -> Settlement:
    """Ask ``work`` as batch jobs on the stronger model (the rounds, stragglers and live finishing of the main
    pass, ``engine.batch``), under a run id of their own (a re-run re-attaches to jobs still running); their
    calls and tokens counted into ``stats``. The settlement holds the answers and the escalation's figures."""
    options = context.options
    part = Stats(mode="batch")
    scheduler = Scheduler(
        part, concurrency=strong.capabilities.concurrency, retry=options.retry, limiter=open_limiter(options, strong)
    )
    scratch = Settlement(part, context.io, mark=(ESCALATED,))
    live = LiveRun(context.codec(strong), scratch, scheduler, [strong], Ladder(size, 1), log=context.log)
    run = fingerprint({"run": context.fingerprint, "escalate": _name(strong)})
    batch = BatchRun.of(options, live, [backend], Ladder(size, 1, [size]), run, strong)
    try:
        await batch(work)
    finally:
        await scratch.flush()
        _add_calls(stats, part)
        stats.jobs = [*stats.jobs, *batch.jobs]
        assert stats.escalation is not None
        stats.escalation.waiting += batch.pending
    return scratch


def _add_calls(stats: Stats, part: Stats) -> None:
    """Count the calls and tokens of ``part`` (the escalation's jobs) into the run's figures ``stats``, not
    its rows (they settled in the main pass)."""
    counts = ("calls_packed", "calls_single", "calls_fallback", "calls_repair", "calls_batch", "retries")
    for name in (*counts, "prompt_tokens", "output_tokens", "cached_tokens", "finished_live"):
        setattr(stats, name, getattr(stats, name) + getattr(part, name))
    for into, of in ((stats.by_model, part.by_model), (stats.live_by_model, part.live_by_model)):
        for model, used in of.items():
            total = into.setdefault(model, ModelStats())
            for name in ("calls", "prompt_tokens", "output_tokens", "cached_tokens"):
                setattr(total, name, getattr(total, name) + getattr(used, name))
    for rung in part.batch_rungs:
        same = next((r for r in stats.batch_rungs if (r.model, r.size) == (rung.model, rung.size)), None)
        if same is None:
            stats.batch_rungs.append(BatchRung(rung.model, rung.size, rung.requests, rung.rows))
        else:
            same.requests, same.rows = same.requests + rung.requests, same.rows + rung.rows


def _used(stats: Stats, model: str) -> ModelStats:
    used = stats.by_model.get(model, ModelStats())
    return ModelStats(used.calls, used.rows, used.prompt_tokens, used.output_tokens)


def _name(provider: Provider) -> str:
    return f"{provider.name}:{provider.model}"
