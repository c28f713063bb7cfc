"""The free cross-wiring check on its own: which answers resemble another row of their pack."""

from __future__ import annotations

from enrichkit.crosswire import suspects, text_fields

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
