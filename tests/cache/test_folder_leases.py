"""Leases on a cache folder: a run alone takes none; runs sharing the folder leave each other's rows in
flight alone, renew what they hold, and free it when they store it, give it up, close or die."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from enrichkit.cache.entry import Entry
from enrichkit.cache.folder import RowCache
from enrichkit.cache.leases import FILE


def test_a_run_alone_takes_no_lease_and_writes_nothing_per_pack(tmp_path: Path) -> None:
    a = RowCache(tmp_path)
    assert not a.shared()
    a.put_many({"k1": Entry({"x": 1}, "m")})
    assert not a.shared()
    b = RowCache(tmp_path)
    assert b.shared()  # b counts itself in by asking, and finds a
    assert a.shared()
    b.close()
    assert not a.shared()  # b left: a is alone again
    a.close()
    assert (tmp_path / FILE).stat().st_mode & 0o077 == 0  # the owner's only, as the rows are


def test_leases_are_taken_where_free_and_end_when_stored_released_or_closed(tmp_path: Path) -> None:
    a, b = RowCache(tmp_path), RowCache(tmp_path)
    assert a.lease(["k1", "k2"]) == []
    assert a.lease(["k1", "k2"]) == []  # renewed by its holder
    assert b.lease(["k2", "k3"]) == ["k2"]  # b takes k3, the one that is free
    assert a.lease(["k3", "k4"]) == ["k3"]
    a.put_many({"k2": Entry({"x": 2}, "m")})
    assert b.lease(["k2"]) == []  # stored: the lease ended (the run reads the row before leasing)
    a.release(["k1"])
    assert b.lease(["k1"]) == []
    a.close()  # k4 was never answered: free at once
    assert b.lease(["k4"]) == []
    b.close()


HOLD = """
import sys
from enrichkit.cache.folder import RowCache
cache = RowCache(sys.argv[1])
assert cache.lease(["k"]) == []
print("held", flush=True)
sys.stdin.read()
"""


@pytest.mark.subprocess
def test_a_live_holder_renews_and_the_lease_of_a_killed_one_expires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENRICHKIT_LEASE_SECONDS", "0.3")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    b = RowCache(tmp_path)
    assert b.shared()
    time.sleep(1.0)  # three lease times: the holder's thread renewed it
    assert b.lease(["k"]) == ["k"]
    holder.kill()  # died holding it, without a word
    holder.wait()
    for _ in range(100):  # after its lease time the row is free (polled: no wall-clock assert)
        if b.lease(["k"]) == []:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the dead holder's lease never expired")
    assert not b.shared()  # nor does the dead run count as a holder any longer
    b.close()


OPEN_AT_ONCE = """
import sys, time
from pathlib import Path
from enrichkit.cache.leases import FolderLeases
base, start = Path(sys.argv[1]), float(sys.argv[2])
for n in range(int(sys.argv[3])):
    while time.time() < start + n * 0.05:
        pass
    (base / str(n)).mkdir(exist_ok=True)
    leases = FolderLeases(base / str(n))
    leases.shared()
    leases.close()
"""


@pytest.mark.subprocess
def test_runs_opening_a_new_folder_at_the_same_instant_all_get_in(tmp_path: Path) -> None:
    # SQLite says "database is locked" at once, without its busy wait, to a process that opens a new
    # leases.db while another turns it to WAL: the stop-43 CI run failed on it ("cannot read leases").
    start = time.time() + 2.0
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AT_ONCE, str(tmp_path), str(start), "30"],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    failures = [stderr for run in runs for _, stderr in [run.communicate(timeout=120)] if run.returncode]
    assert failures == []
