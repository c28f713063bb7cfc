"""Each field's own confidence on the review page, over real HTTP: read from the cache entry that wrote the row
(looked up by its key, a page at a time), the row's figure its lowest closed field's, a corrected field shown
as reviewed; nothing where the entry is not the answer's own."""

from __future__ import annotations

import json
import re
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

import reviewing
from enrichkit.cache.folder import RowCache
from enrichkit.history.runs import RunHistory
from enrichkit.output.files import columns_of, write_rows
from enrichkit.review.server import ReviewServer
from enrichkit.rows.files import read_rows
from enrichkit.task.task import Task
from reviewing import TYPED_ROWS as ROWS
from reviewing import request, sure
from reviewing import typed_output as enriched


def serving(output: Path, cache: Path, task: Task) -> AbstractContextManager[ReviewServer]:
    """The review server of ``output`` as the command opens it: with the run that wrote it."""
    return reviewing.serving(output, cache, task, RunHistory(cache).written(output))


def figures(page: str) -> dict[int, dict[str, str]]:
    """Each row's figures as the page shows them: per field, and the row's own (``_row``)."""
    out = {}
    for n, row in re.findall(r'<tr class="row[^"]*" data-n="(\d+)"(.*?)</tr>', page, re.S):
        cells = re.findall(r'data-field="(\w+)">.*?<span class="fconf[^"]*"[^>]*>([^<]*)</span>', row, re.S)
        out[int(n)] = dict(cells) | {"_row": re.findall(r'<td class="conf">([^<]*)</td>', row)[0]}
    return out


def page_of(server: ReviewServer) -> str:
    status, page = request(server, "GET", f"/?token={server.token}")
    assert status == 200
    return page


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet", ".sqlite"])
def test_each_field_shows_its_own_confidence_and_the_row_its_lowest(tmp_path: Path, suffix: str) -> None:
    output, cache, task = enriched(tmp_path, suffix)  # a CSV output holds "20" where the rows were keyed by 20
    with serving(output, cache, task) as server:
        shown = figures(page_of(server))
    assert sorted(shown) == list(range(ROWS))
    for n, row in shown.items():
        challenge, typed = sure(n)["challenge"], sure(n)["typed"]
        assert row == {
            "tldr": "",
            "challenge": f"{challenge:.2f}",
            "typed": f"{typed:.2f}",
            "_row": f"{min(challenge, typed):.2f}",
        }
    assert shown[0]["_row"] == shown[0]["challenge"] and shown[11]["_row"] == shown[11]["typed"]  # both fields lead


def test_a_corrected_field_shows_as_reviewed_and_an_accepted_one_keeps_its_figure(tmp_path: Path) -> None:
    output, cache, task = enriched(tmp_path, ".csv")
    with serving(output, cache, task) as server:
        token = server.token
        edit = {"n": 3, "version": 0, "field": "challenge", "value": "expert"}
        status, body = request(server, "POST", "/api/correct", edit, token=token)
        assert status == 200
        assert json.loads(body)["confidence"] == {
            "tldr": "",
            "challenge": "reviewed",
            "typed": f"{sure(3)['typed']:.2f}",
        }
        bands = ["0.00 to 0.50: 0/1 right", "0.50 to 0.80: none reviewed"]
        assert json.loads(body)["summary"]["bands"][:2] == bands  # the summary strip's, new at once
        status, body = request(server, "POST", "/api/accept", {"n": 4, "version": 0}, token=token)
        assert status == 200 and json.loads(body)["summary"] == {
            "reviewed": 2,
            "corrected": 1,
            "bands": [
                "0.00 to 0.50: 1/2 right",
                *bands[1:],
                "0.80 to 0.95: none reviewed",
                "0.95 to 1.00: none reviewed",
            ],
        }
        page = page_of(server)
        shown = figures(page)
        assert shown[3] == {"tldr": "", "challenge": "reviewed", "typed": "0.77", "_row": "0.31"}  # the row's as run
        assert shown[4] == {"tldr": "", "challenge": "0.38", "typed": "0.71", "_row": "0.38"}  # a person agreed
        assert '<span class="band">0.00 to 0.50: 1/2 right</span>' in page  # row 4 right, row 3 corrected
        status, body = request(server, "POST", "/api/again", {"n": 3, "version": 1}, token=token)
        assert json.loads(body)["confidence"]["challenge"] == "0.31"  # the correction dropped: the model's again


def test_no_figure_that_is_not_the_answers_own(tmp_path: Path) -> None:
    output, cache, task = enriched(tmp_path, ".jsonl")
    rows = read_rows(output)
    rows[1]["typed"] = False  # edited by hand: no longer the cached answer's value
    write_rows(output, rows, columns_of(rows))
    store = RowCache(cache)
    try:
        [(key, entry)] = [
            (k, e) for k, e in store.find() if e is not None and e.confidence["challenge"] == sure(2)["challenge"]
        ]
        store.put_many({key: entry._replace(confidence={"challenge": 0.99, "typed": 0.99})})  # asked again since
    finally:
        store.close()
    with serving(output, cache, task) as server:
        shown = figures(page_of(server))
    assert shown[1] == {"tldr": "", "challenge": "0.17", "typed": "", "_row": "0.17"}
    assert shown[2] == {
        "tldr": "",
        "challenge": "",
        "typed": "",
        "_row": "0.24",
    }  # the entry's row figure is not the output's
    assert shown[0]["challenge"] == "0.10"


def test_a_model_without_log_probabilities_shows_no_figure(tmp_path: Path) -> None:
    output, cache, task = enriched(tmp_path, ".csv", logprobs=False)
    with serving(output, cache, task) as server:
        page = page_of(server)
    assert "_confidence" not in read_rows(output)[0] and 'class="fconf' not in page and 'class="conf"' not in page
