"""The review server's guards, over real HTTP: the token on every request, writes by POST of JSON only, no
edit lost between two tabs; ``--apply`` and ``--export`` write what was reviewed; a missing or damaged
output is one line."""

from __future__ import annotations

import http.client
import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from enrichkit.cli import main
from enrichkit.output.files import columns_of, write_rows
from enrichkit.rows.files import read_rows
from helpers import env
from reviewing import TASK, enriched, request, serving

HANG = 120.0
"""Seconds after which a step of a child is taken as hung (a guard, not a measure: each takes well under one)."""


def test_the_token_is_needed_on_every_request(tmp_path: Path) -> None:
    _, output, cache = enriched(tmp_path)
    with serving(output, cache) as server:
        token = server.token
        assert server.server_address[0] == "127.0.0.1"  # loopback only
        status, page = request(server, "GET", f"/?token={token}")
        assert status == 200 and not re.search(r'(src|href|action)="(https?:)?//', page)  # nothing from elsewhere
        assert request(server, "GET", "/")[0] == 403
        assert request(server, "GET", "/?token=guessed")[0] == 403
        assert request(server, "GET", f"/?token={token}", host=f"evil.example:{server.port}")[0] == 403
        edit = {"n": 0, "version": 0, "field": "challenge", "value": "expert"}
        assert request(server, "POST", "/api/correct", edit)[0] == 403
        assert request(server, "POST", "/api/correct", edit, token="guessed")[0] == 403
        assert request(server, "POST", f"/api/correct?token={token}", edit)[0] == 403  # in a header only
        assert not (cache / "reviewed.db").exists() or "expert" not in _stored(cache)
        assert request(server, "POST", "/api/correct", edit, token=token)[0] == 200
        assert request(server, "GET", f"/api/correct?token={token}")[0] == 404  # no write by GET


def _stored(cache: Path) -> str:
    import sqlite3

    db = sqlite3.connect(cache / "reviewed.db")
    try:
        return json.dumps(db.execute("SELECT value FROM reviewed").fetchall())
    finally:
        db.close()


def test_two_tabs_never_lose_an_edit(tmp_path: Path) -> None:
    _, output, cache = enriched(tmp_path)
    with serving(output, cache) as server:
        token = server.token
        first = {"n": 2, "version": 0, "field": "challenge", "value": "expert"}
        second = {"n": 2, "version": 0, "field": "tldr", "value": "From the other tab."}
        assert request(server, "POST", "/api/correct", first, token=token)[0] == 200
        status, body = request(server, "POST", "/api/correct", second, token=token)
        assert status == 409 and json.loads(body)["version"] == 1
        status, body = request(server, "POST", "/api/correct", second | {"version": 1}, token=token)
        assert status == 200
        assert json.loads(body)["values"] == {"tldr": "From the other tab.", "challenge": "expert"}


def test_the_filters_over_every_row(tmp_path: Path) -> None:
    _, output, cache = enriched(tmp_path)
    rows = read_rows(output)
    rows[2]["challenge"] = "expert"
    rows[5]["tldr"] = rows[5]["challenge"] = ""  # no answer
    write_rows(output, rows, columns_of(rows))
    with serving(output, cache) as server:
        token = server.token
        assert request(server, "POST", "/api/accept", {"n": 9, "version": 0}, token=token)[0] == 200

        def matching(query: str) -> int:
            status, page = request(server, "GET", f"/?token={token}&{query}")
            found = re.search(r'<span id="matching">([\d,]+)</span>', page)
            assert status == 200 and found is not None
            return int(found.group(1).replace(",", ""))

        assert matching("") == 30
        assert matching("failed=1") == 1 and matching("flagged=1") == 3  # rows 4, 14, 24 repaired
        assert matching("field=challenge&value=expert") == 1 and matching("field=challenge&value=practice") == 28
        assert matching("q=topic+NUMBER+27") == 1 and matching("q=nowhere") == 0  # every word, any case
        assert matching("unreviewed=1") == 29 and matching("below=0.1") == 2
        assert matching("flagged=1&below=0.5") == 1  # row 14 (0.29); rows 4 and 24 are 0.89 and 0.59


def test_an_invalid_value_gets_the_schemas_message(tmp_path: Path) -> None:
    _, output, cache = enriched(tmp_path)
    with serving(output, cache) as server:
        edit = {"n": 0, "version": 0, "field": "challenge", "value": "beginner"}
        status, body = request(server, "POST", "/api/correct", edit, token=server.token)
        assert (status, json.loads(body)) == (422, {"error": "challenge: 'beginner' not in [practice, expert]"})
        assert request(server, "POST", "/api/correct", edit | {"field": "nope"}, token=server.token)[0] == 422


def test_a_row_is_sent_to_be_asked_again_on_a_known_model_only(tmp_path: Path) -> None:
    _, output, cache = enriched(tmp_path)
    with serving(output, cache) as server:
        token = server.token
        assert "gemini-3.1-flash-lite" in server.session.models and "fn" in server.session.models  # priced, run
        again = {"n": 4, "version": 0, "model": "gpt-9000"}
        status, body = request(server, "POST", "/api/again", again, token=token)
        assert status == 422 and json.loads(body)["error"].startswith("unknown model 'gpt-9000': ask again on a model")
        assert request(server, "POST", "/api/again", again | {"model": 7}, token=token)[0] == 400
        assert not server.session.reviews([4])  # nothing stored
        status, body = request(server, "POST", "/api/again", again | {"model": "gemini-3.1-flash-lite"}, token=token)
        assert (status, json.loads(body)["version"]) == (200, 1)
        [review] = server.session.reviews([4]).values()
        assert (review.again, review.model) == (True, "gemini-3.1-flash-lite")
        page = request(server, "GET", f"/?token={token}")[1]
        assert '<span class="state">asked again on gemini-3.1-flash-lite</span>' in page
        assert '<datalist id="models">' in page and '<option value="fn">' in page
        status, _ = request(server, "POST", "/api/again", {"n": 5, "version": 0, "model": ""}, token=token)
        assert status == 200 and server.session.reviews([5])[5].model is None  # none named: the run's own


def test_apply_and_export_write_the_reviewed_values(tmp_path: Path) -> None:
    _, output, cache = enriched(tmp_path)
    with serving(output, cache) as server:
        for n, value in ((3, "expert"), (7, "expert")):
            edit = {"n": n, "version": 0, "field": "challenge", "value": value}
            assert request(server, "POST", "/api/correct", edit, token=server.token)[0] == 200
        assert request(server, "POST", "/api/accept", {"n": 9, "version": 0}, token=server.token)[0] == 200
    runner = CliRunner()
    examples = tmp_path / "examples.jsonl"
    common = ["--task", str(TASK), "--cache-dir", str(cache)]
    result = runner.invoke(main, ["review", str(output), *common, "--apply", "--export", str(examples)])
    assert result.exit_code == 0, result.output
    rows = read_rows(output)
    assert [r["challenge"] for r in rows[:10]] == ["practice"] * 3 + ["expert"] + ["practice"] * 3 + ["expert"] * 1 + [
        "practice"
    ] * 2
    assert (rows[3]["_reviewed"], rows[9]["_reviewed"], rows[0]["_reviewed"]) == ("challenge", "tldr,challenge", "")
    lines = [json.loads(line) for line in examples.read_text().splitlines()]
    assert len(lines) == 4 and sum(line["corrected"] for line in lines) == 2
    assert lines[0]["inputs"]["topic"] == "Topic number 3" and lines[0]["value"] == "expert"
    assert lines[0]["model_value"] == "practice"


@pytest.mark.parametrize("damage", ["missing", "damaged"])
def test_a_missing_or_damaged_output_is_one_line(damage: str, tmp_path: Path) -> None:
    output = tmp_path / "out.parquet"
    if damage == "damaged":
        output.write_bytes(b"PAR1 not really")
    result = CliRunner().invoke(main, ["review", str(output), "--task", str(TASK), "--no-open"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {output}:"), result.output


@pytest.mark.subprocess
@pytest.mark.parametrize("opens", [True, False])
def test_the_command_prints_its_address_opens_it_serves_and_stops_on_ctrl_c(opens: bool, tmp_path: Path) -> None:
    _, output, cache = enriched(tmp_path)
    browser, opened = tmp_path / "browser", tmp_path / "opened"
    browser.write_text(f'#!/bin/sh\nprintf %s "$1" > {opened}.part && mv {opened}.part {opened}\n')
    browser.chmod(0o755)
    port = 0 if opens else free_port()  # a free one, or the one given
    args = ["review", str(output), "--task", str(TASK), "--cache-dir", str(cache), *([] if opens else ["--no-open"])]
    args += ["--port", str(port)] if port else []
    child = subprocess.Popen(
        [sys.executable, "-m", "enrichkit", *args],
        env=env() | {"BROWSER": str(browser)},  # the browser ``webbrowser`` opens
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    said = _lines(child)
    try:
        line = said.get(timeout=HANG)  # the child's first line, however long a loaded machine takes to start it
        found = re.search(r"at (http://127\.0\.0\.1:(\d+)/\?token=(\S+))$", line.strip())
        assert found is not None and line.startswith(f"enrichkit review: 30 rows of {output}"), line
        assert port in (0, int(found.group(2))), line
        port, token = int(found.group(2)), found.group(3)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG)
        connection.request("GET", f"/?token={token}")
        reply = connection.getresponse()
        assert reply.status == 200 and b'<table id="rows">' in reply.read()
        connection.close()
        if opens:
            _until(opened.exists)
            assert opened.read_text() == found.group(1)  # the page's address, token and all
        child.send_signal(signal.SIGINT)
        assert child.wait(timeout=HANG) == 0, _drained(said)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert opened.exists() == opens


def free_port() -> int:
    """A port no one listens on now (the system's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    _, output, cache = enriched(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["review", str(output), "--task", str(TASK), "--cache-dir", str(cache), "--no-open", "--port", str(port)]
        result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert result.output == f"error: cannot listen on 127.0.0.1:{port} (Address already in use)\n"


def _until(done: Callable[[], bool]) -> None:
    """Wait until ``done()`` (``HANG`` seconds at most: a guard against a hang, not a measure)."""
    for _ in range(int(HANG / 0.05)):
        if done():
            return
        time.sleep(0.05)
    raise AssertionError("still not done")


def _lines(child: subprocess.Popen[str]) -> queue.Queue[str]:
    """The child's stderr, line by line, read in a thread (so the test waits on each with a deadline)."""
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert child.stderr is not None
        for line in child.stderr:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _drained(lines: queue.Queue[str]) -> str:
    """What the child said so far (for a failure's message)."""
    said = []
    while not lines.empty():
        said.append(lines.get_nowait())
    return "".join(said)
