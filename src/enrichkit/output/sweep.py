"""A big JSONL file whose rows the cache (nearly) all holds, swept by one forked process per core.

A cached re-run spends its time reading, keying, looking up and writing rows, all under one GIL. The
sweep splits the input at line ends into one byte range per core. A forked process per range reads,
keys and looks up its rows, and writes the hits, rendered as the output's lines, into a part file
beside the output. The rows it did not find (misses) come back as their lines and their places in
the part. The run then enriches the misses as any run does, and ``joined`` writes the output: the
parts, with the misses' rows in their places.

Anything unusual gives the sweep up, before any call: a line the careful reader must see, a missing
field or id, a row with a column the first row lacks, a repeated id, a miss in the first row, too
many misses. The file then goes the usual way, which names the problem.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import os
import tempfile
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson

from enrichkit.cache.folder import RowCache
from enrichkit.engine.cache_io import Fits, fits_task, sound
from enrichkit.engine.fieldkeys import FieldKeys
from enrichkit.errors import StorageError, UserError
from enrichkit.output.atomic import TEMP_SUFFIX, atomic, storage_errors, temp_prefix
from enrichkit.output.files import columns_of, line_renderer
from enrichkit.rows.files import Row
from enrichkit.rows.jsontext import floatless, is_exact, reads_exactly
from enrichkit.rows.keys import key_rows
from enrichkit.task.task import Task

MIN_BYTES = 4_000_000  # a smaller input is read in one process (forking costs more than it saves)

MIN_HIT_SHARE = 0.8  # of a sample of the file's rows, else the run is mostly new rows: no sweep

MAX_MISS_SHARE = 0.5  # a part gives up once more of its rows than this are misses

SAMPLES, SAMPLE_LINES = 8, 64

BLOCK_BYTES = 2_000_000  # read, keyed, looked up and written at a time


@dataclass(frozen=True)
class Run:
    """What every part needs: the input, the task and the run's fingerprint (their cache keys), cache and output."""

    source: Path
    output: Path
    task: Task
    fingerprint: str
    cache_dir: Path
    columns: list[str]


@dataclass
class Part:
    """A byte range's outcome: its rows, its misses (row number in the part, byte offset in the
    part file, the line), and the hashes of its row ids; ``gave_up`` says why it stopped short."""

    rows: int = 0
    misses: list[tuple[int, int, bytes]] = field(default_factory=list)
    ids: array[int] = field(default_factory=lambda: array("q"))
    gave_up: str = ""


@dataclass
class Swept:
    """The file swept: the misses to enrich (rows, their numbers in the file), the counts, the part files."""

    run: Run
    parts: list[Path]
    rows: int
    hits: int
    misses: list[Row]
    numbers: list[int]
    places: list[tuple[int, int]]  # (part, byte offset) of each miss


_run: Run | None = None  # the forked parts' ``Run``: set before the fork, inherited, never pickled


def workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def eligible(source: Path, output: Path) -> bool:
    """Whether the input is a JSONL file big enough and the output a CSV or JSONL file, on more than one core."""
    limit = int(os.environ.get("ENRICHKIT_SWEEP_MIN_BYTES", MIN_BYTES))
    kinds = (".jsonl", ".ndjson")
    if source.suffix.lower() not in kinds or output.suffix.lower() not in (".csv", *kinds) or workers() < 2:
        return False
    try:
        return source.is_file() and source.stat().st_size >= limit
    except OSError:
        return False


@contextlib.contextmanager
def sweep(run: Run) -> Iterator[Swept | None]:
    """Sweep ``run.source`` (None: the sample found too few hits, or a part gave up); the part files
    live until the block ends."""
    import multiprocessing  # here: a run that does not sweep does not load them
    from concurrent.futures import ProcessPoolExecutor

    global _run
    if not _mostly_cached(run):
        yield None
        return
    ranges = _ranges(run.source, workers())
    with contextlib.ExitStack() as held:
        paths = [held.enter_context(_part_file(run.output)) for _ in ranges]
        _run = run
        gc.freeze()  # the parent's objects stay put: the forked parts do not copy the pages they live on
        try:
            with ProcessPoolExecutor(len(ranges), multiprocessing.get_context("fork")) as pool:
                jobs = zip(ranges, paths, strict=True)
                futures = [pool.submit(_sweep_part, start, end, str(path)) for (start, end), path in jobs]
                parts = [future.result() for future in futures]
        finally:
            gc.unfreeze()
            _run = None
        yield _swept(run, paths, parts)


def _swept(run: Run, paths: list[Path], parts: list[Part]) -> Swept | None:
    ids = array("q")
    for part in parts:
        if part.gave_up:
            return None
        ids.extend(part.ids)
    if len(set(ids)) != len(ids):  # a repeated id (or, rarely, two ids of one hash): the usual way names it
        return None
    rows = sum(p.rows for p in parts)
    swept = Swept(run, paths, rows, rows - sum(len(p.misses) for p in parts), [], [], [])
    before = 0
    for index, part in enumerate(parts):
        for number, at, line in part.misses:
            swept.misses.append(orjson.loads(line))
            swept.numbers.append(before + number)
            swept.places.append((index, at))
        before += part.rows
    return swept


@contextlib.contextmanager
def _part_file(output: Path) -> Iterator[Path]:
    """A temp file beside ``output``, locked (so no other run sweeps it away) and removed at the end."""
    with storage_errors(output):
        fd, name = tempfile.mkstemp(prefix=temp_prefix(output), suffix=TEMP_SUFFIX, dir=output.parent)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield Path(name)
    finally:
        os.close(fd)
        Path(name).unlink(missing_ok=True)


def _ranges(source: Path, n: int) -> list[tuple[int, int]]:
    """``n`` byte ranges of ``source`` (fewer for a short file), each starting at a line's start."""
    size = source.stat().st_size
    starts = [0]
    with source.open("rb") as stream:
        for k in range(1, n):
            stream.seek(max(starts[-1], size * k // n))
            stream.readline()
            if (at := stream.tell()) < size and at > starts[-1]:
                starts.append(at)
    return list(zip(starts, [*starts[1:], size], strict=True))


def _mostly_cached(run: Run) -> bool:
    """Whether most rows of a sample (``SAMPLES`` places, ``SAMPLE_LINES`` lines each) are in the cache."""
    size = run.source.stat().st_size
    rows: list[Row] = []
    with run.source.open("rb") as stream:
        for k in range(SAMPLES):
            stream.seek(size * k // SAMPLES)
            if k:
                stream.readline()
            for _ in range(SAMPLE_LINES):
                with contextlib.suppress(orjson.JSONDecodeError):
                    if type(row := orjson.loads(stream.readline())) is dict:
                        rows.append(row)
    try:
        keys = set(key_rows(rows, run.task, run.fingerprint).keys)
    except UserError:
        return False  # the usual way names the problem
    cache = RowCache(run.cache_dir)
    every = FieldKeys(run.task, run.fingerprint).all
    try:
        hits = sum(entry.groups == every for entry in cache.get_many(keys).values())
        return hits >= MIN_HIT_SHARE * len(keys) > 0
    finally:
        cache.close()


def _sweep_part(start: int, end: int, part: str) -> Part:
    """In a forked process: the rows between bytes ``start`` and ``end`` swept, the hits written to ``part``."""
    assert _run is not None
    gc.disable()  # a short-lived process whose rows live a block at a time: no cycles worth the collector's time
    run, out = _run, Part()
    try:
        cache = RowCache(run.cache_dir)
    except StorageError as exc:
        out.gave_up = str(exc)
        return out
    _, render = line_renderer(run.output, run.columns)
    keys = FieldKeys(run.task, run.fingerprint)
    fits = fits_task(run.task, keys)
    try:
        with run.source.open("rb") as stream, open(part, "wb") as into:
            stream.seek(start)
            while stream.tell() < end and not out.gave_up:
                block = stream.read(min(BLOCK_BYTES, end - stream.tell()))
                if not block.endswith(b"\n") and stream.tell() < end:
                    block += stream.readline()
                first = start == 0 and not out.rows
                out.gave_up = _sweep_block(run, block, out, cache, render, into, first, fits, keys.all)
    except (UserError, StorageError, OSError) as exc:  # the usual way names the problem
        out.gave_up = str(exc)
    finally:
        cache.close()
    return out


def _sweep_block(
    run: Run,
    block: bytes,
    out: Part,
    cache: RowCache,
    render: Callable[[Sequence[Row]], str],
    into: IO[bytes],
    first: bool,
    fits: Fits,
    every: str,
) -> str:
    """Key and look up a block's rows, write the hits and note the misses into ``out`` (``first``: the
    file's first block; ``every``: the field groups an entry answers to be a hit, ``FieldKeys.all``); why
    the sweep gives up, or empty."""
    lines = block.split(b"\n")
    if not lines[-1]:
        lines.pop()
    if (rows := _rows_of(block, lines)) is None:
        return "a line the careful reader must see"
    if len(rows) < len(lines):
        lines = [line for line in lines if line.strip()]
    keyed = key_rows(rows, run.task, run.fingerprint, floatless=floatless(block))  # ids checked: hashable
    if run.task.id_field:
        out.ids.extend(map(hash, keyed.ids))
    found = cache.get_many(set(keyed.keys))
    sound(found, fits)  # a damaged entry is a miss (the run counts it, and deletes it, as it looks the misses up)
    known = set(run.columns)
    done: list[Row] = []
    for n, (row, key) in enumerate(zip(rows, keyed.keys, strict=True)):
        if (entry := found.get(key)) is not None and entry.groups == every:
            row = row | entry.values
            if first and n == 0 and list(row) != run.columns:
                return "the first row's answer lacks a column"  # the first rows' answers set the columns
            done.append(row)
        elif first and n == 0:
            return "the first row is not cached"
        else:
            into.write(render(done).encode())
            done.clear()
            out.misses.append((out.rows + n, into.tell(), lines[n]))
        if not row.keys() <= known:
            return "a row has a column the first row lacks"
    into.write(render(done).encode())
    out.rows += len(rows)
    return "too many misses" if len(out.misses) > MAX_MISS_SHARE * out.rows else ""


def _rows_of(block: bytes, lines: list[bytes]) -> list[Row] | None:
    """The rows of ``block``'s ``lines`` (blank ones skipped, as the usual way does), or None where the careful
    reader must see a line (a mistake, a BOM, a number orjson reads otherwise)."""
    try:
        rows = list(map(orjson.loads, lines))  # the usual case at C speed: every line an object
    except orjson.JSONDecodeError:
        rows = []
        for line in lines:
            try:
                rows.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                if line.strip():
                    return None
    if rows and set(map(type, rows)) != {dict}:
        return None
    return rows if reads_exactly(block) or all(map(is_exact, rows)) else None


def columns(source: Path, task: Task) -> list[str] | None:
    """The output's columns as the first row's answer sets them (``files.columns_of``); None if the first line
    is not a JSON object (the usual way names the problem)."""
    with source.open("rb") as stream, contextlib.suppress(orjson.JSONDecodeError):
        if type(row := orjson.loads(stream.readline())) is dict:
            return columns_of([row], task.fields)
    return None


@contextlib.contextmanager
def joined(swept: Swept) -> Iterator[Callable[[Sequence[Row]], None]]:
    """A writer of the misses' rows, in their order, into the output between the parts' bytes; the output
    is written atomically (a temp file renamed at the end)."""
    run = swept.run
    header, render = line_renderer(run.output, run.columns)
    places = iter(swept.places)
    with atomic(run.output, binary=True) as out, contextlib.ExitStack() as parts:
        streams = [parts.enter_context(path.open("rb")) for path in swept.parts]
        current = 0

        def copy(upto: int, at: int | None) -> None:
            nonlocal current
            while current < upto:
                _copy(streams[current], out)
                current += 1
            stream = streams[current]
            _copy(stream, out, None if at is None else at - stream.tell())

        def write(rows: Sequence[Row]) -> None:
            for row in rows:
                copy(*next(places))
                out.write(render([row]).encode())

        with storage_errors(run.output):
            out.write(header.encode())
        yield write
        with storage_errors(run.output):
            copy(len(streams) - 1, None)


def _copy(stream: IO[bytes], out: IO[bytes], size: int | None = None) -> None:
    """``size`` bytes of ``stream`` (None: the rest) into ``out``, a megabyte at a time."""
    while size is None or size > 0:
        if not (chunk := stream.read(1 << 20 if size is None else min(size, 1 << 20))):
            return
        out.write(chunk)
        if size is not None:
            size -= len(chunk)
