"""The run's row ids: a repeated id named with both rows, whether the ids are still in the dict or have
moved to SQLite, with Python's equality (1 == 1.0 == True) in both."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enrichkit.errors import UserError
from enrichkit.rows.seen_ids import SeenIds

ID_VALUES = st.one_of(
    st.sampled_from(["a", "b", "1", "", "int 9223372036854775808", b"int 1", 1, 2, -1, 1.0, 2.5, True, False, 0, None]),
    st.sampled_from([2**63, 2**63 - 1, -(2**63), -(2**63) - 1, 2**70, float(2**70), 1e300]),
)


def first_repeat(ids: list[Any]) -> str | None:
    """What a plain dict of the ids names: the first id equal to an earlier one."""
    first: dict[Any, int] = {}
    for n, rid in enumerate(ids):
        if rid in first:
            return f"rows {first[rid] + 1} and {n + 1}: duplicate id {rid!r} in field 'id'"
        first[rid] = n
    return None


def named_repeat(ids: list[Any], chunk: int, spill: int) -> str | None:
    seen = SeenIds("id", spill=spill)
    try:
        for start in range(0, len(ids), chunk):
            seen.add(ids[start : start + chunk], range(start, min(start + chunk, len(ids))))
    except UserError as exc:
        return str(exc)
    return None


@given(st.lists(ID_VALUES, max_size=30), st.integers(1, 7), st.integers(0, 10))
def test_a_repeated_id_is_named_as_a_dict_would(ids: list[Any], chunk: int, spill: int) -> None:
    assert named_repeat(ids, chunk, spill) == first_repeat(ids)


def test_repeats_in_sqlite_across_and_within_chunks_name_both_rows() -> None:
    seen = SeenIds("key", spill=2)
    seen.add(["a", "b", "c"], [0, 1, 2])  # past the spill: in SQLite from here
    seen.add(["d"], [3])
    with pytest.raises(UserError, match=r"^rows 2 and 6: duplicate id 'b' in field 'key'$"):
        seen.add(["e", "b"], [4, 5])
    seen = SeenIds("key", spill=2)
    seen.add(["a", "b", "c"], [0, 1, 2])
    with pytest.raises(UserError, match=r"^rows 5 and 7: duplicate id 'x' in field 'key'$"):
        seen.add(["x", "y", "x", "a"], [4, 5, 6, 7])  # the first repeat in row order, not the SQL's


def test_row_numbers_may_be_listed() -> None:
    seen = SeenIds("id", spill=1)
    seen.add(["a", "b"], [10, 40])
    with pytest.raises(UserError, match=r"^rows 41 and 100: duplicate id 'b'"):
        seen.add(["c", "b"], [70, 99])


@pytest.mark.parametrize("spill", [0, 100])
@pytest.mark.parametrize("rid", [[1], {"a": 1}])
def test_an_id_that_is_not_a_value_is_a_user_error(rid: Any, spill: int) -> None:
    seen = SeenIds("id", spill=spill)
    seen.add(["a"], [0])
    with pytest.raises(
        UserError, match=rf"^row 3: id {rid!r} in field 'id' is not a string or a number$".replace("[", r"\[")
    ):
        seen.add(["b", rid], [1, 2])
