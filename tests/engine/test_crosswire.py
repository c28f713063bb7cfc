"""The free cross-wiring check on its own: which answers resemble another row of their pack."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from enrichkit.engine.crosswire import _STOP, _WORD, _words, carries_words, suspects, text_fields

ROWS = {
    "r1": {"topic": "Git", "description": "Version control for source code."},
    "r2": {"topic": "Docker", "description": "Containers that package an application."},
    "r3": {"topic": "Kubernetes", "description": "Orchestration of containers across machines."},
}
FIELDS = ["tldr"]


def test_answers_about_their_own_rows_pass() -> None:
    answers = {
        "r1": {"tldr": "Git tracks source code history."},
        "r2": {"tldr": "Docker packages an application."},
        "r3": {"tldr": "Kubernetes runs containers on many machines."},
    }
    assert suspects(answers, ROWS, FIELDS) == set()


def test_a_swapped_pair_is_caught() -> None:
    answers = {
        "r1": {"tldr": "Docker packages an application."},
        "r2": {"tldr": "Git tracks source code history."},
        "r3": {"tldr": "Kubernetes runs containers on many machines."},
    }
    assert suspects(answers, ROWS, FIELDS) == {"r1", "r2"}


def test_an_answer_that_shares_no_words_with_any_row_is_not_accused() -> None:
    answers = {"r1": {"tldr": "A tool every team uses daily."}}
    assert suspects(answers, ROWS, FIELDS) == set()


def test_words_every_row_has_say_nothing() -> None:
    rows = {rid: {**values, "area": "Basics"} for rid, values in ROWS.items()}
    answers = {"r1": {"tldr": "Basics basics basics."}}
    assert suspects(answers, rows, FIELDS) == set()


def test_only_free_text_fields_are_compared() -> None:
    schema = {
        "properties": {
            "tldr": {"type": "string", "maxWords": 12},
            "level": {"type": "string", "enum": ["a", "b"]},
            "when": {"type": "string", "format": "date"},
            "score": {"type": "integer"},
        }
    }
    assert text_fields(schema) == ["tldr"]


def test_words_both_rows_share_cannot_mask_a_swap() -> None:
    """Two topics of one category: the category's words are in both answers and both rows."""
    rows = {
        "r1": {"category": "Foundational Knowledge", "topic": "Technical Debt and Management",
               "description": "Managers tackle technical debt while delivering new features."},
        "r2": {"category": "Foundational Knowledge", "topic": "Code Review Best Practices",
               "description": "Guide the team on code review, and learning about the codebase."},
        "r3": {"category": "Team Health", "topic": "Burnout", "description": "Spot and prevent exhaustion."},
    }  # fmt: skip
    answers = {
        "r1": {"tldr": "About Foundational Knowledge: Code Review Best Practices"},
        "r2": {"tldr": "About Foundational Knowledge: Technical Debt and Management"},
        "r3": {"tldr": "Prevent burnout before exhaustion sets in."},
    }
    assert suspects(answers, rows, FIELDS) == {"r1", "r2"}


def test_the_other_half_of_a_swap_is_caught_with_the_half_that_gives_it_away() -> None:
    rows = {
        "r1": {"topic": "Docker", "description": "Containers that package an application for any server."},
        "r2": {"topic": "Kubernetes", "description": "Orchestration of containers across a server fleet."},
        "r3": {"topic": "Git", "description": "Version control."},
    }
    answers = {
        "r1": {"tldr": "Kubernetes orchestration for a fleet."},  # clearly r2's
        "r2": {"tldr": "Package an application in containers."},  # r1's, but "containers" is in both rows
        "r3": {"tldr": "Git is version control."},
    }
    assert suspects(answers, rows, FIELDS) == {"r1", "r2"}


def test_the_other_half_of_a_swap_is_caught_even_when_it_holds_no_word_of_its_own() -> None:
    rows = {
        "r1": {"area": "Engineering management", "topic": "People", "description": "Managing people."},
        "r2": {"area": "Engineering management", "topic": "EM vs IC", "description": "Roles compared."},
        "r3": {"area": "Delivery", "topic": "Planning", "description": "Plans and estimates."},
    }
    answers = {  # r1 holds r2's answer (nothing but shared words and two-letter ones), r2 holds r1's
        "r1": {"tldr": "Engineering management: EM vs IC"},
        "r2": {"tldr": "Engineering management: managing people"},
        "r3": {"tldr": "Planning with estimates"},
    }
    assert suspects(answers, rows, FIELDS) == {"r1", "r2"}


def test_a_stock_phrase_many_answers_say_accuses_nobody() -> None:
    rows = {f"r{i}": {"topic": f"Tool {i}", "description": f"Item {i} of the list."} for i in range(8)}
    rows["r7"] = {"topic": "Tool 7", "description": "A daily practice for the whole team."}
    answers = {rid: {"tldr": "Useful daily practice for any team."} for rid in rows}  # its words are r7's
    assert suspects(answers, rows, FIELDS) == set()


@pytest.mark.parametrize(
    ("field", "carries"),
    [
        ({"type": "string", "maxWords": 12}, True),
        ({"type": "string", "maxLength": 200}, True),
        ({"type": "string", "maxWords": 3}, False),  # a name: too short to carry its row's words
        ({"type": "string", "maxLength": 20}, False),
        ({"type": "string"}, False),  # no limit (a pydantic str): it may hold a name
        ({"type": "string", "enum": ["a", "b"]}, False),  # not free text
    ],
)
def test_answers_carry_their_rows_words_only_where_a_text_field_is_sure_to_be_long(
    field: dict[str, object], carries: bool
) -> None:
    assert carries_words({"properties": {"out": field}}) is carries


def test_common_english_words_accuse_nobody() -> None:
    rows = {"r1": {"topic": "Team Meetings"}, "r2": {"topic": "One-on-One Meetings", "note": "all about people"}}
    answers = {"r1": {"tldr": "All about team meetings."}, "r2": {"tldr": "One-on-one meetings with people."}}
    assert suspects(answers, rows, FIELDS) == set()


def test_in_a_pack_of_two_one_word_tells_the_rows_apart() -> None:
    rows = {"r1": {"topic": "Short Term Memory"}, "r2": {"topic": "Long Term Memory"}}
    answers = {"r1": {"tldr": "Long term memory."}, "r2": {"tldr": "Short term memory."}}
    assert suspects(answers, rows, FIELDS) == {"r1", "r2"}


VOCABULARY = [
    "git",
    "Docker",
    "code",
    "containers",
    "basics",
    "12",
    "ship",
    "row-7",
    "a_b",
    "v2beta",
    "x86",
    "ab",
    "I/O",
    "3.11",
    "ok",
    "Über",
    "İstanbul",
    "About",
    "the",
]
TEXTS = st.lists(st.sampled_from(VOCABULARY), max_size=6).map(" ".join)


@settings(max_examples=500)
@given(st.lists(TEXTS, max_size=4))
def test_the_fast_word_split_finds_the_words_the_pattern_does(texts: list[str]) -> None:
    expected = {w.lower() for text in texts for w in _WORD.findall(text)} - _STOP
    assert _words([" ".join(texts)]) == [expected]


@settings(max_examples=500)
@given(st.text(alphabet="abcXYZ0129 -_./:\n\tÜé", max_size=40))
def test_the_fast_word_split_agrees_with_the_pattern_on_any_text(text: str) -> None:
    assert _words([text]) == [{w.lower() for w in _WORD.findall(text)} - _STOP]


@given(st.lists(st.text(alphabet="abcXYZ0129 -_./:\n\tÜé", max_size=20), max_size=6))
def test_texts_split_at_once_give_each_text_its_own_words(texts: list[str]) -> None:
    assert _words(texts) == [{w.lower() for w in _WORD.findall(text)} - _STOP for text in texts]
