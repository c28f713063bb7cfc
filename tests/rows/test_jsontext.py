"""orjson where it gives json's very text and value, json elsewhere: cache keys never change."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enrichkit.rows.jsontext import canonical, compact, loads

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x3000))
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
)


@pytest.mark.slow
@settings(max_examples=1_000, deadline=None)  # no wall clock: a loaded machine is not a failure
@given(VALUES)
def test_written_text_is_the_standard_librarys(value: Any) -> None:
    assert canonical(value) == json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert compact(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.slow
@settings(max_examples=1_000, deadline=None)  # no wall clock: a loaded machine is not a failure
@given(VALUES, st.sampled_from([{}, {"ensure_ascii": False}, {"indent": 1}]))
def test_read_values_are_the_standard_librarys(value: Any, options: dict[str, Any]) -> None:
    text = json.dumps(value, **options)
    assert repr(loads(text)) == repr(json.loads(text))  # repr: NaN == NaN, 1 != 1.0
    assert repr(loads(text.encode())) == repr(json.loads(text.encode()))


@pytest.mark.parametrize(
    "text",
    ['{"id": 12345678901234567890123}', "[NaN, -Infinity]", '"\\ud800"', '{"a": 1, "a": 2}', "1E400", "-0", "[1.0, 1]"],
)
def test_texts_orjson_would_read_otherwise_are_read_as_json_does(text: str) -> None:
    assert repr(loads(text)) == repr(json.loads(text))


@pytest.mark.parametrize("text", ['{"a": 1', "[1,]", "\ufeff{}", ""])
def test_malformed_text_gives_jsons_own_error(text: str) -> None:
    with pytest.raises(json.JSONDecodeError) as ours:
        loads(text)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text)
    assert str(ours.value) == str(theirs.value)


def test_non_string_keys_and_big_integers_are_written_by_json() -> None:
    assert canonical({2: "b", 1: "a"}) == '{"1":"a","2":"b"}'
    assert compact([2**64, "\ud800"]) == json.dumps([2**64, "\ud800"], separators=(",", ":"), ensure_ascii=False)
