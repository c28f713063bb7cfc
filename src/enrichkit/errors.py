"""Every error enrichkit raises, by kind: the user's mistakes, what a provider answered, and the disk."""

from __future__ import annotations


class EnrichkitError(Exception):
    """Base class of enrichkit's errors; ``str()`` is one line meant for the user."""


class UserError(EnrichkitError):
    """Bad input, task or configuration: nothing was written, nothing was spent."""


class StorageError(EnrichkitError):
    """The cache or the output cannot be read or written (damaged, read-only, full): stop the run."""


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


class RequestRejected(ProviderError):
    """The provider refused this one request (an undocumented 400, a JSON-validation failure): a failure
    of the pack, which goes down the ladder; only the same refusal on several single rows stops the run.
    ``invalid_answer``: the provider refused the model's answer, not the request (Groq's
    ``json_validate_failed``): the row is asked again like any invalid answer and never stops the run."""

    def __init__(self, message: str, invalid_answer: bool = False) -> None:
        super().__init__(message)
        self.invalid_answer = invalid_answer


def os_cause(exc: OSError) -> str:
    """What went wrong in a few words: ``no space left on device``, ``read-only file system``..."""
    return (exc.strerror or str(exc)).lower()
