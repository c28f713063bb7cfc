"""A cached re-run of a big JSONL file, swept by forked processes, writes what the usual way writes.

Real files, a real cache, the real forked sweep (``ENRICHKIT_SWEEP_MIN_BYTES=0`` makes a small file
big enough); each run is compared with the usual way's run on a copy of the same cache.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from enrichkit.cli.flags import CliOptions
from enrichkit.cli.runner import run_job
from enrichkit.errors import UserError
from enrichkit.options import RunOptions
from enrichkit.output import sweep
from enrichkit.providers.base import Reply, Request, Usage
from enrichkit.rows.files import iter_rows
from enrichkit.testing import FunctionProvider, ids_of, records_of
from helpers import ROOT

TASK = ROOT / "schemas" / "roadmap-topic.json"
pytestmark = pytest.mark.skipif(sweep.workers() < 2, reason="the sweep needs two cores")


def answer(request: Request) -> Reply:
    """Every row a valid answer naming its topic, but a topic with "bad" in it gets a value out of its enum."""

    def values(record: dict[str, Any]) -> dict[str, Any]:
        return {"tldr": f"About {record['topic']}", "challenge": "bogus" if "bad" in record["topic"] else "expert"}

    records, ids = records_of(request), ids_of(request)
    if not ids:
        return Reply(json.dumps(values(records[0])), usage=Usage(100, 10))
    items = [{"id": rid, **values(record)} for rid, record in zip(ids, records, strict=True)]
    return Reply(json.dumps(items), usage=Usage(100, 10 * len(items)))


def row(i: int, topic: str = "") -> dict[str, Any]:
    return {"id": f"r{i}", "category": f"Area {i % 7}", "topic": topic or f"Topic {i}", "description": f"Row {i} ñ."}


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def run(source: Path, output: Path, cache: Path, *, swept: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("ENRICHKIT_SWEEP_MIN_BYTES", "0" if swept else str(10**12))
    provider = FunctionProvider(answer, name="fn", model="fn")
    report = output.with_suffix(".report.json")
    options = RunOptions(provider=provider, cache_dir=cache)
    code = run_job(iter_rows(source), TASK, output, options, CliOptions(report=report, quiet=True, source=source))
    stats = json.loads(report.read_text())
    return {"code": code, "rows": stats["rows"], "hits": stats["cache_hits"], "calls": len(provider.requests)}


@pytest.fixture
def sweeps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the sweep gave its result (None or not) to the run: [swept, given up]."""
    counts = [0, 0]
    original = sweep._swept

    def counted(*args: Any) -> sweep.Swept | None:
        result = original(*args)
        counts[result is None] += 1
        return result

    monkeypatch.setattr(sweep, "_swept", counted)
    return counts


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_swept_rerun_writes_the_usual_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sweeps: list[int], suffix: str
) -> None:
    rows = [row(i) for i in range(600)]
    run(write_jsonl(tmp_path / "first.jsonl", rows), tmp_path / "first.csv", tmp_path / "a", swept=False,
        monkeypatch=monkeypatch)  # fmt: skip
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    # new rows among the cached ones (a few of them failing), and a blank line: the misses go to the model
    rows[300:300] = [row(1000 + i, "bad one" if i % 5 == 0 else "") for i in range(12)]
    source = write_jsonl(tmp_path / "again.jsonl", rows)
    source.write_text(source.read_text(encoding="utf-8").replace("\n", "\n\n", 1), encoding="utf-8")

    usual = run(source, tmp_path / f"usual{suffix}", tmp_path / "a", swept=False, monkeypatch=monkeypatch)
    assert sweeps == [0, 0]
    swept = run(source, tmp_path / f"swept{suffix}", tmp_path / "b", swept=True, monkeypatch=monkeypatch)
    assert sweeps == [1, 0]

    assert swept == usual == {"code": 1, "rows": 612, "hits": 600, "calls": swept["calls"]}
    assert swept["calls"] >= 1
    assert (tmp_path / f"swept{suffix}").read_bytes() == (tmp_path / f"usual{suffix}").read_bytes()
    failures = [path.read_bytes() for path in (tmp_path / "swept-failures.jsonl", tmp_path / "usual-failures.jsonl")]
    assert failures[0] == failures[1] and failures[0].count(b"\n") == 3  # the same rows, by the same numbers
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no part or temp file left


def test_a_repeated_id_in_another_part_is_named_as_the_usual_way_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sweeps: list[int]
) -> None:
    rows = [row(i) for i in range(2000)]  # the sample (8 x 64 lines) sees neither the last rows
    run(write_jsonl(tmp_path / "first.jsonl", rows), tmp_path / "first.csv", tmp_path / "a", swept=False,
        monkeypatch=monkeypatch)  # fmt: skip
    rows[-1] = {**rows[-1], "id": "r3"}  # the first part's id again, in the last part
    source = write_jsonl(tmp_path / "again.jsonl", rows)
    errors = []
    for swept in (False, True):
        with pytest.raises(UserError) as raised:
            run(source, tmp_path / "out.csv", tmp_path / "a", swept=swept, monkeypatch=monkeypatch)
        errors.append(str(raised.value))
    assert errors[0] == errors[1] and "duplicate id 'r3'" in errors[0]
    assert sweeps == [0, 1]  # a part found it: the sweep gave up and the usual way named the rows
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b'{"id": "x", "topic": 1e400}\n', "a number"),
        (b"not json\n", "a mistake"),
        (b"[1, 2]\n", "not an object"),
        (b'{"id": ["x"], "category": "c", "topic": "t", "description": "d"}\n', "an id that is not a value"),
    ],
)
def test_a_line_the_careful_reader_must_see_gives_the_sweep_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sweeps: list[int], line: bytes, why: str
) -> None:
    rows = [row(i) for i in range(2000)]
    first = write_jsonl(tmp_path / "first.jsonl", rows)
    run(first, tmp_path / "first.csv", tmp_path / "a", swept=False, monkeypatch=monkeypatch)
    lines = first.read_bytes().splitlines(keepends=True)
    lines.insert(1900, line)  # in the last part, past the sample
    source = tmp_path / "again.jsonl"
    source.write_bytes(b"".join(lines))
    messages = []
    for swept in (False, True):
        try:
            run(source, tmp_path / "out.csv", tmp_path / "a", swept=swept, monkeypatch=monkeypatch)
            messages.append("")
        except UserError as exc:
            messages.append(str(exc))
    assert messages[0] == messages[1], why
    assert sweeps == [0, 1]
