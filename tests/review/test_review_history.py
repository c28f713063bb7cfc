"""The review of a run of the history: the run named as ``enrichkit diff`` names it, its task taken from the
run; each row's story from the call log and the model that wrote it; the filter "changed since the previous
run" (through the seam, and the server's HTTP endpoints)."""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from enrichkit.cli import main
from enrichkit.cli.flags import CliOptions
from enrichkit.cli.runner import run_job
from enrichkit.history.runs import RunHistory
from enrichkit.options import RunOptions
from enrichkit.providers.base import Reply, Request, Usage
from enrichkit.review.past import Past, changed_rows, output_of, past_of, task_of
from enrichkit.review.server import ReviewServer
from enrichkit.review.session import Session
from enrichkit.rows.files import iter_rows, read_rows
from enrichkit.task.task import Task
from enrichkit.testing import FunctionProvider, GeminiStub, ids_of, set_field
from helpers import invoke, topic_rows, write_jsonl
from reviewing import TASK, request

PRIMARY, FALLBACK = "gemini-3.1-flash-lite", "gemini-2.5-flash"


def answering(challenge: str) -> FunctionProvider:
    def answer(request: Request) -> Reply:
        one = {"tldr": "A short summary.", "challenge": challenge}
        if not (ids := ids_of(request)):
            return Reply(json.dumps(one), usage=Usage(100, 10))
        return Reply(json.dumps([{"id": rid, **one} for rid in ids]), usage=Usage(100, 10 * len(ids)))

    return FunctionProvider(answer, name="fn", model="m")  # the cache keys by model: the same one twice


def run(source: Path, output: Path, cache: Path, provider: FunctionProvider) -> int:
    """A recorded run through the seam; how many rows the model was asked for."""
    options = RunOptions(provider=provider, cache_dir=cache, pack_size=10)
    assert run_job(iter_rows(source), TASK, output, options, CliOptions(quiet=True, source=source)) == 0
    return sum(len(ids_of(r)) or 1 for r in provider.requests)


def two_runs(folder: Path) -> tuple[Path, Path, Path]:
    """A run of 30 rows answering "practice"; rows 3 and 5 sent to be asked again in its review; a second run
    answering "expert" (it asks those two only). The two outputs and the cache folder."""
    source, cache = write_jsonl(folder / "rows.jsonl", topic_rows(30)), folder / "c"
    first, second = folder / "first.jsonl", folder / "second.jsonl"
    assert run(source, first, cache, answering("practice")) == 30
    session = Session(first, Task.from_file(TASK), cache)
    try:
        for n in (3, 5):
            session.ask_again(n, 0)
    finally:
        session.close()
    assert run(source, second, cache, answering("expert")) == 2
    return first, second, cache


@contextmanager
def serving(output: Path, cache: Path, run: str) -> Iterator[tuple[ReviewServer, Past]]:
    history = RunHistory(cache)
    record = history.find(run)
    task = task_of(record)
    session = Session(output, task, cache, record)
    past = past_of(history, record, output, session.table.rows, task)
    session.table.mark_changed(changed_rows(past, history, output, session.table.rows, task))
    server = ReviewServer(session, past=past)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, past
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        session.close()


def ids_shown(page: str) -> list[str]:
    return [line.split("<small>")[1].split("</small>")[0] for line in page.split('class="num">')[1:]]


def test_a_run_is_reviewed_with_its_task_its_rows_stories_and_what_changed(tmp_path: Path) -> None:
    first, second, cache = two_runs(tmp_path)
    record = RunHistory(cache).find("last")
    assert output_of(record) == second.resolve() and task_of(record).fields == Task.from_file(TASK).fields
    with serving(second, cache, "last") as (server, past):
        assert past.previous is not None and past.previous.run == RunHistory(cache).find("last~1").run
        status, page = request(server, "GET", f"/?token={server.token}&changed=1")
        assert status == 200 and "changed since the previous run" in page
        assert sorted(ids_shown(page)) == ["t3", "t5"] and "30 rows" in page
        story = past.story(3) or ""
        lines = story.splitlines()
        assert len(lines) == 2 and all("fn/m  live packed  rung 10  ok → " in line for line in lines), story
        assert '"challenge": "practice"' in lines[0] and '"challenge": "expert"' in lines[1]
        assert len((past.story(4) or "").splitlines()) == 1  # row 4 came from the cache: the first run's call
        assert past.model(3) == past.model(4) == "fn/m"
        assert 'by <span class="value">fn/m</span>' in page and "<summary>story</summary>" in page
        everything = request(server, "GET", f"/?token={server.token}")[1]
        assert len(ids_shown(everything)) == 30
    with serving(first, cache, "last~1") as (server, past):
        assert past.previous is None and len((past.story(3) or "").splitlines()) == 1
        page = request(server, "GET", f"/?token={server.token}")[1]
        assert "changed since the previous run" not in page  # no previous run of the task: no such filter


def test_the_command_takes_a_run_and_its_task(tmp_path: Path) -> None:
    _, second, cache = two_runs(tmp_path)
    export = tmp_path / "labels.jsonl"
    shown = CliRunner().invoke(main, ["review", "last", "--cache-dir", str(cache), "--export", str(export)])
    assert shown.exit_code == 0, shown.output
    assert not CliRunner().invoke(main, ["review", str(second), "--cache-dir", str(cache), "--apply"]).exit_code
    other = tmp_path / "other.jsonl"
    other.write_text(second.read_text())  # a file no recorded run wrote: its task must be given
    refused = CliRunner().invoke(main, ["review", str(other), "--cache-dir", str(cache), "--apply"])
    assert refused.exit_code == 2 and "give its task with --task" in refused.output
    for ref, said in (("last~5", "holds 2 runs"), ("nosuchrun", "no such run"), ("gone.csv", "no such file")):
        result = CliRunner().invoke(main, ["review", ref, "--cache-dir", str(cache), "--no-open"])
        assert result.exit_code == 2 and said in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("kept", [True, False])
def test_changed_rows_come_from_the_kept_answers_or_the_output_file(kept: bool, tmp_path: Path) -> None:
    first, second, cache = two_runs(tmp_path)
    if not kept:
        for path in (cache / "history" / "answers").iterdir():
            path.unlink()  # the previous run is read from its output file, as diff does
    history = RunHistory(cache)
    record = history.find("last")
    task = task_of(record)
    session = Session(second, task, cache)
    try:
        past = past_of(history, record, second, session.table.rows, task)
        assert changed_rows(past, history, second, session.table.rows, task) == [3, 5]
    finally:
        session.close()
    first.write_text("")  # the previous run's file changed and its answers not kept: nothing to compare
    assert changed_rows(past, history, second, session.table.rows, task) == ([3, 5] if kept else [])


def models_shown(page: str) -> dict[str, str | None]:
    """Each row's id and the model the page says wrote its answer (None: none said)."""
    out = {}
    for row in page.split('class="num">')[1:]:
        by = re.search(r'class="model">by <span class="value">([^<]*)</span>', row.split("</tr>")[0])
        out[row.split("<small>")[1].split("</small>")[0]] = by.group(1) if by else None
    return out


@pytest.mark.parametrize("cached", [True, False])
def test_without_a_call_log_the_model_is_the_cache_entrys_or_none_not_a_wrong_one(
    stub: GeminiStub, tmp_path: Path, cached: bool
) -> None:
    source, output, cache = write_jsonl(tmp_path / "rows.jsonl", topic_rows(10)), tmp_path / "out.csv", tmp_path / "c"
    doubted = set_field(lambda record: record["topic"] == "Topic number 4", "challenge", "beginner")  # invalid
    stub.rule(doubted, when=lambda asked: asked.model == PRIMARY)  # so the fallback model answers row 4
    args = ["run", str(source), "-t", str(TASK), "-o", str(output), "--cache-dir", str(cache), "--no-log"]
    result = invoke(stub, *args, "--model", PRIMARY, "--fallback-model", FALLBACK)
    assert result.exit_code == 0, result.output
    assert [row["_flags"] for row in read_rows(output)] == [""] * 4 + ["fallback"] + [""] * 5
    if not cached:
        shutil.rmtree(cache / "rows")  # no entry to read the model from: the row's flags say whose it is not
    with serving(output, cache, "last") as (server, past):
        assert past.calls == {}  # nothing logged
        shown = models_shown(request(server, "GET", f"/?token={server.token}")[1])
    assert shown == {f"t{n}": PRIMARY for n in range(10)} | {"t4": FALLBACK if cached else None}
