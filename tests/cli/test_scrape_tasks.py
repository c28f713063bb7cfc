"""``enrichkit scrape``: a one-line task on every scraper (json, csv, the roadmap plugin), and the records of
a JSON document found, or the arrays it holds listed, when --records is not given or is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enrichkit.testing import GeminiStub
from helpers import invoke, read_jsonl, topic_rows

ONE_LINE = ["--instruction", "Summarise", "--input", "topic", "--column", "challenge: practice|expert"]


def document(tmp_path: Path, doc: object) -> str:
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


def test_scrape_json_takes_a_one_line_task(stub: GeminiStub, tmp_path: Path) -> None:
    doc, out = document(tmp_path, {"items": topic_rows(3)}), tmp_path / "out.jsonl"
    done = invoke(stub, "scrape", "json", doc, *ONE_LINE, "--id-field", "id", "-o", str(out), "--no-cache")
    assert done.exit_code == 0, done.output
    assert [(r["id"], r["challenge"] in ("practice", "expert")) for r in read_jsonl(out)] == [
        ("t0", True), ("t1", True), ("t2", True)
    ]  # fmt: skip
    half = invoke(stub, "scrape", "json", doc, "--instruction", "Summarise", "-o", str(out))
    assert half.exit_code == 2 and "needs --instruction, --input and --column (missing --input)" in half.stderr


def test_scrape_csv_takes_a_one_line_task(stub: GeminiStub, tmp_path: Path) -> None:
    table, out = tmp_path / "t.csv", tmp_path / "out.csv"
    table.write_text("topic\nGit\nCI\n", encoding="utf-8")
    done = invoke(stub, "scrape", "csv", str(table), *ONE_LINE, "-o", str(out), "--no-cache")
    assert done.exit_code == 0, done.output
    assert out.read_text(encoding="utf-8").splitlines()[0] == "topic,challenge,_confidence,_flags"


def test_scrape_roadmap_takes_a_one_line_task(stub: GeminiStub, tmp_path: Path) -> None:
    pytest.importorskip("enrichkit_roadmap")
    folder = tmp_path / "roads" / "tiny" / "content"
    folder.mkdir(parents=True)
    (folder / "git@n1.md").write_text("# Git\n\nVersion control for source code.\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    args = ["scrape", "roadmap", "tiny", "--from", str(tmp_path / "roads"), "-o", str(out), "--no-cache"]
    done = invoke(stub, *args, *ONE_LINE, "--id-field", "id")
    assert done.exit_code == 0, done.output
    [row] = read_jsonl(out)
    assert row["topic"] == "Git" and row["challenge"] in ("practice", "expert")


def test_without_records_the_only_array_of_objects_is_taken(tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    doc = document(tmp_path, {"title": "x", "tags": ["a", "b"], "data": {"items": topic_rows(2)}})
    done = invoke(None, "scrape", "json", doc, "-o", str(out))
    assert done.exit_code == 0, done.output
    assert read_jsonl(out) == topic_rows(2) and "records: /data/items (the document's only array" in done.stderr
    whole = document(tmp_path, topic_rows(2))
    assert invoke(None, "scrape", "json", whole, "-o", str(out), "-q").stderr == ""


def test_without_records_several_arrays_or_none_are_an_error_listing_them(tmp_path: Path) -> None:
    out = str(tmp_path / "rows.jsonl")
    several = invoke(None, "scrape", "json", document(tmp_path, {"a": topic_rows(2), "b": {"c": topic_rows(3)}}),
                     "-o", out)  # fmt: skip
    assert several.exit_code == 2
    assert "which records? Give --records; its arrays of objects: /a (2 objects), /b/c (3 objects)" in several.stderr
    none = invoke(None, "scrape", "json", document(tmp_path, {"name": "x"}), "-o", out)
    assert none.exit_code == 2 and "holds no array of objects (--records / takes it as one row)" in none.stderr
    one = invoke(None, "scrape", "json", document(tmp_path, {"name": "x"}), "--records", "/", "-o", out)
    assert one.exit_code == 0 and read_jsonl(Path(out)) == [{"name": "x"}]


def test_a_wrong_records_path_lists_the_arrays_there_are(tmp_path: Path) -> None:
    doc = document(tmp_path, {"meta": {"n": 2}, "libraries": topic_rows(2)})
    wrong = invoke(None, "scrape", "json", doc, "--records", "data.items", "-o", str(tmp_path / "o.jsonl"))
    assert wrong.exit_code == 2
    assert wrong.stderr.splitlines()[-1].endswith(
        "nothing at '/data' (records path 'data.items'); its arrays of objects: /libraries (2 objects)"
    )
    scalar = invoke(None, "scrape", "json", doc, "--records", "meta.n", "-o", str(tmp_path / "o.jsonl"))
    assert "records path 'meta.n' holds int, not an array; its arrays of objects: /libraries" in scalar.stderr
