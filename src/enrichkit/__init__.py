"""enrichkit: enrich rows of data with columns written by an LLM, cached per row and packed per call."""

from enrichkit.api import aenrich, aenrich_chunks, enrich
from enrichkit.engine.dry_run import Plan, adry_run, dry_run
from enrichkit.errors import EnrichkitError, FatalProviderError, UserError
from enrichkit.options import RetryPolicy, RunOptions
from enrichkit.result import EnrichResult, Failure, Stats
from enrichkit.task.task import Task

plan = dry_run  # the old name of dry_run (deprecated)

__all__ = [
    "EnrichResult",
    "EnrichkitError",
    "Failure",
    "FatalProviderError",
    "Plan",
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
    "plan",
]
