"""enrichkit: enrich rows of data with columns written by an LLM, cached per row and packed per call."""

from enrichkit.api import aenrich, aenrich_chunks, enrich, plan
from enrichkit.engine import RetryPolicy
from enrichkit.errors import EnrichkitError, FatalProviderError, UserError
from enrichkit.result import EnrichResult, Failure, Stats
from enrichkit.task import Task

__all__ = [
    "EnrichResult",
    "EnrichkitError",
    "Failure",
    "FatalProviderError",
    "RetryPolicy",
    "Stats",
    "Task",
    "UserError",
    "aenrich",
    "aenrich_chunks",
    "enrich",
    "plan",
]
