"""What the OpenAI and Anthropic batch backends share: request ids that say how to read their answer,
and jobs cut to a provider's limits.

A pack's array schema travels wrapped as ``{"items": [...]}`` (``chat.wraps``); a single row's object
schema as is. The result file gives back only the request's id, so a wrapped request's id is its key
plus ``-items``: the answer is unwrapped exactly when it was wrapped (never guessed from its shape).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from enrichkit.providers.base import Request
from enrichkit.providers.chat import wraps
from enrichkit.providers.classify import first_line

WRAPPED = "-items"
Keyed = Sequence[tuple[str, Request]]


def request_id(key: str, request: Request) -> str:
    """The id a request travels under in a job: its key, marked when its answer comes wrapped."""
    return key + WRAPPED if wraps(request.schema) else key


def key_of(custom_id: str) -> tuple[str, bool]:
    """The key a request id stands for, and whether its answer comes wrapped."""
    if custom_id.endswith(WRAPPED):
        return custom_id.removesuffix(WRAPPED), True
    return custom_id, False


def fit(requests: Keyed, size: Callable[[str, Request], int], max_requests: int, max_bytes: int) -> list[Keyed]:
    """``requests`` in order, in slices of at most ``max_requests`` and ``max_bytes`` (by ``size``; no request is
    kept once sized)."""
    groups: list[Keyed] = []
    start = used = 0
    for at, (key, request) in enumerate(requests):
        n = size(key, request)
        if at > start and (at - start >= max_requests or used + n > max_bytes):
            groups.append(requests[start:at])
            start, used = at, 0
        used += n
    if len(requests) > start:
        groups.append(requests[start:])
    return groups


@contextlib.contextmanager
def spooled(lines: Iterable[str]) -> Iterator[Path]:
    """A temporary file of ``lines`` (each ended by a newline), written one by one: a job's requests, each with
    its media, held one at a time rather than all at once; removed on exit."""
    with tempfile.TemporaryDirectory(prefix="enrichkit-job-") as folder:
        path = Path(folder) / "requests.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for line in lines:
                out.write(line + "\n")
        yield path


def request_failed(said: str) -> str:
    """Why one request of a job failed, in the service's own (redacted) words."""
    return f"batch request failed: {first_line(said) or 'no response'}"
