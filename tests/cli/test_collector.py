"""The collector paused for the program's start-up (``enrichkit.cli.collector``): resumed, with what start-up
made frozen, once a run's context is open or the command is not a run; untouched without the pause."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from enrichkit.cli import collector, main
from enrichkit.testing import GeminiStub
from helpers import TASK, invoke, rows_jsonl


@pytest.fixture
def paused() -> Iterator[None]:
    collector.pause()
    try:
        yield
    finally:
        collector.restore()
        gc.enable()


def test_started_freezes_what_start_up_made_and_resumes_the_collector(paused: None) -> None:
    assert not gc.isenabled()
    collector.started()
    assert gc.isenabled() and gc.get_freeze_count() > 0
    collector.restore()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_without_the_pause_nothing_changes() -> None:
    collector.started()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_a_command_that_is_not_a_run_resumes_it_at_once(paused: None, tmp_path: Path) -> None:
    CliRunner().invoke(main, ["runs", "--cache-dir", str(tmp_path)])
    assert gc.isenabled()


def test_a_run_keeps_it_paused_until_its_context_is_open(paused: None, tmp_path: Path) -> None:
    done = CliRunner().invoke(main, ["run", str(tmp_path / "rows.jsonl"), "-t", str(tmp_path / "task.json")])
    assert done.exit_code == 2 and not gc.isenabled()  # refused before its context opened


def test_a_run_resumes_it_once_its_context_is_open(paused: None, stub: GeminiStub, tmp_path: Path) -> None:
    rows, out = rows_jsonl(tmp_path, 3), tmp_path / "out.csv"
    done = invoke(stub, "run", str(rows), "-t", TASK, "-o", str(out), "--cache-dir", str(tmp_path / "cache"), "-q")
    assert done.exit_code == 0 and gc.isenabled() and gc.get_freeze_count() > 0
