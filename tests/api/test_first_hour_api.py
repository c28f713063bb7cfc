"""``enrich()`` as a new user first calls it: the environment as on the command line, a progress bar,
pydantic instances back."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from enrichkit import Task, enrich
from enrichkit.cache.folder import RowCache
from enrichkit.testing import GeminiStub, set_field
from helpers import topic_rows


class Note(BaseModel):
    tldr: str = Field(description="A one-line summary.")
    challenge: Literal["practice", "expert"]


NOTE = Task("Write a note on each topic.", ["topic", "description"], Note, id_field="id")


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")


@pytest.mark.usefixtures("key")
def test_base_url_reaches_the_provider(stub: GeminiStub, tmp_path: Path) -> None:
    result = enrich(topic_rows(3), NOTE, base_url=stub.url, cache_dir=tmp_path / "c", progress=False)
    assert len(stub.generate_calls) == 1 and not result.failures


@pytest.mark.usefixtures("key")
def test_the_environment_names_endpoint_model_and_cache_as_on_the_command_line(
    stub: GeminiStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENRICHKIT_BASE_URL", stub.url)
    monkeypatch.setenv("ENRICHKIT_MODEL", "gemini-from-env")
    monkeypatch.setenv("ENRICHKIT_CACHE_DIR", str(tmp_path / "env-cache"))
    result = enrich(topic_rows(3), NOTE, progress=False)
    assert [call.model for call in stub.generate_calls] == ["gemini-from-env"]
    assert set(result.stats.by_model) == {"gemini-from-env"}
    cache = RowCache(tmp_path / "env-cache")
    assert len(cache) == 3
    cache.close()
    enrich(topic_rows(3), NOTE, model="gemini-given", progress=False, use_cache=False)  # an argument wins
    assert stub.generate_calls[-1].model == "gemini-given"


@pytest.mark.usefixtures("key")
def test_a_progress_bar_by_default_and_none_with_progress_false(
    stub: GeminiStub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enrich(topic_rows(4), NOTE, base_url=stub.url, use_cache=False)
    assert "4/4" in capsys.readouterr().err
    enrich(topic_rows(4), NOTE, base_url=stub.url, use_cache=False, progress=False)
    assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("key")
def test_models_are_instances_of_the_output_model_and_none_for_failed_rows(stub: GeminiStub) -> None:
    stub.rule(set_field(lambda rec: rec["topic"] == "Topic number 1", "challenge", "hard"))
    result = enrich(topic_rows(3), NOTE, base_url=stub.url, use_cache=False, progress=False)
    first, failed, last = result.models
    assert isinstance(first, Note) and isinstance(last, Note) and failed is None
    assert first.tldr == result.rows[0]["tldr"] and first.challenge in ("practice", "expert")


@pytest.mark.usefixtures("key")
def test_models_need_a_pydantic_task(stub: GeminiStub, task: Task) -> None:
    result = enrich(topic_rows(1), task, base_url=stub.url, use_cache=False, progress=False)
    with pytest.raises(TypeError, match="pydantic model"):
        result.models  # noqa: B018
