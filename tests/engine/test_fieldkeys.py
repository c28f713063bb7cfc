"""What a cached entry answers of a changed task: its field groups, split and merged."""

from __future__ import annotations

import asyncio
from pathlib import Path

from enrichkit import Task
from enrichkit.cache.entry import Entry
from enrichkit.cache.folder import RowCache
from enrichkit.engine.cache_io import CacheIO
from enrichkit.engine.fieldkeys import FieldKeys

TASK = Task.from_columns("Tag it", "text", ["kind: a|b", "note: text", "size: integer"])


def test_an_entry_keeps_its_groups() -> None:
    entry = Entry({"kind": "a"}, "m", confidence={"kind": 0.9}, groups="0f 1e")
    assert Entry.loads(entry.dumps(1.0)).groups == "0f 1e"
    assert Entry.loads(Entry({"kind": "a"}, "m").dumps(1.0)).groups == ""


def test_an_entry_of_an_older_task_serves_the_groups_it_shares() -> None:
    old = Task.from_columns("Tag it", "text", ["kind: a|b", "note: text -- a remark"])
    before, now = FieldKeys(old, "f"), FieldKeys(TASK, "f")
    entry = Entry({"kind": "b", "note": "x"}, "m", 4.0, 2.0, confidence={"kind": 0.8}, groups=before.all)
    assert now.split(entry)[1] == ("note", "size")  # note's description changed, size is new
    part, missing = now.split(entry)
    assert part is not None and part.values == {"kind": "b"} and part.confidence == {"kind": 0.8}
    new = Entry({"note": "y", "size": 3}, "m2", 1.0, 1.0, 0.0, {}, ("repaired",), now.group_ids(missing))
    merged = now.merged(new, entry)
    assert list(merged.values) == ["kind", "note", "size"] and merged.values["note"] == "y"
    assert merged.groups == now.all and merged.flags == ("repaired",) and merged.prompt_tokens == 5.0
    assert merged.confidence == {"kind": 0.8} and merged.model == "m2"
    assert now.split(Entry({"x": 1}, "m", groups="zz")) == (None, ("kind", "note", "size"))


def test_an_answer_to_some_groups_is_stored_merged_with_the_cached_others(tmp_path: Path) -> None:
    keys = FieldKeys(TASK, "f")
    kind, rest = keys.group_ids(["kind"]), keys.group_ids(["note", "size"])
    cache = RowCache(tmp_path)
    cache.put_many({"r": Entry({"kind": "a"}, "m", groups=kind)})
    io = CacheIO(cache, keys)

    async def store() -> None:
        await io.store({"r": Entry({"note": "n", "size": 2}, "m", groups=rest)})

    asyncio.run(store())
    io.close()
    stored = cache.get_many(["r"])["r"]
    cache.close()
    assert stored.values == {"kind": "a", "note": "n", "size": 2} and stored.groups == keys.all
