"""Every error enrichkit raises, by kind: the user's mistakes, and what a provider answered."""

from __future__ import annotations


class EnrichkitError(Exception):
    """Base class of enrichkit's errors; ``str()`` is one line meant for the user."""


class UserError(EnrichkitError):
    """Bad input, task or configuration: nothing was written, nothing was spent."""


class ProviderError(EnrichkitError):
    """A call to a model failed; subclasses say how the engine should react."""


class FatalProviderError(ProviderError):
    """Retrying cannot help (bad key, unknown model, exhausted quota, unreachable server): stop the run."""


class RateLimited(ProviderError):
    """The provider asked us to slow down; ``retry_after`` is its hint in seconds, when it gave one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TransientError(ProviderError):
    """A server error or timeout that may pass: retry with backoff, then split the pack."""


class Unreachable(TransientError):
    """No connection to the provider: retry with backoff, then stop the run."""


class PromptTooLong(ProviderError):
    """The request is too large for the model: split the pack."""
