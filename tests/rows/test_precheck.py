"""An input file checked whole before the first paid call: the quick JSONL pass and the careful way agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enrichkit.errors import UserError
from enrichkit.rows.files import iter_rows
from enrichkit.rows.precheck import careful, check_input, quick_jsonl
from enrichkit.task.task import Task
from helpers import TASK, topic_rows

GOOD = "".join(json.dumps(row) + "\n" for row in topic_rows(30))

ROW = {"category": "c", "topic": "t", "description": "d"}

PROBLEMS = {  # a last line (or lines) after 30 good rows, and what the run says of it
    "malformed": ('{"id": "x", "topic": \n', "rows.jsonl:31: malformed JSON"),
    "not an object": ("[1, 2]\n", "rows.jsonl:31: a row must be a JSON object, not list"),
    "missing input": (json.dumps({"id": "x", "topic": "t"}) + "\n", "row 31 (id 'x'): input field 'category'"),
    "missing id": (json.dumps(ROW) + "\n", "row 31: id field 'id' is missing"),
    "repeated id": (json.dumps({"id": "t3", **ROW}) + "\n", "rows 4 and 31: duplicate id 't3'"),
    "list id": (json.dumps({"id": ["x"], **ROW}) + "\n", "row 31: id ['x'] in field 'id' is not a string"),
    "1 and 1.0": (json.dumps({"id": 1, **ROW}) + "\n" + json.dumps({"id": 1.0, **ROW}) + "\n", "rows 31 and 32"),
    "two NaN ids": ('{"id": NaN, "category": "c", "topic": "t", "description": "d"}\n' * 2, "rows 31 and 32"),
    "bad UTF-8": (b'{"id": "x", "topic": "caf\xe9"}\n'.decode("latin-1"), "rows.jsonl:31: not UTF-8 text"),
}


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("latin-1") if "caf\xe9" in text else text.encode())
    return path


def run_says(path: Path, task: Task) -> str:
    """The error the run's own reader and keys give, a row at a time."""
    with pytest.raises(UserError) as caught:
        careful(iter_rows(path), task)
    return str(caught.value)


@pytest.mark.parametrize("case", list(PROBLEMS))
def test_a_mistake_at_the_end_is_named_as_the_run_names_it(case: str, tmp_path: Path) -> None:
    task = Task.from_file(TASK)
    tail, expected = PROBLEMS[case]
    path = write(tmp_path / "rows.jsonl", GOOD + tail)
    with pytest.raises(UserError) as caught:
        check_input(path, iter_rows(path), task)
    assert expected in str(caught.value)
    assert str(caught.value) == run_says(path, task)


def test_a_clean_file_is_counted_by_the_quick_pass(tmp_path: Path) -> None:
    task = Task.from_file(TASK)
    more = GOOD.replace('"id": "t', '"id": "u')
    path = write(tmp_path / "rows.jsonl", GOOD + "\n  \n" + more)  # blank lines are skipped
    assert quick_jsonl(path, task) == 60
    assert check_input(path, iter_rows(path), task) == 60


@pytest.mark.parametrize(
    "text",
    [
        "\ufeff" + GOOD,  # a BOM: the careful reader drops it
        GOOD + json.dumps({"id": 2**70, **ROW}) + "\n",  # orjson reads it as a float
        GOOD + json.dumps({"id": 2.5, **ROW}) + "\n",  # an id neither text nor integer
        GOOD + json.dumps({"id": "t3", **ROW}) + "\n",  # a repeated id
    ],
)
def test_the_quick_pass_leaves_what_it_cannot_vouch_for_to_the_careful_way(text: str, tmp_path: Path) -> None:
    task = Task.from_file(TASK)
    path = write(tmp_path / "rows.jsonl", text)
    assert quick_jsonl(path, task) is None


def test_rows_past_the_limit_are_not_checked(tmp_path: Path) -> None:
    task = Task.from_file(TASK)
    path = write(tmp_path / "rows.jsonl", GOOD + "{broken\n")
    assert check_input(path, iter_rows(path), task, limit=30) == 30
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text("id,category,topic,description\na,c,t,d\nb,c,t\n", encoding="utf-8")
    assert check_input(csv_path, iter_rows(csv_path), task, limit=1) == 1
    with pytest.raises(UserError, match=r"rows.csv:3: 3 fields, but the header has 4"):
        check_input(csv_path, iter_rows(csv_path), task)
