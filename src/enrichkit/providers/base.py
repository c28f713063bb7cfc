"""The provider seam: the one small interface the engine talks to, and what a provider declares it can do.

A provider turns a ``Request`` (system text, user text, answer schema, deadline) into a ``Reply`` (raw
text, how generation finished, token usage), or raises one of the ``enrichkit.errors.ProviderError``
kinds. It knows nothing of packs, ids, caching or retries; the engine knows nothing of SDKs. What a
provider can do beyond that (other models, service tiers, a batch API) it says itself, so the engine
never asks which class it is.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any, Literal, Protocol, overload

Finish = Literal["stop", "max_tokens", "blocked", "other"]
JobState = Literal["pending", "running", "succeeded", "failed", "cancelled", "expired", "unknown"]


@dataclass(frozen=True)
class Media:
    """An image or a document a request carries: where it stands in the prompt (``at``: after that many of
    its characters), its MIME type (sniffed from its bytes), its bytes (empty in a request made only to be
    counted: the dry run, a budget's estimate), the prompt tokens the provider counts it as, and the sha256
    of its bytes (what a provider that uploads media keys its uploads by)."""

    at: int
    mime: str
    data: bytes
    tokens: int = 0
    sha256: str = ""


@dataclass(frozen=True)
class Request:
    system: str
    prompt: str
    schema: dict[str, Any]
    max_output_tokens: int
    timeout: float | None = None
    """Seconds the call may take; the SDK's timeout is set from it (None: the client's own, which the
    clients enrichkit makes leave unset)."""
    logprobs: bool = False
    """Ask for the log-probability of each answer token (``Reply.tokens``); a provider that cannot give
    them ignores it."""
    media: tuple[Media, ...] = ()
    """The images and documents of the prompt, in order (``Media.at``); each provider sends them as its
    wire's parts (``parts``)."""

    def parts(self) -> list[str | Media]:
        """The prompt as the user message's parts, in order: its text cut where each media stands."""
        out: list[str | Media] = []
        start = 0
        for media in self.media:
            if media.at > start:
                out.append(self.prompt[start : media.at])
            out.append(media)
            start = max(start, media.at)
        if start < len(self.prompt) or not out:
            out.append(self.prompt[start:])
        return out

    @property
    def media_tokens(self) -> int:
        """The prompt tokens its media are counted as."""
        return sum(m.tokens for m in self.media)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0


ALTERNATIVES = 5
"""How many of the most likely tokens a provider asks for at each answer token (``Token.top``): enough for
a closed field's rival values (measured on the embedded model, ``benchmarks/confidence.py``: 5 ranks as
well as 20)."""


@dataclass(frozen=True, slots=True)
class Token:
    """One answer token as generated: its text, the natural log of the probability the model gave it, and
    the model's most likely tokens at that step (text, log-probability; the chosen one usually among
    them) where the provider gave them, else empty."""

    text: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


Top = tuple[tuple[str, float], ...]


class Tokens(Sequence[Token]):
    """An answer's tokens as a provider read them off its wire: their texts and log-probabilities as lists,
    and each token's alternatives read from the provider's own entry only when that token is looked at
    (``top``: the alternatives are most of a reply with log-probabilities, and a confidence reads those of
    a few tokens, its closed values'). A ``Token`` is made for an item looked at, not for the others."""

    __slots__ = ("_starts", "_top", "logprobs", "texts")

    def __init__(self, texts: list[str], logprobs: list[float], top: Callable[[int], Top] | None = None) -> None:
        self.texts = texts
        self.logprobs = logprobs
        self._top = top
        self._starts: list[int] | None = None

    @classmethod
    def of(cls, tokens: Sequence[Token]) -> Tokens:
        """``tokens`` as ``Tokens`` (themselves if they are)."""
        if isinstance(tokens, Tokens):
            return tokens
        made = tuple(tokens)
        return cls([t.text for t in made], [t.logprob for t in made], lambda index: made[index].top)

    @property
    def starts(self) -> list[int]:
        """Where each token starts in the joined text, and (last) the text's length."""
        if self._starts is None:
            self._starts = list(accumulate(map(len, self.texts), initial=0))
        return self._starts

    def top(self, index: int) -> Top:
        """The alternatives of the token at ``index`` (0 <= index < len), empty where none were given."""
        return self._top(index) if self._top is not None else ()

    def cut(self, start: int, end: int) -> Tokens:
        """The tokens over ``[start, end)`` of their joined text; a token across an edge is cut to it and keeps
        its log-probability (not its alternatives: they were for its whole text)."""
        starts, count = self.starts, len(self.texts)
        first, stop = bisect_left(starts, start, 0, count), bisect_right(starts, end, 0, count)
        if first > 0 and starts[first] > start and start < end:  # the token across the start
            first -= 1
        while stop > first and starts[stop - 1] == end and starts[stop] > end:  # starts at the end: not over it
            stop -= 1
        kept = range(first, stop)
        texts, logprobs = self.texts[first:stop], self.logprobs[first:stop]
        whole = [True] * len(kept)
        for n in {0, len(kept) - 1} if kept else ():
            at = kept[n]
            piece = self.texts[at][max(starts[at], start) - starts[at] : min(starts[at + 1], end) - starts[at]]
            if piece != self.texts[at]:
                texts[n], whole[n] = piece, False
        return Tokens(texts, logprobs, lambda n: self.top(kept[n]) if whole[n] else ())

    def __len__(self) -> int:
        return len(self.texts)

    @overload
    def __getitem__(self, index: int) -> Token: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Token, ...]: ...

    def __getitem__(self, index: int | slice) -> Token | tuple[Token, ...]:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        if index < 0:
            index += len(self)
        return Token(self.texts[index], self.logprobs[index], self.top(index))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and not isinstance(other, str) and tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Tokens({tuple(self)!r})"


@dataclass(frozen=True)
class Reply:
    text: str | None
    finish: Finish = "stop"
    usage: Usage = field(default_factory=Usage)
    detail: str = ""
    tokens: Sequence[Token] | None = None
    """The answer's tokens with their log-probabilities, in order, when asked for and given (their texts
    joined are ``text``, or the text the provider's answer was unwrapped from); None otherwise."""


@dataclass(frozen=True)
class Capabilities:
    """What the engine may assume: how ids are pinned, how big a pack, how many calls at once, the
    default call deadline, which service tiers the provider can send on, and whether the model reads the
    answer schema (``reads_schema``: a response schema or a tool's input schema is shown to it, so fields
    are described there alone; False for a schema that only constrains decoding, a local grammar)."""

    id_style: IdStyle = "enum"
    max_pack_size: int = 50
    concurrency: int = 8
    fixed_concurrency: bool = False
    """``concurrency`` is all the provider can do at once (a local model's slots): the engine does not raise
    it while calls go well, as it does for a remote API's."""
    timeout: float | None = 120.0
    service_tiers: frozenset[str] = frozenset()
    reads_schema: bool = True
    logprobs: bool = False
    """The provider can return token log-probabilities (``Request.logprobs``) for its model, as far as it
    knows before asking (a model may still refuse them)."""
    media: MediaLimits | None = None
    """What the provider takes of images and documents in one request (None: it sees text only)."""
    own_words: bool = False
    """Free text that nearly copies its row where the task asks for a summary is an invalid answer, asked
    again once with that reason (``engine.own_words``; no provider turns it on by default: measured on the
    local model, most repairs copied again)."""


MediaAccounting = Literal["gemini", "gemini3", "openai", "anthropic"]


def base64_size(n: int) -> int:
    """The bytes ``n`` bytes take base64-encoded, as media travel in a request."""
    return 4 * ((n + 2) // 3)


@dataclass(frozen=True)
class MediaLimits:
    """A provider's limits on the images and documents of one request: its size in bytes (media travel
    base64-encoded, 4 bytes for 3), how many it may carry, and whose token accounting prices them
    (``providers.media_cost``); and on one media, checked before it is sent (0: no such limit)."""

    request_bytes: int
    items: int
    accounting: MediaAccounting
    file_above: int = 0
    """Media bigger than this (bytes as read) go as uploaded files referenced by their URI, and take a
    request's room by their tokens alone; so does any media a lone row's request cannot hold inline
    (0: every media travels inline)."""
    file_bytes: int = 0
    """The biggest media that may go as an uploaded file."""
    image_bytes: int = 0
    """The biggest image, base64-encoded."""
    image_side: int = 0
    """The longest side of an image, in pixels."""
    crowded: tuple[int, int] = (0, 0)
    """(images, side): a request with more than that many images takes none with a side longer than that."""
    pages: int = 0
    """The PDF pages one request may carry in all."""


@dataclass(frozen=True)
class JobStatus:
    name: str
    state: JobState
    display_name: str = ""
    requests: int | None = None
    """The job's requests, and how many are answered and failed so far, where the provider says (else None)."""
    answered: int | None = None
    failed: int | None = None

    @property
    def done(self) -> bool:
        return self.state not in ("pending", "running", "unknown")


class BatchBackend(Protocol):
    """A provider's batch API: one job holds many keyed requests; results are joined on the keys."""

    @property
    def model(self) -> str: ...

    def split(self, requests: Sequence[tuple[str, Request]]) -> list[Sequence[tuple[str, Request]]]:
        """``requests`` in groups that each fit one job of this provider (its request and size limits), each a
        slice of ``requests``."""
        ...

    async def submit(self, requests: Sequence[tuple[str, Request]], display_name: str) -> str:
        """Create ONE job holding ``requests`` (key, request, a group ``split`` made); the job's name.

        Each request may be made as it is read (its media's bytes read then): a backend reads them in order
        and keeps none it has written, so a job's media are held one request at a time."""
        ...

    async def find(self, display_name: str) -> str | None:
        """The name of the job created under ``display_name`` (for a run killed before it saved the name)."""
        ...

    async def status(self, name: str) -> JobStatus: ...

    async def results(self, name: str) -> dict[str, Reply | str]:
        """Per request key: the reply, or why that request failed."""
        ...

    async def cancel(self, name: str) -> None: ...


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

    def with_model(self, model: str) -> Provider:
        """The same provider (client, settings) on another model, e.g. for a fallback; it does not own the client."""
        ...

    def on_tier(self, tier: str) -> Provider:
        """The same model on a service tier from ``capabilities.service_tiers`` (not part of cache keys)."""
        ...

    def batches(self) -> BatchBackend | None:
        """This provider's batch API, or None if it has none."""
        ...

    async def aclose(self) -> None: ...


IdStyle = Literal["enum", "prefix"]


def estimate_tokens(text: str) -> int:
    """A provider-neutral token estimate (about four characters a token)."""
    return len(text) // 4 + 1
