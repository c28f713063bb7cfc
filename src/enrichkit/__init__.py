"""enrichkit: enrich rows of data with columns written by an LLM, cached per row and packed per call."""

from enrichkit.api import adry_run, aenrich, aenrich_chunks, dry_run, enrich
from enrichkit.engine.dry_run import DryRun
from enrichkit.errors import EnrichkitError, FatalProviderError, UserError
from enrichkit.options import RetryPolicy, RunOptions
from enrichkit.result import EnrichResult, Failure, Stats
from enrichkit.task import Task

__all__ = [
    "DryRun",
    "EnrichResult",
    "EnrichkitError",
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
