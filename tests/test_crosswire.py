"""The free cross-wiring check on its own: which answers resemble another row of their pack."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from enrichkit.crosswire import _WORD, RARE, suspects, text_fields

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


def _all_pairs(answers: dict[str, dict[str, str]], rows: dict[str, dict[str, str]], fields: list[str]) -> set[str]:
    """The check as first written: every answer scored against every row of its pack."""
    words = {rid: {w.lower() for v in values.values() for w in _WORD.findall(str(v))} for rid, values in rows.items()}
    seen_in = Counter(w for ws in words.values() for w in ws)
    weight = {w: math.log((len(rows) + 1) / n) for w, n in seen_in.items()}
    found = set()
    for rid, values in answers.items():
        said = {w.lower() for f in fields for w in _WORD.findall(str(values.get(f, "")))} & weight.keys()
        scores = {other: sum(weight[w] for w in said & ws) for other, ws in words.items()}
        own = scores.pop(rid, 0.0)
        best = max(scores.values(), default=0.0)
        if best >= math.log(RARE) and best > 2 * own:
            found.add(rid)
    return found


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
    "ok",
    "Über",
    "İstanbul",
]
TEXTS = st.lists(st.sampled_from(VOCABULARY), max_size=6).map(" ".join)


@settings(max_examples=500)
@given(st.lists(st.tuples(TEXTS, TEXTS, TEXTS), min_size=2, max_size=20), st.randoms())
def test_the_word_index_decides_as_scoring_every_row_did(pack: list[tuple[str, str, str]], rnd: Any) -> None:
    rows = {f"r{n}": {"topic": topic, "description": text} for n, (topic, text, _) in enumerate(pack)}
    answers = {f"r{n}": {"tldr": said} for n, (_, _, said) in enumerate(pack)}
    swapped = dict(zip(answers, rnd.sample(list(answers.values()), len(answers)), strict=True))
    for given_answers in (answers, swapped):
        assert suspects(given_answers, rows, FIELDS) == _all_pairs(given_answers, rows, FIELDS)
