"""A run set up once: its provider and fallbacks, pack size, cross-wiring checks, cache key and cache.

``enrich``, the dry run, ``--show-prompt``, the sweep of a cached re-run, batch mode and ``enrichkit jobs``
all start from one ``RunContext``, so each computes the same cache keys and packs the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from enrichkit.cache.base import Cache
from enrichkit.cache.journal import Journal
from enrichkit.cache.open import open_cache
from enrichkit.calls.limits import open_limiter
from enrichkit.engine.cache_io import CacheIO, fits_task
from enrichkit.engine.codec import PackCodec
from enrichkit.engine.crosswire import carries_words, text_fields
from enrichkit.engine.prompt import PROMPT_VERSION
from enrichkit.options import Limiter, RunOptions
from enrichkit.providers import PROVIDERS, Choice, choose_provider, resolve_provider
from enrichkit.providers.base import Provider
from enrichkit.rows.keys import fingerprint
from enrichkit.task.task import Task


@dataclass
class RunContext:
    """What every part of a run shares. ``fingerprint`` is what every cache key of the run holds besides
    the row's inputs; ``echo`` and ``affinity`` are the cross-wiring checks of packed answers
    (``crosswire_checks``). Fallback models, the limiter and the cache's thread are made on first use;
    ``aclose`` closes what the context made."""

    task: Task
    options: RunOptions
    provider: Provider
    why: str
    pack_size: int
    echo: bool
    affinity: bool
    fingerprint: str
    cache: Cache | None
    _fallbacks: list[Provider] | None = field(default=None, init=False, repr=False)
    _limiter: Limiter | None = field(default=None, init=False, repr=False)
    _io: CacheIO | None = field(default=None, init=False, repr=False)
    journal: Journal | None = field(default=None, init=False)  # where answers the cache cannot take go
    closed: bool = field(default=False, init=False)

    @classmethod
    def open(cls, task: Task, options: RunOptions) -> RunContext:
        """The run of ``task`` that ``options`` describe (its provider: ``choose``)."""
        choice = choose(options)
        provider = choice.provider
        size = min(options.pack_size, provider.capabilities.max_pack_size)
        echo, affinity = crosswire_checks(task, options.echo, size)
        keyprint = run_fingerprint(task, provider, echo)
        return cls(task, options, provider, choice.why, size, echo, affinity, keyprint, open_cache(options))

    @property
    def models(self) -> list[Provider]:
        """The main model, then each fallback model."""
        if self._fallbacks is None:
            self._fallbacks = [fallback_provider(self.provider, choice) for choice in self.options.fallback]
        return [self.provider, *self._fallbacks]

    @property
    def limiter(self) -> Limiter:
        if self._limiter is None:
            self._limiter = open_limiter(self.options, self.provider)
        return self._limiter

    @property
    def io(self) -> CacheIO | None:
        """The cache, called from the event loop (None without one)."""
        if self._io is None and self.cache is not None:
            self._io = CacheIO(self.cache, fits_task(self.task), self.journal)
        return self._io

    def codec(self, provider: Provider | None = None) -> PackCodec:
        """The run's pack codec, with the call deadline of ``provider`` (default the main one)."""
        provider = provider or self.provider
        return PackCodec(
            self.task,
            id_style=provider.capabilities.id_style,
            echo=self.echo,
            affinity=self.affinity,
            timeout=self.options.timeout or provider.capabilities.timeout,
            reads_schema=provider.capabilities.reads_schema,
            own_words=provider.capabilities.own_words,
        )

    async def aclose(self) -> None:
        self.closed = True
        for model in [self.provider, *(self._fallbacks or [])]:
            await model.aclose()
        if self._io is not None:
            self._io.close()
        if self.cache is not None:
            self.cache.close()


def choose(options: RunOptions) -> Choice:
    """The provider ``options`` name; ``model`` and ``base_url`` default to the environment's ``ENRICHKIT_MODEL``
    and ``ENRICHKIT_BASE_URL``, as on the command line."""
    return resolve_provider(
        options.provider,
        client=options.client,
        model=options.model or os.environ.get("ENRICHKIT_MODEL") or None,
        base_url=options.base_url or os.environ.get("ENRICHKIT_BASE_URL") or None,
        model_path=options.model_path,
        slots=options.concurrency,
    )


def run_fingerprint(task: Task, provider: Provider, echo: bool = False) -> str:
    """What every cache key of a run shares: task, prompt format, provider and model settings."""
    prompt = {"version": PROMPT_VERSION, "echo": echo}
    return fingerprint({"task": task.fingerprint(), "prompt": prompt, "provider": provider.name, **provider.settings()})


def crosswire_checks(task: Task, echo: bool | None, pack_size: int) -> tuple[bool, bool]:
    """Whether packed answers echo their row, and whether their free text is checked against their row
    (``engine.crosswire``, free). By default the free check where the task has free text, plus the echo
    where that text is too short to carry its row's words (or there is none); ``echo=True`` adds the
    echo, ``echo=False`` turns both off. Single rows need neither."""
    text = bool(text_fields(task.schema))
    if echo is None:
        return pack_size > 1 and not carries_words(task.schema), text
    return echo, echo and text


def fallback_provider(primary: Provider, choice: str | Provider) -> Provider:
    """A fallback: ``MODEL`` on the primary's provider, ``PROVIDER:MODEL`` on another provider (its key and
    endpoint from the environment, as the SDKs read them), or a provider as given."""
    if not isinstance(choice, str):
        return choice
    name, colon, model = choice.partition(":")
    if not colon or name not in PROVIDERS:  # a model name may hold a colon itself (llama3:8b)
        return primary.with_model(choice)
    if name == primary.name:
        return primary.with_model(model)
    return choose_provider(name, model=model).provider
