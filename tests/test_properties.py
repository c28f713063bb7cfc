"""Property-based tests of the answer parser and validator on arbitrary and adversarial answers."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from enrichkit.prompt import echo_of, pack_ids
from enrichkit.schema import first_error, make_validator
from enrichkit.validation import AnswerError, check_pack, parse_answer
from test_validation import TASK

VALIDATOR = make_validator(TASK.schema)
IDS = pack_ids(5)
ECHOES = {rid: f"row {rid} words" for rid in IDS}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
item_ids = st.sampled_from([*IDS, "r6", "R1", "r1 ", "", "0"]) | st.integers() | st.none()
tldrs = st.sampled_from(["short answer", "one two three four", "", "a b c"]) | st.text(max_size=30) | json_values
challenges = st.sampled_from(["practice", "expert", "hard", "Practice", ""]) | json_values
echoes = st.sampled_from([*ECHOES.values(), "row r9 words", "ROW r1 Words!", ""]) | json_values
items = st.fixed_dictionaries(
    {"id": item_ids},
    optional={"tldr": tldrs, "challenge": challenges, "echo": echoes, "extra": json_values},
)
answers = st.lists(items | json_values, max_size=9)


@settings(max_examples=400, deadline=None)
@given(answers, st.booleans())
def test_check_pack_never_accepts_an_invalid_ambiguous_or_misattributed_item(answer: list[Any], echo: bool) -> None:
    check = check_pack(answer, IDS, TASK.fields, VALIDATOR, ECHOES if echo else None)
    assert set(check.valid) | set(check.invalid) == set(IDS)
    assert not set(check.valid) & set(check.invalid)
    counts = Counter(i.get("id") for i in answer if isinstance(i, dict) and isinstance(i.get("id"), str))
    for rid, values in check.valid.items():
        assert counts[rid] == 1  # exactly one item claimed this id
        [source] = [i for i in answer if isinstance(i, dict) and i.get("id") == rid]
        assert values == {k: source[k] for k in TASK.fields if k in source}  # this row's own answer
        assert first_error(VALIDATOR, values) is None
        if echo:
            assert echo_of(source.get("echo", "")) == echo_of(ECHOES[rid])


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200) | st.builds(lambda a: json.dumps(a), answers), st.sampled_from([list, dict]))
def test_parse_answer_either_returns_the_expected_shape_or_raises_answer_error(text: str, expect: Any) -> None:
    try:
        value = parse_answer(text, expect)
    except AnswerError:
        return
    assert isinstance(value, expect)


@settings(max_examples=200, deadline=None)
@given(answers, st.sampled_from(["```json\n{}\n```", "Here you go:\n{}", "{}", "```\n{}```"]))
def test_fences_and_preambles_are_tolerated(answer: list[Any], wrapper: str) -> None:
    text = wrapper.replace("{}", json.dumps(answer))
    assert parse_answer(text, list) == answer
