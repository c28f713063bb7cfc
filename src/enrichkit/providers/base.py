"""The provider seam: the one small interface the engine talks to.

A provider turns a ``Request`` (system text, user text, answer schema) into a ``Reply`` (raw text,
how generation finished, token usage), or raises one of the ``enrichkit.errors.ProviderError``
kinds. It knows nothing of packs, ids, caching or retries; the engine knows nothing of SDKs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from enrichkit.prompt import IdStyle

Finish = Literal["stop", "max_tokens", "blocked", "other"]


@dataclass(frozen=True)
class Request:
    system: str
    prompt: str
    schema: dict[str, Any]
    max_output_tokens: int


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0


@dataclass(frozen=True)
class Reply:
    text: str | None
    finish: Finish = "stop"
    usage: Usage = field(default_factory=Usage)
    detail: str = ""


@dataclass(frozen=True)
class Capabilities:
    """What the engine may assume: how ids are pinned, how big a pack, how many calls at once, and
    whether packed answers echo their row by default (off: measured +41 % output tokens a row on the
    roadmap task, about +31 % of a run's price)."""

    id_style: IdStyle = "enum"
    echo: bool = False
    max_batch_size: int = 50
    concurrency: int = 8
    timeout: float | None = 120.0


class Provider(Protocol):
    name: str
    model: str
    capabilities: Capabilities

    def settings(self) -> dict[str, Any]:
        """Everything besides the prompt that changes answers (model, temperature, ...): part of cache keys."""
        ...

    async def generate(self, request: Request) -> Reply: ...

    async def count_tokens(self, request: Request) -> int | None:
        """The prompt tokens of ``request`` as the model counts them (free), or None if it cannot."""
        ...

    async def aclose(self) -> None: ...
