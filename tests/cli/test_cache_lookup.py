"""``enrichkit cache lookup``: each row of an input with its id (or number), inputs, cache key and cached
answer, under the keys ``enrichkit run`` makes with the same options; its key is the one `cache forget` takes."""

from __future__ import annotations

import json
from pathlib import Path

from enrichkit.testing import GeminiStub
from helpers import TASK, invoke, read_jsonl, topic_rows, write_jsonl


def test_lookup_shows_each_rows_id_inputs_and_answer(stub: GeminiStub, tmp_path: Path) -> None:
    rows, out, cache = write_jsonl(tmp_path / "rows.jsonl", topic_rows(3)), tmp_path / "out.jsonl", str(tmp_path / "c")
    assert (
        invoke(stub, "run", str(rows), "-t", TASK, "-o", str(out), "--cache-dir", cache, "--limit", "2").exit_code == 0
    )
    found = invoke(stub, "cache", "lookup", str(rows), "-t", TASK, "--cache-dir", cache, "--json")
    assert found.exit_code == 0, found.output
    lines = [json.loads(line) for line in found.stdout.splitlines()]
    written = read_jsonl(out)
    assert [line["id"] for line in lines] == ["t0", "t1", "t2"]
    assert lines[0]["inputs"] == {k: topic_rows(1)[0][k] for k in ("category", "topic", "description")}
    assert lines[0]["entry"]["values"] == {"tldr": written[0]["tldr"], "challenge": written[0]["challenge"]}
    assert lines[2]["entry"] is None  # beyond --limit: never asked
    assert "2 of 3 rows cached" in found.stderr
    text = invoke(stub, "cache", "lookup", str(rows), "-t", TASK, "--cache-dir", cache).stdout.splitlines()
    assert text[0].startswith(f"id 't0'  {lines[0]['key'][:16]}  gemini-3.1-flash-lite  ")
    assert text[2].startswith(f"id 't2'  {lines[2]['key'][:16]}  not cached  inputs {{")
    forget = invoke(None, "cache", "forget", lines[0]["key"][:16], "--cache-dir", cache)
    assert "forgot 1 cached rows" in forget.stdout


def test_other_options_make_other_keys(stub: GeminiStub, tmp_path: Path) -> None:
    rows, cache = write_jsonl(tmp_path / "rows.jsonl", topic_rows(2)), str(tmp_path / "c")
    invoke(stub, "run", str(rows), "-t", TASK, "-o", str(tmp_path / "o.jsonl"), "--cache-dir", cache)
    same = invoke(stub, "cache", "lookup", str(rows), "-t", TASK, "--cache-dir", cache)
    other = invoke(stub, "cache", "lookup", str(rows), "-t", TASK, "--cache-dir", cache, "-m", "gemini-2.5-flash")
    assert "2 of 2 rows cached" in same.stderr and "0 of 2 rows cached" in other.stderr
    assert "the keys of gemini / gemini-2.5-flash, packs of 20:" in other.stderr


def test_rows_without_an_id_field_are_numbered(stub: GeminiStub, tmp_path: Path) -> None:
    rows = write_jsonl(tmp_path / "rows.jsonl", [{"topic": "Git"}, {"topic": "CI"}])
    args = ["cache", "lookup", str(rows), "--instruction", "x", "--input", "topic", "--column", "kind: a|b"]
    found = invoke(stub, *args, "--cache-dir", str(tmp_path / "c"), "--json")
    assert [json.loads(line)["row"] for line in found.stdout.splitlines()] == [1, 2]
