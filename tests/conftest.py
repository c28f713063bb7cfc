"""Shared fixtures: a real Gemini stub server, a real google-genai client on it, a real cache dir."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from google import genai

from enrichkit import Task
from enrichkit.providers.gemini import make_client
from enrichkit.testing import GeminiStub
from helpers import ROOT
from redisd import redis_server

# httpx2 honours proxy variables; the stub is local.
os.environ["NO_PROXY"] = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL", "ENRICHKIT_CACHE_DIR", "ENRICHKIT_MODEL"):
    os.environ.pop(name, None)


@pytest.fixture(autouse=True, scope="session")
def enrichkit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The per-user folder (local models) of every test and of the CLI processes they start: a temp dir."""
    home = tmp_path_factory.mktemp("enrichkit-home")
    os.environ["ENRICHKIT_HOME"] = str(home)
    return home


@pytest.fixture
def stub() -> Iterator[GeminiStub]:
    with GeminiStub() as server:
        yield server


@pytest.fixture
def client(stub: GeminiStub) -> genai.Client:
    return make_client(api_key="test-key", base_url=stub.url)


@pytest.fixture
def task() -> Task:
    return Task.from_file(ROOT / "schemas" / "roadmap-topic.json")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server of the test's own (``redisd``)."""
    with redis_server(tmp_path) as url:
        yield url
