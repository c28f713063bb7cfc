"""A run recorded in its cache folder's history: its line in the run history once it ends, its answers kept
for ``diff`` and every call in the call log (``enrichkit.history``). A run without a cache records nothing.

Recording never fails a run: a history it cannot write is skipped with a ``HistoryWarning``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator
from pathlib import Path

from enrichkit.cache.folder import default_dir
from enrichkit.engine.context import RunContext
from enrichkit.history.answers import AnswerKeeper, answers_path
from enrichkit.history.calls import CallLog
from enrichkit.history.runs import RunHistory, RunRecord, counts_of, options_of
from enrichkit.options import RunOptions
from enrichkit.providers.redact import redact
from enrichkit.result import UNKNOWN_COST, EnrichResult, Stats
from enrichkit.rows.keys import fingerprint


def history_folder(options: RunOptions) -> Path | None:
    """The cache folder that holds the run's history (None: a run without a cache records nothing)."""
    return (options.cache_dir or default_dir()) if options.use_cache else None


async def recorded(
    context: RunContext, chunks: AsyncGenerator[EnrichResult, None], *, keep: bool = True
) -> AsyncGenerator[EnrichResult, None]:
    """``chunks`` (``run_chunks`` of ``context``) as they come, the run recorded; ``keep``: its answers kept
    for ``diff`` (False: the chunks are only some of the run's rows, the rest swept elsewhere)."""
    folder = history_folder(context.options)
    if folder is None:
        async with contextlib.aclosing(chunks):
            async for result in chunks:
                yield result
        return
    started = time.time()
    task = context.task
    keeper = AnswerKeeper(answers_path(folder, context.run_id), task.fields, task.id_field)
    if not keep:
        keeper.given_up = True
    if context.options.log:
        context.log = CallLog(folder, context.run_id)
    stats: Stats | None = None  # the last result's figures (None: the run ended before its first result)
    error = ""
    try:
        async with contextlib.aclosing(chunks):
            async for result in chunks:
                stats = result.stats
                keeper.keep(result)
                yield result
    except GeneratorExit:  # the caller stopped reading (a batch run's rows wait in a job)
        raise
    except BaseException as exc:
        error = redact(str(exc)) or type(exc).__name__
        raise
    finally:
        log, context.log = context.log, None
        if log is not None:
            log.close()
        RunHistory(folder).add(_record(context, started, stats, error, keeper.close(), log))


def _record(
    context: RunContext, started: float, stats: Stats | None, error: str, kept: int | None, log: CallLog | None
) -> RunRecord:
    """The run's record; without a result (it failed at once) no counts, as none are known."""
    counts, tokens = counts_of(stats) if stats is not None else ({}, {})
    cost = stats.est_cost if stats is not None else None
    return RunRecord(
        run=context.run_id,
        at=started,
        task=context.task.document(),
        task_fingerprint=fingerprint(context.task.fingerprint()),
        field_fingerprints=context.keys.by_field(),
        provider=context.provider.name,
        model=context.provider.model,
        options=options_of(context.options),
        counts=counts,
        tokens=tokens,
        cost_usd=None if cost is None else 0.0 if cost.free else round(cost.usd, 6),
        cost=str(cost or UNKNOWN_COST) if stats is not None else "unknown: the run ended before any result",
        seconds=round(stats.seconds if stats is not None else time.time() - started, 3),
        stopped=(stats.stopped if stats is not None else "") or error,
        answers=kept,
        logged=log is not None and log.calls > 0,
        key_fingerprint=context.fingerprint,
    )
