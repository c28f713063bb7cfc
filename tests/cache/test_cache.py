"""Cache keys and the on-disk cache."""

from __future__ import annotations

import gc
import os
import stat
import threading
import time
from pathlib import Path

from enrichkit.__main__ import open_descriptors
from enrichkit.cache.db import upsert
from enrichkit.cache.entry import Entry
from enrichkit.cache.folder import RowCache
from enrichkit.rows.jsontext import canonical
from enrichkit.rows.keys import row_key


def test_canonical_json_ignores_key_order_and_keeps_unicode() -> None:
    assert canonical({"b": 1, "a": "é"}) == canonical({"a": "é", "b": 1}) == '{"a":"é","b":1}'


def test_row_keys_depend_on_inputs_and_run_not_on_order_of_keys() -> None:
    k = row_key("run", {"topic": "A", "description": "B"})
    assert k == row_key("run", {"description": "B", "topic": "A"})
    assert k != row_key("run", {"topic": "A", "description": "B "})
    assert k != row_key("other-run", {"topic": "A", "description": "B"})


def test_get_many_returns_only_stored_keys_and_survives_reopening(tmp_path: Path) -> None:
    cache = RowCache(tmp_path)
    cache.put_many({"k1": Entry({"x": 1}, "m", 10.0, 2.0)})
    cache.close()
    again = RowCache(tmp_path)
    found = again.get_many(["k1", "k2"])
    assert list(found) == ["k1"]
    assert found["k1"].values == {"x": 1} and found["k1"].model == "m" and found["k1"].stored_at > 0
    again.close()


def test_prune_removes_only_old_entries(tmp_path: Path) -> None:
    cache = RowCache(tmp_path)
    cache.put_many({"old": Entry({"x": 1}, "m", stored_at=time.time() - 40 * 86400)})
    cache.put_many({"new": Entry({"x": 2}, "m")})
    assert cache.prune(30 * 86400) == 1
    assert list(cache.get_many(["old", "new"])) == ["new"]
    cache.close()


def test_the_cache_directory_is_private(tmp_path: Path) -> None:
    cache = RowCache(tmp_path / "c")
    cache.close()
    assert (tmp_path / "c").stat().st_mode & 0o077 == 0


def test_bulk_look_ups_cover_many_queries_and_values_diskcache_keeps_in_files(tmp_path: Path) -> None:
    cache = RowCache(tmp_path)
    big = "word " * 20_000  # 100 kB: diskcache stores it in a file of its own, not in the table
    entries = {f"k{i}": Entry({"n": i}, "m") for i in range(1_200)} | {"big": Entry({"text": big}, "m")}
    cache.put_many(entries)
    found = cache.get_many([*entries, "missing"])
    cache.close()
    assert set(found) == set(entries)  # 1,201 keys: three SELECTs of up to 500
    assert found["big"].values == {"text": big} and found["k1199"].values == {"n": 1199}


def test_bulk_writes_are_diskcaches_own_rows_and_replace_entries_kept_in_files(tmp_path: Path) -> None:
    cache = RowCache(tmp_path)
    big = Entry({"text": "word " * 20_000}, "m")  # diskcache keeps it in a file of its own
    cache.put_many({"a": big, "b": Entry({"n": 1}, "m")})
    kept = [p for p in (tmp_path / "rows").rglob("*.val")]
    assert len(kept) == 1
    cache.put_many({"a": Entry({"n": 2}, "m"), "b": Entry({"n": 3}, "m"), "c": Entry({"n": 4}, "m")})
    assert not kept[0].exists()  # replaced through diskcache, which removes the file
    cache.put_many({"b": Entry({"n": 5}, "m"), "d": Entry({"n": 6}, "m")})  # an upsert over a row of the table
    found = cache.get_many(["a", "b", "c", "d"])
    assert {k: e.values["n"] for k, e in found.items()} == {"a": 2, "b": 5, "c": 4, "d": 6}
    assert Entry.loads(cache._db["d"]).values == {"n": 6}  # diskcache reads what the bulk write wrote
    assert len(cache) == 4 and not cache.written_elsewhere()
    other = RowCache(tmp_path)
    other.put_many({"e": Entry({"n": 7}, "m")})
    assert cache.written_elsewhere()
    other.close()
    cache.close()


def test_values_come_back_as_json_reads_them(tmp_path: Path) -> None:
    cache = RowCache(tmp_path)
    odd = {"big": 2**70, "small": -(2**64), "x": 1e-05, "text": "\u2028 \x00 é"}
    cache.put_many({"a": Entry(odd, "m"), "b": Entry({"n": 1}, "m")})
    found = cache.get_many(["a", "b"])
    assert repr(found["a"].values) == repr(odd) and found["b"].values == {"n": 1}
    cache.close()


def test_the_one_statement_write_and_the_row_by_row_write_store_the_same_rows(tmp_path: Path) -> None:
    texts = [("k1", Entry({"n": 1}, "m").dumps(5.0)), ("k2", Entry({"t": 'é " \\ \n'}, "m").dumps(5.0))]
    stored = []
    for bulk in (True, False):
        cache = RowCache(tmp_path / str(bulk))
        assert upsert(cache._writer, 5.0, texts, bulk=bulk) == 2
        assert upsert(cache._writer, 6.0, texts[1:], bulk=bulk) == 0  # replaced, not added
        stored.append(cache._writer.execute("SELECT * FROM Cache ORDER BY key").fetchall())
        assert len(cache) == 2 and cache.get_many(["k2"])["k2"].values == {"t": 'é " \\ \n'}
        cache.close()
    bulk_rows, single_rows = stored
    assert [row[1:] for row in bulk_rows] == [row[1:] for row in single_rows]  # all but the rowid


def test_a_cache_opened_in_a_thread_leaves_no_database_open_once_closed(tmp_path: Path) -> None:
    """A run opens its cache in a thread of its own: diskcache's connection of that thread is closed by the
    cache, not left to the garbage collector (the program pauses it while it starts)."""
    opened: list[RowCache] = []
    gc.disable()
    try:
        thread = threading.Thread(target=lambda: opened.append(RowCache(tmp_path / "cache")))
        thread.start()
        thread.join()
        (cache,) = opened
        cache.put_many({"k": Entry({"a": 1}, "m")})
        cache.close()
        files = {(s.st_dev, s.st_ino) for s in map(os.stat, (tmp_path / "cache").rglob("*")) if stat.S_ISREG(s.st_mode)}
        held = {(dev, ino) for _, dev, ino in open_descriptors() or ()}
        assert files and not files & held
    finally:
        gc.enable()
