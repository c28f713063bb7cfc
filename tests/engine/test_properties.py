"""Property-based tests of the answer parser and validator on arbitrary and adversarial answers."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enrichkit.engine.prompt import echo_of, pack_ids
from enrichkit.engine.validation import AnswerError, check_pack, parse_answer
from enrichkit.task.schema import first_error, make_validator
from helpers import TLDR_TASK

VALIDATOR = make_validator(TLDR_TASK.schema)
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


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(answers, st.booleans())
def test_check_pack_never_accepts_an_invalid_ambiguous_or_misattributed_item(answer: list[Any], echo: bool) -> None:
    check = check_pack(answer, IDS, TLDR_TASK.fields, VALIDATOR, ECHOES if echo else None)
    assert set(check.valid) | set(check.invalid) == set(IDS)
    assert not set(check.valid) & set(check.invalid)
    counts = Counter(i.get("id") for i in answer if isinstance(i, dict) and isinstance(i.get("id"), str))
    for rid, values in check.valid.items():
        assert counts[rid] == 1  # exactly one item claimed this id
        [source] = [i for i in answer if isinstance(i, dict) and i.get("id") == rid]
        assert values == {k: source[k] for k in TLDR_TASK.fields if k in source}  # this row's own answer
        assert VALIDATOR.full.is_valid(values)  # jsonschema itself agrees
        if echo:
            assert echo_of(source.get("echo", "")) == echo_of(ECHOES[rid])


@pytest.mark.slow
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


WIDE = make_validator(
    {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": ["a", "b"]},
            "tldr": {"type": "string", "maxWords": 3, "minLength": 2, "maxLength": 12, "pattern": "^[a-z ]+$"},
            "score": {"type": "integer", "minimum": 0, "maximum": 5},
            "ratio": {"type": ["number", "null"], "maximum": 1.5},
            "flag": {"type": "boolean", "description": "notes are ignored"},
        },
        "required": ["label", "score"],
        "additionalProperties": False,
    }
)
wide_items = st.fixed_dictionaries(
    {},
    optional={
        "label": st.sampled_from(["a", "b", "c", ""]) | json_values,
        "tldr": st.text(alphabet="ab Z", max_size=16) | json_values,
        "score": st.integers(-2, 7) | st.floats(-1, 6) | st.booleans() | json_values,
        "ratio": st.floats(allow_nan=False) | st.none() | st.booleans() | json_values,
        "flag": st.booleans() | st.integers(0, 1) | json_values,
        "extra": json_values,
    },
)


def test_the_fast_check_covers_flat_schemas_and_declines_the_rest() -> None:
    assert WIDE.fast is not None and VALIDATOR.fast is not None
    nested = {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}}
    assert make_validator(nested).fast is None
    assert make_validator({"type": "object", "properties": {"n": {"enum": [1, True]}}}).fast is None


@settings(max_examples=600, deadline=None)
@given(wide_items | json_values)
def test_the_fast_check_agrees_with_jsonschema(item: Any) -> None:
    for validator in (WIDE, VALIDATOR):
        valid = validator.full.is_valid(item)
        assert validator.fast is not None
        if validator.fast(item):
            assert valid  # the fast path never accepts what jsonschema rejects
        assert (first_error(validator, item) is None) == valid
