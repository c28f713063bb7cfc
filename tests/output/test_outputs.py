"""One-line tasks on the command line, and the SQLite and streamed Parquet outputs (real CLI runs)."""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from disks import file_size_limit
from enrichkit.cli.flags import CliOptions
from enrichkit.cli.runner import run_job
from enrichkit.errors import UserError
from enrichkit.options import RunOptions
from enrichkit.output.files import row_writer
from enrichkit.rows.files import iter_rows
from enrichkit.testing import GeminiStub, set_field
from helpers import ROOT, TASK, invoke, rows_jsonl, run_cli, temps, topic_rows, write_jsonl

REVIEWS = ["Great value for the money", "Broke after a day", "It does the job", "Would buy it again"]
ONE_LINE = ["--instruction", "Classify each review", "--input", "text", "--column",
            "sentiment: positive|negative|neutral", "--column", "summary: text, at most 10 words"]  # fmt: skip


@pytest.fixture
def reviews_csv(tmp_path: Path) -> Path:
    path = tmp_path / "reviews.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "stars"])
        writer.writerows([text, n] for n, text in enumerate(REVIEWS, 1))
    return path


def test_a_one_line_task_enriches_a_csv(stub: GeminiStub, reviews_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    result = invoke(stub, "run", str(reviews_csv), "-o", str(out), *ONE_LINE, "--cache-dir", str(tmp_path / "c"))
    assert result.exit_code == 0, result.output
    with out.open(newline="", encoding="utf-8") as f:
        got = list(csv.DictReader(f))
    assert list(got[0]) == ["text", "stars", "sentiment", "summary", "_confidence", "_flags"]
    assert [g["text"] for g in got] == REVIEWS
    assert all(g["sentiment"] in ("positive", "negative", "neutral") and g["summary"] for g in got)
    assert "4 rows: 0 cache hits, 4 newly enriched, 0 failed" in result.stderr
    prompt = stub.generate_calls[0].prompt
    assert "Classify each review" in stub.generate_calls[0].system + prompt


def test_the_task_file_task_new_writes_gives_the_same_cached_answers(
    stub: GeminiStub, reviews_csv: Path, tmp_path: Path
) -> None:
    task, cache = tmp_path / "reviews.json", str(tmp_path / "c")
    assert invoke(None, "task", "new", "-o", str(task), *ONE_LINE).exit_code == 0
    one_line = invoke(stub, "run", str(reviews_csv), "-o", str(tmp_path / "a.jsonl"), *ONE_LINE, "--cache-dir", cache)
    from_file = invoke(
        stub, "run", str(reviews_csv), "-o", str(tmp_path / "b.jsonl"), "-t", str(task), "--cache-dir", cache
    )
    assert one_line.exit_code == from_file.exit_code == 0
    assert "4 cache hits, 0 newly enriched" in from_file.stderr
    assert (tmp_path / "a.jsonl").read_text(encoding="utf-8") == (tmp_path / "b.jsonl").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-t", TASK, *ONE_LINE], "error: give either -t/--task or --instruction/--input/--column, not both"),
        ([], "error: no task: give -t/--task FILE, or --instruction, --input and --column"),
        (ONE_LINE[:4], "error: a task without a file needs --instruction, --input and --column (missing --column)"),
        ([*ONE_LINE[:4], "--column", "stars: integr 1-5"],
         "error: column 'stars: integr 1-5': cannot read 'integr 1-5'"),
    ],
)  # fmt: skip
def test_task_options_errors_are_one_line(reviews_csv: Path, tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "out.csv"
    result = invoke(None, "run", str(reviews_csv), "-o", str(out), *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(message) and result.stderr.count("\n") == 1
    assert not out.exists()


def test_scrape_takes_task_as_well_as_enrich(stub: GeminiStub, tmp_path: Path) -> None:
    source = tmp_path / "topics.csv"
    with source.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, ["id", "category", "topic", "description"])
        writer.writeheader()
        writer.writerows(topic_rows(3))
    out = tmp_path / "out.jsonl"
    result = invoke(stub, "scrape", "csv", str(source), "--task", TASK, "-o", str(out), "--no-cache")
    assert result.exit_code == 0, result.output
    assert all("tldr" in json.loads(line) for line in out.read_text(encoding="utf-8").splitlines())


def test_sqlite_output_one_table_named_after_the_file(stub: GeminiStub, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", [{**r, "tags": ["a", "b"]} for r in topic_rows(6)])
    stub.rule(set_field(lambda rec: rec["topic"] == "Topic number 2", "challenge", "hard"))
    out = tmp_path / "topics.sqlite"
    result = invoke(stub, "run", str(source), "-t", TASK, "-o", str(out), "--no-cache")
    assert result.exit_code == 1, result.output  # one row failed: still written, with nulls
    db = sqlite3.connect(out)
    try:
        columns = [(c[1], c[2]) for c in db.execute("PRAGMA table_info(topics)")]
        assert columns == [("id", "TEXT"), ("category", "TEXT"), ("topic", "TEXT"), ("description", "TEXT"),
                           ("tags", "TEXT"), ("tldr", "TEXT"), ("challenge", "TEXT"), ("_confidence", "REAL"),
                           ("_flags", "TEXT")]  # fmt: skip
        got = db.execute("SELECT id, tags, challenge FROM topics ORDER BY rowid").fetchall()
    finally:
        db.close()
    assert [g[0] for g in got] == [f"t{i}" for i in range(6)]
    assert json.loads(got[0][1]) == ["a", "b"] and got[2][2] is None and got[1][2] in ("practice", "expert")


def test_parquet_is_streamed_a_row_group_per_chunk(stub: GeminiStub, tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "rows.jsonl", topic_rows(130))
    out = tmp_path / "out.parquet"
    options = RunOptions(provider="gemini", base_url=stub.url, cache_dir=tmp_path / "cache", chunk_rows=50)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GEMINI_API_KEY", "test-key")
        code = run_job(iter_rows(source), ROOT / "schemas" / "roadmap-topic.json", out, options, CliOptions(quiet=True))
    assert code == 0
    parquet = pq.ParquetFile(out)
    assert parquet.num_row_groups == 3 and parquet.metadata.num_rows == 130
    table = parquet.read()
    assert table.column_names == [
        "id",
        "category",
        "topic",
        "description",
        "tldr",
        "challenge",
        "_confidence",
        "_flags",
    ]
    assert table.column("id").to_pylist() == [f"t{i}" for i in range(130)]


def test_parquet_types_come_from_the_first_chunk(tmp_path: Path) -> None:
    out = tmp_path / "out.parquet"
    expected = r"out.parquet: cannot write as Parquet: .*\(write .jsonl instead\)"
    with pytest.raises(UserError, match=expected), row_writer(out, ["id", "n"]) as write:
        write([{"id": "a", "n": 1}])
        write([{"id": "b", "n": "many"}])
    assert list(tmp_path.iterdir()) == []  # nothing written, no temp file left
    with row_writer(out, ["id", "n"]) as write:
        write([{"id": "a", "n": None}])  # a column without a value is text
        write([{"id": "b", "n": "x"}])
    assert pq.read_table(out).column("n").to_pylist() == [None, "x"]


@pytest.mark.subprocess
@pytest.mark.parametrize(("suffix", "limit"), [(".sqlite", 20_000), (".parquet", 4_000)])
def test_a_full_output_disk_is_one_line_naming_the_output(tmp_path: Path, suffix: str, limit: int) -> None:
    out = tmp_path / f"out{suffix}"
    with GeminiStub() as stub:
        done = run_cli(
            "run", str(rows_jsonl(tmp_path, 400)), "-t", TASK, "-o", str(out), "--no-cache", "-q",
            stub=stub, limit=file_size_limit(limit),
        )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"error: {out}: cannot write (file too large)"]
    assert not out.exists() and not temps(tmp_path)
