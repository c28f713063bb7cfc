"""The engine: packs of cache misses, validation, and the salvage ladder.

Every unique row (``Work``) starts in a pack of up to ``batch_size`` rows. Valid items are cached
at once. The rows that failed are asked again in packs half the size of the one they failed in,
down to one row at a time (object schema, no id), then one at a time on each fallback provider.
Provider errors are handled by kind: fatal ones stop the run, rate limits wait and retry the same
call, transient ones retry with backoff and then split, a too-long prompt splits, a block goes to
single rows. The first call runs alone, so a bad key or model costs exactly one call.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import InitVar, dataclass, field
from typing import Any

from enrichkit.adaptive import PackSizer
from enrichkit.audit import Audit, agreement, merged, sample
from enrichkit.cache import Entry, RowCache, canonical
from enrichkit.errors import (
    FatalProviderError,
    PromptTooLong,
    ProviderError,
    RateLimited,
    TransientError,
    Unreachable,
)
from enrichkit.limiter import RateLimiter
from enrichkit.prompt import (
    echo_field,
    echo_of,
    estimate_tokens,
    expected_output_tokens,
    pack_ids,
    pack_prompt,
    pack_schema,
    single_prompt,
    system_instruction,
)
from enrichkit.providers.base import Provider, Reply, Request
from enrichkit.result import CallKind, Stats
from enrichkit.schema import make_validator
from enrichkit.task import Task
from enrichkit.validation import AnswerError, check_pack, check_values, parse_answer

PACK_PROMPT_BUDGET = 24_000
PACK_OUTPUT_BUDGET = 8_000


@dataclass(eq=False)
class Work:
    """One unique row content to enrich (rows with equal keys share it)."""

    key: str
    inputs: dict[str, Any]
    rows: int = 1
    attempts: int = 0
    text: InitVar[str | None] = None  # the inputs' canonical JSON, when the caller has it already
    prompt_tokens: int = field(init=False)

    def __post_init__(self, text: str | None) -> None:
        self.prompt_tokens = estimate_tokens(text if text is not None else canonical(self.inputs))


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


class Engine:
    def __init__(
        self,
        task: Task,
        tiers: Sequence[Provider],
        cache: RowCache | None,
        stats: Stats,
        *,
        batch_size: int,
        concurrency: int,
        retry: RetryPolicy,
        timeout: float | None = None,
        limiter: RateLimiter | None = None,
        echo: bool = False,
        on_settled: Callable[[int], None] | None = None,
        sizer: PackSizer | None = None,
    ) -> None:
        self.task = task
        self.tiers = list(tiers)
        self.cache = cache
        self.stats = stats
        self.batch_size = batch_size
        self.retry = retry
        self.timeout = timeout
        self.on_settled = on_settled
        self.limiter = limiter or RateLimiter()
        self.echo = echo_field(task) if echo else None
        self.results: dict[str, Entry] = {}
        self.failures: dict[str, str] = {}
        self._system = system_instruction(task)
        self._validator = make_validator(task.schema)
        self._fields = task.fields
        self._row_output_tokens = expected_output_tokens(task)
        self._concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._probe = asyncio.Lock()
        self._proven = asyncio.Event()
        self._paused_until = 0.0
        self._aborted = False
        self._group: asyncio.TaskGroup | None = None
        self._sizer = sizer
        self.stats.pack_size = self._sizer.sizes if self._sizer else None
        self._packed: dict[str, Work] = {}

    async def run(self, work: Sequence[Work], size: int | None = None) -> None:
        """Enrich all ``work`` in packs of up to ``size`` rows (default ``batch_size``); results land in
        ``results``/``failures`` (and the cache) as they come."""
        size = size or self.batch_size
        packs = self.plan(work, size)
        if packs:
            await self._preflight(packs[0])
        room = asyncio.Semaphore(self._concurrency)

        async def started(pack: list[Work], formed: int) -> None:
            try:
                await self._pack(pack)
                self._observe(pack, formed)
            finally:
                room.release()

        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                async for pack, formed in self._feed(packs, work, size, room):
                    group.create_task(started(pack, formed))
        except BaseExceptionGroup as failed:
            raise _first_cause(failed) from None

    def plan(self, work: Sequence[Work], size: int) -> list[list[Work]]:
        """Greedy packs of up to ``size`` rows, closed early when a token budget would overflow."""
        packs: list[list[Work]] = []
        current: list[Work] = []
        tokens = 0
        for item in work:
            over_prompt = tokens + item.prompt_tokens > PACK_PROMPT_BUDGET
            over_output = (len(current) + 1) * self._row_output_tokens > PACK_OUTPUT_BUDGET
            if current and (len(current) >= size or over_prompt or over_output):
                packs.append(current)
                current, tokens = [], 0
            current.append(item)
            tokens += item.prompt_tokens
        if current:
            packs.append(current)
        return packs

    def pack_request(self, items: Sequence[Work]) -> tuple[list[str], Request]:
        """The pack-local ids and the request of a pack of ``items`` for the primary provider."""
        ids = pack_ids(len(items))
        request = Request(
            system=self._system,
            prompt=pack_prompt([(rid, w.inputs) for rid, w in zip(ids, items, strict=True)], self.echo),
            schema=pack_schema(self.task, ids, self.tiers[0].capabilities.id_style, self.echo),
            max_output_tokens=self._max_output_tokens(len(items)),
        )
        return ids, request

    async def _preflight(self, first: Sequence[Work]) -> None:
        """A free call first (the provider counts the first pack's tokens): a bad key or unknown model
        stops the run before anything is paid, and when it answers every pack may start at once.
        Providers that cannot count fall back to sending the first paid call alone."""
        provider = self.tiers[0]
        try:
            counted = await asyncio.wait_for(provider.count_tokens(self.pack_request(first)[1]), 30)
        except FatalProviderError:
            self._aborted = True
            raise
        except (ProviderError, TimeoutError):
            return
        if counted is not None:
            self._proven.set()

    async def _feed(
        self, packs: list[list[Work]], work: Sequence[Work], size: int, room: asyncio.Semaphore
    ) -> AsyncIterator[tuple[list[Work], int]]:
        """Each pack, with the size it was formed at, once there is room (so it looks at the cache just
        before it is sent): the planned ``packs``, or with an adaptive size, the next rows left at that size."""
        if self._sizer is None:
            for pack in packs:
                await room.acquire()
                yield pack, size
            return
        start = 0
        while start < len(work):
            await room.acquire()
            formed = self._sizer.size
            limit = min(formed, size)
            pack = self.plan(work[start : start + limit], limit)[0]
            start += len(pack)
            yield pack, formed

    def _observe(self, pack: list[Work], formed: int) -> None:
        """Tell the adaptive size how many rows of a settled pack its answer left unanswered."""
        if self._sizer is not None:
            self._sizer.observe(formed, len(pack), sum(w.key not in self.results for w in pack))

    # -- rungs of the ladder -------------------------------------------------------------------

    async def _pack(self, items: list[Work]) -> None:
        items = self._not_cached_meanwhile(items)
        if not items:
            return
        if len(items) == 1:
            await self._single(items[0], 0)
            return
        provider = self.tiers[0]
        ids, request = self.pack_request(items)
        for w in items:
            w.attempts += 1
        try:
            reply = await self._call(provider, request, "packed")
        except (TransientError, PromptTooLong):
            self._salvage(items, len(items) // 2)
            return
        failed = list(self.accept_pack(reply, ids, items, provider.model))
        if failed:
            self._salvage(failed, 1 if reply.finish == "blocked" else len(items) // 2)

    def _not_cached_meanwhile(self, items: list[Work]) -> list[Work]:
        """The rows still to ask: another process on the same cache may have stored some since the run began."""
        if self.cache is None or not self.cache.written_elsewhere():
            return items
        found = self.cache.get_many(w.key for w in items)
        for w in items:
            if w.key in found:
                self.results[w.key] = found[w.key]
                self.stats.cache_hits += w.rows
                self._settled(w.rows)
        return [w for w in items if w.key not in found]

    def _salvage(self, failed: list[Work], size: int) -> None:
        assert self._group is not None
        size = max(1, size)
        for start in range(0, len(failed), size):
            self._group.create_task(self._pack(failed[start : start + size]))

    def single_request(self, item: Work) -> Request:
        """The request of one row on its own (object schema, no id)."""
        return Request(
            system=self._system,
            prompt=single_prompt(item.inputs),
            schema=self.task.schema,
            max_output_tokens=self._max_output_tokens(1),
        )

    async def _single(self, item: Work, tier: int) -> None:
        provider = self.tiers[tier]
        request = self.single_request(item)
        item.attempts += 1
        try:
            reply = await self._call(provider, request, "single" if tier == 0 else "fallback")
            reason = self.accept_single(reply, item, provider.model)
        except (TransientError, PromptTooLong) as exc:
            reason = str(exc)
        if reason is None:
            return
        if tier + 1 < len(self.tiers):
            await self._single(item, tier + 1)
        else:
            self.fail(item, reason)

    def fail(self, item: Work, reason: str) -> None:
        """``item`` gets no answer in this run (it is asked again on the next)."""
        self.failures[item.key] = reason
        self.stats.failed += item.rows
        self._settled(item.rows)

    # -- answers -------------------------------------------------------------------------------

    def accept_pack(self, reply: Reply, ids: list[str], items: list[Work], model: str) -> dict[Work, str]:
        """Check a pack's answer from ``model``; cache the valid rows; the others with why they failed."""
        by_id = dict(zip(ids, items, strict=True))
        try:
            payload = parse_answer(reply.text, list)
        except AnswerError as exc:
            return dict.fromkeys(items, _explain(reply, str(exc)))
        echoes = {rid: echo_of(by_id[rid].inputs.get(self.echo)) for rid in ids} if self.echo else None
        check = check_pack(payload, ids, self._fields, self._validator, echoes)
        self.stats.invalid_items += len(check.invalid)
        self.stats.unknown_ids += check.unknown_ids
        self.stats.crosswired += check.crosswired
        self._store({by_id[rid]: values for rid, values in check.valid.items()}, reply, model, len(items))
        return {by_id[rid]: _explain(reply, check.invalid[rid]) for rid in ids if rid in check.invalid}

    def accept_single(self, reply: Reply, item: Work, model: str) -> str | None:
        """Check one row's answer from ``model``; cache it if valid, else say why not."""
        try:
            payload = parse_answer(reply.text, dict)
        except AnswerError as exc:
            return _explain(reply, str(exc))
        values, problem = check_values(payload, self._fields, self._validator)
        if problem is not None:
            self.stats.invalid_items += 1
            return _explain(reply, problem)
        self._store({item: values}, reply, model, 1)
        return None

    def _store(self, answers: dict[Work, dict[str, Any]], reply: Reply, model: str, pack_size: int) -> None:
        if not answers:
            return
        share_in = reply.usage.prompt_tokens / pack_size
        share_out = reply.usage.output_tokens / pack_size
        entries = {w.key: Entry(values, model, share_in, share_out) for w, values in answers.items()}
        if self.cache is not None:
            self.cache.put_many(entries)
        self.results.update(entries)
        if pack_size > 1:
            self._packed.update((w.key, w) for w in answers)
        for w in answers:
            self.stats.enriched += w.rows
            self.stats.by_model[model].rows += w.rows
            self._settled(w.rows)

    def _settled(self, rows: int) -> None:
        if self.on_settled is not None:
            self.on_settled(rows)

    def _max_output_tokens(self, rows: int) -> int:
        return max(1024, 4 * rows * self._row_output_tokens)

    # -- audit ---------------------------------------------------------------------------------

    async def audit(self, fraction: float) -> None:
        """Ask a ``fraction`` of the rows answered in packs of this run again one at a time, and record
        in ``stats.audit`` how the answers agree; the single answers are neither cached nor used. A refused
        call ends the audit (the calls not yet sent end cancelled, which the task group ignores), not the run."""
        if fraction <= 0:
            return
        chosen = [self._packed[key] for key in sample(self._packed, fraction)]
        single: dict[str, dict[str, Any]] = {}
        async with asyncio.TaskGroup() as group:
            for item in chosen:
                group.create_task(self._ask_alone(item, single))
        packed = [self.results[key].values for key in single]
        fields = agreement(self.task.schema, packed, list(single.values()))
        self.stats.audit = merged(self.stats.audit, Audit(fraction, len(chosen), len(single), fields))

    async def _ask_alone(self, item: Work, answers: dict[str, dict[str, Any]]) -> None:
        """One audit call into ``answers``; a failed call or an invalid answer gives none."""
        try:
            reply = await self._call(self.tiers[0], self.single_request(item), "audit")
            values, problem = check_values(parse_answer(reply.text, dict), self._fields, self._validator)
        except (ProviderError, AnswerError):
            return
        if problem is None:
            answers[item.key] = values

    # -- calls ---------------------------------------------------------------------------------

    async def _call(self, provider: Provider, request: Request, kind: CallKind) -> Reply:
        """One logical call: retried on rate limits and transient errors as the policy says."""
        transient = limited = 0
        while True:
            async with self._admission():
                await self._unpaused()
                await self.limiter.acquire(estimate_tokens(request.system) + estimate_tokens(request.prompt))
                outcome = await self._attempt(provider, request, kind)
                if isinstance(outcome, Reply | PromptTooLong):
                    self._proven.set()
            if isinstance(outcome, Reply):
                return outcome
            if isinstance(outcome, RateLimited):
                limited += 1
                wait = outcome.retry_after if outcome.retry_after is not None else self.retry.delay(limited)
                if wait > self.retry.max_wait or limited >= self.retry.rate_limit_attempts:
                    self._aborted = True
                if wait > self.retry.max_wait:
                    raise FatalProviderError(f"{outcome} and asks to wait {wait:.0f} s: quota exhausted?")
                if limited >= self.retry.rate_limit_attempts:
                    raise FatalProviderError(f"still rate limited after {limited} tries ({outcome})")
                self._pause(wait)
            elif isinstance(outcome, PromptTooLong):
                raise outcome
            else:
                transient += 1
                if transient >= self.retry.attempts:
                    if isinstance(outcome, Unreachable):
                        self._aborted = True
                        raise FatalProviderError(f"{outcome} (after {transient} tries)")
                    raise outcome
                await asyncio.sleep(self.retry.delay(transient))
            self.stats.retries += 1

    async def _attempt(self, provider: Provider, request: Request, kind: CallKind) -> Reply | ProviderError:
        self.stats.count_call(provider.model, kind)
        timeout = self.timeout or provider.capabilities.timeout
        try:
            reply = await asyncio.wait_for(provider.generate(request), timeout)
        except TimeoutError:
            return TransientError(f"{provider.model} gave no answer within {timeout:g} s")
        except FatalProviderError:
            self._aborted = True
            raise
        except ProviderError as exc:
            return exc
        self.stats.add_usage(provider.model, reply.usage)
        return reply

    @asynccontextmanager
    async def _admission(self) -> AsyncIterator[None]:
        """A concurrency slot; until one call has been answered, calls go one at a time."""
        if not self._proven.is_set():
            async with self._probe:
                if not self._proven.is_set():
                    async with self._slots:
                        self._check_aborted()
                        yield
                    return
        async with self._slots:
            self._check_aborted()
            yield

    def _check_aborted(self) -> None:
        """After a fatal error no new call starts (the task group is about to cancel everything)."""
        if self._aborted:
            raise asyncio.CancelledError

    def _pause(self, seconds: float) -> None:
        """Hold every new call for ``seconds``: the server's rate limit applies to all of them."""
        loop = asyncio.get_running_loop()
        self._paused_until = max(self._paused_until, loop.time() + seconds)

    async def _unpaused(self) -> None:
        loop = asyncio.get_running_loop()
        while (left := self._paused_until - loop.time()) > 0:
            await asyncio.sleep(left)


def _explain(reply: Reply, problem: str) -> str:
    if reply.finish == "max_tokens":
        return f"answer cut off at the output token limit (MAX_TOKENS): {problem}"
    if reply.finish == "blocked":
        return f"blocked by the provider ({reply.detail or 'safety'})"
    return problem


def _first_cause(group: BaseExceptionGroup[Any]) -> BaseException:
    first = group.exceptions[0]
    return _first_cause(first) if isinstance(first, BaseExceptionGroup) else first
