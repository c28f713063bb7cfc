"""``enrichkit review --apply`` on every output format: the reviewed values written into the file (atomically,
in its own format: the same columns and types), the other rows and values as they were, the reviewed fields
named in ``_reviewed``."""

from __future__ import annotations

import importlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from enrichkit.cli import main
from enrichkit.history.runs import RunHistory
from enrichkit.review.table import read_output
from reviewing import TYPED_ROWS, request, serving, typed_output


def kinds(path: Path) -> dict[str, str]:
    """The output's columns and their types as its format keeps them (CSV: names only)."""
    if path.suffix == ".parquet":
        schema = importlib.import_module("pyarrow.parquet").read_schema(path)
        return {name: str(schema.field(name).type) for name in schema.names}
    if path.suffix == ".sqlite":
        db = sqlite3.connect(path)
        try:
            return {row[1]: row[2] for row in db.execute(f'PRAGMA table_info("{path.stem}")')}
        finally:
            db.close()
    return dict.fromkeys(read_output(path)[0], "")


def apply(output: Path, cache: Path) -> str:
    result = CliRunner().invoke(main, ["review", str(output), "--cache-dir", str(cache), "--apply"])
    assert result.exit_code == 0, result.output
    return result.output.strip()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json", ".parquet", ".sqlite"])
def test_apply_writes_the_reviewed_values_into_the_output_in_its_format(tmp_path: Path, suffix: str) -> None:
    output, cache, task = typed_output(tmp_path, suffix)
    before, columns, inode = read_output(output), kinds(output), output.stat().st_ino
    with serving(output, cache, task, RunHistory(cache).written(output)) as server:
        token = server.token
        edits = ((3, 0, "challenge", "expert"), (5, 0, "typed", "false"), (5, 1, "tldr", "Fixed."))
        for n, version, field, value in edits:
            edit = {"n": n, "version": version, "field": field, "value": value}
            assert request(server, "POST", "/api/correct", edit, token=token)[0] == 200
        assert request(server, "POST", "/api/accept", {"n": 7, "version": 0}, token=token)[0] == 200

    assert apply(output, cache) == f"{output}: 3 reviewed values written into 2 rows"  # row 7 accepted as it was
    assert output.stat().st_ino != inode and sorted(p.name for p in tmp_path.glob(".*")) == []  # replaced whole
    after = read_output(output)
    assert kinds(output) == columns | {"_reviewed": kinds(output)["_reviewed"]}  # the same types, one column more
    false = {".csv": "False", ".sqlite": 0}.get(suffix, False)
    changed: dict[int, dict[str, Any]] = {3: {"challenge": "expert"}, 5: {"typed": false, "tldr": "Fixed."}}
    marked = {3: "challenge", 5: "tldr,typed", 7: "tldr,challenge,typed"}
    for n in range(TYPED_ROWS):
        assert after[n] == before[n] | changed.get(n, {}) | {
            "_reviewed": marked.get(n, "" if suffix == ".csv" else None)
        }

    written = output.read_bytes()
    assert apply(output, cache) == f"{output}: 0 reviewed values written into 0 rows"
    assert read_output(output) == after and (suffix in (".parquet", ".sqlite") or output.read_bytes() == written)
