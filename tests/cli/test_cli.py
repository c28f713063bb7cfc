"""The real ``enrichkit`` CLI (click's runner, and a subprocess) against the Gemini stub server."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from enrichkit.cli import main
from enrichkit.testing import GeminiStub, set_field
from helpers import TASK, invoke, read_jsonl, topic_rows, write_jsonl


@pytest.fixture
def rows_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "rows.jsonl", topic_rows(45))


def test_run_writes_every_row_in_order_and_rerun_costs_nothing(
    stub: GeminiStub, rows_file: Path, tmp_path: Path
) -> None:
    out, cache = tmp_path / "out.jsonl", str(tmp_path / "cache")
    first = invoke(stub, "run", str(rows_file), "-t", TASK, "-o", str(out), "--cache-dir", cache)
    assert first.exit_code == 0, first.output
    rows = read_jsonl(out)
    assert [r["id"] for r in rows] == [r["id"] for r in topic_rows(45)]
    assert all(r["challenge"] in ("practice", "expert") and r["tldr"] for r in rows)
    assert rows[0]["description"] == topic_rows(1)[0]["description"]
    assert len(stub.generate_calls) == 3
    assert "45 rows: 0 cache hits, 45 newly enriched, 0 failed" in first.stderr
    assert "calls: 3 (3 packed, 0 single, 0 fallback" in first.stderr

    again = invoke(stub, "run", str(rows_file), "-t", TASK, "-o", str(out), "--cache-dir", cache)
    assert again.exit_code == 0
    assert len(stub.generate_calls) == 3
    assert "45 cache hits, 0 newly enriched" in again.stderr
    assert "calls: 0" in again.stderr and "nothing was sent" in again.stderr
    assert read_jsonl(out) == rows


def test_csv_keeps_original_columns_and_adds_new_ones(stub: GeminiStub, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    with source.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["id", "extra", "category", "topic", "description"])
        writer.writeheader()
        writer.writerows({**r, "extra": f"x,{n}"} for n, r in enumerate(topic_rows(5)))
    out = tmp_path / "out.csv"
    result = invoke(stub, "run", str(source), "-t", TASK, "-o", str(out), "--cache-dir", str(tmp_path / "c"))
    assert result.exit_code == 0, result.output
    with out.open(newline="", encoding="utf-8") as f:
        got = list(csv.DictReader(f))
    assert list(got[0]) == [
        "id",
        "extra",
        "category",
        "topic",
        "description",
        "tldr",
        "challenge",
        "_confidence",
        "_flags",
    ]
    assert [g["extra"] for g in got] == [f"x,{n}" for n in range(5)]


def test_stdin_json_output_and_report(stub: GeminiStub, tmp_path: Path) -> None:
    out, report = tmp_path / "out.json", tmp_path / "report.json"
    stdin = "".join(json.dumps(r) + "\n" for r in topic_rows(4))
    result = invoke(
        stub, "run", "-", "-t", TASK, "-o", str(out), "--report", str(report), "--no-cache", stdin=stdin, key=True
    )
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in json.loads(out.read_text())] == ["t0", "t1", "t2", "t3"]
    doc = json.loads(report.read_text())
    assert doc["rows"] == 4 and doc["enriched"] == 4 and doc["calls"] == 1 and doc["success_rate"] == 1.0
    assert doc["provider"] == "gemini" and doc["cost"]["gemini-3.1-flash-lite"]["live_usd"] > 0
    assert "test-key" not in report.read_text()


def test_failed_rows_exit_1_with_output_and_failures_file(stub: GeminiStub, rows_file: Path, tmp_path: Path) -> None:
    stub.rule(set_field(lambda record: record.get("topic") == "Topic number 7", "challenge", "hard"))
    out, failures = tmp_path / "out.csv", tmp_path / "failures.jsonl"
    result = invoke(
        stub, "run", str(rows_file), "-t", TASK, "-o", str(out), "--failures", str(failures),
        "--cache-dir", str(tmp_path / "c"),
    )  # fmt: skip
    assert result.exit_code == 1
    with out.open(newline="", encoding="utf-8") as f:
        got = {r["id"]: r for r in csv.DictReader(f)}
    assert len(got) == 45 and got["t7"]["tldr"] == "" and got["t8"]["tldr"]
    [failure] = read_jsonl(failures)
    assert failure["id"] == "t7" and failure["input"]["topic"] == "Topic number 7"
    assert "'hard'" in failure["error"] and failure["attempts"] >= 2
    assert "1 failed" in result.stderr


def test_dry_run_counts_cache_hits_and_packs_and_sends_nothing(
    stub: GeminiStub, rows_file: Path, tmp_path: Path
) -> None:
    cache = str(tmp_path / "cache")
    partial = invoke(stub, "run", str(rows_file), "-t", TASK, "-o", str(tmp_path / "a.jsonl"), "--cache-dir", cache,
                     "--limit", "10")  # fmt: skip
    assert partial.exit_code == 0
    sent = len(stub.generate_calls)
    report = tmp_path / "plan.json"
    out = tmp_path / "never.jsonl"
    dry = invoke(stub, "run", str(rows_file), "-t", TASK, "-o", str(out), "--cache-dir", cache, "--dry-run",
                 "--report", str(report))  # fmt: skip
    assert dry.exit_code == 0, dry.output
    assert len(stub.generate_calls) == sent
    assert any(c.action == "count" for c in stub.calls)
    plan = json.loads(report.read_text())
    assert plan["cache_hits"] == 10 and plan["rows_to_send"] == 35 and plan["calls"] == 2
    assert plan["pack_sizes"] == [20, 15] and plan["prompt_tokens"] > 0
    assert plan["cost"]["batch_usd"] < plan["cost"]["live_usd"]
    assert "35 to send" in dry.stderr and "2 packed calls" in dry.stderr
    assert not out.exists()


def test_scrape_json_records_and_enrich(stub: GeminiStub, tmp_path: Path) -> None:
    doc = tmp_path / "doc.json"
    doc.write_text(json.dumps({"data": {"items": topic_rows(3)}}), encoding="utf-8")
    plain = tmp_path / "plain.jsonl"
    assert invoke(None, "scrape", "json", str(doc), "--records", "/data/items", "-o", str(plain)).exit_code == 0
    assert read_jsonl(plain) == topic_rows(3)
    out = tmp_path / "out.jsonl"
    result = invoke(stub, "scrape", "json", str(doc), "--records", "data.items", "--enrich", TASK, "-o", str(out),
                    "--no-cache")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert all("tldr" in r for r in read_jsonl(out))


def test_cache_stats_prune_clear(stub: GeminiStub, rows_file: Path, tmp_path: Path) -> None:
    cache = str(tmp_path / "cache")
    invoke(stub, "run", str(rows_file), "-t", TASK, "-o", str(tmp_path / "o.jsonl"), "--cache-dir", cache)
    assert "45 cached rows" in invoke(None, "cache", "stats", "--cache-dir", cache).output
    assert "deleted 0 cached rows, 45 left" in invoke(None, "cache", "prune", "--older-than", "30d",
                                                       "--cache-dir", cache).output  # fmt: skip
    assert "deleted 45 cached rows" in invoke(None, "cache", "clear", "--cache-dir", cache).output
    assert "0 cached rows" in invoke(None, "cache", "stats", "--cache-dir", cache).output
    bad = invoke(None, "cache", "prune", "--older-than", "soon", "--cache-dir", cache)
    assert bad.exit_code == 2 and "30d" in bad.stderr


# -- bad input: one line, exit 2, nothing written ----------------------------------------------------


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    good = write_jsonl(tmp / "good.jsonl", topic_rows(3))
    files = {
        "empty.jsonl": b"",
        "malformed.jsonl": b'{"id": "a"}\n{"id": \n',
        "malformed.json": b'[{"id": "a"},\n {"id" "b"}]',
        "ragged.csv": b"id,category,topic,description\n1,a,b,c\n2,a,b\n",
        "latin1.jsonl": '{"id": "a", "topic": "caf\u00e9"}\n'.encode("latin-1"),
        "nofield.jsonl": b'{"id": "a", "category": "c", "topic": "t", "description": "d"}\n{"id": "b", "topic": "t"}\n',
        "dupe.jsonl": b'{"id": "a", "category": "c", "topic": "t", "description": "d"}\n'
        b'{"id": "a", "category": "c", "topic": "u", "description": "e"}\n',
        "listid.jsonl": b'{"id": ["a"], "category": "c", "topic": "t", "description": "d"}\n',
        "badtask.json": b'{"instruction": "x", "inputs": "topic", "output": {"type": "object", "properties": {}}}',
    }
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    task = ["-t", TASK]
    out = str(tmp / "out.jsonl")

    def run(source: str, *extra: str) -> list[str]:
        return ["run", source, *task, "-o", out, *extra]

    return {
        "missing input": (run(str(tmp / "nope.jsonl")), "nope.jsonl: no such file"),
        "empty input": (run(str(tmp / "empty.jsonl")), "empty.jsonl: no rows"),
        "malformed jsonl": (run(str(tmp / "malformed.jsonl")), "malformed.jsonl:2: malformed JSON"),
        "malformed json": (run(str(tmp / "malformed.json")), "malformed.json:2: malformed JSON"),
        "ragged csv": (run(str(tmp / "ragged.csv")), "ragged.csv:3: 3 fields, but the header has 4"),
        "non-utf8": (run(str(tmp / "latin1.jsonl")), "not UTF-8 text (bad byte at offset 25)"),
        "missing field": (run(str(tmp / "nofield.jsonl")), "row 2 (id 'b'): input field 'category' is missing"),
        "duplicate ids": (run(str(tmp / "dupe.jsonl")), "rows 1 and 2: duplicate id 'a'"),
        "id not a value": (run(str(tmp / "listid.jsonl")), "row 1: id ['a'] in field 'id' is not a string or a number"),
        "task missing": (["run", str(good), "-t", str(tmp / "no-task.json"), "-o", out], "no-task.json"),
        "task invalid": (
            ["run", str(good), "-t", str(tmp / "badtask.json"), "-o", out],
            "badtask.json: $.inputs: 'topic' is not of type 'array'",
        ),
        "unknown output extension": (["run", str(good), *task, "-o", str(tmp / "out.xlsx")], "unknown output format"),
        "output dir missing": (["run", str(good), *task, "-o", str(tmp / "no" / "out.csv")], "does not exist"),
        "pack size 0": (run(str(good), "--pack-size", "0"), "between 1 and 50"),
        "pack size 51": (run(str(good), "--pack-size", "51"), "between 1 and 50"),
        "no api key": (run(str(good), "--provider", "gemini"), "set GEMINI_API_KEY or GOOGLE_API_KEY"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing input", "empty input", "malformed jsonl", "malformed json", "ragged csv", "non-utf8",
        "missing field", "duplicate ids", "id not a value", "task missing", "task invalid", "unknown output extension",
        "output dir missing", "pack size 0", "pack size 51", "no api key",
    ],
)  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case: str, stub: GeminiStub, tmp_path: Path) -> None:
    args, expected = _bad_inputs(tmp_path)[case]
    result = invoke(stub, *args, key=case != "no api key")
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "rror" in line]
    assert len(errors) == 1
    assert not (tmp_path / "out.jsonl").exists() and not list(tmp_path.glob(".*.part"))
    assert stub.generate_calls == []


@pytest.mark.slow
def test_unreachable_base_url_fails_after_bounded_retries(tmp_path: Path, rows_file: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        main,
        ["run", str(rows_file), "-t", TASK, "-o", str(out), "--base-url", "http://127.0.0.1:9", "--no-cache"],
        env={"GEMINI_API_KEY": "test-key"},
    )
    assert result.exit_code == 2
    assert "cannot connect" in result.stderr and "after 3 tries" in result.stderr
    assert "test-key" not in result.stderr
    assert not out.exists()


def test_bad_key_aborts_before_any_paid_call_and_keeps_the_old_output(
    stub: GeminiStub, rows_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("previous\n", encoding="utf-8")
    stub.refuse(401, "API key not valid")
    result = invoke(stub, "run", str(rows_file), "-t", TASK, "-o", str(out), "--no-cache")
    assert result.exit_code == 2
    assert len(stub.generate_calls) == 0
    assert "refused the API key" in result.stderr and "test-key" not in result.stderr
    assert out.read_text() == "previous\n"


def test_verbose_shows_the_traceback(tmp_path: Path) -> None:
    result = invoke(None, "run", str(tmp_path / "nope.jsonl"), "-t", TASK, "-o", str(tmp_path / "o.jsonl"), "-v")
    assert result.exit_code == 2 and "Traceback" in result.stderr and "no such file" in result.stderr


@pytest.mark.subprocess
def test_console_script_runs_as_a_subprocess(stub: GeminiStub, rows_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "GEMINI_API_KEY": "test-key", "ENRICHKIT_BASE_URL": stub.url}
    done = subprocess.run(
        [sys.executable, "-m", "enrichkit", "run", str(rows_file), "-t", TASK, "-o", str(out), "--no-cache", "-q"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert len(read_jsonl(out)) == 45


def test_preview_shows_the_first_rows_with_their_new_columns(stub: GeminiStub, rows_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    result = invoke(stub, "run", str(rows_file), "-t", TASK, "-o", str(out), "--no-cache", "--preview", "2")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    at = lines.index("first 2 rows:")
    assert lines[at + 1].split() == ["id", "tldr", "challenge"]
    first = read_jsonl(out)[0]
    assert (
        lines[at + 2].startswith("t0 ")
        and first["tldr"] in lines[at + 2]
        and lines[at + 2].endswith(first["challenge"])
    )
    assert len(lines) == at + 4  # the header and two rows, last
