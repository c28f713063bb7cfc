"""What a failed call means for the run, by the same rules for every provider.

The evidence decides: the HTTP status, the provider's error code, the quota it names. Wording decides
only where providers send nothing better (a prompt over the context length; see ``too_long``). Every
message carries the provider's own first line, with secrets redacted.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

import httpx2

from enrichkit.errors import (
    FatalProviderError,
    PromptTooLong,
    ProviderError,
    RateLimited,
    RequestRejected,
    TransientError,
    Unreachable,
)
from enrichkit.providers.redact import redact

MESSAGE_CHARS = 200
TOO_LONG_CODES = frozenset({"context_length_exceeded", "exceed_context_size_error"})
INVALID_ANSWER_CODES = frozenset({"json_validate_failed"})  # the provider refused the model's answer
_LOGPROBS = re.compile(r"logprob|log[ _-]?probabilit", re.I)
_TOO_LONG = re.compile(
    r"context[ _-]?(?:length|window|size)|too long|too many tokens|\btokens?\b.*\bexceed|\bexceed.*\btokens?\b", re.I
)


def first_line(text: str) -> str:
    """The first line of ``text``, redacted, at most ``MESSAGE_CHARS`` long."""
    lines = redact(text).strip().splitlines()
    return lines[0][:MESSAGE_CHARS] if lines else ""


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date); None if absent."""
    if (millis := headers.get("retry-after-ms")) is not None:
        with contextlib.suppress(ValueError):
            return max(0.0, float(millis) / 1000)
    after = headers.get("retry-after")
    if after is None:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(after))
    with contextlib.suppress(TypeError, ValueError):
        return max(0.0, parsedate_to_datetime(after).timestamp() - time.time())
    return None


class LogprobsRefused(RequestRejected):
    """The model gives no token log-probabilities and the request asked for them (Gemini's ``400
    INVALID_ARGUMENT "Logprobs is not enabled for models/..."``, OpenAI's reasoning models): never a
    failure of the pack, the provider asks again without them and remembers the model."""


def refuses_logprobs(message: str) -> bool:
    """Whether an error's message refuses the request for token log-probabilities (every wording seen
    names them: "Logprobs is not enabled for models/...", "Logprobs is not supported for this model",
    "Unsupported parameter: 'logprobs' ...")."""
    return _LOGPROBS.search(message) is not None


def too_long(message: str) -> bool:
    """Whether a 400's message says the prompt exceeds the model's context."""
    return _TOO_LONG.search(message) is not None


def by_status(
    status: int,
    message: str,
    *,
    provider: str,
    model: str,
    code: str = "",
    retry_after: float | None = None,
    exhausted: str = "",
    bad_key: bool = False,
) -> ProviderError:
    """The error kind of an HTTP error answer.

    401/403 (or ``bad_key``) and 404 stop the run; 429 is a rate limit, unless ``exhausted`` names the
    used-up quota (per day, per month), which stops the run; 413, and 400/422 over the context length,
    split the pack; 408/409/5xx may pass; a 400/422 about log-probabilities is ``LogprobsRefused``; any
    other 4xx refuses this one request.
    """
    said = f"{status} {code}".strip() + (f": {line}" if (line := first_line(message)) else "")
    if bad_key or status in (401, 403):
        return FatalProviderError(f"{provider} refused the API key ({said})")
    if status == 404:
        return FatalProviderError(f"{provider} does not know model {model!r} ({said})")
    if status == 429 and exhausted:
        return FatalProviderError(f"{provider} quota exhausted: {redact(exhausted)} ({said})")
    if status == 429:
        return RateLimited(f"{provider} rate limited ({said})", retry_after)
    if status == 413 or (status in (400, 422) and (code in TOO_LONG_CODES or too_long(message))):
        return PromptTooLong(f"prompt too long for {model} ({said})")
    if status in (408, 409) or status >= 500 or status < 400:
        return TransientError(f"{provider} error ({said})")
    if status in (400, 422) and refuses_logprobs(message):
        return LogprobsRefused(f"{model} gives no log-probabilities ({said})")
    if code in INVALID_ANSWER_CODES:
        return RequestRejected(f"{provider} refused the model's answer ({said})", invalid_answer=True)
    return RequestRejected(f"{provider} rejected the request ({said})")


def transport(exc: BaseException, provider: str, url: str) -> ProviderError:
    """The error kind of a call that got no HTTP answer: a URL without http(s) is fatal, no connection
    is ``Unreachable``, a timeout or a broken connection may pass."""
    said = first_line(str(exc)) or type(exc).__name__
    at = f" at {redact(url)}" if url else ""
    if isinstance(exc, httpx2.UnsupportedProtocol | httpx2.InvalidURL):
        return FatalProviderError(f"cannot call {provider}{at}: a base URL needs http:// or https:// ({said})")
    if isinstance(exc, httpx2.ConnectError):
        return Unreachable(f"cannot connect to {provider}{at} ({said})")
    if isinstance(exc, httpx2.TimeoutException | TimeoutError):
        return TransientError(f"{provider} did not answer in time ({type(exc).__name__})")
    return TransientError(f"connection to {provider} failed ({type(exc).__name__}: {said})")


def malformed(exc: BaseException, provider: str) -> TransientError:
    """A 200 answer the SDK could not read."""
    return TransientError(f"{provider} sent a malformed response ({type(exc).__name__}: {first_line(str(exc))})")
