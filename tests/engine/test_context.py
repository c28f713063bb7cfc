"""A run's set-up (``RunContext.open``): the cache is opened in a thread while the provider is chosen; what
either step refuses is said as it would be alone, and nothing opened is left open."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from enrichkit.engine.context import RunContext
from enrichkit.errors import EnrichkitError, UserError
from enrichkit.options import RunOptions
from enrichkit.task.task import Task
from enrichkit.testing import FunctionProvider
from helpers import ROOT

TASK = Task.from_file(ROOT / "schemas" / "roadmap-topic.json")


def opening_threads() -> list[threading.Thread]:
    """The threads that opened a cache and are still alive a moment later (they end with their work)."""
    for thread in (running := [t for t in threading.enumerate() if t.name.startswith("enrichkit-open")]):
        thread.join(timeout=10)
    return [t for t in running if t.is_alive()]


def test_a_provider_that_cannot_be_chosen_is_the_error_and_the_cache_opened_meanwhile_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(UserError, match="no Gemini API key"):
        RunContext.open(TASK, RunOptions(provider="gemini", cache_dir=tmp_path / "c"))
    assert not opening_threads()
    context = RunContext.open(TASK, RunOptions(provider=FunctionProvider(lambda r: "{}"), cache_dir=tmp_path / "c"))
    assert context.cache is not None  # the folder opens again
    context.cache.close()


def test_a_cache_that_cannot_be_opened_is_said_once_the_provider_is_chosen(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with pytest.raises(EnrichkitError, match="a-file"):
        RunContext.open(TASK, RunOptions(provider=FunctionProvider(lambda r: "{}"), cache_dir=blocked))
    assert not opening_threads()
