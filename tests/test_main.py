"""The program's exit (``enrichkit.__main__``): the interpreter's teardown is skipped only when nothing is left
for it to do, and a run that exits so leaves its output, cache, call log and run history whole.

Each child process holds an object whose finalizer prints ``torn down``: the teardown ran if it is printed.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from enrichkit.testing import GeminiStub
from helpers import TASK, env, rows_jsonl, run_cli

TORN = """
import sys
class Torn:
    def __del__(self):
        sys.stderr.write("torn down\\n")
torn = Torn()
"""

LEAVE = TORN + "from enrichkit.__main__ import leave, open_descriptors\ninherited = open_descriptors()\n"


def child(code: str, *args: str, stub: GeminiStub | None = None) -> subprocess.CompletedProcess[str]:
    buffered = {k: v for k, v in env(stub).items() if k != "PYTHONUNBUFFERED"}  # what a flush is needed for
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=buffered, capture_output=True, text=True, timeout=120
    )


@pytest.mark.subprocess
def test_a_run_exits_without_the_teardown_and_leaves_every_file_whole(stub: GeminiStub, tmp_path: Path) -> None:
    rows, out, cache, report = rows_jsonl(tmp_path, 45), tmp_path / "out.csv", tmp_path / "cache", tmp_path / "r.json"
    program = TORN + "import runpy\nsys.argv[0] = 'enrichkit'\nrunpy.run_module('enrichkit', run_name='__main__')"
    args = ["run", str(rows), "-t", TASK, "-o", str(out), "--cache-dir", str(cache), "--report", str(report)]
    done = child(program, *args, stub=stub)
    assert done.returncode == 0, done.stderr
    assert "torn down" not in done.stderr and "output: " in done.stderr  # the receipt, flushed before the exit
    calls = len(stub.generate_calls)
    assert calls == 3 and json.loads(report.read_text())["enriched"] == 45
    assert len(out.read_text().splitlines()) == 46
    assert not [p.name for p in cache.rglob("*") if p.name.endswith(("-wal", "-journal"))]  # each database closed
    for db in cache.rglob("*.db"):
        with sqlite3.connect(db) as sql:
            assert sql.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    (answers,) = (cache / "history" / "answers").iterdir()
    assert len(json.loads(gzip.decompress(answers.read_bytes()))["ids"]) == 45  # the gzip stream ends whole
    (log,) = (cache / "history" / "calls").iterdir()
    assert len([line for line in map(json.loads, log.read_text().splitlines()) if "run" in line]) == calls
    (run,) = [json.loads(line) for line in run_cli("runs", "--json", "--cache-dir", str(cache)).stdout.splitlines()]
    assert run["output"] == str(out.resolve()) and run["counts"]["calls"] == calls
    again = child(program, *args, stub=stub)
    assert again.returncode == 0, again.stderr
    assert len(stub.generate_calls) == calls and json.loads(report.read_text())["cache_hits"] == 45


@pytest.mark.subprocess
def test_the_quick_exit_runs_the_atexit_handlers_flushes_stdout_and_keeps_the_code(tmp_path: Path) -> None:
    marker = tmp_path / "atexit"
    code = LEAVE + f"import atexit, pathlib\natexit.register(pathlib.Path({str(marker)!r}).write_text, 'ran')\n"
    done = child(code + "print('no newline', end='')\nleave(3, inherited)\nprint('returned')")
    assert (done.returncode, done.stdout, done.stderr) == (3, "no newline", "")
    assert marker.read_text() == "ran"


@pytest.mark.subprocess
def test_a_file_left_open_gets_the_usual_exit(tmp_path: Path) -> None:
    kept = tmp_path / "kept.txt"
    done = child(LEAVE + f"left = open({str(kept)!r}, 'w')\nleft.write('buffered')\nleave(3, inherited)\nprint('on')")
    assert (done.returncode, done.stdout, done.stderr) == (0, "on\n", "torn down\n")
    assert kept.read_text() == "buffered"  # the teardown flushed and closed it


@pytest.mark.subprocess
def test_a_thread_still_running_gets_the_usual_exit(tmp_path: Path) -> None:
    late = tmp_path / "late.txt"
    write = f"lambda: (time.sleep(0.3), pathlib.Path({str(late)!r}).write_text('done'))"
    thread = f"import threading, time, pathlib\nthreading.Thread(target={write}).start()\n"
    done = child(LEAVE + thread + "leave(3, inherited)")
    assert (done.returncode, done.stderr) == (0, "torn down\n")
    assert late.read_text() == "done"


@pytest.mark.subprocess
def test_a_profiled_command_gets_the_usual_exit(tmp_path: Path) -> None:
    profile = tmp_path / "profile"
    done = subprocess.run(
        [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "enrichkit", "--help"],
        env=env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert profile.stat().st_size > 0  # cProfile writes it after the program, which the quick exit would skip
