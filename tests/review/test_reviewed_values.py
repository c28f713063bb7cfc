"""Reviewed values stick: kept per row and field in the cache folder, served by every later run instead of a
model's answer (a row whose every field is reviewed costs no call), counted in the receipt, marked
``_reviewed``; a value that no longer fits its field is not served."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from enrichkit.cli.flags import CliOptions
from enrichkit.cli.runner import run_job
from enrichkit.engine.reviewed import Conflict, ReviewStore, review_key, task_id
from enrichkit.options import RunOptions
from enrichkit.output.receipt import run_text
from enrichkit.providers.base import Capabilities, Reply, Request, Usage
from enrichkit.providers.gemini import make_client
from enrichkit.rows.files import iter_rows, read_rows
from enrichkit.task.task import Task
from enrichkit.testing import FunctionProvider, GeminiStub, ids_of
from enrichkit.testing.wire import PRICED
from helpers import FAST_RETRY, ROOT, topic_rows, write_jsonl

TASK = ROOT / "schemas" / "roadmap-topic.json"


def answer(request: Request) -> Reply:
    """The same answer for every row: a pack's items, or a single row's object."""
    one = {"tldr": "A short summary.", "challenge": "practice"}
    if not (ids := ids_of(request)):
        return Reply(json.dumps(one), usage=Usage(100, 10))
    return Reply(json.dumps([{"id": rid, **one} for rid in ids]), usage=Usage(100, 10 * len(ids)))


def run(source: Path, output: Path, cache: Path, flags: bool = False) -> tuple[dict[str, Any], list[Request]]:
    """A run through the seam (``flags``: with the ``_confidence`` and ``_flags`` columns)."""
    capabilities = Capabilities(logprobs=True) if flags else None
    provider = FunctionProvider(answer, name="fn", model="fn", capabilities=capabilities)
    report = output.with_suffix(".report.json")
    options = RunOptions(provider=provider, cache_dir=cache, pack_size=5, confidence=True if flags else None)
    code = run_job(iter_rows(source), TASK, output, options, CliOptions(report=report, quiet=True, source=source))
    assert code == 0
    return json.loads(report.read_text()), provider.requests


def asked(requests: list[Request]) -> int:
    """The rows the model was asked for."""
    return sum(len(ids_of(request)) or 1 for request in requests)


def review(cache: Path, row: dict[str, Any], values: dict[str, Any], version: int = 0) -> int:
    task = Task.from_file(TASK)
    inputs = {f: row[f] for f in task.inputs}
    store = ReviewStore(cache)
    try:
        return store.put(task_id(task), review_key(inputs), inputs, values, {}, version=version)
    finally:
        store.close()


def test_reviewed_rows_cost_no_call_and_override_the_cache(tmp_path: Path) -> None:
    rows = topic_rows(10)
    source, out, cache = write_jsonl(tmp_path / "rows.jsonl", rows), tmp_path / "out.csv", tmp_path / "c"
    run(source, out, cache)
    review(cache, rows[3], {"tldr": "Corrected by a person.", "challenge": "expert"})
    review(cache, rows[5], {"challenge": "expert"})

    # Another model: no cache entry holds these rows, yet the fully reviewed one is not asked.
    fresh = tmp_path / "fresh"
    review(fresh, rows[3], {"tldr": "Corrected by a person.", "challenge": "expert"})
    review(fresh, rows[5], {"challenge": "expert"})
    report, requests = run(source, out, fresh)
    assert asked(requests) == 9 and report["reviewed"] == 3 and report["cache_hits"] == 1
    assert "\nreviewed: 3 reviewed values kept (a person's, served instead of a model's)" in run_text(report)
    written = read_rows(out)
    assert written[3]["tldr"] == "Corrected by a person." and written[3]["_reviewed"] == "tldr,challenge"
    assert (written[5]["tldr"], written[5]["challenge"], written[5]["_reviewed"]) == (
        "A short summary.",
        "expert",
        "challenge",
    )
    assert written[0]["_reviewed"] == "" and written[0]["challenge"] == "practice"

    # The same cache: every row a hit, the reviewed values on top.
    report, requests = run(source, out, cache)
    assert (report["cache_hits"], report["reviewed"], requests) == (10, 3, [])
    assert read_rows(out)[3]["challenge"] == "expert"


def test_a_row_sent_to_be_asked_again_is_asked_until_answered(tmp_path: Path) -> None:
    rows = topic_rows(10)
    source, out, cache = write_jsonl(tmp_path / "rows.jsonl", rows), tmp_path / "out.jsonl", tmp_path / "c"
    run(source, out, cache)
    version = review(cache, rows[2], {"tldr": "Kept by a person.", "challenge": "expert"})
    task = Task.from_file(TASK)
    inputs = {f: rows[2][f] for f in task.inputs}
    store = ReviewStore(cache)
    try:
        store.ask_again(task_id(task), review_key(inputs), inputs, version=version)
    finally:
        store.close()
    report, requests = run(source, out, cache)
    assert (asked(requests), report["cache_hits"], report["reviewed"]) == (1, 9, 0)
    assert read_rows(out)[2]["challenge"] == "practice"  # the reviewed values went with the request
    report, requests = run(source, out, cache)
    assert (asked(requests), report["cache_hits"]) == (0, 10)


def test_a_value_that_no_longer_fits_its_field_is_not_served(tmp_path: Path) -> None:
    rows = topic_rows(4)
    source, out, cache = write_jsonl(tmp_path / "rows.jsonl", rows), tmp_path / "out.jsonl", tmp_path / "c"
    review(cache, rows[1], {"tldr": "Fine.", "challenge": "expert"})
    with sqlite3.connect(cache / "reviewed.db") as db:
        db.execute("UPDATE reviewed SET value = '\"beginner\"' WHERE field = 'challenge'")
    db.close()
    report, requests = run(source, out, cache)
    assert report["reviewed"] == 1 and asked(requests) == 4
    assert read_rows(out)[1]["challenge"] == "practice"


def test_an_edit_from_a_stale_version_is_refused(tmp_path: Path) -> None:
    row = topic_rows(1)[0]
    assert review(tmp_path, row, {"challenge": "expert"}) == 1
    with pytest.raises(Conflict):
        review(tmp_path, row, {"challenge": "practice"}, version=0)
    assert review(tmp_path, row, {"challenge": "practice"}, version=1) == 2


def test_a_row_read_back_from_csv_has_the_key_of_its_typed_input() -> None:
    assert review_key({"n": 3, "x": 1.5, "b": True, "o": {"k": "é"}, "z": None}) == review_key(
        {"n": "3", "x": "1.5", "b": "True", "o": '{"k": "é"}', "z": ""}
    )


def test_a_row_sent_to_be_asked_again_on_another_model_is_answered_by_it(tmp_path: Path) -> None:
    rows = topic_rows(10)
    source, out, cache = write_jsonl(tmp_path / "rows.jsonl", rows), tmp_path / "out.jsonl", tmp_path / "c"
    run(source, out, cache, flags=True)
    task = Task.from_file(TASK)
    for row, model in ((rows[2], "fn-strong"), (rows[7], "fn")):  # the run's own model: asked as usual
        inputs = {f: row[f] for f in task.inputs}
        store = ReviewStore(cache)
        try:
            store.ask_again(task_id(task), review_key(inputs), inputs, version=0, model=model)
            assert store.marked(task_id(task), [review_key(inputs)]) == {review_key(inputs): model}
        finally:
            store.close()
    report, requests = run(source, out, cache, flags=True)
    assert (asked(requests), report["cache_hits"]) == (2, 8)
    assert report["by_model"]["fn-strong"]["rows"] == 1 and report["by_model"]["fn"]["rows"] == 1
    logs = (cache / "history" / "calls").glob("*.jsonl")
    logged = [json.loads(line) for log in logs for line in log.read_text().splitlines()]  # the row's story
    assert [(doc["model"], doc["rows"]) for doc in logged if doc.get("model") == "fn-strong"] == [
        ("fn-strong", [rows[2]["id"]])
    ]
    assert [row["_flags"] for row in read_rows(out)] == [None] * 2 + ["reasked"] + [None] * 7
    report, requests = run(source, out, cache, flags=True)
    assert (asked(requests), report["cache_hits"]) == (0, 10)  # answered: asked no more


def test_a_row_to_ask_on_a_model_the_provider_refuses_fails_alone_and_stays_marked(tmp_path: Path) -> None:
    rows = topic_rows(10)
    source, out, cache = write_jsonl(tmp_path / "rows.jsonl", rows), tmp_path / "out.jsonl", tmp_path / "c"
    task = Task.from_file(TASK)
    inputs = {f: rows[2][f] for f in task.inputs}
    with GeminiStub(models=PRICED) as stub:

        def gemini_run() -> tuple[int, dict[str, Any]]:
            options = RunOptions(client=make_client(api_key="k", base_url=stub.url), cache_dir=cache, retry=FAST_RETRY)
            report = tmp_path / "report.json"
            code = run_job(iter_rows(source), TASK, out, options, CliOptions(report=report, quiet=True, source=source))
            return code, json.loads(report.read_text())

        assert gemini_run()[0] == 0
        store = ReviewStore(cache)
        try:
            store.ask_again(task_id(task), review_key(inputs), inputs, version=0, model="gemini-0-unknown")
        finally:
            store.close()
        code, report = gemini_run()
        assert (code, report["failed"], report["cache_hits"]) == (1, 1, 9)
        [failure] = read_rows(tmp_path / "out-failures.jsonl")
        assert "asked again on gemini-0-unknown:" in str(failure) and "gemini-0-unknown" in str(failure)
        store = ReviewStore(cache)
        try:
            assert store.marked(task_id(task), [review_key(inputs)]) == {review_key(inputs): "gemini-0-unknown"}
        finally:
            store.close()
