"""Streaming row files: read one row at a time, write in chunks, atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enrichkit.errors import UserError
from enrichkit.output.files import row_writer
from enrichkit.rows.files import iter_rows, read_rows

ROWS = [{"id": f"r{i}", "text": f"row {i}", "n": i} for i in range(5)]


def test_jsonl_is_read_lazily_and_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:2]) + "{broken\n", encoding="utf-8")
    rows = iter_rows(path)
    assert next(rows) == ROWS[0] and next(rows) == ROWS[1]  # the good rows come before the bad line is met
    with pytest.raises(UserError, match=r"rows.jsonl:3: malformed JSON"):
        next(rows)


def test_bad_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_bytes(b"id,text\nr1,fine\nr2,caf\xe9\n")
    with pytest.raises(UserError, match=r"rows.csv:3: not UTF-8 text \(bad byte at offset 22\)"):
        read_rows(path)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".json"])
def test_an_input_without_rows_is_an_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"empty{suffix}"
    path.write_text("[]" if suffix == ".json" else "", encoding="utf-8")
    with pytest.raises(UserError, match="no rows"):
        read_rows(path)


def test_a_bom_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_bytes("\ufeffid,text\nr1,x\n".encode())
    assert read_rows(path) == [{"id": "r1", "text": "x"}]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv"])
def test_chunks_make_the_same_file_as_one_write(tmp_path: Path, suffix: str) -> None:
    whole, chunked = tmp_path / f"whole{suffix}", tmp_path / f"chunked{suffix}"
    with row_writer(whole, ["id", "text", "n"]) as write:
        write(ROWS)
    with row_writer(chunked, ["id", "text", "n"]) as write:
        write(ROWS[:2])
        write(ROWS[2:])
    assert whole.read_bytes() == chunked.read_bytes()
    back = read_rows(chunked)
    assert [r["id"] for r in back] == [r["id"] for r in ROWS]
    if suffix == ".json":
        assert json.loads(chunked.read_text(encoding="utf-8")) == ROWS


def test_an_empty_json_output_is_an_empty_array(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    with row_writer(path, ["id"]):
        pass
    assert json.loads(path.read_text(encoding="utf-8")) == []


def test_a_late_new_column_in_csv_is_an_error_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    with pytest.raises(UserError, match=r"row 3 has column 'extra'"), row_writer(path, ["id", "text", "n"]) as write:
        write(ROWS[:2])
        write([{**ROWS[2], "extra": 1}])
    assert not path.exists() and list(tmp_path.iterdir()) == []  # no half-written output, no temp file


def test_jsonl_rows_keep_their_own_extra_keys(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    with row_writer(path, ["id"]) as write:
        write([{"id": "a"}, {"id": "b", "more": 2}])
    assert read_rows(path) == [{"id": "a"}, {"id": "b", "more": 2}]


def test_jsonl_lines_orjson_reads_otherwise_go_the_careful_way(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    big = 2**70
    path.write_bytes(b'\xef\xbb\xbf{"id": "r1", "n": 1.5}\n\n  \n{"id": "r2", "n": ' + str(big).encode() + b"}\n")
    assert read_rows(path) == [{"id": "r1", "n": 1.5}, {"id": "r2", "n": big}]  # BOM, blanks, a 70-bit integer
    path.write_bytes(b'{"id": "r1"}\n{"id": "caf\xe9"}\n')
    with pytest.raises(UserError, match=r"rows.jsonl:2: not UTF-8 text \(bad byte at offset 24\)"):
        read_rows(path)
    path.write_bytes(b'{"id": "r1"}\n[1, 2]\n')
    with pytest.raises(UserError, match=r"rows.jsonl:2: a row must be a JSON object, not list"):
        read_rows(path)
