"""``RunOptions``: every option of an enrich run, in one frozen object that checks itself.

The CLI builds it from its flags, ``enrich()`` from its keyword arguments; nothing else repeats the
list. Options that pick the provider (``provider``, ``client``, ``model``, ``base_url``,
``model_path``) are resolved once per run by ``resolve_provider``.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from enrichkit.errors import UserError
from enrichkit.providers import PROVIDERS, ProviderName
from enrichkit.providers.base import Provider

Mode = Literal["live", "flex", "batch", "auto"]
MODES: tuple[Mode, ...] = ("live", "flex", "batch", "auto")
Stragglers = Literal["live", "batch", "fail"]
STRAGGLERS: tuple[Stragglers, ...] = ("live", "batch", "fail")
MAX_PACK_SIZE = 50
CHUNK_ROWS = 20_000  # rows read, looked up, enriched and written at a time
POLL_SECONDS = 30.0  # batch mode: the first wait between looks at a job
AUTO_BATCH_ROWS = 2_000  # --mode auto: a batch job from this many rows to send (100 packed requests) up
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")
MAX_MEDIA_MB = 20.0  # the default size cap of one image or document of a row


class Limiter(Protocol):
    """What the scheduler asks of a limiter: a local ``RateLimiter`` or a shared ``RedisRateLimiter``."""

    @property
    def rpm(self) -> int | None: ...

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one more request of ``tokens`` tokens fits, and count it."""
        ...

    def hold(self, seconds: float) -> None:
        """The server said wait (a 429): whoever shares this limit waits ``seconds`` before the next call."""
        ...


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try one call: transient errors get ``attempts`` tries with exponential backoff;
    rate limits wait as the server says, up to ``rate_limit_attempts`` tries; a server asking to
    wait longer than ``max_wait`` seconds stops the run (a quota is exhausted)."""

    attempts: int = 3
    rate_limit_attempts: int = 10
    backoff: float = 1.0
    max_backoff: float = 60.0
    max_wait: float = 300.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) + random.uniform(0, self.backoff))


@dataclass(frozen=True)
class Escalate:
    """The cascade: rows whose confidence is below ``below`` (0 < below <= 1) are asked again, packed, on
    ``model`` (``PROVIDER:MODEL``, a model of the run's provider, or a ``Provider``) after the main pass;
    its answer is kept and cached in place of the first."""

    model: str | Provider
    below: float = 0.8

    def __post_init__(self) -> None:
        if not 0 < self.below <= 1:
            raise UserError(f"escalate below must be in (0, 1], not {self.below:g}")


@dataclass(frozen=True)
class RunOptions:
    """How to run: which model, how rows are packed and sent, where answers are kept.

    ``provider`` is a provider name or a ready ``Provider``; ``client`` a ready ``google.genai.Client``;
    ``fallback`` models (names on the same provider) or providers for the rows the main one could not
    answer. ``pack_size`` rows travel in one call. ``mode``: ``live``, ``flex`` (a cheaper, slower
    service tier), ``batch`` (one provider batch job, half price, resumable; ``wait=False`` submits and
    returns) or ``auto``. ``cache``: a Redis URL (``redis://host:6379/0``, ``enrichkit[redis]``): a
    cache many machines share, with one rate limit and in-flight leases across them (default: the
    folder ``cache_dir``). ``audit``: the share of packed rows re-asked singly to measure agreement;
    ``adaptive``: shrink packs while their answers come back invalid. ``confidence``: add ``_confidence`` and
    ``_flags`` to the rows (None, the default: where the model gives token log-probabilities for a closed
    field, which cost nothing; True: always; False: never, and no log-probabilities are asked for);
    ``escalate``: an ``Escalate`` (the doubtful rows asked again on a stronger model); ``check_against``:
    output field -> input column holding the known answer (``{"category": "group"}`` or
    ``"category=group"``), never sent, the answers' accuracy reported. ``media_root``: the folder a media
    input's relative paths are read from (default: the input file's folder, else the working folder);
    ``max_media_mb``: the size cap of one image or document (a bigger one fails its row).
    """

    provider: ProviderName | Provider | None = None
    client: Any = None
    model: str | None = None
    base_url: str | None = None
    model_path: Path | None = None
    fallback: tuple[str | Provider, ...] = ()
    pack_size: int = 20
    concurrency: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    limiter: Limiter | None = None
    echo: bool | None = None
    timeout: float | None = None
    cache_dir: Path | None = None
    cache: str | None = None
    use_cache: bool = True
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    audit: float = 0.0
    adaptive: bool = False
    mode: Mode = "live"
    wait: bool = True
    realtime_fallback: bool | None = None
    """Batch mode: True asks every row a job failed live; None (default) only stragglers and rows left at
    ``batch_timeout``; False never pays the live price (rows left at the timeout stay in their jobs)."""
    stragglers: Stragglers = "live"
    """Batch mode: the few rows left after a round go ``live``, to another ``batch`` round, or ``fail``."""
    batch_timeout: float | None = None
    """Batch mode: seconds to wait for the jobs; then they are cancelled and the rest finishes live."""
    poll: float = POLL_SECONDS
    chunk_rows: int | None = CHUNK_ROWS
    max_cost: float | None = None
    """US$ the run may spend at most (``calls.budget``); None: no limit."""
    log: bool = True
    """Log every call (prompt, raw answer, outcome) in the cache folder (``history.calls``)."""
    confidence: bool | None = None
    escalate: Escalate | None = None
    check_against: Mapping[str, str] | str | None = None
    media_root: Path | None = None
    max_media_mb: float = MAX_MEDIA_MB

    def __post_init__(self) -> None:
        if not 1 <= self.pack_size <= MAX_PACK_SIZE:
            raise UserError(f"pack size must be between 1 and {MAX_PACK_SIZE}, not {self.pack_size}")
        check_fraction(self.audit)
        if self.mode not in MODES:
            raise UserError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if isinstance(self.provider, str) and self.provider not in PROVIDERS:
            raise UserError(f"unknown provider {self.provider!r} (choose from {', '.join(PROVIDERS)})")
        for name in ("concurrency", "rpm", "tpm", "chunk_rows"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"{name} must be at least 1, not {value}")
        if self.max_cost is not None and self.max_cost <= 0:
            raise UserError(f"max cost must be positive, not {self.max_cost}")
        if self.timeout is not None and self.timeout <= 0:
            raise UserError(f"timeout must be positive, not {self.timeout}")
        if self.cache is not None and not self.cache.startswith(REDIS_SCHEMES):
            raise UserError(f"cache must be a Redis URL ({', '.join(REDIS_SCHEMES)}...), not {self.cache!r}")
        if self.stragglers not in STRAGGLERS:
            raise UserError(f"stragglers must be one of {', '.join(STRAGGLERS)}, not {self.stragglers!r}")
        if self.batch_timeout is not None and self.batch_timeout <= 0:
            raise UserError(f"batch timeout must be positive, not {self.batch_timeout}")
        if self.mode == "batch" and not self.use_cache:
            raise UserError("--mode batch keeps its jobs and answers in the cache: drop --no-cache")
        object.__setattr__(self, "fallback", tuple(self.fallback))
        if isinstance(self.check_against, str):
            object.__setattr__(self, "check_against", known_pairs(self.check_against))
        if self.escalate is not None and self.confidence is False:
            raise UserError("escalation picks rows by their confidence: drop --no-confidence")
        if self.max_media_mb <= 0:
            raise UserError(f"max media MB must be positive, not {self.max_media_mb:g}")
        for name in ("cache_dir", "model_path", "media_root"):
            if isinstance(getattr(self, name), str):
                object.__setattr__(self, name, Path(getattr(self, name)))

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> RunOptions:
        """From keyword arguments (``enrich(**options)``); an unknown name is a one-line error."""
        given = dict(options)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise UserError(f"unknown option {unknown[0]!r} (options: {', '.join(sorted(known))})")
        return cls(**given)

    def replace(self, **changes: Any) -> RunOptions:
        return dataclasses.replace(self, **changes)


def known_pairs(text: str) -> dict[str, str]:
    """``category=group,size=n`` as ``{"category": "group", "size": "n"}`` (output field = input column)."""
    pairs: dict[str, str] = {}
    for part in text.split(","):
        name, eq, column = (p.strip() for p in part.partition("="))
        if not eq or not name or not column:
            raise UserError(f"check against {part.strip()!r}: write FIELD=COLUMN (e.g. category=group)")
        pairs[name] = column
    return pairs


def check_fraction(fraction: float) -> None:
    if not 0 <= fraction <= 1:
        raise UserError(f"audit fraction must be between 0 and 1, not {fraction:g}")
