"""Rows a person sent to be asked again on another model (``enrichkit review``): asked on that model before
the run asks its other rows, live (they are few, in batch mode too), each model's rows packed as the run
packs them, on a scheduler of their own (a model that cannot answer stops nothing else).

Their answers are the rows' answers from then on (cached, with the model that wrote them), flagged
``reasked`` rather than ``fallback`` (a person chose the model), and the call log names the model, so the
row's story does too. A model the provider refuses (unknown, not allowed to the key) fails those rows for
this run with its reason, and the run goes on; they stay marked, for the person to choose again.
"""

from __future__ import annotations

from enrichkit.calls.scheduler import Scheduler
from enrichkit.engine.context import RunContext, fallback_provider
from enrichkit.engine.ladder import Ladder
from enrichkit.engine.live import LiveRun
from enrichkit.engine.reviewed import Kept
from enrichkit.engine.settle import Settlement
from enrichkit.errors import FatalProviderError
from enrichkit.rows.work import Work

REASKED = "reasked"
"""The flag of an answer by the model a person chose for its row."""


async def ask_on_chosen(context: RunContext, kept: Kept | None, work: list[Work], live: LiveRun) -> list[Work]:
    """Ask the rows of ``work`` sent to be asked again on another model than the run's (``Kept.models``) on
    that model, settled into ``live``'s settlement; the rest of ``work``, for the run's own models."""
    if kept is None or not kept.models:
        return work
    chosen: dict[str, list[Work]] = {}
    rest: list[Work] = []
    for item in work:
        model = kept.models.get(item.key)
        if model is None or model == context.provider.model:
            rest.append(item)
        else:
            chosen.setdefault(model, []).append(item)
    for model, rows in chosen.items():
        await _ask_on(context, model, rows, live)
    return rest


async def _ask_on(context: RunContext, model: str, rows: list[Work], live: LiveRun) -> None:
    main, calls = live.settlement, live.scheduler
    provider = fallback_provider(context.provider, model)
    settlement = Settlement(main.stats, main.io, main.on_settled, primary=provider.model, mark=(REASKED,))
    scheduler = Scheduler(
        main.stats, concurrency=calls.concurrency, retry=calls.retry, limiter=calls.limiter, budget=calls.budget
    )
    run = LiveRun(
        context.codec(provider), settlement, scheduler, [provider], Ladder(context.pack_size, 1), log=live.log
    )
    try:
        await run.run(rows)
    except FatalProviderError as exc:
        for item in rows:
            if item.key not in settlement.results and item.key not in settlement.failures:
                await settlement.fail(item, f"asked again on {model}: {exc}")
    finally:
        if provider is not context.provider:
            await provider.aclose()
        main.results.update(settlement.results)
        main.failures.update(settlement.failures)
