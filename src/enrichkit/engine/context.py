"""A run set up once: its provider and fallbacks, pack size, cross-wiring checks, cache key and cache.

``enrich``, the dry run, ``--show-prompt``, the sweep of a cached re-run, batch mode and ``enrichkit jobs``
all start from one ``RunContext``, so each computes the same cache keys and packs the same way.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from enrichkit.cache.base import Cache
from enrichkit.cache.folder import default_dir
from enrichkit.cache.journal import Journal
from enrichkit.cache.open import open_cache
from enrichkit.calls.limits import open_limiter
from enrichkit.engine.cache_io import CacheIO, fits_task
from enrichkit.engine.codec import PackCodec
from enrichkit.engine.confidence import closed_fields
from enrichkit.engine.crosswire import carries_words, text_fields
from enrichkit.engine.fieldkeys import FieldKeys
from enrichkit.engine.prompt import PROMPT_VERSION
from enrichkit.engine.refusals import model_name, remembered
from enrichkit.engine.reviewed import Reviewing, serving
from enrichkit.errors import UserError
from enrichkit.history.calls import CallLog
from enrichkit.history.runs import new_run_id
from enrichkit.options import Limiter, RunOptions
from enrichkit.providers import PROVIDERS, Choice, choose_provider, resolve_provider
from enrichkit.providers.base import Provider
from enrichkit.rows.keys import fingerprint
from enrichkit.rows.media import MediaReader
from enrichkit.task.groups import TIES
from enrichkit.task.task import Task


@dataclass
class RunContext:
    """What every part of a run shares. ``fingerprint`` is what every cache key of the run holds besides
    the row's inputs; ``echo`` and ``affinity`` are the cross-wiring checks of packed answers
    (``crosswire_checks``); ``keys``: the field groups each cached answer is tagged with. Fallback models,
    the limiter and the cache's thread are made on first use; ``aclose`` closes what the context made."""

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
    _escalation: Provider | None = field(default=None, init=False, repr=False)
    _refusing: set[str] | None = field(default=None, init=False, repr=False)
    journal: Journal | None = field(default=None, init=False)  # where answers the cache cannot take go
    run_id: str = field(default_factory=new_run_id, init=False)  # its line in the run history
    log: CallLog | None = field(default=None, init=False)  # the call log, while a recorded run goes on
    reviewing: Reviewing | None = field(default=None, init=False)  # reviewed values (None: the task has none)
    media: MediaReader | None = field(default=None, init=False)  # reads the rows' media (None: the task has none)
    closed: bool = field(default=False, init=False)
    keys: FieldKeys = field(init=False)  # the task's field groups, and what cached entries answer of them
    _parts: dict[tuple[int, tuple[str, ...]], PackCodec] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def open(cls, task: Task, options: RunOptions) -> RunContext:
        """The run of ``task`` that ``options`` describe (its provider: ``choose``). The cache is opened in a
        thread meanwhile: its files wait on the disk (~0.05 s of syncs) while choosing imports the provider's SDK."""
        if task.media and options.provider == "local":  # said first: installing the model would not help
            refuse_media(task, "local")
        check_known(task, options)
        opening = in_thread(open_cache, options)
        try:
            choice = choose(options)
            check_media(task, choice.provider)
        except BaseException:
            discard(opening)
            raise
        provider = choice.provider
        size = min(options.pack_size, provider.capabilities.max_pack_size)
        echo, affinity = crosswire_checks(task, options.echo, size)
        keyprint = run_fingerprint(task, provider)
        context = cls(task, options, provider, choice.why, size, echo, affinity, keyprint, opening.result())
        context.keys = FieldKeys(task, keyprint)
        context.reviewing = serving(task, options)
        if task.media:
            context.media = MediaReader(options.media_root, options.max_media_mb)
        if options.escalate is not None:
            context.check_escalation()
        return context

    @property
    def models(self) -> list[Provider]:
        """The main model, then each fallback model."""
        if self._fallbacks is None:
            self._fallbacks = [fallback_provider(self.provider, choice) for choice in self.options.fallback]
        return [self.provider, *self._fallbacks]

    @property
    def escalation(self) -> Provider | None:
        """The stronger model doubtful rows are asked again on (None: no escalation)."""
        if self._escalation is None and self.options.escalate is not None:
            self._escalation = fallback_provider(self.provider, self.options.escalate.model)
        return self._escalation

    @property
    def refusing(self) -> set[str]:
        """The models remembered in the cache folder as giving no token log-probabilities."""
        if self._refusing is None:
            self._refusing = remembered(self.options.cache_dir or default_dir())
        return self._refusing

    def asks_logprobs(self, provider: Provider) -> bool:
        """Whether requests to ``provider`` ask for token log-probabilities: the run wants confidence, the task
        has a closed field, and the model can give them as far as anyone knows."""
        return (
            self.options.confidence is not False
            and provider.capabilities.logprobs
            and bool(closed_fields(self.task.schema))
            and model_name(provider) not in self.refusing
        )

    @property
    def shows_confidence(self) -> bool:
        """Whether the rows get ``_confidence`` and ``_flags`` (``RunOptions.confidence``; an escalation shows them)."""
        confidence = self.options.confidence
        wanted = self.options.escalate is not None or self.asks_logprobs(self.provider)
        return confidence is True or (confidence is None and wanted)

    @property
    def by_agreement(self) -> bool:
        """Whether the run measures confidence by the agreement of two packings (``engine.agreement``): asked
        for confidence or escalation, the task has a closed field, and the model gives no log-probabilities."""
        wanted = self.options.confidence is True or self.options.escalate is not None
        return wanted and bool(closed_fields(self.task.schema)) and not self.asks_logprobs(self.provider)

    def without_logprobs(self) -> str:
        """Why the main model gives no confidence of its own, and what is used instead (the receipt's words)."""
        why = "is remembered as giving" if model_name(self.provider) in self.refusing else "gives"
        closed = ", ".join(closed_fields(self.task.schema))
        return (
            f"{self.provider.name} / {self.provider.model} {why} no token log-probabilities: {closed} measured"
            " by the agreement of two packings instead (one more call a pack)"
        )

    def check_escalation(self) -> None:
        """Refuse, before anything is sent, an escalation this run has no confidence to pick rows by."""
        closed = closed_fields(self.task.schema)
        free = [name for name in self.task.fields if name not in closed]
        if not closed:
            raise UserError(
                f"--escalate-below picks rows by the confidence of closed fields (enum, boolean, small integer),"
                f" and {', '.join(free)} {'is' if len(free) == 1 else 'are'} free text: no row would have one"
            )

    @property
    def limiter(self) -> Limiter:
        if self._limiter is None:
            self._limiter = open_limiter(self.options, self.provider)
        return self._limiter

    @property
    def io(self) -> CacheIO | None:
        """The cache, called from the event loop (None without one)."""
        if self._io is None and self.cache is not None:
            self._io = CacheIO(self.cache, self.keys, fits_task(self.task, self.keys), self.journal)
        return self._io

    def codec(self, provider: Provider | None = None, fields: tuple[str, ...] | None = None) -> PackCodec:
        """The run's pack codec, with the call deadline of ``provider`` (default the main one); ``fields``: the
        codec of the task asking those fields alone (with its own cross-wiring checks), made once."""
        provider = provider or self.provider
        task, echo, affinity = self.task, self.echo, self.affinity
        if fields is not None:
            if (made := self._parts.get((id(provider), fields))) is not None:
                return made
            task = self.task.subset(fields)
            echo, affinity = crosswire_checks(task, self.options.echo, self.pack_size)
        codec = PackCodec(
            task,
            id_style=provider.capabilities.id_style,
            echo=echo,
            affinity=affinity,
            timeout=self.options.timeout or provider.capabilities.timeout,
            reads_schema=provider.capabilities.reads_schema,
            logprobs=self.asks_logprobs(provider),
            own_words=provider.capabilities.own_words,
            part=(lambda part: self.codec(provider, part)) if fields is None else None,
            media=provider.capabilities.media,
            reader=self.media,
        )
        if fields is not None:
            self._parts[id(provider), fields] = codec
        return codec

    async def aclose(self) -> None:
        self.closed = True
        escalation = [self._escalation] if self._escalation is not None else []
        for model in [self.provider, *(self._fallbacks or []), *escalation]:
            await model.aclose()
        if self._io is not None:
            self._io.close()
        if self.cache is not None:
            self.cache.close()
        if self.reviewing is not None:
            self.reviewing.close()
        if self.media is not None:
            self.media.close()


def check_media(task: Task, provider: Provider) -> None:
    """Refuse a task with media inputs on a provider that sees text only (rather than drop its media)."""
    if not task.media or provider.capabilities.media is not None:
        return
    refuse_media(task, provider.name, provider.model)


def refuse_media(task: Task, name: str, model: str = "") -> None:
    """Raise why provider ``name`` cannot run a task with media inputs."""
    fields = ", ".join(task.media)
    if name == "local":
        raise UserError(
            f"the local model reads text only and cannot see the media input {fields}: a multimodal GGUF"
            " (--model-path) with its vision projector (an mmproj GGUF) would, which enrichkit does not load yet;"
            " use --provider gemini, openai or anthropic"
        )
    raise UserError(f"{name} / {model} takes no images or documents (media input {fields})")


def in_thread(open_: Callable[[RunOptions], Cache | None], options: RunOptions) -> Future[Cache | None]:
    """``open_(options)`` in a thread of its own, which ends with it."""
    pool = ThreadPoolExecutor(1, thread_name_prefix="enrichkit-open")
    try:
        return pool.submit(open_, options)
    finally:
        pool.shutdown(wait=False)


def discard(opening: Future[Cache | None]) -> None:
    """Close what ``opening`` opened (the run did not start); its own error, if any, is left unsaid."""
    with contextlib.suppress(Exception):
        if (cache := opening.result()) is not None:
            cache.close()


def check_known(task: Task, options: RunOptions) -> None:
    """Refuse a ``check_against`` that names no output field, or a column the model is sent."""
    known = options.check_against
    assert not isinstance(known, str)  # RunOptions made it a mapping
    for name, column in (known or {}).items():
        if name not in task.fields:
            raise UserError(f"--check-against {name}={column}: the task has no output field {name!r}")
        if column in task.inputs:
            raise UserError(
                f"--check-against {name}={column}: {column!r} is an input of the task, the model would read the answer"
            )


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


def run_fingerprint(task: Task, provider: Provider) -> str:
    """What every cache key of a run shares: the task's instruction, inputs and output schema bar its fields
    (each field group's own schema tags its answers: ``engine.fieldkeys``), the prompt format, provider and
    model settings. (Whether packed answers echo their row is a check, not part of the question: not in it.)"""
    shared = {k: v for k, v in task.schema.items() if k not in TIES and k not in ("properties", "required")}
    parts = {"instruction": task.instruction, "inputs": list(task.inputs), "output": shared}
    prompt = {"version": PROMPT_VERSION}
    return fingerprint({"task": parts, "prompt": prompt, "provider": provider.name, **provider.settings()})


def crosswire_checks(task: Task, echo: bool | None, pack_size: int) -> tuple[bool, bool]:
    """Whether packed answers echo their row, and whether their free text is checked against their row
    (``engine.crosswire``, free). By default the free check where the task has free text, plus the echo
    where that text is too short to carry its row's words (or there is none); ``echo=True`` adds the
    echo, ``echo=False`` turns both off. Single rows need neither. A task with media inputs echoes a text
    input by default where it has one, and its free text is not matched to its row's words (it is about
    the media, which has no words to match)."""
    text = bool(text_fields(task.schema))
    if task.media:
        return bool(task.text_inputs) and echo is not False and pack_size > 1, False
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
