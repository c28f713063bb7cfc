"""The salvage ladder: where the rows of a failed request go next, in live and batch mode alike.

A rung is a pack size on a model (the main model, then each fallback model in turn). Rows of a
failed pack go to packs half its size, down to one row on its own (object schema, no id); a row that
failed on its own goes to the next fallback model, then fails for this run (it is asked again next run). A block
sends a pack's rows straight to single rows. In batch mode every rung is a whole job (hours): the
rows of a failed pack stay packed (``in_batch``), on the next fallback model in packs twice as big
(two failed packs a request, so its fixed part, the instruction and the schema, is paid half as
often; at most the largest pack that model takes), or without one in half packs (single rows once half
would be under ``HALF_FLOOR``, or when the answer pointed at the rows).

The ladder learns: when ``BROKEN_AFTER`` packs of one size in a row (``UNTRIED_AFTER`` while that size
has not worked once) lose at least half their rows (to the answer, or to a refusal, not to a passing
server error), that size and every larger one are given up for the rest of the run; new packs and
salvage go straight to the largest size that has worked, or half the broken size when none has yet.
And when ``BROKEN_AFTER`` packs were answered but not one row of the run was valid (a model that
cannot follow the pack format, a schema it cannot satisfy), packs are given up at once: every row
goes on its own. So a provider that cannot answer packs costs a few packs and then about a call a
row, not a walk down every rung for every pack.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass

from enrichkit.options import MAX_PACK_SIZE

BROKEN_AFTER = 3

"""Packs in a row of one size that lost half their rows or more before that size is given up."""

UNTRIED_AFTER = 2

"""The same, for a size that has not worked once in this run (the first two packs refused: a size limit)."""

HALF_FLOOR = 4
"""Batch mode: the smallest half pack; below it the rows go on their own."""


@dataclass(frozen=True)
class Rung:
    size: int
    """Rows per request: more than one is a pack, one a row asked on its own."""
    fallback: int = 0
    """0: the main model; n: the n-th fallback model."""


class Ladder:
    """The rungs of a run of ``models`` models (the main one, then the fallbacks); ``widest``: the largest
    pack each model takes (``Capabilities.max_pack_size``; by default ``MAX_PACK_SIZE``)."""

    def __init__(self, pack_size: int, models: int, widest: Sequence[int] = ()) -> None:
        self.pack_size = pack_size
        self.models = models
        self.widest = list(widest) or [MAX_PACK_SIZE] * models
        self.cap = pack_size
        """The largest pack size still believed to work."""
        self._recent: defaultdict[int, deque[bool]] = defaultdict(lambda: deque(maxlen=BROKEN_AFTER))
        self._worked: set[int] = set()
        self._answered_in_vain = 0

    @property
    def first(self) -> Rung:
        return Rung(min(self.pack_size, self.cap))

    def after(self, rung: Rung, *, blocked: bool = False) -> Rung | None:
        """The rung for rows that failed at ``rung``; None when there is none left."""
        if rung.size > 1:
            size = 1 if blocked else min(rung.size // 2, self.cap)
            return Rung(max(1, size), rung.fallback)
        if rung.fallback + 1 < self.models:
            return Rung(1, rung.fallback + 1)
        return None

    def in_batch(self, rung: Rung, *, whole: bool) -> Rung | None:
        """The rung of the next batch round for rows that failed at ``rung`` (``whole``: their whole request
        failed, nothing points at one row): packs twice as big on the next fallback model (single rows
        stay single), at most the largest it takes; on the last model half packs, or single rows; None
        when there is none left."""
        if (fallback := rung.fallback + 1) < self.models:
            return Rung(rung.size if rung.size == 1 else min(2 * rung.size, self.widest[fallback]), fallback)
        if rung.size > 1:
            half = rung.size // 2
            return Rung(half if whole and half >= HALF_FLOOR else 1, rung.fallback)
        return None

    def observe(self, size: int, rows: int, lost: int, *, answered: bool = False, none_valid: bool = False) -> None:
        """A pack of ``size`` rows (``rows`` of them still asked) lost ``lost`` rows to its answer or a refusal;
        ``answered``: the model answered it in full; ``none_valid``: no row of the whole run is valid yet."""
        if size < 2 or size > self.cap:
            return
        if answered and none_valid and lost == rows:
            self._answered_in_vain += 1
            if self._answered_in_vain >= BROKEN_AFTER:
                self.cap = 1
                return
        bad = 2 * lost >= rows
        if not bad:
            self._worked.add(size)
        recent = self._recent[size]
        recent.append(bad)
        untried = size not in self._worked and len(recent) >= UNTRIED_AFTER  # never worked: fewer to prove it
        if all(recent) and (len(recent) == BROKEN_AFTER or untried):
            working = [s for s in self._worked if s < size]
            self.cap = max(working) if working else max(1, size // 2)
