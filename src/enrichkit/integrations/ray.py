"""Ray Data (``enrichkit[ray]``): ``enrich(dataset, task, **options)`` adds the task's columns to a
``ray.data.Dataset`` on a pool of actors.

Each actor makes its provider once and runs ``aenrich`` on every batch it is given (packs are formed
inside the batch, as in a live run). With ``cache="redis://..."`` the actors share the cache, one
rate limit with its 429 pauses, and in-flight leases, so a row repeated across partitions is paid
once; without it the RPM/TPM limits are divided among the actors (and each keeps a cache folder of its
machine). A row that got no answer comes back with why in the error column (null when it was
enriched): a failure is never a crashed job.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from enrichkit.api import aenrich, load_task
from enrichkit.calls.limits import open_limiter
from enrichkit.engine.context import choose
from enrichkit.errors import UserError
from enrichkit.options import RunOptions
from enrichkit.rows.frames import native_frame, with_columns
from enrichkit.task.task import Task

try:
    import pyarrow as pa
    import ray.data
except ImportError as exc:
    raise ImportError(f"enrichkit.integrations.ray needs {exc.name}: pip install 'enrichkit[ray]'") from None

ERROR_COLUMN = "_enrichkit_error"


def enrich(
    dataset: ray.data.Dataset,
    task: Task | str | Path,
    *,
    actors: int = 2,
    block_rows: int = 400,
    num_cpus: float = 0.5,
    error_column: str = ERROR_COLUMN,
    **options: Any,
) -> ray.data.Dataset:
    """``dataset`` with the columns of ``task`` and ``error_column``, enriched by ``actors`` actors
    (``num_cpus`` each: the work is waiting on the network), ``block_rows`` rows an actor at a time.

    The options are ``enrich()``'s, and they travel to the actors: the provider by name
    (``provider``, ``model``, ``base_url``; the key from the actors' environment, e.g. ``runtime_env``),
    not as an object, and no ``client`` or ``limiter``."""
    opts = RunOptions.of(options)
    _check_shippable(opts)
    if opts.cache is None:
        opts = opts.replace(rpm=_share(opts.rpm, actors), tpm=_share(opts.tpm, actors))
    return dataset.map_batches(
        _Enricher,
        fn_constructor_kwargs={"task": load_task(task), "options": opts, "error_column": error_column},
        batch_size=block_rows,
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=num_cpus,
    )


def _check_shippable(opts: RunOptions) -> None:
    """Objects that hold connections cannot travel to the actors: each makes its own from names."""
    if opts.mode not in ("live", "flex"):
        raise UserError(f"enrichkit.integrations.ray runs live or flex calls, not --mode {opts.mode}")
    if not (isinstance(opts.provider, str | None) and all(isinstance(f, str) for f in opts.fallback)):
        raise UserError(
            "enrichkit.integrations.ray: name the provider (provider=, model=, base_url=), each actor makes its own"
        )
    if opts.client is not None or opts.limiter is not None:
        raise UserError(
            "enrichkit.integrations.ray: no client= or limiter= (each actor makes its own; cache= shares the limit)"
        )


def _share(limit: int | None, actors: int) -> int | None:
    """Each actor's part of a limit when nothing shares it."""
    return None if limit is None else max(1, limit // actors)


class _Enricher:
    """One actor: its provider and limiter made once, and an event loop that outlives each batch
    (the provider's connections are bound to it)."""

    def __init__(self, task: Task, options: RunOptions, error_column: str) -> None:
        self.task = task
        self.error_column = error_column
        self.loop = asyncio.new_event_loop()
        provider = choose(options).provider  # this actor's, closed with it
        # ``with_model`` gives a provider on the same client that a run does not close.
        view = provider.with_model(provider.model)
        self.options = options.replace(provider=view, limiter=open_limiter(options, provider))
        self._lock = threading.Lock()

    def __call__(self, batch: pa.Table) -> pa.Table:
        try:
            with self._lock:
                result = self.loop.run_until_complete(aenrich(batch, self.task, self.options, progress=False))
        except Exception as exc:  # a batch that could not run: every row says why, the job goes on
            reason = f"{type(exc).__name__}: {exc}"
            empty = with_columns(native_frame(batch), [{}] * batch.num_rows, self.task.schema["properties"])
            return empty.append_column(self.error_column, pa.array([reason] * batch.num_rows, pa.string()))
        why = {f.row_id: f.reason for f in result.failures}
        ids = [row[self.task.id_field] for row in result.rows] if self.task.id_field else range(len(result.rows))
        errors = pa.array([why.get(rid) for rid in ids], pa.string())
        return result.frame.append_column(self.error_column, errors)
