"""The fault helpers send the wire replies they claim on the OpenAI stub (benchmarks/resilience.py relies on them)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from enrichkit import Task
from enrichkit.engine.prompt import pack_prompt, pack_schema, single_prompt
from enrichkit.providers.chat import response_format
from enrichkit.testing import (
    OpenAIStub,
    add_unknown_id,
    drop_ids,
    duplicate_id,
    http_error,
    json_validate_failed,
    rate_limited,
    set_field,
    swap_answers,
)
from helpers import topic_rows

Reply = tuple[int, dict[str, str], dict[str, Any]]


@pytest.fixture
def server() -> Iterator[OpenAIStub]:
    with OpenAIStub() as stub:
        yield stub


def inputs(task: Task, row: dict[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in task.inputs}


def pack_body(task: Task, n: int = 3, echo: str | None = None, echo_words: int = 3) -> dict[str, Any]:
    ids = [f"r{i}" for i in range(1, n + 1)]
    records = [(rid, inputs(task, row)) for rid, row in zip(ids, topic_rows(n), strict=True)]
    return {
        "model": "m",
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": pack_prompt(records, echo, echo_words)},
        ],
        "response_format": response_format(pack_schema(task, ids, echo=echo, echo_words=echo_words)),
    }


def single_body(task: Task, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": "m",
        "messages": [{"role": "user", "content": single_prompt(inputs(task, row))}],
        "response_format": response_format(task.schema),
    }


def post(stub: OpenAIStub, body: dict[str, Any]) -> Reply:
    request = urllib.request.Request(
        stub.url + "/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, {k.lower(): v for k, v in reply.headers.items()}, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, json.loads(exc.read())


def items(reply: Reply) -> Any:
    status, _, body = reply
    assert status == 200
    return json.loads(body["choices"][0]["message"]["content"])


def test_a_row_gets_the_same_answer_packed_or_alone(server: OpenAIStub, task: Task) -> None:
    packed = items(post(server, pack_body(task, 3)))["items"]
    alone = [items(post(server, single_body(task, row))) for row in topic_rows(3)]
    assert [i.pop("id") for i in packed] == ["r1", "r2", "r3"]
    assert packed == alone
    assert alone[1]["tldr"] == "About Area 1 Topic number 1 Synthetic"
    assert [c.ids for c in server.calls] == [["r1", "r2", "r3"], [], [], []]


def test_an_echo_copies_the_words_its_description_asks_for(server: OpenAIStub, task: Task) -> None:
    packed = items(post(server, pack_body(task, 2, echo="description", echo_words=2)))["items"]
    assert [i["echo"] for i in packed] == ["synthetic description", "synthetic description"]
    packed = items(post(server, pack_body(task, 2, echo="topic", echo_words=3)))["items"]
    assert [i["echo"] for i in packed] == ["topic number 0", "topic number 1"]


def test_json_validate_failed_is_groqs_400(server: OpenAIStub, task: Task) -> None:
    server.script(json_validate_failed())
    status, _, body = post(server, pack_body(task))
    assert status == 400
    assert body == {
        "error": {
            "message": "Failed to validate JSON",
            "type": "invalid_request_error",
            "param": None,
            "code": "json_validate_failed",
            "failed_generation": "",
        }
    }


def test_rate_limited_is_a_429_with_retry_after_ms(server: OpenAIStub, task: Task) -> None:
    server.script(rate_limited(0.25))
    status, headers, body = post(server, pack_body(task))
    assert status == 429 and headers["retry-after-ms"] == "250"
    assert body["error"]["code"] == "rate_limit_exceeded"


def test_id_faults_spoil_the_items_as_named(server: OpenAIStub, task: Task) -> None:
    clean = items(post(server, pack_body(task)))["items"]
    server.script(
        drop_ids("r2"),
        duplicate_id("r2"),
        add_unknown_id("r999"),
        set_field("r2", "challenge", "hard"),
        swap_answers("r1", "r3"),
    )
    dropped, duplicated, unknown, bad, swapped = (items(post(server, pack_body(task)))["items"] for _ in range(5))
    assert dropped == [clean[0], clean[2]]
    assert duplicated == [*clean, clean[1]]
    assert unknown == [*clean, {**clean[0], "id": "r999"}]
    assert bad == [clean[0], {**clean[1], "challenge": "hard"}, clean[2]]
    assert swapped == [{**clean[2], "id": "r1"}, clean[1], {**clean[0], "id": "r3"}]


def test_set_field_on_a_single_row_changes_its_object(server: OpenAIStub, task: Task) -> None:
    row = topic_rows(1)[0]
    clean = items(post(server, single_body(task, row)))
    server.script(set_field(None, "challenge", "hard"))
    assert items(post(server, single_body(task, row))) == {**clean, "challenge": "hard"}


def test_rules_apply_after_the_script_and_the_first_match_wins(server: OpenAIStub, task: Task) -> None:
    server.rule(http_error(400, "too big"), when=lambda call: call.rows > 2)
    server.rule(http_error(503, "busy"))
    server.script(None)
    assert post(server, pack_body(task, 3))[0] == 200
    assert post(server, pack_body(task, 3))[0] == 400
    assert post(server, pack_body(task, 2))[0] == 503
