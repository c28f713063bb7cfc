"""CSV inputs in other shapes: the delimiter sniffed from the header line (or --delimiter), an encoding
named with --encoding (never guessed), through the readers and the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from enrichkit.errors import UserError
from enrichkit.rows.files import CsvFormat, iter_rows, read_rows, sniff_delimiter
from enrichkit.testing import GeminiStub
from helpers import invoke, read_jsonl

ONE_LINE = ["--instruction", "Summarise", "--input", "text", "--column", "challenge: practice|expert"]


@pytest.mark.parametrize(
    ("header", "delimiter"),
    [("id,text", ","), ("id;text;n", ";"), ("id\ttext", "\t"), ("id|text", "|"), ("text", ","),
     ('"a,b";c', ";"), ("a;b,c", ",")],
)  # fmt: skip
def test_the_delimiter_is_sniffed_from_the_header_line(header: str, delimiter: str) -> None:
    assert sniff_delimiter(header) == delimiter


def test_a_semicolon_csv_reads_as_its_rows_unless_told_otherwise(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text('id;text\nr1;"one; with a semicolon"\nr2;two, with a comma\n', encoding="utf-8")
    assert read_rows(path) == [{"id": "r1", "text": "one; with a semicolon"}, {"id": "r2", "text": "two, with a comma"}]
    with pytest.raises(UserError, match=r"rows.csv:3: 2 fields, but the header has 1"):
        list(iter_rows(path, csv_format=CsvFormat(delimiter=",")))


def test_a_latin1_csv_reads_once_its_encoding_is_named(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_bytes("id,text\nr1,café crème\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"rows.csv:2: not UTF-8 text .*needs it named \(--encoding cp1252"):
        read_rows(path)
    assert list(iter_rows(path, csv_format=CsvFormat(encoding="latin-1"))) == [{"id": "r1", "text": "café crème"}]
    with pytest.raises(UserError, match=r"unknown encoding 'latin-9000'"):
        CsvFormat(encoding="latin-9000")


def test_run_reads_a_latin1_semicolon_csv_with_encoding(stub: GeminiStub, tmp_path: Path) -> None:
    path, out = tmp_path / "rows.csv", tmp_path / "out.jsonl"
    path.write_bytes("id;text\nr1;café crème\nr2;naïve\n".encode("cp1252"))
    refused = invoke(stub, "run", str(path), *ONE_LINE, "-o", str(out), "--no-cache")
    assert refused.exit_code == 2 and "--encoding cp1252" in refused.stderr and not out.exists()
    done = invoke(stub, "run", str(path), *ONE_LINE, "-o", str(out), "--no-cache", "--encoding", "cp1252")
    assert done.exit_code == 0, done.output
    assert [(r["id"], r["text"]) for r in read_jsonl(out)] == [("r1", "café crème"), ("r2", "naïve")]
    assert "enrichkit: 2 rows" in done.stderr  # counted up front in its encoding


def test_tab_delimiter_on_stdin(stub: GeminiStub, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    args = ["run", "-", "--stdin-format", "csv", *ONE_LINE, "-o", str(out), "--no-cache", "--delimiter", "tab"]
    done = invoke(stub, *args, stdin="id\ttext\nr1\ta, b; c\n")
    assert done.exit_code == 0, done.output
    assert read_jsonl(out)[0]["text"] == "a, b; c"


def test_csv_options_are_for_csv_input(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"text": "x"}\n', encoding="utf-8")
    wrong = invoke(None, "run", str(rows), *ONE_LINE, "-o", str(tmp_path / "o.jsonl"), "--encoding", "latin-1")
    assert wrong.exit_code == 2 and "--delimiter and --encoding are for CSV input" in wrong.stderr
    csv_rows = tmp_path / "rows.csv"
    csv_rows.write_text("text\nx\n", encoding="utf-8")
    long = invoke(None, "run", str(csv_rows), *ONE_LINE, "-o", str(tmp_path / "o.jsonl"), "--delimiter", ";;")
    assert long.exit_code == 2 and "not one character" in long.stderr


def test_scrape_csv_takes_the_same_options(tmp_path: Path) -> None:
    path, out = tmp_path / "t.csv", tmp_path / "rows.jsonl"
    path.write_bytes("name|note\nZoë|größer\n".encode("latin-1"))
    done = invoke(None, "scrape", "csv", str(path), "--encoding", "latin-1", "-o", str(out))
    assert done.exit_code == 0, done.output
    assert read_jsonl(out) == [{"name": "Zoë", "note": "größer"}]
