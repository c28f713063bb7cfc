"""The pack codec: rows into packs and requests, answers back into checked, cached values.

Live mode, batch mode, the dry run and ``enrichkit jobs`` all pack and check through one ``Packer``,
so a row is asked and accepted the same way whichever path it travels. The packer also keeps what a
run has settled: the valid answers (cached at once), the failures, and their counts in ``stats``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

from enrichkit.cache.base import Cache
from enrichkit.cache.commits import GroupCommit
from enrichkit.cache.entry import Entry
from enrichkit.engine.crosswire import suspects, text_fields
from enrichkit.engine.prompt import (
    echo_field,
    echo_of,
    expected_output_tokens,
    pack_ids,
    pack_prompt,
    pack_schema,
    single_prompt,
    system_instruction,
)
from enrichkit.engine.validation import AnswerError, check_pack, check_values, parse_answer, parse_items
from enrichkit.providers.base import IdStyle, Reply, Request
from enrichkit.result import ModelStats, Stats
from enrichkit.rows.work import Work
from enrichkit.task.schema import make_validator
from enrichkit.task.task import Task

PACK_PROMPT_BUDGET = 24_000

PACK_OUTPUT_BUDGET = 8_000

LEASE_POLL = 0.05  # seconds: the first wait for rows another worker is asking


class Packer:
    """Packs, requests and answers of one task; ``results`` and ``failures`` hold what has settled."""

    def __init__(
        self,
        task: Task,
        stats: Stats,
        *,
        cache: Cache | None = None,
        id_style: IdStyle = "enum",
        echo: bool = False,
        affinity: bool = False,
        timeout: float | None = None,
        on_settled: Callable[[int], None] | None = None,
        cache_thread: Executor | None = None,
    ) -> None:
        self.task = task
        self.stats = stats
        self.cache = cache
        self._commits = GroupCommit(cache, cache_thread) if cache is not None else None
        self.id_style = id_style
        self.echo = echo_field(task) if echo else None
        self.affinity = text_fields(task.schema) if affinity else []
        self.timeout = timeout
        self.on_settled = on_settled
        self.results: dict[str, Entry] = {}
        self.failures: dict[str, str] = {}
        self.packed: dict[str, Work] = {}  # rows answered in a pack of more than one (what the audit samples)
        self._system = system_instruction(task)
        self._validator = make_validator(task.schema)
        self._fields = task.fields
        self._row_output_tokens = expected_output_tokens(task)

    # -- packs and requests --------------------------------------------------------------------

    def packs(self, work: Sequence[Work], size: int) -> list[list[Work]]:
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
        """The pack-local ids and the request of a pack of ``items``."""
        ids = pack_ids(len(items))
        request = Request(
            system=self._system,
            prompt=pack_prompt([(rid, w.inputs) for rid, w in zip(ids, items, strict=True)], self.echo),
            schema=pack_schema(self.task, ids, self.id_style, self.echo),
            max_output_tokens=self._max_output_tokens(len(items)),
            timeout=self.timeout,
        )
        return ids, request

    def single_request(self, item: Work, rejected: str | None = None) -> Request:
        """The request of one row on its own (object schema, no id); ``rejected``: why its previous
        answer was refused, for the model to repair."""
        return Request(
            system=self._system,
            prompt=single_prompt(item.inputs, rejected),
            schema=self.task.schema,
            max_output_tokens=self._max_output_tokens(1),
            timeout=self.timeout,
        )

    def echoes(self, items: Sequence[Work]) -> list[str] | None:
        """What each packed answer must echo of its row (None without the echo check)."""
        return [echo_of(w.inputs.get(self.echo)) for w in items] if self.echo else None

    def expected_output_tokens(self, rows: int) -> int:
        """The answer tokens ``rows`` rows are expected to take (the dry run's and the budget's estimate)."""
        return rows * self._row_output_tokens

    def _max_output_tokens(self, rows: int) -> int:
        return max(1024, 4 * self.expected_output_tokens(rows))

    # -- answers -------------------------------------------------------------------------------

    async def accept_pack(self, reply: Reply, ids: list[str], items: list[Work], model: str) -> dict[Work, str]:
        """Check a pack's answer from ``model``; cache the valid rows; the others with why they failed."""
        failed, stored = self.take_pack(reply, ids, items, model)
        if stored is not None:
            await stored
        return failed

    def take_pack(
        self, reply: Reply, ids: list[str], items: list[Work], model: str
    ) -> tuple[dict[Work, str], Awaitable[None] | None]:
        """``accept_pack`` without waiting for the cache: the valid rows are in ``results`` at once, and
        the awaitable (None: nothing to wait for) is done once they are cached (it raises if that failed)."""
        by_id = dict(zip(ids, items, strict=True))
        try:
            payload, broken = parse_items(reply.text)
        except AnswerError as exc:
            return dict.fromkeys(items, explain(reply, str(exc))), None
        echoes = {rid: echo_of(by_id[rid].inputs.get(self.echo)) for rid in ids} if self.echo else None
        check = check_pack(payload, ids, self._fields, self._validator, echoes, missing=broken)
        inputs = {rid: w.inputs for rid, w in by_id.items() if w.rows}  # not a batch job's stand-ins
        for rid in suspects({r: v for r, v in check.valid.items() if r in inputs}, inputs, self.affinity):
            del check.valid[rid]
            check.invalid[rid] = "its text fits another row of the pack better than its own: an answer for another row?"
            check.crosswired += 1
        self.stats.invalid_items += len(check.invalid)
        self.stats.unknown_ids += check.unknown_ids
        self.stats.crosswired += check.crosswired
        stored = self._store({by_id[rid]: values for rid, values in check.valid.items()}, reply, model, len(items))
        return {by_id[rid]: explain(reply, check.invalid[rid]) for rid in ids if rid in check.invalid}, stored

    async def accept_single(self, reply: Reply, item: Work, model: str) -> str | None:
        """Check one row's answer from ``model``; cache it if valid, else say why not."""
        try:
            payload = parse_answer(reply.text, dict)
        except AnswerError as exc:
            return explain(reply, str(exc))
        values, problem = self.check_values(payload)
        if problem is not None:
            self.stats.invalid_items += 1
            return explain(reply, problem)
        if (stored := self._store({item: values}, reply, model, 1)) is not None:
            await stored
        return None

    def check_values(self, item: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The output fields of one answer and the first problem with them (None when valid)."""
        return check_values(item, self._fields, self._validator)

    def _store(
        self, answers: Mapping[Work, dict[str, Any]], reply: Reply, model: str, pack_size: int
    ) -> Awaitable[None] | None:
        """Settle ``answers`` now; the awaitable (None: nothing to wait for) is done once they are cached."""
        if not answers:
            return None
        share_in = reply.usage.prompt_tokens / pack_size
        share_out = reply.usage.output_tokens / pack_size
        entries = {w.key: Entry(values, model, share_in, share_out) for w, values in answers.items()}
        self.results.update(entries)
        if pack_size > 1:
            self.packed.update((w.key, w) for w in answers)
        for w in answers:
            self.stats.enriched += w.rows
            self.stats.by_model.setdefault(model, ModelStats()).rows += w.rows
            self._settled(w.rows)
        if self._commits is None:
            return None
        return self._commits.add(entries)  # last: answers whose write fails (a lost Redis) still reach the output

    async def flush(self) -> None:
        """Return once every answer stored so far is committed to the cache (or its commit failed)."""
        if self._commits is not None:
            await self._commits.wait()

    def claim(self, items: list[Work]) -> tuple[list[Work], list[Work]]:
        """The rows to ask now, and the rows another worker is asking now (``awaited``).

        Another process on the same cache may have stored some rows since the run began: they settle
        as hits. On a cache with leases this run takes the leases of the rows that are free; a row whose
        lease another worker holds is left to it (a lease ends when its row is stored or failed, or
        after the lease time), so the pack is formed from the other rows instead of waiting."""
        if self.cache is None:
            return items, []
        if self.cache.written_elsewhere():
            items = self._hits(items)
        taken = set(self.cache.lease([w.key for w in items]))
        if not taken:
            return items, []
        items = self._hits(items)  # some were taken because they are stored already
        return [w for w in items if w.key not in taken], [w for w in items if w.key in taken]

    async def awaited(self, held: list[Work]) -> list[Work]:
        """Wait for rows other workers hold, looking at the cache again after short waits: the rows they
        store settle as hits; the rows returned became free (their holder failed them or died) and are
        this run's to ask."""
        free: list[Work] = []
        delay = LEASE_POLL
        while held:
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(1.0, delay * 1.5)
            more, held = self.claim(held)
            free += more
        return free

    def _hits(self, items: list[Work]) -> list[Work]:
        """``items`` less the rows the cache holds now (settled as hits)."""
        assert self.cache is not None
        found = self.cache.get_many(w.key for w in items)
        for w in items:
            if w.key in found:
                self.results[w.key] = found[w.key]
                self.stats.cache_hits += w.rows
                self._settled(w.rows)
        return [w for w in items if w.key not in found]

    def fail(self, item: Work, reason: str) -> None:
        """``item`` gets no answer in this run (it is asked again on the next)."""
        self.failures[item.key] = reason
        if self.cache is not None:
            self.cache.release([item.key])
        self.stats.failed += item.rows
        self._settled(item.rows)

    def _settled(self, rows: int) -> None:
        if self.on_settled is not None:
            self.on_settled(rows)


def explain(reply: Reply, problem: str) -> str:
    """Why a reply's rows failed, naming the finish reason when it was not a normal stop."""
    if reply.finish == "max_tokens":
        return f"answer cut off at the output token limit (MAX_TOKENS): {problem}"
    if reply.finish == "blocked":
        return f"blocked by the provider ({reply.detail or 'safety'})"
    return problem
