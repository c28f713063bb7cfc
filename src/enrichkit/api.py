"""``enrich`` and ``aenrich``: rows in, rows with new columns out (``RunOptions`` says how); ``dry_run``:
what that would send and cost."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import warnings
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable, Iterator, Mapping, Sized
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tqdm.auto import tqdm

from enrichkit.engine.chunks import run_chunks
from enrichkit.engine.context import RunContext
from enrichkit.engine.dry_run import DryRun
from enrichkit.engine.dry_run import dry_run as dry_run_of
from enrichkit.engine.recorded import recorded
from enrichkit.options import RunOptions
from enrichkit.result import EnrichResult, Stats
from enrichkit.rows.files import iter_rows, read_rows
from enrichkit.rows.frames import source, with_columns
from enrichkit.task.task import Task

if TYPE_CHECKING:
    from enrichkit.rows.frames import Rows

T = TypeVar("T")


RowFile = str | os.PathLike[str]
"""A row file (``.jsonl``, ``.json`` or ``.csv``), read as ``enrichkit run`` reads it (``rows.files``)."""


def read_if_path(rows: Rows | RowFile) -> Rows:
    """The rows of a row file, or ``rows`` as they are."""
    return read_rows(os.fspath(rows)) if isinstance(rows, str | os.PathLike) else rows


def load_task(task: Task | str | Path) -> Task:
    return task if isinstance(task, Task) else Task.from_file(task)


def options_of(options: RunOptions | None, given: Mapping[str, Any], rows: object = None) -> RunOptions:
    """``options`` with the keyword arguments ``given`` on top (either may be empty); a row file's folder
    is where a media input's relative paths are read from, unless ``media_root`` says otherwise."""
    opts = RunOptions.of(given) if options is None else options.replace(**given) if given else options
    if isinstance(rows, str | os.PathLike) and opts.media_root is None:
        return opts.replace(media_root=Path(os.fspath(rows)).parent)
    return opts


async def aenrich_chunks(
    rows: Iterable[Mapping[str, Any]] | RowFile,
    task: Task | str | Path,
    options: RunOptions | None = None,
    *,
    on_progress: Callable[[int, Stats], None] | None = None,
    **given: Any,
) -> AsyncGenerator[EnrichResult, None]:
    """Enrich ``rows`` with the columns of ``task`` (see ``enrich``), ``chunk_rows`` rows at a time.

    Each chunk's result is yielded once all its rows settled, so memory stays bounded whatever the
    input's size (``chunk_rows=None``: every row in one chunk). ``batch`` and ``auto`` modes take every
    row as one chunk (one batch job). The figures of each result are the run's up to that chunk: the
    last result's are the whole run's. ``on_progress(settled_rows, stats)`` is called once the cache was
    read and after every settled row. The options are ``RunOptions``' fields, as an object or as
    keyword arguments. A path (``str`` or ``Path``) is a row file, read a chunk at a time.
    """
    opts = options_of(options, given, rows)
    if isinstance(rows, str | os.PathLike):
        rows = iter_rows(os.fspath(rows))
    context = RunContext.open(load_task(task), opts)
    try:
        async with contextlib.aclosing(recorded(context, run_chunks(context, rows, on_progress=on_progress))) as chunks:
            async for result in chunks:
                yield result
    finally:
        await context.aclose()


@contextlib.contextmanager
def progress_bar(rows: object, enabled: bool) -> Iterator[Callable[[int, Stats], None] | None]:
    """An ``on_progress`` drawing a bar over ``rows`` on stderr (a widget in a notebook), or None."""
    if not enabled:
        yield None
        return
    total = len(rows) if isinstance(rows, Sized) else None
    bar = tqdm(total=total, unit="row", file=sys.stderr, dynamic_ncols=True)

    def update(done: int, stats: Stats) -> None:
        bar.set_postfix(calls=stats.calls, failed=stats.failed, refresh=False)
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        bar.close()


async def aenrich(
    rows: Rows | RowFile,
    task: Task | str | Path,
    options: RunOptions | None = None,
    *,
    progress: bool = True,
    **given: Any,
) -> EnrichResult:
    """Enrich ``rows`` with the columns of ``task`` in one go (see ``enrich``)."""
    opts = options_of(options, given, rows).replace(chunk_rows=None)
    rows = read_if_path(rows)
    task, given_rows = load_task(task), source(rows)  # a DataFrame in: result.frame out
    with progress_bar(rows, progress) as on_progress:
        [result] = [chunk async for chunk in aenrich_chunks(given_rows.rows, task, opts, on_progress=on_progress)]
    if result.stats.stopped:
        warnings.warn(f"enrichkit stopped early: {result.stats.stopped}", RuntimeWarning, stacklevel=2)
    if given_rows.frame is not None:
        columns = task.schema["properties"]
        if result.stats.confidence is not None:
            columns = {**columns, "_confidence": {"type": ["number", "null"]}, "_flags": {"type": ["string", "null"]}}
        result.frame = with_columns(given_rows.frame, result.rows, columns)
    return result


def run_sync(job: Coroutine[Any, Any, T]) -> T:
    """Run ``job`` to completion, also from inside a running event loop (e.g. Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(job)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, job).result()


def enrich(
    rows: Rows | RowFile,
    task: Task | str | Path,
    options: RunOptions | None = None,
    *,
    progress: bool = True,
    **given: Any,
) -> EnrichResult:
    """Enrich ``rows`` (dicts, a pandas or polars DataFrame or a pyarrow Table, or the path of a ``.jsonl``,
    ``.json`` or ``.csv`` file, read as ``enrichkit run`` reads it) with the columns ``task`` describes.

    Cached rows cost nothing; the rest travel in packs of up to ``pack_size`` rows per call. The
    options are ``RunOptions``' fields (as an object, or as keyword arguments): e.g. ``client=`` a
    ready ``google.genai.Client``, ``provider=`` a provider or its name (default: Gemini when
    GEMINI_API_KEY / GOOGLE_API_KEY is set, else the embedded local model), ``fallback=`` models or
    providers for the rows the main model could not answer. Returns the rows in input order with the
    new fields (absent for failed rows), the failures with their last reason, and the run's figures;
    for a frame also ``result.frame``: the same kind of frame, its columns and order kept, the new
    columns added (null for failed rows); ``result.models``, pydantic instances, when the task's output
    is a model. Where the model gives token log-probabilities, each row also gets ``_confidence`` (the
    probability the model gave its least sure closed answer) and ``_flags`` (``confidence=`` says when;
    ``escalate=Escalate(model, below)`` asks the doubtful rows again on a stronger model;
    ``check_against={"field": "column"}`` reports the answers' accuracy against known ones). A progress
    bar is drawn on stderr unless ``progress=False``.
    """
    return run_sync(aenrich(rows, task, options, progress=progress, **given))


async def adry_run(
    rows: Rows | RowFile, task: Task | str | Path, options: RunOptions | None = None, **given: Any
) -> DryRun:
    """The cache hits, packs and estimated tokens of a run, without calling the model (see ``dry_run``)."""
    context = RunContext.open(load_task(task), options_of(options, given, rows))
    try:
        return await dry_run_of(context, source(read_if_path(rows)).rows)
    finally:
        await context.aclose()


def dry_run(rows: Rows | RowFile, task: Task | str | Path, options: RunOptions | None = None, **given: Any) -> DryRun:
    """What ``enrich`` would send, and roughly how many tokens, without calling the model: prompt tokens
    are the provider's own count of the first pack (``countTokens`` is free on Gemini) scaled to all
    packs by length, or a four-characters-a-token estimate where it cannot count. ``DryRun.fields``: per output
    field, the rows cached and the rows to ask, and why (a new field, a changed description, instruction or
    model, new rows), against the latest run of the task's name in the cache folder's history."""
    return run_sync(adry_run(rows, task, options, **given))
