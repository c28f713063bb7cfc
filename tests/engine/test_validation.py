"""Parsing and checking a model's answer, item by item."""

from __future__ import annotations

from typing import Any

import pytest

from enrichkit.engine.validation import AnswerError, check_pack, parse_answer, parse_items
from enrichkit.task.schema import make_validator
from helpers import TLDR_TASK

IDS = ["r1", "r2", "r3"]


def check(items: Any) -> Any:
    return check_pack(items, IDS, TLDR_TASK.fields, make_validator(TLDR_TASK.schema))


def item(rid: Any, tldr: Any = "a b", challenge: Any = "expert") -> dict[str, Any]:
    return {"id": rid, "tldr": tldr, "challenge": challenge}


@pytest.mark.parametrize(
    "text",
    [
        '[{"a": 1}]',
        '```json\n[{"a": 1}]\n```',
        'Sure! Here is the result:\n```\n[{"a": 1}]\n```',
        'Here you go: [{"a": 1}] -- done',
        '\n\n  [{"a": 1}]',
    ],
)
def test_parse_answer_tolerates_fences_and_a_preamble(text: str) -> None:
    assert parse_answer(text, list) == [{"a": 1}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "empty answer"),
        ("   ", "empty answer"),
        ('[{"a": 1}, {"a": ', "invalid JSON"),
        ("no json here", "no JSON array"),
        ('[{"a": 1},]', "invalid JSON"),  # no repair beyond fences and preamble
    ],
)
def test_parse_answer_rejects_what_it_cannot_read(text: str | None, message: str) -> None:
    with pytest.raises(AnswerError, match=message):
        parse_answer(text, list)


def test_a_single_answer_must_be_an_object() -> None:
    assert parse_answer('{"tldr": "x"}', dict) == {"tldr": "x"}
    with pytest.raises(AnswerError, match="no JSON object"):
        parse_answer('["x"]', dict)


def test_every_valid_item_is_kept_by_id_whatever_the_order() -> None:
    result = check([item("r3", "c"), item("r1", "a"), item("r2", "b")])
    assert result.valid == {
        "r1": {"tldr": "a", "challenge": "expert"},
        "r2": {"tldr": "b", "challenge": "expert"},
        "r3": {"tldr": "c", "challenge": "expert"},
    }
    assert result.invalid == {} and result.unknown_ids == 0


def test_each_kind_of_problem_fails_only_its_own_row() -> None:
    result = check(
        [
            item("r1", challenge="hard"),
            item("r2", tldr="one two three four"),
            item("r2"),
            item("r9"),
            "not an object",
            {"id": ["r3"]},
        ]
    )
    assert result.valid == {}
    assert result.invalid == {
        "r1": "challenge: 'hard' not in [practice, expert]",
        "r2": "id r2 answered 2 times",
        "r3": "missing from the answer",
    }
    assert result.unknown_ids == 3  # r9, the non-object and the list id: none maps to a row


def test_missing_fields_and_wrong_types_are_named() -> None:
    result = check([{"id": "r1", "tldr": "a"}, item("r2", tldr=["a"]), item("r3")])
    assert result.invalid["r1"] == "'challenge' is a required property"
    assert result.invalid["r2"] == "tldr: ['a'] is not of type 'string'"
    assert list(result.valid) == ["r3"]


def test_extra_fields_in_an_item_are_dropped_not_stored() -> None:
    result = check([{**item("r1"), "note": "x"}, item("r2"), item("r3")])
    assert result.valid["r1"] == {"tldr": "a b", "challenge": "expert"}


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ('[{"id": "r1", "n": 1}, {"id": "r2", "n": 2}, {"id": "r3", "n"', ["r1", "r2"]),  # cut inside an item
        ('```json\n[ {"id": "r1"} ,\n {"id": "r2"},', ["r1", "r2"]),  # cut after a comma, fenced
        ('[{"id": "r1"}, {"id": "r2"} {"id": "r3"}]', ["r1", "r2"]),  # broken between items
    ],
)
def test_a_cut_off_array_keeps_its_whole_items_and_says_why_the_rest_is_missing(text: str, kept: list[str]) -> None:
    items, broken = parse_items(text)
    assert [item["id"] for item in items] == kept
    assert broken is not None and "invalid JSON" in broken


def test_a_whole_array_is_not_broken() -> None:
    assert parse_items('[{"id": "r1"}]') == ([{"id": "r1"}], None)


@pytest.mark.parametrize("text", ['[{"id": "r1", "n"', "[", "", None, "no json"])
def test_an_array_without_one_whole_item_is_unusable(text: str | None) -> None:
    with pytest.raises(AnswerError):
        parse_items(text)


def test_rows_missing_from_a_cut_off_answer_say_why() -> None:
    from enrichkit.task.schema import make_validator

    result = check_pack([], IDS, TLDR_TASK.fields, make_validator(TLDR_TASK.schema), missing="cut off")
    assert result.invalid == dict.fromkeys(IDS, "missing from the answer (cut off)")


def test_an_echo_passes_when_it_points_at_its_row_alone_whatever_words_it_copied() -> None:
    echoes = {"r1": "email", "r2": "slack sms", "r3": "slack teams"}
    items = [
        {"id": "r1", "echo": "Email / Slack", "tldr": "a", "challenge": "practice"},  # more words than asked
        {"id": "r2", "echo": "Slack", "tldr": "b", "challenge": "practice"},  # fewer: fits r3's too
        {"id": "r3", "echo": "slack teams", "tldr": "c", "challenge": "practice"},
    ]
    checked = check_pack(items, IDS, TLDR_TASK.fields, make_validator(TLDR_TASK.schema), echoes)
    assert set(checked.valid) == {"r1", "r3"} and "an answer for another row?" in checked.invalid["r2"]
