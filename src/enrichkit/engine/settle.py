"""What a run has settled: the valid answers (cached as they come), the failures, and their counts.

Every path that settles rows (live calls, batch jobs, ``enrichkit jobs collect``, hits found while the
run goes on) goes through one ``Settlement``, so ``stats`` counts each row once, the way it settled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping

from enrichkit.cache.entry import Entry
from enrichkit.engine.cache_io import CacheIO
from enrichkit.engine.validation import Checked
from enrichkit.providers.base import Usage
from enrichkit.result import ModelStats, Stats
from enrichkit.rows.work import Work


class Settlement:
    """``results`` and ``failures`` by row key, and ``packed``: the rows answered in a pack of more than one
    (what the audit samples). ``on_settled(rows)`` is called as rows settle. An answer by another model than
    ``primary`` (when given) is flagged ``fallback``; one for a row whose earlier answer was refused as an
    answer for another row, ``crosswire``; every answer carries the flags of ``mark``. ``partial``: the
    cached answers of rows asked for some fields only (by key), merged with their new answers."""

    def __init__(
        self,
        stats: Stats,
        io: CacheIO | None = None,
        on_settled: Callable[[int], None] | None = None,
        primary: str | None = None,
        mark: tuple[str, ...] = (),
        partial: Mapping[str, Entry] | None = None,
    ) -> None:
        self.stats = stats
        self.io = io
        self.on_settled = on_settled
        self.primary = primary
        self.mark = mark
        self.partial = partial or {}
        self.results: dict[str, Entry] = {}
        self.failures: dict[str, str] = {}
        self.packed: dict[str, Work] = {}
        self.suspected: set[str] = set()

    def accept(
        self, checked: Checked[Work], usage: Usage, model: str, pack_size: int, flags: tuple[str, ...] = ()
    ) -> tuple[dict[Work, str], Awaitable[None] | None]:
        """Settle the valid rows of an answer by ``model`` to a request of ``pack_size`` rows (``flags``: how
        the answer came, kept with it); the others with why they failed, and an awaitable (None: nothing to
        wait for) done once the valid ones are cached (it raises if that failed)."""
        self.stats.invalid_items += checked.invalid_items
        self.stats.unknown_ids += checked.unknown_ids
        self.stats.crosswired += checked.crosswired
        self.suspected.update(w.key for w in checked.suspects)
        if self.primary is not None and model != self.primary:
            flags = (*flags, "fallback")
        flags = (*flags, *self.mark)
        return checked.invalid, self._store(checked, usage, model, pack_size, flags)

    def _store(
        self, checked: Checked[Work], usage: Usage, model: str, pack_size: int, flags: tuple[str, ...]
    ) -> Awaitable[None] | None:
        answers = checked.valid
        if not answers:
            return None
        share_in, share_out = usage.prompt_tokens / pack_size, usage.output_tokens / pack_size
        confidence, suspected = checked.confidence, self.suspected
        keys = None if self.io is None else self.io.keys
        entries = {
            w.key: Entry(
                values,
                model,
                share_in,
                share_out,
                0.0,
                confidence.get(w, {}),
                (*flags, "crosswire") if w.key in suspected else flags,
                "" if keys is None else keys.group_ids(w.fields),
            )
            for w, values in answers.items()
        }
        if self.partial and keys is not None:
            partial = self.partial
            entries = {key: keys.merged(entry, partial.get(key)) for key, entry in entries.items()}
        self.results.update(entries)
        if pack_size > 1:
            self.packed.update((w.key, w) for w in answers)
        per_model = self.stats.by_model.setdefault(model, ModelStats())
        for w in answers:
            self.stats.enriched += w.rows
            per_model.rows += w.rows
            self._settled(w.rows)
        return self.store(entries)

    def store(self, entries: Mapping[str, Entry]) -> Awaitable[None] | None:
        """Cache ``entries`` (answers settled before, changed: their flags, a better model's answer)."""
        if self.io is None:
            return None
        return self.io.store(entries)  # last: answers whose write fails (a lost Redis) still reach the output

    def hits(self, found: Mapping[str, Entry], items: Iterable[Work]) -> list[Work]:
        """Settle the ``items`` the cache ``found`` (stored since the run looked them up) as hits; the others
        (and those whose entry answers some fields only)."""
        rest = []
        every = None if self.io is None else self.io.keys.all
        for w in items:
            if (entry := found.get(w.key)) is not None and entry.groups == every:
                self.results[w.key] = entry
                self.stats.cache_hits += w.rows
                self._settled(w.rows)
            else:
                rest.append(w)
        return rest

    async def fail(self, item: Work, reason: str) -> None:
        """``item`` gets no answer in this run (it is asked again on the next)."""
        self.failures[item.key] = reason
        self.stats.failed += item.rows
        self._settled(item.rows)
        if self.io is not None:
            await self.io.release([item.key])

    async def flush(self) -> None:
        """Return once every answer settled so far is committed to the cache (or its commit failed)."""
        if self.io is not None:
            await self.io.flush()

    def _settled(self, rows: int) -> None:
        if self.on_settled is not None:
            self.on_settled(rows)
