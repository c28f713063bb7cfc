"""What a Gemini request carries, through the real google-genai client against the Gemini stub."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import certifi
import pytest
from google import genai

from enrichkit import Task, enrich
from enrichkit.providers.gemini import make_client
from enrichkit.testing import GeminiStub
from helpers import FAST_RETRY, topic_rows


def test_a_pack_asks_for_json_of_the_schema_gemini_takes_at_temperature_0_without_thinking(
    stub: GeminiStub, client: genai.Client, task: Task, cache_dir: Path
) -> None:
    enrich(topic_rows(20), task, client=client, cache_dir=cache_dir, retry=FAST_RETRY, progress=False)
    [call] = stub.generate_calls
    config = call.body["generationConfig"]
    assert config["temperature"] == 0 and config["responseMimeType"] == "application/json"
    assert config["thinkingConfig"] == {"thinking_level": "MINIMAL"}
    assert config["responseJsonSchema"]["items"]["properties"]["id"]["enum"] == [f"r{i}" for i in range(1, 21)]
    assert "maxWords" not in str(config["responseJsonSchema"])  # not Gemini's: stated in the system instruction
    assert "at most 12 words" in call.system


def test_a_client_loads_the_ca_bundle_once_for_all_its_transports(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[object] = []
    load = ssl.SSLContext.load_verify_locations

    def counted(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loads.append(self)
        load(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    make_client(api_key="k", base_url="https://example.invalid")
    assert len(loads) == 1  # the SDK alone loads it twice: for its HTTP clients, and for a websocket
