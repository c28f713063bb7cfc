"""The CLI on bad options and bad disks, with real subprocesses and signals: one line, exit 2, no output,
no temp file left behind; SIGTERM is Ctrl-C; `cache inspect` / `cache forget` against the Gemini stub."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from disks import file_size_limit, read_only
from enrichkit.cli.runner import STOPPED
from enrichkit.testing import GeminiStub
from helpers import TASK, env, rows_jsonl, run_cli, temps

pytestmark = pytest.mark.subprocess


@pytest.mark.parametrize(
    ("option", "named"),
    [
        (["--pack-size", "0"], "--pack-size"),
        (["--limit", "0"], "--limit"),
        (["--provider", "nope"], "--provider"),
        (["-o", "{tmp}/folder"], "--output"),
        (["--cache-dir", "{tmp}/afile"], "--cache-dir"),
    ],
)
def test_a_bad_option_is_one_line_exit_2_and_no_output(option: list[str], named: str, tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "out.jsonl"
    args = ["run", str(rows_jsonl(tmp_path, 3)), "-t", TASK, "-o", str(out), *option]
    done = run_cli(*[a.format(tmp=tmp_path) for a in args])
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("error: ") and named in line, line
    assert not out.exists() and not temps(tmp_path)


def test_an_output_directory_that_is_read_only_is_one_line_at_start(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir()
    with read_only(tmp_path / "ro"):
        done = run_cli("run", str(rows_jsonl(tmp_path, 3)), "-t", TASK, "-o", str(tmp_path / "ro" / "out.jsonl"))
    assert done.returncode == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("error: ") and "cannot write in" in line
    assert "read-only file system" in line or "permission denied" in line


def test_a_full_cache_mid_run_stops_the_run_and_still_writes_the_output(tmp_path: Path) -> None:
    out, cache = tmp_path / "out.jsonl", tmp_path / "cache"
    with GeminiStub() as stub:
        done = run_cli(
            "run", str(rows_jsonl(tmp_path, 3_000)), "-t", TASK, "-o", str(out), "--cache-dir", str(cache), "-q",
            stub=stub, limit=file_size_limit(1_000_000),
        )  # fmt: skip
    assert done.returncode == STOPPED, done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"stopped: cache at {cache}: cannot write (") and "Traceback" not in done.stderr
    written = out.read_text(encoding="utf-8").splitlines()
    assert len(written) == 3_000 and not temps(tmp_path)  # every row, the unanswered ones with empty columns


def test_a_full_output_disk_is_one_line_naming_the_output(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with GeminiStub() as stub:
        done = run_cli(
            "run", str(rows_jsonl(tmp_path, 400)), "-t", TASK, "-o", str(out), "--no-cache", "-q",
            stub=stub, limit=file_size_limit(60_000),
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"error: {out}: cannot write (file too large)"]
    assert not out.exists() and not temps(tmp_path)


CHUNKED = """
import os
import sys
from pathlib import Path
from enrichkit.cli.common import sigterm_as_interrupt
from enrichkit.rows.files import iter_rows
from enrichkit.options import RunOptions
from enrichkit.cli.flags import CliOptions
from enrichkit.cli.runner import run_job

rows, task, out, cache = sys.argv[1:]
options = RunOptions(
    provider="gemini", base_url=os.environ["ENRICHKIT_BASE_URL"], cache_dir=Path(cache), chunk_rows=20, concurrency=1
)
with sigterm_as_interrupt():
    sys.exit(run_job(iter_rows(rows), Path(task), Path(out), options, CliOptions(quiet=True)))
"""


def chunked_run(stub: GeminiStub, tmp_path: Path) -> subprocess.Popen[str]:
    """A run of 200 rows in chunks of 20 (the CLI's chunks are 20,000 rows): its output temp file
    exists from the first chunk on. Waits until it does: a temp file its writer holds locked (the check
    that the output's folder is writable makes and removes an unlocked one at the start)."""
    args = [str(rows_jsonl(tmp_path, 200)), TASK, str(tmp_path / "out.jsonl"), str(tmp_path / "cache")]
    process = subprocess.Popen(
        [sys.executable, "-c", CHUNKED, *args], env=env(stub), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not any(map(locked, temps(tmp_path))):
        assert time.monotonic() < deadline and process.poll() is None, "no temp output appeared"
        time.sleep(0.02)
    return process


def locked(path: Path) -> bool:
    """Whether a process holds ``path`` locked (``output.atomic``'s writer does, while it writes), read
    from /proc/locks, so that looking never takes a lock the writer may be about to ask for."""
    try:
        inode = path.stat().st_ino
    except FileNotFoundError:
        return False
    held = Path("/proc/locks").read_text(encoding="utf-8").split()  # ... WRITE <pid> <major>:<minor>:<inode> ...
    return any(word.count(":") == 2 and word.rsplit(":", 1)[1] == str(inode) for word in held)


def test_sigterm_mid_run_writes_every_chunk_like_ctrl_c_and_leaves_no_temp_output(tmp_path: Path) -> None:
    with GeminiStub(latency=0.2) as stub:
        process = chunked_run(stub, tmp_path)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    written = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(written) == 200 and any(r["tldr"] for r in written) and not all(r["tldr"] for r in written)
    assert not temps(tmp_path)


def test_a_temp_output_left_by_kill_9_is_swept_by_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with GeminiStub(latency=0.2) as stub:
        process = chunked_run(stub, tmp_path)
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        [left] = temps(tmp_path)
        assert left.name.startswith(".out.jsonl.enrichkit-")
        other = tmp_path / ".other.jsonl.enrichkit-x.part"  # another output's: not ours to delete
        other.write_text("")
        done = run_cli("run", str(tmp_path / "rows.jsonl"), "-t", TASK, "-o", str(out), "--cache-dir",
                         str(tmp_path / "cache"), "-q", stub=stub)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert temps(tmp_path) == [other]
    assert len(out.read_text(encoding="utf-8").splitlines()) == 200
    assert out.stat().st_mode & 0o777 == 0o666 & ~current_umask()


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_sigterm_of_the_cli_prints_the_receipt_and_exits_130(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with GeminiStub(latency=0.4) as stub:
        args = ["run", str(rows_jsonl(tmp_path, 200)), "-t", TASK, "-o", str(out), "--cache-dir", str(tmp_path / "c")]
        process = subprocess.Popen(
            [sys.executable, "-m", "enrichkit", *args, "--concurrency", "2", "-q"], env=env(stub),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while len(stub.generate_calls) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "interrupted: 200 rows" in stderr and "Traceback" not in stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == 200 and not temps(tmp_path)


def test_cache_inspect_finds_an_answer_by_what_it_says_and_forget_drops_it(tmp_path: Path) -> None:
    out, cache = tmp_path / "out.jsonl", str(tmp_path / "cache")
    run = ["run", str(rows_jsonl(tmp_path, 5)), "-t", TASK, "-o", str(out), "--cache-dir", cache, "-q"]
    with GeminiStub() as stub:
        assert run_cli(*run, stub=stub).returncode == 0
        listed = run_cli("cache", "inspect", "--cache-dir", cache)
        assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 5
        bad = json.loads(out.read_text(encoding="utf-8").splitlines()[2])["tldr"]
        one = run_cli("cache", "inspect", "--contains", bad, "--json", "--cache-dir", cache)
        [entry] = [json.loads(line) for line in one.stdout.splitlines()]
        assert entry["values"]["tldr"] == bad and entry["model"] == "gemini-3.1-flash-lite"
        key = entry["key"]
        assert run_cli("cache", "inspect", key[:12], "--cache-dir", cache).stdout.startswith(key[:16])

        ambiguous = run_cli("cache", "forget", "", "--cache-dir", cache)
        assert ambiguous.returncode == 2 and "several" in ambiguous.stderr
        forgot = run_cli("cache", "forget", key[:12], "--cache-dir", cache)
        assert forgot.returncode == 0 and "forgot 1 cached rows" in forgot.stdout
        again = run_cli("cache", "forget", key[:12], "--cache-dir", cache)
        assert again.returncode == 2 and again.stderr.startswith("error: no cached row has a key starting")
        calls = len(stub.generate_calls)
        assert run_cli(*run, stub=stub).returncode == 0
    assert len(stub.generate_calls) == calls + 1  # only the forgotten row is asked again
    assert len(out.read_text(encoding="utf-8").splitlines()) == 5


def test_cache_repair_through_the_cli(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with GeminiStub() as stub:
        assert run_cli("run", str(rows_jsonl(tmp_path, 30)), "-t", TASK, "-o", str(tmp_path / "o.jsonl"),
                         "--cache-dir", str(cache), "-q", stub=stub).returncode == 0  # fmt: skip
    with (cache / "rows" / "cache.db").open("r+b") as file:
        file.write(b"\0" * 16)
    stats = run_cli("cache", "stats", "--cache-dir", str(cache))
    assert stats.returncode == 2 and stats.stderr.splitlines() == [
        f"error: cache at {cache} is damaged (file is not a database): move it aside or run"
        f" `enrichkit cache salvage --cache-dir {cache}`"
    ]
    repaired = run_cli("cache", "salvage", "--cache-dir", str(cache))
    assert repaired.returncode == 0 and "saved 30 cached rows, lost 0" in repaired.stdout
    assert "30 cached rows" in run_cli("cache", "stats", "--cache-dir", str(cache)).stdout
