"""enrichkit: enrich rows of data with columns written by an LLM, cached per row and packed per call.

The names below are loaded on first use, so ``import enrichkit`` (and the command line, which starts
from it) stays quick.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from enrichkit.api import adry_run, aenrich, aenrich_chunks, dry_run, enrich
    from enrichkit.engine.dry_run import DryRun
    from enrichkit.errors import EnrichkitError, FatalProviderError, UserError
    from enrichkit.options import Escalate, RetryPolicy, RunOptions
    from enrichkit.result import EnrichResult, Failure, Stats
    from enrichkit.task.task import Task

_HOMES = {
    "DryRun": "enrichkit.engine.dry_run",
    "EnrichResult": "enrichkit.result",
    "EnrichkitError": "enrichkit.errors",
    "Escalate": "enrichkit.options",
    "Failure": "enrichkit.result",
    "FatalProviderError": "enrichkit.errors",
    "RetryPolicy": "enrichkit.options",
    "RunOptions": "enrichkit.options",
    "Stats": "enrichkit.result",
    "Task": "enrichkit.task.task",
    "UserError": "enrichkit.errors",
    "adry_run": "enrichkit.api",
    "aenrich": "enrichkit.api",
    "aenrich_chunks": "enrichkit.api",
    "dry_run": "enrichkit.api",
    "enrich": "enrichkit.api",
}
__all__ = [
    "DryRun",
    "EnrichResult",
    "EnrichkitError",
    "Escalate",
    "Failure",
    "FatalProviderError",
    "RetryPolicy",
    "RunOptions",
    "Stats",
    "Task",
    "UserError",
    "adry_run",
    "aenrich",
    "aenrich_chunks",
    "dry_run",
    "enrich",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'enrichkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
