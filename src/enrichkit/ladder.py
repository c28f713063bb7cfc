"""The salvage ladder: where the rows of a failed request go next, in live and batch mode alike.

A rung is a pack size on a model tier (0: the main model, then each fallback in turn). Rows of a
failed pack go to packs half its size, down to one row on its own (object schema, no id); a row that
failed on its own goes to the next tier, then fails for this run (it is asked again next run). A block
sends a pack's rows straight to single rows. In batch mode every rung is a whole job (hours), so a
failed pack's rows go straight to single rows there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rung:
    size: int
    """Rows per request: more than one is a pack, one a row asked on its own."""
    tier: int = 0
    """0 the main model, then each fallback model in turn."""


class Ladder:
    def __init__(self, pack_size: int, tiers: int, *, whole_jobs: bool = False) -> None:
        self.pack_size = pack_size
        self.tiers = tiers
        self.whole_jobs = whole_jobs

    @property
    def first(self) -> Rung:
        return Rung(self.pack_size)

    def after(self, rung: Rung, *, blocked: bool = False) -> Rung | None:
        """The rung for rows that failed at ``rung``; None when there is none left."""
        if rung.size > 1:
            return Rung(1 if blocked or self.whole_jobs else rung.size // 2, rung.tier)
        if rung.tier + 1 < self.tiers:
            return Rung(1, rung.tier + 1)
        return None
