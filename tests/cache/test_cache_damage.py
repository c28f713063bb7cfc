"""A damaged, full or read-only cache: misses, one-line StorageErrors, and `cache salvage` (real SQLite files)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from disks import read_only, tiny_disk
from enrichkit.cache.entry import Entry
from enrichkit.cache.folder import RowCache
from enrichkit.cache.salvage import salvage
from enrichkit.errors import StorageError

N = 3_000
KEYS = [f"{i:064x}" for i in range(N)]


def filled(folder: Path, n: int = N) -> Path:
    """A closed cache of ``n`` entries; the path of its SQLite file."""
    cache = RowCache(folder)
    cache.put_many({key: Entry({"tldr": f"answer {i}", "n": i}, "m", 10.0, 2.0) for i, key in enumerate(KEYS[:n])})
    cache.close()
    return folder / "rows" / "cache.db"


def found(folder: Path) -> int:
    cache = RowCache(folder)
    try:
        return len(cache.get_many(KEYS))
    finally:
        cache.close()


def test_undecodable_entries_are_counted_misses_and_overwritten_when_answered_again(tmp_path: Path) -> None:
    db = filled(tmp_path)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE Cache SET value = substr(value, 1, 12) WHERE key = ?", (KEYS[3],))  # cut mid-JSON
        con.execute("""UPDATE Cache SET value = '{"tldr": "x"}' WHERE key = ?""", (KEYS[4],))  # not our fields
        con.execute("""UPDATE Cache SET value = '{"v": [], "m": "m", "u": [0, 0], "t": 0}' WHERE key = ?""", (KEYS[5],))
    con.close()
    cache = RowCache(tmp_path)
    got = cache.get_many(KEYS)
    assert len(got) == N - 3 and not {KEYS[3], KEYS[4], KEYS[5]} & set(got) and cache.damaged == 3
    assert got[KEYS[6]].values == {"tldr": "answer 6", "n": 6}
    cache.put_many({KEYS[3]: Entry({"tldr": "again", "n": 3}, "m")})
    assert cache.get_many([KEYS[3]])[KEYS[3]].values == {"tldr": "again", "n": 3} and cache.damaged == 3
    assert {key for key, entry in cache.find() if entry is None} == {KEYS[4], KEYS[5]}
    assert cache.prune(10 * 365 * 86400) == 2  # damaged entries count as stale
    cache.close()


def test_a_bad_header_is_one_line_and_repair_saves_every_entry(tmp_path: Path) -> None:
    db = filled(tmp_path)
    with db.open("r+b") as file:
        file.write(b"not a database!!")
    with pytest.raises(StorageError) as caught:
        RowCache(tmp_path)
    message = str(caught.value)
    assert message == (
        f"cache at {tmp_path} is damaged (file is not a database): move it aside or run"
        f" `enrichkit cache salvage --cache-dir {tmp_path}`"
    )
    done = salvage(tmp_path)
    assert (done.saved, done.lost) == (N, 0)
    assert done.aside.parent == tmp_path and done.aside.name.startswith("rows.damaged-") and done.aside.is_dir()
    assert found(tmp_path) == N


def test_overwritten_pages_fail_on_read_and_repair_keeps_the_readable_rest(tmp_path: Path) -> None:
    db = filled(tmp_path)
    size = db.stat().st_size
    with db.open("r+b") as file:  # two pages of zeros in the middle of the table
        file.seek(size // 2 // 4096 * 4096)
        file.write(bytes(8192))
    cache = RowCache(tmp_path)
    with pytest.raises(StorageError, match=r"is damaged \(database disk image is malformed\)"):
        cache.get_many(KEYS)
    cache.close()
    done = salvage(tmp_path)
    assert 0 < done.saved < N and done.lost == N - done.saved
    assert found(tmp_path) == done.saved


def test_a_truncated_file_is_damaged_on_open_and_repair_keeps_the_first_part(tmp_path: Path) -> None:
    db = filled(tmp_path)
    os.truncate(db, db.stat().st_size // 2)
    with pytest.raises(StorageError, match="is damaged"):
        RowCache(tmp_path)
    done = salvage(tmp_path)
    assert N // 4 < done.saved < N and done.lost == N - done.saved
    cache = RowCache(tmp_path)
    assert len(cache) == done.saved and KEYS[0] in cache.get_many(KEYS[:1])
    cache.close()


def test_a_cache_dir_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("x")
    with pytest.raises(StorageError, match=r"cache at .*cache: is a file, not a directory$"):
        RowCache(tmp_path / "cache")


def test_a_read_only_cache_is_one_line_naming_it(tmp_path: Path) -> None:
    filled(tmp_path / "c", 10)
    with read_only(tmp_path / "c"), pytest.raises(StorageError) as caught:
        RowCache(tmp_path / "c")
    assert str(caught.value).startswith(f"cache at {tmp_path / 'c'}: cannot open (")
    assert "read-only" in str(caught.value) or "permission denied" in str(caught.value)


def test_a_full_disk_under_the_cache_is_one_line_and_keeps_what_was_stored(tmp_path: Path) -> None:
    with tiny_disk(tmp_path / "disk", "1m") as disk:
        cache = RowCache(disk / "c")
        cache.put_many({KEYS[0]: Entry({"tldr": "kept"}, "m")})
        with pytest.raises(StorageError, match=r"cannot write \(.*(full|no space)"):
            for start in range(0, N, 100):
                cache.put_many({k: Entry({"tldr": "x" * 400}, "m") for k in KEYS[start + 1 : start + 101]})
        assert cache.get_many([KEYS[0]])[KEYS[0]].values == {"tldr": "kept"}
        cache.close()
