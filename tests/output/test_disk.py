"""Atomic writes: the temp files' pattern, their lock and sweep, permissions, and paths that cannot be written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from enrichkit.errors import UserError
from enrichkit.output.atomic import sweep_temps
from enrichkit.output.files import check_output, row_writer, write_json


def test_a_temp_file_being_written_is_kept_and_a_leftover_is_swept(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    leftover = tmp_path / ".out.jsonl.enrichkit-dead.part"
    others = [tmp_path / ".out.jsonl.dead.part", tmp_path / ".other.jsonl.enrichkit-dead.part"]
    for path in [leftover, *others]:
        path.write_text("{}\n")
    with row_writer(out, ["id"]) as write:
        write([{"id": "a"}])
        [live] = [p for p in tmp_path.glob(".out.jsonl.enrichkit-*.part") if p != leftover]
        assert sweep_temps(out) == 1  # the leftover; the live one is locked by this writer
        assert live.exists() and not leftover.exists()
    assert not live.exists() and out.read_text() == '{"id": "a"}\n'
    assert all(p.exists() for p in others)


def test_outputs_get_the_usual_permissions_not_mkstemps(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_json(tmp_path / "report.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "report.json").stat().st_mode & 0o777 == 0o640


def test_an_output_under_a_file_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match=r"'.*afile' is a file, not a directory"):
        check_output(tmp_path / "afile" / "out.jsonl")
